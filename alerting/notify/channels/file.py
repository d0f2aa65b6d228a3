"""Append one alert JSON object per line to a file, fsync'd so a crash keeps it."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from alerting.alert import Alert
from alerting.notify.channels.errors import PermanentError, TemporaryError
from alerting.notify.incidents import IncidentView
from alerting.notify.settings import FileChannel


class FileSender:
    groups_bursts = False  # one alert per line is the file's contract

    def __init__(self, name: str, config: FileChannel) -> None:
        self.name = name
        self.path = Path(config.path)

    def send(self, alerts: Sequence[Alert], incident: IncidentView | None = None) -> None:
        # Each line is one alert JSON object; an incident's alerts carry its id.
        data = "".join(a.to_json() + "\n" for a in alerts).encode()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                view = memoryview(data)
                while view:
                    written = os.write(fd, view)
                    view = view[written:]
                os.fsync(fd)
            finally:
                os.close(fd)
        except (PermissionError, IsADirectoryError, NotADirectoryError) as exc:
            raise PermanentError(
                f"cannot write {self.path}: {exc.strerror}: fix the path or its permissions"
            ) from None
        except OSError as exc:
            raise TemporaryError(f"cannot write {self.path}: {exc.strerror or exc}") from None

    def close(self) -> None:
        return None
