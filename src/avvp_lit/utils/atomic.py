"""Files that appear under their final name only when complete.

Everything the project writes (result files, checkpoints, packed stores, reports) goes
through a hidden temporary sibling, flushed to disk, then renamed over the final name
(an atomic step on POSIX file systems). A crash or a full disk leaves at most a hidden
``.<name>.tmp-<pid>`` file, which is removed when the failure is seen in-process.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

TMP_MARK = ".tmp-"


def temporary_sibling(path: Path) -> Path:
    return path.with_name(f".{path.name}{TMP_MARK}{os.getpid()}")


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path to write ``path``'s content to; on success it is synced and
    renamed to ``path``, on any failure removed (and ``path`` left as it was)."""
    path = Path(path)
    tmp = temporary_sibling(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        yield tmp
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except OSError as error:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        reason = error.strerror or str(error)
        raise OSError(error.errno, f"cannot write ({reason})", str(path)) from error
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that no reader ever sees half of it."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
