"""Realistic Directory Insights traffic with injected attacks and their ground truth.

Rules are only as good as the traffic they were tuned on (DESIGN section 2), so the
generator reproduces the messy behaviour of a real org: SSO launches with ``mfa: false``
after MFA at the portal, RADIUS/LDAP service accounts that never do MFA, typos followed by
a success, lockouts, trips abroad by plane, nightly API-key automation, ``changes`` as an
object on some systems events. Every event has the field names, nesting, id formats and
timestamp precision of a real event of its service (reference samples S1-S14).

Generation is stateless per hour: the events of hour ``b`` come from an RNG seeded with
``(seed, b)``, and each attack from an RNG seeded with its slot number. So the same seed
always yields the same events, consecutive ``generate()`` ranges never repeat an id, and
``generate(a, c) == generate(a, b) + generate(b, c)``. Events of a session may spill up to
``SPILL_NS`` past the hour it started in; ``generate`` looks back that far.

Event dicts share read-only nested objects (geoip, useragent, auth_context) to stay fast
(>= 50k events/s); treat generated events as immutable.

Modules, one job each: ``constants`` (shared units and defaults), ``places`` (cities,
travel and attacker geography), ``population`` (people, admins, devices, catalogues),
``events`` (raw event builders per service, ids, timestamps), ``normal`` (ordinary
behaviour), ``scenarios`` (attacks and their ground truth), ``generator``
(``TrafficGenerator``: schedule, hour buckets, determinism) and ``export`` (JSON Lines
and ground-truth files).
"""

from alerting.durations import DAY_NS, HOUR_NS, MINUTE_NS
from alerting.simulator.traffic.constants import DEFAULT_ATTACK_SLOT_NS, DEFAULT_ORG_ID
from alerting.simulator.traffic.export import attacks_to_json, export_jsonl
from alerting.simulator.traffic.generator import TrafficGenerator
from alerting.simulator.traffic.scenarios import SCENARIOS, InjectedAttack

__all__ = [
    "DAY_NS",
    "DEFAULT_ATTACK_SLOT_NS",
    "DEFAULT_ORG_ID",
    "HOUR_NS",
    "MINUTE_NS",
    "SCENARIOS",
    "InjectedAttack",
    "TrafficGenerator",
    "attacks_to_json",
    "export_jsonl",
]
