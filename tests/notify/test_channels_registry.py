"""The channel registry knows every ``type:`` the config accepts, and nothing imports it back."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import get_args

import alerting.notify.channels as channels
from alerting.notify.settings import ChannelConfig


def _config_types() -> set[str]:
    union = get_args(ChannelConfig)[0]
    return {get_args(model.model_fields["type"].annotation)[0] for model in get_args(union)}


def test_every_configurable_channel_type_has_a_sender() -> None:
    assert set(channels.SENDERS) == _config_types()


def test_no_channel_module_imports_the_registry() -> None:
    folder = Path(channels.__file__).parent
    for module in folder.glob("*.py"):
        if module.name == "__init__.py":
            continue
        for node in ast.walk(ast.parse(module.read_text())):
            if isinstance(node, ast.ImportFrom):
                assert node.module != "alerting.notify.channels", module.name
                assert node.level == 0, module.name
