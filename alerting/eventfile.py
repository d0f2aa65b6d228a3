"""Writing an events file: JSON Lines, gzip when the name ends in ``.gz``, all or nothing.

An export can take an hour against a real org; one cut short (an error, Ctrl-C, a full
disk) must not leave a file that looks whole. So the events go to a temporary name in
the same directory, are flushed to disk (``fsync``), and only then renamed to the final
name; on any failure the temporary file is removed and the final name never appears.
"""

from __future__ import annotations

import gzip
import os
import tempfile
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from alerting import jsonutil
from alerting.errors import AlertingError

__all__ = ["EventFileWriter"]


class EventFileWriter:
    """``with EventFileWriter(path) as out: out.write(event)``; the file appears at
    ``path`` only when the block ends without an exception."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.count = 0
        self._tmp: Path | None = None
        self._raw: IO[bytes] | None = None
        self._out: IO[bytes] | gzip.GzipFile | None = None

    def __enter__(self) -> EventFileWriter:
        directory = self.path.parent
        try:
            fd, tmp = tempfile.mkstemp(
                prefix=f".{self.path.name}.", suffix=".partial", dir=directory
            )
        except OSError as exc:
            raise AlertingError(f"cannot write {self.path}: {exc.strerror}") from None
        self._tmp = Path(tmp)
        self._raw = os.fdopen(fd, "wb", buffering=1 << 16)
        if self.path.name.endswith(".gz"):
            # mtime 0: the same events give the same bytes
            self._out = gzip.GzipFile(fileobj=self._raw, mode="wb", compresslevel=6, mtime=0)
        else:
            self._out = self._raw
        return self

    def write(self, event: dict[str, Any]) -> None:
        """One event as one compact JSON line."""
        assert self._out is not None, "use EventFileWriter as a context manager"
        try:
            self._out.write(jsonutil.dumps(event).encode() + b"\n")
        except OSError as exc:
            raise AlertingError(f"cannot write {self.path}: {exc.strerror}") from None
        self.count += 1

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self._raw is not None
        assert self._out is not None
        assert self._tmp is not None
        try:
            if exc_type is None:
                try:
                    if self._out is not self._raw:
                        self._out.close()  # the gzip trailer; leaves the file open
                    self._raw.flush()
                    os.fsync(self._raw.fileno())
                    self._raw.close()
                    os.replace(self._tmp, self.path)
                except OSError as err:
                    raise AlertingError(f"cannot write {self.path}: {err.strerror}") from None
        finally:
            if not self._raw.closed:
                self._raw.close()
            self._tmp.unlink(missing_ok=True)
