"""Units, defaults and limits shared by every module of the traffic generator.

One home for the numbers the modules must agree on (the spill of a session past its
hour, the longest blackout, the trip week, the victim lanes), so no module redefines them.
"""

from __future__ import annotations

from typing import Any

from alerting.durations import DAY_NS, HOUR_NS, MINUTE_NS

Item = tuple[int, str, dict[str, Any]]  # (time ns, id, raw event)
SPILL_NS = 3 * HOUR_NS  # a session/attack never lasts longer than this
MAX_BLACKOUT_NS = 14 * HOUR_NS  # longest quiet period around an attack's victim
TRIP_EPOCH_NS = 7 * DAY_NS
VICTIM_LANES = 4  # attacks with the victim's own successful logins

DEFAULT_ORG_ID = "5f3c2a1b9d8e7f6a5b4c3d2e"
DEFAULT_ATTACK_SLOT_NS = 30 * MINUTE_NS
ADMIN_DOMAIN = "example.com"
