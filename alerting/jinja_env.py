"""The one way to make a Jinja environment: sandboxed, strict, no surprises.

Rule summaries (engine) and notification templates (notify) both render through
``make_environment`` so a template can never reach Python internals
(``SandboxedEnvironment``) and a typo in a variable name is an error, not an empty
string (``StrictUndefined``).
"""

from __future__ import annotations

from typing import Any

from jinja2 import BaseLoader, StrictUndefined, select_autoescape
from jinja2.sandbox import ImmutableSandboxedEnvironment


def make_environment(
    loader: BaseLoader | None = None, *, html_autoescape: bool = False
) -> ImmutableSandboxedEnvironment:
    """A sandboxed environment; ``html_autoescape`` turns on escaping for HTML templates.

    HTML templates are named ``*.html``/``*.htm`` or, as in ``templates/``, with a
    trailing ``.j2`` (``email.html.j2``); every other template (JSON, text) is not escaped.
    """
    autoescape: Any = (
        select_autoescape(["html", "htm", "html.j2", "htm.j2"]) if html_autoescape else False
    )
    env = ImmutableSandboxedEnvironment(
        loader=loader,
        undefined=StrictUndefined,
        autoescape=autoescape,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=False,
    )
    return env
