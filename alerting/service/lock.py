"""``StateLock``: one service per state database, held with ``flock``."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
from pathlib import Path
from typing import IO

from alerting.errors import AlertingError

__all__ = ["StateLock"]


class StateLock:
    """An exclusive ``flock`` on ``<state.path>.lock``: one service per state database.

    Two services on one database would each advance the cursor and deliver the same
    alerts. The kernel releases the lock when the process dies, even by SIGKILL.
    """

    def __init__(self, state_path: str) -> None:
        self.path = f"{state_path}.lock"
        self._file: IO[str] | None = None

    def acquire(self) -> None:
        try:
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            handle = open(self.path, "a+", encoding="utf-8")  # noqa: SIM115 - held until release
        except OSError as exc:
            raise AlertingError(
                f"{self.path}: cannot open the lock file ({exc.strerror}): "
                "set state.path to a writable location"
            ) from None
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                handle.close()
                raise AlertingError(f"{self.path}: cannot lock ({exc.strerror})") from None
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            handle.close()
            raise AlertingError(
                f"another `alerting run` (pid {holder}) is already using the state in "
                f"{self.path.removesuffix('.lock')}: stop it first, or give this one its own "
                "state.path"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        self._file = handle

    def release(self) -> None:
        if self._file is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(self._file.fileno(), fcntl.LOCK_UN)
            self._file.close()
            self._file = None
