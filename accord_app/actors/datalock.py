"""One Accord per data folder: a lock that a second process finds taken, and says by whom.

Two servers on one folder would each open the same actors: two copies of an actor, two
sequences of message numbers. Each actor's file is locked while it is open, but a hibernated
actor's is not, so the whole folder is claimed at start-up by `python -m accord_app` and by
the cluster (whose workers share the folder on purpose, each hosting its own actors). The
operating system drops the lock when the process ends, even after a kill -9: no stale lock.
"""

import os
import sys
from pathlib import Path
from types import TracebackType

LOCK_NAME = "accord.lock"


class DataDirInUse(RuntimeError):
    """Another process holds the data folder; the message says which."""


class DataDirLock:
    """Held from `acquire()` (or `with`) until `release()` or the end of the process."""

    def __init__(self, data_dir: Path, holder: str) -> None:
        self.path = data_dir / LOCK_NAME
        self.holder = holder
        self._fd: int | None = None

    def acquire(self) -> "DataDirLock":
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        if not _try_lock(fd):
            try:
                other = os.read(fd, 1000).decode(errors="replace").strip()
            except OSError:  # Windows: the holder's lock covers reading too
                other = ""
            os.close(fd)
            other = other or "another process"
            raise DataDirInUse(
                f"{self.path.parent} is in use by {other}. Stop it first, or give this one"
                " another folder (--data-dir or ACCORD_DATA_DIR)."
            )
        os.ftruncate(fd, 0)
        os.write(fd, f"{self.holder} (pid {os.getpid()})\n".encode())
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing drops the lock
            self._fd = None

    def __enter__(self) -> "DataDirLock":
        return self.acquire()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()


if sys.platform == "win32":
    import msvcrt

    def _try_lock(fd: int) -> bool:
        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        return True

else:
    import fcntl

    def _try_lock(fd: int) -> bool:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return False
        return True
