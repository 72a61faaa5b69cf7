"""One run per run directory.

A run takes ``<run dir>/.avvp-lock`` (created exclusively; it records the process id,
host, start time and command) and removes it when it ends. A second run in that
directory refuses, naming the running one. A lock left by a process that no longer
exists on this host (a run killed with SIGKILL) is stale and is taken over; a lock from
another host cannot be checked and is reported with the way to clear it.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from avvp_lit.utils.errors import InputError

LOCK_NAME = ".avvp-lock"


class RunDirectoryInUse(InputError):
    """Another live run owns the directory."""


def process_alive(pid: int) -> bool:
    """Whether a process with this id exists on this host."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _owner(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _describe(owner: dict | None) -> str:
    if not owner:
        return "an unknown run"
    started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(owner.get("started", 0)))
    return (
        f"process {owner.get('pid')} on {owner.get('host')} (started {started}: "
        f"{owner.get('command', '?')})"
    )


@contextlib.contextmanager
def run_directory_lock(run_dir: str | Path) -> Iterator[Path]:
    """Hold the lock of ``run_dir`` for the duration of the block."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / LOCK_NAME
    me = {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "started": time.time(),
        "command": " ".join(sys.argv)[:300],
    }
    for _ in range(3):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            owner = _owner(path)
            same_host = owner is not None and owner.get("host") == me["host"]
            if same_host and isinstance(owner.get("pid"), int) and not process_alive(owner["pid"]):
                path.unlink(missing_ok=True)  # stale: its process is gone
                continue
            if owner is None and path.exists() and time.time() - path.stat().st_mtime > 60:
                path.unlink(missing_ok=True)  # an unreadable lock nobody is writing
                continue
            hint = "" if same_host else f" (if that run is dead, delete {path})"
            raise RunDirectoryInUse(
                f"{run_dir} is in use by {_describe(owner)}; choose another "
                f"hydra.run.dir or wait for it to finish{hint}"
            ) from None
        with os.fdopen(fd, "w") as handle:
            json.dump(me, handle)
        break
    else:
        raise RunDirectoryInUse(f"{run_dir}: could not take {path}")
    try:
        yield path
    finally:
        if (_owner(path) or {}).get("pid") == me["pid"]:
            path.unlink(missing_ok=True)
