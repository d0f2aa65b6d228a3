"""The price of one alert is judged only where enough alerts stand above the noise."""

from __future__ import annotations

import pytest

from benchmarks.bench_replay import MIN_ALERT_SHARE, alert_price_us


def test_an_alert_is_priced_from_the_difference_per_alert() -> None:
    # 25,280 alerts of 200,000 events (the portal mix), 2.06 s more than never firing
    assert alert_price_us(4.14, 2.08, 25_280, 200_000) == pytest.approx(81.5, abs=0.1)


@pytest.mark.parametrize(
    ("heavy_s", "quiet_s", "alerts"),
    [
        (1.45, 1.54, 966),  # the simulator mix: 0.5% alerting, once priced at -93 us
        (1.60, 1.54, 966),  # positive, but from too few alerts to stand above the noise
        (1.50, 1.54, 25_280),  # enough alerts, yet no extra time: noise, not a price
    ],
)
def test_too_few_alerts_or_no_difference_leave_the_price_unmeasured(
    heavy_s: float, quiet_s: float, alerts: int
) -> None:
    assert alerts < MIN_ALERT_SHARE * 200_000 or heavy_s <= quiet_s
    assert alert_price_us(heavy_s, quiet_s, alerts, 200_000) is None
