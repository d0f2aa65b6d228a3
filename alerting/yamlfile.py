"""Safe YAML with positions, and pydantic validation that reports ``file:line:col``.

Config and rule files go through ``load_yaml`` and ``validate``: safe loading only (a
Python tag is named and refused), a size limit, bounded alias expansion, plain errors for
tabs, duplicate keys and empty files, and every schema error mapped back to the line and
column of the offending key or value, with "did you mean" for near-miss keys and values.
"""

from __future__ import annotations

import difflib
import re
import types
import typing
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar, Union

import yaml
from pydantic import BaseModel, ValidationError

from alerting.errors import Location, Problem, ValidationFailed

MAX_FILE_BYTES = 1024 * 1024
MAX_NODES = 200_000  # after alias expansion: stops "billion laughs" documents

PathKey = tuple[str | int, ...]
M = TypeVar("M", bound=BaseModel)


@dataclass
class YamlDocument:
    """A parsed YAML document with the position of every value and mapping key."""

    name: str
    data: Any
    value_marks: dict[PathKey, tuple[int, int]] = field(default_factory=dict)
    key_marks: dict[PathKey, tuple[int, int]] = field(default_factory=dict)

    def locate(self, path: PathKey, *, key: bool = False) -> Location:
        """The location of ``path`` (its key when ``key``), else its nearest ancestor."""
        path = tuple(path)
        if key and path in self.key_marks:
            line, col = self.key_marks[path]
            return Location(self.name, line, col)
        while path:
            if path in self.value_marks:
                line, col = self.value_marks[path]
                return Location(self.name, line, col)
            path = path[:-1]
        line, col = self.value_marks.get((), (1, 1))
        return Location(self.name, line, col)

    def problem(self, path: PathKey, message: str, *, key: bool = False) -> Problem:
        return Problem(self.locate(path, key=key), message)


class _Loader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys instead of silently keeping the last."""


class _FastLoader(getattr(yaml, "CSafeLoader", _Loader)):  # type: ignore[misc]
    """The same loader on libyaml's parser, when the wheel has it.

    Composing the shipped pack's 28 files took ~1.2 s of every command's start in pure
    Python and ~0.1 s in C, with the same nodes and marks. Syntax errors are explained
    by ``_Loader`` instead (``_load``), so messages do not depend on the wheel.
    """


def _construct_mapping(loader: yaml.SafeLoader, node: yaml.MappingNode, deep: bool = False) -> Any:
    seen: dict[Any, yaml.Node] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=True)
        try:
            hash(key)
        except TypeError:
            raise yaml.constructor.ConstructorError(
                None, None, "a mapping key must be a plain value", key_node.start_mark
            ) from None
        if key in seen:
            first = seen[key].start_mark
            raise yaml.constructor.ConstructorError(
                None,
                None,
                f"duplicate key {key!r} (first defined at line {first.line + 1}): "
                "remove one of them",
                key_node.start_mark,
            )
        seen[key] = key_node
    return loader.construct_mapping(node, deep=deep)


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
_FastLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _mark(m: yaml.Mark) -> tuple[int, int]:
    return (m.line + 1, m.column + 1)


def _yaml_error_problem(name: str, exc: yaml.YAMLError) -> Problem:
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    line, col = _mark(mark) if mark is not None else (None, None)
    problem = getattr(exc, "problem", None) or str(exc)
    context = getattr(exc, "context", None)
    text = str(problem)
    if "'\\t'" in text or ("\\t" in text and "cannot start any token" in text):
        text = "tab character: YAML indents with spaces only, replace the tab with spaces"
    elif "could not determine a constructor for the tag" in text:
        tag = text.split("tag", 1)[-1].strip().strip("'")
        text = f"unsupported tag {tag}: only plain YAML is allowed, remove the tag"
    elif context and "duplicate key" not in text:
        text = f"{context}, {text}" if "while" not in context else f"{text} ({context})"
    return Problem(
        Location(name, line, col),
        f"invalid YAML: {text}"
        if "tag" not in text and "duplicate key" not in text and "tab character" not in text
        else text,
    )


class _Walker:
    """Records positions along every path, counting nodes to bound alias expansion."""

    def __init__(self, loader: yaml.SafeLoader, doc: YamlDocument) -> None:
        self.loader = loader
        self.doc = doc
        self.count = 0

    def walk(self, node: yaml.Node, path: PathKey) -> None:
        self.count += 1
        if self.count > MAX_NODES:
            raise _TooLarge(node.start_mark)
        self.doc.value_marks[path] = _mark(node.start_mark)
        if isinstance(node, yaml.MappingNode):
            for key_node, value_node in node.value:
                key = self.loader.construct_object(key_node, deep=True)
                if not isinstance(key, str | int):
                    key = str(key)
                self.doc.key_marks[(*path, key)] = _mark(key_node.start_mark)
                self.walk(value_node, (*path, key))
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                self.walk(item, (*path, i))


class _TooLarge(Exception):
    def __init__(self, mark: yaml.Mark) -> None:
        self.mark = mark


def _read_text(path: str | Path, text: str | None, max_bytes: int) -> str:
    name = str(path)
    if text is None:
        try:
            size = Path(path).stat().st_size
        except OSError as exc:
            raise ValidationFailed(
                [Problem(Location(name), f"cannot read file: {exc.strerror}")]
            ) from None
        if size > max_bytes:
            raise ValidationFailed(
                [
                    Problem(
                        Location(name),
                        f"file is {size} bytes, over the {max_bytes} byte limit: split it",
                    )
                ]
            )
        try:
            raw = Path(path).read_bytes()
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            line = raw[: exc.start].count(b"\n") + 1
            raise ValidationFailed(
                [Problem(Location(name, line), "file is not valid UTF-8: save it as UTF-8")]
            ) from None
        except OSError as exc:
            raise ValidationFailed(
                [Problem(Location(name), f"cannot read file: {exc.strerror}")]
            ) from None
    elif len(text.encode()) > max_bytes:
        raise ValidationFailed(
            [Problem(Location(name), f"text is over the {max_bytes} byte limit")]
        )

    if not text.strip() or all(
        not line.strip() or line.lstrip().startswith("#") for line in text.splitlines()
    ):
        raise ValidationFailed(
            [Problem(Location(name, 1, 1), "file is empty: it must hold a YAML mapping")]
        )
    return text


def load_yaml(
    path: str | Path, *, text: str | None = None, max_bytes: int = MAX_FILE_BYTES
) -> YamlDocument:
    """Load one YAML document safely; raise ``ValidationFailed`` with located problems."""
    docs = _load(path, _read_text(path, text, max_bytes), multi=False)
    return docs[0]


def load_yaml_all(
    path: str | Path, *, text: str | None = None, max_bytes: int = MAX_FILE_BYTES
) -> list[YamlDocument]:
    """Every document of a multi-document file (``---`` between them), positions kept
    file-absolute; raise ``ValidationFailed`` with located problems."""
    return _load(path, _read_text(path, text, max_bytes), multi=True)


def _load(
    path: str | Path, text: str, *, multi: bool, loader_class: type[yaml.SafeLoader] = _FastLoader
) -> list[YamlDocument]:
    name = str(path)
    loader = loader_class(text)
    loader.name = name
    docs: list[YamlDocument] = []
    try:
        if not multi:
            node = loader.get_single_node()
            nodes = [node] if node is not None else []
        else:
            nodes = []
            while loader.check_node():
                found = loader.get_node()
                empty = isinstance(found, yaml.ScalarNode) and found.value == ""
                if found is not None and not empty:  # `---` with nothing after it
                    nodes.append(found)
        count = 0
        for node in nodes:
            if node is None:
                continue
            doc = YamlDocument(name=name, data=None)
            walker = _Walker(loader, doc)
            walker.count = count
            walker.walk(node, ())
            count = walker.count
            doc.data = loader.construct_document(node)
            docs.append(doc)
        if not docs:
            raise ValidationFailed(
                [Problem(Location(name, 1, 1), "file is empty: it must hold a YAML mapping")]
            )
    except _TooLarge as exc:
        line, col = _mark(exc.mark)
        raise ValidationFailed(
            [
                Problem(
                    Location(name, line, col),
                    "document expands to too many values (alias bomb?): "
                    "remove the repeated aliases",
                )
            ]
        ) from None
    except yaml.YAMLError as exc:
        if loader_class is not _Loader:
            # raises worded, or loads what only libyaml refuses
            return _load(path, text, multi=multi, loader_class=_Loader)
        raise ValidationFailed([_yaml_error_problem(name, exc)]) from None
    finally:
        loader.dispose()
    return docs


# --------------------------------------------------------------------------- validation


def _unwrap_models(annotation: Any) -> list[type[BaseModel]]:
    """The BaseModel classes reachable inside an annotation (Optional, list, dict, union)."""
    found: list[type[BaseModel]] = []
    stack = [annotation]
    while stack:
        ann = stack.pop()
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            found.append(ann)
            continue
        origin = typing.get_origin(ann)
        if origin is typing.Annotated:
            stack.append(typing.get_args(ann)[0])
        elif (
            origin in (Union, types.UnionType, list, tuple, set, frozenset, dict)
            or origin is not None
        ):
            stack.extend(a for a in typing.get_args(ann) if a is not Ellipsis)
    return found


def _field_names(model: type[BaseModel]) -> list[str]:
    names = []
    for fname, finfo in model.model_fields.items():
        names.append(finfo.alias or fname)
    return names


def _models_at(root: type[BaseModel], loc: PathKey) -> list[type[BaseModel]]:
    """The candidate models whose mapping sits at ``loc`` (for suggesting keys)."""
    current = [root]
    for part in loc:
        nxt: list[type[BaseModel]] = []
        for model in current:
            if isinstance(part, str):
                for fname, finfo in model.model_fields.items():
                    if part in (fname, finfo.alias):
                        nxt.extend(_unwrap_models(finfo.annotation))
        if not nxt and isinstance(part, int | str):
            # list index or dict key: the element models are the same as the container's
            nxt = current if isinstance(part, int) else nxt
        current = nxt or current
    return current


def one_or_many(value: Any) -> Any:
    """A pydantic ``mode="before"`` validator: ``x: a`` means the same as ``x: [a]``."""
    if isinstance(value, str):
        return [value]
    return value


def positive(name: str, value: timedelta) -> timedelta:
    """A duration validator's check: ``name`` must be longer than zero."""
    if value <= timedelta(0):
        raise ValueError(f"{name} must be longer than 0s, e.g. 60s")
    return value


def suggest(word: str, choices: list[str] | tuple[str, ...] | set[str]) -> str:
    """`` (did you mean 'x'?)`` for a near miss, else ``""``."""
    close = difflib.get_close_matches(str(word), sorted(choices), n=1, cutoff=0.5)
    return f" (did you mean {close[0]!r}?)" if close else ""


_EXPECTED_VALUES = re.compile(r"'([^']*)'")


def _clean_loc(loc: tuple[Any, ...], data: Any) -> PathKey:
    """Drop pydantic's union/discriminator tags, keeping only real keys and indexes."""
    path: list[str | int] = []
    node = data
    for i, part in enumerate(loc):
        if isinstance(node, dict) and part in node:
            path.append(part)
            node = node[part]
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            path.append(part)
            node = node[part]
        elif isinstance(node, dict) and isinstance(part, str) and i == len(loc) - 1:
            # a missing key (always last); keep it so "missing" can name it
            path.append(part)
            node = None
        # anything else is a union/discriminator tag (``console`` in
        # channels.c.console.colour): skip it and stay on the same node
    return tuple(path)


def pydantic_problems(
    exc: ValidationError, doc: YamlDocument, root: type[BaseModel], prefix: PathKey = ()
) -> list[Problem]:
    """Translate pydantic errors into located, readable problems."""
    problems: list[Problem] = []
    for err in exc.errors(include_url=False):
        loc = (*prefix, *err["loc"])
        path = _clean_loc(loc, doc.data)
        dotted = ".".join(str(p) for p in path) or "(top level)"
        kind = err["type"]
        msg = str(err["msg"])
        if kind == "extra_forbidden":
            key = path[-1] if path else loc[-1]
            allowed: set[str] = set()
            for model in _models_at(root, tuple(p for p in path[len(prefix) : -1])):
                allowed.update(_field_names(model))
            hint = suggest(str(key), allowed)
            if not hint and allowed:
                hint = f" (allowed: {', '.join(sorted(allowed))})"
            problems.append(doc.problem(path, f"unknown key {key!r}{hint}", key=True))
            continue
        if kind == "missing":
            parent = path[:-1] if path and path[-1] not in _dig(doc.data, path[:-1], {}) else path
            problems.append(doc.problem(parent, f"missing required key {str(loc[-1])!r}"))
            continue
        if kind in ("union_tag_invalid", "union_tag_not_found"):
            # A discriminated union (channel ``type:``): name the key, suggest the tag.
            ctx = err.get("ctx", {})
            disc = str(ctx.get("discriminator", "type")).strip("'")
            if kind == "union_tag_not_found":
                problems.append(doc.problem(path, f"{dotted}: missing required key {disc!r}"))
                continue
            expected = _EXPECTED_VALUES.findall(str(ctx.get("expected_tags", "")))
            tag = str(ctx.get("tag"))
            problems.append(
                doc.problem(
                    (*path, disc),
                    f"{dotted}.{disc}: {tag!r} is not one of {', '.join(expected)}"
                    f"{suggest(tag, expected)}",
                )
            )
            continue
        if msg.startswith("Value error, "):
            msg = msg[len("Value error, ") :]
        elif msg.startswith("Assertion failed, "):
            msg = msg[len("Assertion failed, ") :]
        if kind in ("literal_error", "enum"):
            expected = _EXPECTED_VALUES.findall(str(err.get("ctx", {}).get("expected", "")))
            got = err.get("input")
            hint = suggest(str(got), expected) if expected else ""
            msg = f"{got!r} is not one of {', '.join(expected)}{hint}" if expected else msg
        elif kind in ("dict_type", "model_type", "model_attributes_type"):
            msg = f"expected a mapping (key: value), got {_kind(err.get('input'))}"
        elif kind == "list_type":
            msg = f"expected a list, got {_kind(err.get('input'))}"
        problems.append(doc.problem(path, f"{dotted}: {msg}" if path else msg))
    return problems


def _kind(value: Any) -> str:
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    if value is None:
        return "nothing (empty value)"
    return f"{type(value).__name__} {value!r}"


def _dig(data: Any, path: PathKey, default: Any) -> Any:
    for part in path:
        try:
            data = data[part]
        except (KeyError, IndexError, TypeError):
            return default
    return data


def validate(model: type[M], doc: YamlDocument, *, context: dict[str, Any] | None = None) -> M:
    """Validate ``doc.data`` against ``model``; raise ``ValidationFailed`` with every problem."""
    if not isinstance(doc.data, dict):
        raise ValidationFailed(
            [
                doc.problem(
                    (), f"expected a mapping (key: value) at the top level, got {_kind(doc.data)}"
                )
            ]
        )
    try:
        return model.model_validate(doc.data, context=context)
    except ValidationError as exc:
        raise ValidationFailed(pydantic_problems(exc, doc, model)) from None
