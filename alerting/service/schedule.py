"""Quiet scheduling: a poll or delivery that runs long is one line, not one per tick.

APScheduler runs each job at most once at a time and logs a warning at every tick it
cannot start it ("maximum number of running instances reached"): once a second for as
long as a slow poll lasts. ``SkipNotices`` filters those records out of APScheduler's
loggers, says once that the job is being skipped, counts the skips in /metrics, and says
once more, when the long run ends, how many runs it skipped.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from alerting.metrics import Metrics

__all__ = ["SCHEDULER_LOGGERS", "SkipNotices"]

log = logging.getLogger("alerting.service")

# Where APScheduler 3.x logs a run it could not start, and the start of those messages.
SCHEDULER_LOGGERS = ("apscheduler.scheduler", "apscheduler.executors.default")
_SKIP_MESSAGES = (
    'Execution of job "%s" skipped: maximum number of running instances',
    'Run time of job "%s" was missed by',
)
_NOUNS = {"poll": "poll", "deliver": "delivery"}


class SkipNotices(logging.Filter):
    """Turns APScheduler's per-tick skip warnings into one line per long run of a job."""

    def __init__(self, metrics: Metrics) -> None:
        super().__init__()
        self.metrics = metrics
        self._lock = threading.Lock()
        self._started: dict[str, float] = {}
        self._skipped: dict[str, int] = {}

    def install(self) -> None:
        for name in SCHEDULER_LOGGERS:
            logging.getLogger(name).addFilter(self)

    def remove(self) -> None:
        for name in SCHEDULER_LOGGERS:
            logging.getLogger(name).removeFilter(self)

    @contextmanager
    def running(self, job_id: str) -> Iterator[None]:
        """Wrap one run of a job: its start time, and the summary of what it held back."""
        with self._lock:
            self._started[job_id] = time.monotonic()
            self._skipped[job_id] = 0
        try:
            yield
        finally:
            with self._lock:
                took = time.monotonic() - self._started.pop(job_id, time.monotonic())
                skipped = self._skipped.pop(job_id, 0)
            if skipped:
                noun = _NOUNS.get(job_id, job_id)
                log.info(
                    "the long %s finished after %.1fs; %d scheduled run%s skipped meanwhile",
                    noun,
                    took,
                    skipped,
                    " was" if skipped == 1 else "s were",
                    extra={"job": job_id, "duration_s": round(took, 3), "skipped": skipped},
                )

    def filter(self, record: logging.LogRecord) -> bool:
        if not isinstance(record.msg, str) or not record.msg.startswith(_SKIP_MESSAGES):
            return True
        job = record.args[0] if isinstance(record.args, tuple) and record.args else None
        job_id = str(getattr(job, "id", "job"))
        self.metrics.skipped_runs.labels(job=job_id).inc()
        with self._lock:
            count = self._skipped.get(job_id, 0) + 1
            self._skipped[job_id] = count
            started = self._started.get(job_id)
        if count == 1:
            noun = _NOUNS.get(job_id, job_id)
            running = "" if started is None else f" for {time.monotonic() - started:.0f}s"
            log.warning(
                "%s skipped: the previous %s is still running%s; skipped runs are not "
                "logged again until it finishes",
                noun,
                noun,
                running,
                extra={"job": job_id},
            )
        return False
