"""The always-on service, one job per module: ``app`` (``Service``), ``poll`` (one poll
cycle), ``recovery`` (warm-up, forgetting a failed batch), ``deliver``, ``lock``,
``failpoints`` and ``banner``."""

from alerting.service.app import Service
from alerting.service.failpoints import FAILPOINT_ENV
from alerting.service.lock import StateLock
from alerting.service.poll import PollOutcome

__all__ = ["FAILPOINT_ENV", "PollOutcome", "Service", "StateLock"]
