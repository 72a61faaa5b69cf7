"""One convention for bad input, shared by every command.

A mistake in what the user handed over (a config value, an annotation or feature file, a
checkpoint, a predictions file) raises an :class:`InputError` whose message names the
file (and line, video, modality or key) and what was expected. Each command turns it
into one line on stderr, ``<program>: error: <message>``, and exit status
:data:`EXIT_BAD_INPUT`; nothing else is printed. With ``HYDRA_FULL_ERROR=1`` or
``AVVP_DEBUG=1`` in the environment (or ``--debug`` on the argparse commands) the
traceback is shown instead.

Exit statuses: 0 success; 2 bad input (including a file that cannot be read or written,
and a mistyped Hydra override); 1 anything unexpected (a bug: please report it with the
traceback).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from typing import TypeVar

EXIT_BAD_INPUT = 2
DEBUG_VARIABLES = ("HYDRA_FULL_ERROR", "AVVP_DEBUG")

Result = TypeVar("Result")


class InputError(ValueError):
    """Bad input from the user; the message names where it is and what was expected."""


def debug_requested(argv: list[str] | None = None) -> bool:
    """Whether the user asked for tracebacks (environment, or ``--debug`` in ``argv``)."""
    if any(os.environ.get(name, "") not in ("", "0") for name in DEBUG_VARIABLES):
        return True
    return "--debug" in (sys.argv[1:] if argv is None else argv)


class ConfigError(InputError):
    """A config value that cannot work; the message names the key and the allowed values."""


def one_line(error: BaseException, limit: int | None = None) -> str:
    """An exception's message on one line (whitespace collapsed), or its type's name."""
    return " ".join(str(error).split())[:limit] or type(error).__name__


def first_names(names: Sequence[object], shown: int = 5, total: int | None = None) -> str:
    """The first ``shown`` of ``names``, then how many more: ``a, b, c, ... (7 more)``.
    ``total`` counts the whole list when ``names`` is already cut."""
    total = len(names) if total is None else total
    head = ", ".join(str(name) for name in list(names)[:shown])
    return head + (f", ... ({total - shown} more)" if total > shown else "")


WORKER_TRACEBACK = "Original Traceback (most recent call last):"


def own_message(error: BaseException) -> str:
    """The error's own message. An error raised in a DataLoader worker reaches the main
    process re-created with torch's whole worker traceback as its text (``Caught
    FeatureError in DataLoader worker process 0. Original Traceback ...``); its own
    message is the traceback's last line, after the exception's name."""
    text = str(error)
    if WORKER_TRACEBACK not in text:
        return text
    last = text.rstrip().splitlines()[-1]
    marker = f"{type(error).__name__}: "
    return last.split(marker, 1)[1] if marker in last else last


def describe(error: BaseException) -> str:
    """One line for a named error: the message, or for an OS error its file and reason."""
    if isinstance(error, OSError) and error.filename is not None and error.strerror:
        return f"{error.filename}: {error.strerror}"
    return " ".join(own_message(error).split()) or type(error).__name__


def report_input_error(program: str, error: BaseException) -> None:
    print(f"{program}: error: {describe(error)}", file=sys.stderr)


def add_debug_flag(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument("--debug", action="store_true", help="show tracebacks of input errors")
    return parser


def run_cli(program: str, body: Callable[[], int], argv: list[str] | None = None) -> int:
    """``body()`` of an argparse command; bad input -> one line on stderr, status 2."""
    try:
        return body()
    except (InputError, OSError) as error:
        if debug_requested(argv):
            raise
        report_input_error(program, error)
        return EXIT_BAD_INPUT


def exit_on_input_error(
    program: str, task: Callable[..., Result], *args: object, debug: bool | None = None
) -> Result:
    """``task(*args)``; an :class:`InputError` or :class:`OSError` ends ``program`` with one
    line on stderr and exit status 2 (re-raised when debugging)."""
    try:
        return task(*args)
    except (InputError, OSError) as error:
        if debug_requested() if debug is None else debug:
            raise
        report_input_error(program, error)
        sys.exit(EXIT_BAD_INPUT)


def run_hydra_app(program: str, hydra_main: Callable[[], object]) -> None:
    """Run a ``@hydra.main`` function; Hydra's own composition errors (a mistyped override
    or group choice, printed by Hydra in a few lines) exit with status 2, like every bad
    input, and unexpected failures keep Hydra's status 1."""
    started = _TaskStarted.flag
    _TaskStarted.flag = False
    try:
        hydra_main()
    except SystemExit as exit_:
        if exit_.code == 1 and not _TaskStarted.flag:
            sys.exit(EXIT_BAD_INPUT)
        raise
    finally:
        _TaskStarted.flag = started


class _TaskStarted:
    """Set once a Hydra app's task runs, so a failure before it is a composition error."""

    flag = False


def task_started() -> None:
    _TaskStarted.flag = True
