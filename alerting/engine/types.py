"""The engine's internal contract: what a matched event is, what an aggregation is.

The rule core matches events and extracts the ``by`` group; an aggregation keeps
event-time windows per group and says when to fire. Keeping the contract here lets both
sides change independently.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Protocol

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from alerting.durations import Duration
from alerting.events import Event
from alerting.yamlfile import one_or_many

if TYPE_CHECKING:
    from alerting.store import Store


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ThresholdSpec(_Spec):
    """``count`` matching events within ``within``, per ``by`` group."""

    count: int = Field(ge=1)
    within: Duration
    by: list[str] = Field(default_factory=list)
    _by = field_validator("by", mode="before")(one_or_many)


class DistinctSpec(_Spec):
    """``count`` distinct values of ``field`` within ``within``, per ``by`` group."""

    field: str
    count: int = Field(ge=2)
    within: Duration
    by: list[str] = Field(default_factory=list)
    _by = field_validator("by", mode="before")(one_or_many)


class NewValueSpec(_Spec):
    """A value of ``field`` never seen for the group; silent during ``learn``."""

    field: str
    by: list[str] = Field(default_factory=list)
    learn: Duration = timedelta(days=7)
    # Forget a value not seen again for this long (0 = never forget).
    forget: Duration = timedelta(days=90)
    # Values every group knows from the start: learned like any other, never "new"
    # (a per-group baseline alone alerts on each group's first sight of a common value).
    known: list[str] = Field(default_factory=list)
    # Also fire when the group's previous hit is at least this old, whatever the value
    # (a login by an account idle for N days); 0 = off. Needs forget 0 or longer.
    dormant: Duration = timedelta(0)
    # A selection of the rule: only hits matching it may fire, the others only learn
    # (a baseline of every login's country, judged on failed logins only).
    alert_on: str | None = None
    _by = field_validator("by", mode="before")(one_or_many)

    @model_validator(mode="after")
    def _dormant_outlives_forget(self) -> NewValueSpec:
        if self.dormant and self.forget and self.forget <= self.dormant:
            raise ValueError(
                "dormant needs forget: 0 or a forget longer than dormant (a group forgotten "
                "sooner is new again, and a new group learns silently)"
            )
        return self


class TravelSpec(_Spec):
    """Consecutive logins of a group too far apart for the time between them."""

    by: list[str] = Field(default_factory=list)
    max_speed_kmh: float = Field(default=1000.0, gt=0)
    min_distance_km: float = Field(default=500.0, ge=0)
    latitude: str = "geoip.latitude"
    longitude: str = "geoip.longitude"
    # How long a previous location stays comparable.
    within: Duration = timedelta(hours=24)
    _by = field_validator("by", mode="before")(one_or_many)


class SequenceStep(_Spec):
    selection: str
    count: int = Field(default=1, ge=1)


class SequenceSpec(_Spec):
    """Ordered steps (each a selection name, repeated ``count`` times) within ``within``."""

    by: list[str] = Field(default_factory=list)
    within: Duration
    steps: list[SequenceStep] = Field(min_length=2)
    _by = field_validator("by", mode="before")(one_or_many)


class DigestSpec(_Spec):
    """A period's hits per group as one alert (``field``: the values to list)."""

    every: Duration = timedelta(days=1)
    field: str | None = None
    by: list[str] = Field(default_factory=list)
    _by = field_validator("by", mode="before")(one_or_many)

    @field_validator("every")
    @classmethod
    def _positive(cls, value: timedelta) -> timedelta:
        if value <= timedelta(0):
            raise ValueError("every must be longer than 0, e.g. 1d")
        return value


class TemporalSpec(_Spec):
    """``count`` of the ``rules`` (Sigma rules a correlation names) matched by one group
    within ``within``, in any order (Sigma's ``temporal`` correlation)."""

    rules: list[str] = Field(min_length=1)
    count: int = Field(ge=1)
    within: Duration
    by: list[str] = Field(default_factory=list)


class SumSpec(_Spec):
    """The group's numeric ``field`` summed over ``within`` reaches ``total`` (more than
    it, when ``strict``): Sigma's ``value_sum`` correlation."""

    field: str
    total: float
    strict: bool = False
    within: Duration
    by: list[str] = Field(default_factory=list)


AggregationSpec = (
    ThresholdSpec
    | DistinctSpec
    | NewValueSpec
    | TravelSpec
    | SequenceSpec
    | TemporalSpec
    | SumSpec
    | DigestSpec
)


@dataclass(slots=True)
class Hit:
    """An event that matched the rule's condition, as an aggregation sees it.

    ``group_key`` is a canonical string of the group values (a dict key); ``steps`` holds
    the indexes of the sequence steps whose selection matched (sequence rules only). A
    hand-over only: windows keep the event (held slim), its payload and, per group, the
    key and group dict in parallel lists, never the ``Hit`` itself.
    """

    event: Event
    group_key: str
    group: dict[str, Any]
    steps: tuple[int, ...] = ()


@dataclass(slots=True)
class Firing:
    """An aggregation's decision to alert for one group."""

    group_key: str
    group: dict[str, Any]
    trigger: Event  # the event that made the condition true (fingerprint material)
    # Contributing events in event-time order (may be capped); held events are slim
    # except the newest few of their series (alerting.engine.held).
    events: list[Event]
    count: int  # how many events contributed (not capped)
    details: dict[str, Any] = field(default_factory=dict)  # e.g. values, distance_km
    # The event time realert judges the firing at (None: its trigger's). A digest's is its
    # period's end: one list per period, however the matches fell within the periods.
    at_ns: int | None = None


class Aggregation(Protocol):
    """Per-rule windows over matching events, keyed by group."""

    def add(self, hit: Hit) -> list[Firing]:
        """Account one hit (events may arrive out of order); return what fires now."""
        ...

    def evict(self, watermark_ns: int) -> None:
        """Drop window entries that can no longer contribute at ``watermark_ns``."""
        ...

    def entries(self) -> int:
        """Events currently held (for memory caps and metrics)."""
        ...

    def restore(self, store: Store) -> None:
        """Load persisted state (baselines) for this rule."""
        ...

    def flush(self, store: Store) -> None:
        """Write state changed since the last flush, inside the caller's transaction."""
        ...

    def assume_in_order(self) -> None:
        """Every hit from now on comes in ``(time, id)`` order (``Engine.assume_in_order``):
        what only a late hit could need may go unkept. A no-op where nothing depends on it."""
        ...
