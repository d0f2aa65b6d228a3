"""A rule's ``summary:`` template, compiled once and rendered per alert at little cost.

Still sandboxed Jinja (``alerting.jinja_env``): only what is paid per render changed
(benchmarks/README.md, "Materialising an alert"):

* the template's globals are one plain dict (Jinja keeps a ``ChainMap``, which every
  render copied key by key in Python: half of a short summary's cost);
* only the variables the template names are built (``names``, found once at load):
  ``values``/``pairs`` closures, the events list and the ``rule`` dict cost nothing
  when the template does not read them;
* ``last.event_type`` on a plain dict is the key lookup the sandbox ends with anyway,
  without first raising and catching ``AttributeError`` (``SummaryEnvironment``);
* a render's context is the variables plus only the globals the template names
  (``range``, ``namespace``...: found in its syntax tree once), not Jinja's copy of
  every global into every context.
"""

from __future__ import annotations

from typing import Any

from jinja2 import StrictUndefined, Template, nodes
from jinja2.sandbox import ImmutableSandboxedEnvironment

# The names ``getattr`` finds on a plain dict (its methods, dunders): for those the
# sandbox's own rules apply; every other name on a dict is a key lookup.
_DICT_ATTRIBUTES = frozenset(name for name in dir(dict) if hasattr({}, name))


class SummaryEnvironment(ImmutableSandboxedEnvironment):
    """The sandboxed environment of summaries, with a direct path for ``dict.key``.

    Jinja's sandbox tries ``getattr(obj, name)`` first and falls back to ``obj[name]``;
    for a plain dict and a name that is no dict attribute the first always fails, so the
    answer is the key (or undefined), exactly as the sandbox gives it.
    """

    def getattr(self, obj: Any, attribute: str) -> Any:
        if type(obj) is dict and attribute not in _DICT_ATTRIBUTES:
            try:
                return obj[attribute]
            except KeyError:
                return self.undefined(obj=obj, name=attribute)
        return super().getattr(obj, attribute)


def make_summary_environment() -> SummaryEnvironment:
    """As ``alerting.jinja_env.make_environment()`` (text, strict, no escaping)."""
    return SummaryEnvironment(
        undefined=StrictUndefined,
        autoescape=False,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=False,
    )


class SummaryTemplate:
    """A parsed summary, the variables it reads (``names``), compiled at its first render.

    Loading checks everything compiling would (syntax, unknown variables and filters:
    ``find_undeclared_variables`` runs Jinja's code generator); turning the code into a
    ``Template`` waits for the first alert, since most rules of a pack never fire in a
    given run and compiling all 28 of the shipped pack took ~0.1 s of every start.
    """

    __slots__ = ("_ast", "_environment", "_globals", "_template", "names")

    def __init__(
        self, environment: SummaryEnvironment, ast: nodes.Template, names: frozenset[str]
    ) -> None:
        self._environment = environment
        self._ast = ast
        self._template: Template | None = None
        self._globals: dict[str, Any] = {}  # the globals it names, set with _template
        self.names = names

    @property
    def template(self) -> Template:
        if self._template is None:
            environment = self._environment
            template = environment.template_class.from_code(
                environment, environment.compile(self._ast), environment.make_globals(None)
            )
            # One plain dict, not Jinja's ChainMap (see the module docstring).
            template.globals = dict(template.globals)
            named = {node.name for node in self._ast.find_all(nodes.Name)}
            self._globals = {k: v for k, v in template.globals.items() if k in named}
            self._template = template
        return self._template

    def render(self, variables: dict[str, Any]) -> str:
        """The rendered text; raises what Jinja raises (an undefined name, a type error).

        ``Template.render`` without its copy of ``variables``, of the globals the template
        does not name (module docstring) and its traceback rewriting (the caller reports
        only the message)."""
        template = self.template
        named = self._globals
        parent = {**named, **variables} if named else variables  # variables win, as in Jinja
        environment = self._environment
        context = environment.context_class(environment, parent, template.name, template.blocks)
        return "".join(template.root_render_func(context))
