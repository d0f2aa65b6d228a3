"""Traffic mixes: which kind of org the generated traffic comes from.

The default mix is the one the rule pack was tuned on: most events are SSO launches and
RADIUS authentications, which few rules read. Orgs whose users sign in to the portal all
day look different (issue 14): nearly every event is a ``user_login_attempt`` that the
travel, new-country, burst and MFA rules all meet. A mix scales each activity's rate, so
the same people, places and attacks produce either shape.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["MIXES", "TrafficMix"]


@dataclass(frozen=True, slots=True)
class TrafficMix:
    """Rate multipliers per activity; ``typo_rate`` is the share of the extra portal
    logins preceded by one to three failed attempts (a mistyped password)."""

    name: str
    portal: float = 1.0
    sso: float = 1.0
    radius: float = 1.0
    typo_rate: float = 0.0


MIXES: dict[str, TrafficMix] = {
    mix.name: mix
    for mix in (
        TrafficMix("simulator"),
        # ~91% user_login_attempt: ~22 portal logins an active hour, few SSO launches.
        TrafficMix("portal", portal=90.0, sso=0.01, radius=0.01, typo_rate=0.09),
    )
}
