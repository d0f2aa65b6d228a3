"""Summaries render as sandboxed Jinja renders them, through the cheaper per-alert path
(alerting/engine/summary.py): dict keys, dict methods, missing keys and unsafe
attributes give what they gave, on real DI events."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from alerting import jsonutil
from alerting.engine.engine import Engine
from alerting.engine.loader import load_rules
from alerting.events import Event
from tests.support.real_events import RADIUS_FAILURE


def real_login() -> Event:
    return Event.from_raw(jsonutil.loads(RADIUS_FAILURE))


def summary_of(tmp_path: Path, summary: str) -> str:
    (tmp_path / "r.yml").write_text(
        textwrap.dedent(
            """\
            id: every-login
            title: Every login
            severity: low
            detection:
              sel: {event_type: radius_auth_attempt}
              condition: sel
            by: initiated_by.username
            """
        )
        + f"summary: {jsonutil.dumps(summary)}\n",
        encoding="utf-8",
    )
    (alert,) = Engine(load_rules([tmp_path])).process(real_login())
    return alert.summary


def test_dict_fields_and_group_render_as_keys(tmp_path: Path) -> None:
    event = real_login()
    text = summary_of(tmp_path, "{{ last.event_type }} by {{ group['initiated_by.username'] }}")
    assert text == f"radius_auth_attempt by {event.raw['initiated_by']['username']}"


def test_a_dict_method_name_is_still_the_method(tmp_path: Path) -> None:
    assert summary_of(tmp_path, "{{ last.keys() | list | length > 0 }}") == "True"


def test_a_missing_key_fails_the_template_and_the_alert_keeps_the_default(
    tmp_path: Path,
) -> None:
    text = summary_of(tmp_path, "{{ last.no_such_field }}")
    assert text.startswith("Every login: ")
    assert "[summary template failed: 'dict object' has no attribute 'no_such_field']" in text


@pytest.mark.parametrize("template", ["{{ last.__class__ }}", "{{ group.__init__.__globals__ }}"])
def test_unsafe_attributes_stay_out_of_reach(tmp_path: Path, template: str) -> None:
    assert "summary template failed" in summary_of(tmp_path, template)


def test_variables_the_template_does_not_name_are_not_needed(tmp_path: Path) -> None:
    assert (
        summary_of(tmp_path, "{{ count }} {{ rule.id }} {{ title }}") == "1 every-login Every login"
    )


def test_jinja_globals_the_template_names_are_there(tmp_path: Path) -> None:
    # range, namespace, dict, cycler, joiner: Jinja's globals, which a summary may use
    template = (
        "{% set ns = namespace(n=0) %}{% for i in range(3) %}{% set ns.n = ns.n + i %}"
        "{% endfor %}{{ ns.n }}|{{ dict(a=1)['a'] }}|{{ cycler('x', 'y').next() }}|"
        "{% set comma = joiner(',') %}{% for k in ['p', 'q'] %}{{ comma() }}{{ k }}{% endfor %}"
    )
    assert summary_of(tmp_path, template) == "3|1|x|p,q"


def test_a_template_naming_a_global_still_gets_its_variables(tmp_path: Path) -> None:
    assert summary_of(tmp_path, "{{ count }} {{ range(2) | list }}") == "1 [0, 1]"
