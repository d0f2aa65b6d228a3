"""``open_source``: the configured source, built and started (DI API, simulator or file)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from pydantic import SecretStr

from alerting.clock import Clock
from alerting.durations import td_ns
from alerting.errors import AlertingError
from alerting.source.base import Source
from alerting.source.file_source import FileSource
from alerting.source.jumpcloud import DIClient, Poller
from alerting.source.settings import SourceConfig
from alerting.store import Store

__all__ = ["OpenedSource", "open_source"]


@dataclass(frozen=True, slots=True)
class OpenedSource:
    """A source ready to poll, and the words the banner uses for it."""

    source: Source
    description: str


def open_source(settings: SourceConfig, store: Store, clock: Clock) -> OpenedSource:
    """Build the source ``settings.kind`` names; the simulator is started here."""
    kind = str(settings.kind)
    if kind == "file":
        if settings.path is None:  # the config model requires it; keep mypy and users honest
            raise AlertingError("source.kind file needs source.path: the events file")
        source = FileSource(settings.path, store=store, source_name="file", clock=clock)
        return OpenedSource(source, f"the event file {settings.path}")
    if kind == "simulator":
        from alerting.simulator.embedded import EmbeddedSimulator

        sim = settings.simulator
        simulator = EmbeddedSimulator(
            clock=clock,
            seed=sim.seed,
            history_ns=td_ns(sim.history),
            scenarios=sim.scenarios,
            faults=sim.faults,
            users=sim.users,
            unenrolled_mfa=sim.unenrolled_mfa,
        )
        simulator.start()
        try:
            client = _client(simulator.url, settings, clock, api_key=simulator.api_key)
        except BaseException:
            simulator.stop()
            raise
        poller = _poller(client, store, "simulator", settings, clock, on_close=simulator.stop)
        return OpenedSource(poller, f"the embedded DI simulator at {simulator.url}")
    client = _client(
        settings.base_url,
        settings,
        clock,
        api_key=_secret(settings.api_key),
        bearer_token=_secret(settings.bearer_token),
        org_ids=list(settings.org_id),
    )
    poller = _poller(client, store, "jumpcloud", settings, clock)
    return OpenedSource(poller, f"JumpCloud Directory Insights at {settings.base_url}")


def _client(
    url: str,
    settings: SourceConfig,
    clock: Clock,
    *,
    api_key: str | None = None,
    bearer_token: str | None = None,
    org_ids: list[str] | None = None,
) -> DIClient:
    return DIClient(
        url,
        api_key=api_key,
        bearer_token=bearer_token,
        org_ids=org_ids or [],
        services=list(settings.services),
        rate_limit=settings.rate_limit,
        timeout=settings.timeout.total_seconds(),
        deadline=(
            None if settings.request_deadline is None else settings.request_deadline.total_seconds()
        ),
        max_retries=settings.max_retries,
        clock=clock,
    )


def _poller(
    client: DIClient,
    store: Store,
    name: str,
    settings: SourceConfig,
    clock: Clock,
    *,
    on_close: Callable[[], None] | None = None,
) -> Poller:
    try:
        return Poller(
            client,
            store,
            source_name=name,
            lag_ns=td_ns(settings.lag),
            overlap_ns=td_ns(settings.overlap),
            start_from_ns=td_ns(settings.start_from),
            clock=clock,
            on_close=on_close,
        )
    except BaseException:
        client.close()
        if on_close is not None:
            on_close()
        raise


def _secret(value: SecretStr | None) -> str | None:
    return None if value is None else value.get_secret_value()
