"""Regenerate ``alerting/engine/di_schema.json``: the DI event types and field paths.

    python tools/build_di_schema.py [--reference ../shared/reference] [--check]

Sources, each entry tagged with where it came from:

- ``sample``: every key path of the vendor-captured events in ``real-events/*.jsonl`` and
  of the JSON sample events in ``jumpcloud-di-api.md`` section 7;
- ``docs``: the event types of section 4.3 (``a_create|delete|update`` expanded,
  ``prefix_*`` kept as a pattern) and the field names of the schema tables in sections
  4.1 and 4.2 (``name{a, b{c}}`` expanded to ``name.a``, ``name.b.c``);
- ``peer``/``pack``: the few names below that no JumpCloud document or public sample has,
  with the reason they are listed anyway.

``alerting validate`` warns for a rule field path or ``event_type`` value that is not
here, so the data errs on the side of what DI is known to send. ``--check`` exits 1 when
the checked-in file differs from what the sources give (run it after editing either).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any

OUT = Path(__file__).resolve().parent.parent / "alerting" / "engine" / "di_schema.json"

# Named by peer detections or used by the shipped pack, though in no JumpCloud document
# or public sample (jumpcloud-di-api.md 4.3 says so for both): a warning on every
# validate of the shipped pack would teach users to ignore warnings.
EXTRA_EVENT_TYPES = {
    "system_admin_grant": "peer: Datadog's 'Jumpcloud admin granted system privileges' rule",
    "admin_old_api_key_attempt": "pack: admin-old-api-key-attempt (no public sample or doc)",
    "authnpolicy_update": "pack: api-key-or-policy-change, beside the documented "
    "authpolicy_update (the docs' list is abridged; authnpolicy_create/delete exist)",
}
EXTRA_FIELDS = {
    "resource.base_url": "pack: admin-old-api-key-attempt (API calls name the endpoint)",
}
# Objects whose content is free-form: any path below them is accepted.
OPEN_PREFIXES = {
    "changes.from": "docs: values are arbitrary JSON",
    "changes.to": "docs: values are arbitrary JSON",
    "association.attributes": "docs: free-form",
    "auth_context.auth_methods": "docs: one key per method (password, totp, duo, ...)",
    "auth_meta.auth_methods": "docs: one key per method",
    "query_responses": "docs: MDM result payload",
    "security_info": "docs: MDM result payload",
    "message_chain.message_details": "docs: free-form",
    "correlation": "docs: {id, type} or {}",
}
# Keys a publisher added to its copy of an event (real-events/SOURCES.md), not DI's.
NOT_DI = {"jumpcloud_event_type", "some_other_fields"}

_SPAN = re.compile(r"`([^`]+)`")
_TYPE = re.compile(r"[a-z0-9_]+(?:\|[a-z0-9_]+)*\*?|[a-z0-9_]+_\*")
_IDENT = re.compile(r"[A-Za-z_@][A-Za-z0-9_@]*")


def sample_events(reference: Path) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    for path in sorted((reference / "real-events").glob("*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                events.append(json.loads(line))
    section = _section(reference / "jumpcloud-di-api.md", "## 7.")
    for block in re.findall(r"```json\n(.*?)```", section, re.S):
        try:
            value = json.loads(block)
        except json.JSONDecodeError:
            continue  # a block with elisions ("...") is illustration, not an event
        events.extend(
            v for v in (value if isinstance(value, list) else [value]) if isinstance(v, dict)
        )
    return events


def walk(value: Any, prefix: str, out: set[str]) -> None:
    """Every key path of ``value``; a list of objects contributes its elements' keys."""
    if isinstance(value, list):
        for item in value:
            walk(item, prefix, out)
        return
    if not isinstance(value, dict):
        return
    for key, inner in value.items():
        if not prefix and key in NOT_DI:
            continue
        path = f"{prefix}.{key}" if prefix else str(key)
        out.add(path)
        if path not in OPEN_PREFIXES:
            walk(inner, path, out)


def _section(md: Path, heading: str) -> str:
    text = md.read_text(encoding="utf-8")
    start = text.index(heading)
    level = heading.split(" ", 1)[0]  # "##" or "###": stop at the next one as high
    ends = [text.find(f"\n{h} ", start + len(heading)) for h in ("##", "###")[: len(level) - 1]]
    ends = [e for e in ends if e >= 0]
    return text[start : min(ends) if ends else len(text)]


def doc_event_types(reference: Path) -> tuple[set[str], set[str]]:
    """(event types, ``prefix_*`` patterns) from section 4.3."""
    text = _section(reference / "jumpcloud-di-api.md", "### 4.3")
    text = text.split("**Not found in any source searched**", 1)[0]
    names: set[str] = set()
    patterns: set[str] = set()
    tokens = [t.strip() for span in _SPAN.findall(text) for t in span.split(",")]
    for token in tokens:
        if not _TYPE.fullmatch(token):
            continue
        if "*" in token:
            patterns.add(token)
            continue
        first, *alts = token.split("|")
        names.add(first)
        stem = first.rsplit("_", 1)[0]
        names.update(f"{stem}_{alt}" for alt in alts)
    return names, patterns


def doc_fields(reference: Path) -> set[str]:
    """Field names of the 4.1 table (first column and ``{...}`` notes) and 4.2 bullets."""
    out: set[str] = set()
    envelope = _section(reference / "jumpcloud-di-api.md", "### 4.1")
    for row in envelope.splitlines():
        cells = [c.strip() for c in row.split("|")]
        if len(cells) < 4 or not cells[1].startswith("`"):
            continue
        for name in re.findall(r"`([A-Za-z_@][\w@]*)`", cells[1]):
            out.add(name)
            for braces in re.findall(r"`(\{[^`]*\})`", cells[3]):
                out.update(f"{name}.{p}" for p in _braced(braces))
    per_service = _section(reference / "jumpcloud-di-api.md", "### 4.2")
    while True:  # values, examples and sources are in parentheses: drop them
        shorter = re.sub(r"\([^()]*\)", "", per_service)
        if shorter == per_service:
            break
        per_service = shorter
    types, _ = doc_event_types(reference)
    for item in _SPAN.findall(per_service):
        if re.search(r"[/*\"]|^[A-Z]|\.\w", item) or item in types:
            continue
        out.update(_braced("{" + item + "}"))
    return {p for p in out if (not p.startswith("@") or p == "@version") and p not in types}


def _braced(text: str) -> list[str]:
    """``{a, b{c, d}, e ("x"/null)}`` -> ``[a, b, b.c, b.d, e]`` (values and notes skipped)."""
    text = re.sub(r'\([^()]*\)|"[^"]*"', "", text)
    paths: list[str] = []
    stack: list[str] = []
    last = ""
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "{":
            if last:
                stack.append(last)
            last = ""
        elif ch == "}":
            if stack:
                stack.pop()
            last = ""
        elif ch in ",:= /|[]":
            last = "" if ch in ",/|" else last
            if ch in ":=":
                j = i + 1
                while j < len(text) and text[j] in " [":
                    j += 1
                if j < len(text) and text[j] == "{":  # `key:{...}` / `key:[{...}]` nest
                    i = j
                    continue
                while j < len(text) and text[j] not in ",}":  # `key: value`: skip it
                    j += 1
                i = j - 1
        else:
            match = _IDENT.match(text, i)
            if match:
                last = match.group(0)
                paths.append(".".join([*stack, last]))
                i = match.end()
                continue
        i += 1
    return [p for p in paths if not p.isupper() and not p.isdigit()]


def build(reference: Path) -> dict[str, Any]:
    sampled: set[str] = set()
    sampled_types: set[str] = set()
    for event in sample_events(reference):
        walk(event, "", sampled)
        if isinstance(event.get("event_type"), str):
            sampled_types.add(event["event_type"])
    documented = doc_fields(reference)
    types, patterns = doc_event_types(reference)
    fields: dict[str, str] = {}
    for path in sorted(documented | sampled):
        fields[path] = "sample" if path in sampled else "docs"
    fields.update(EXTRA_FIELDS)
    event_types = {
        t: ("sample" if t in sampled_types else "docs") for t in sorted(types | sampled_types)
    }
    event_types.update(EXTRA_EVENT_TYPES)
    return {
        "about": "DI event types and field paths known to alerting validate; "
        "regenerate with tools/build_di_schema.py",
        "event_types": dict(sorted(event_types.items())),
        "event_type_patterns": sorted(patterns),
        "fields": dict(sorted(fields.items())),
        "open_prefixes": dict(sorted(OPEN_PREFIXES.items())),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--reference", default="../shared/reference", type=Path)
    parser.add_argument("--check", action="store_true", help="exit 1 if the file is stale")
    args = parser.parse_args()
    text = json.dumps(build(args.reference), indent=1, sort_keys=False) + "\n"
    if args.check:
        current = OUT.read_text(encoding="utf-8") if OUT.exists() else ""
        if current != text:
            print(f"{OUT} is stale: run tools/build_di_schema.py", file=sys.stderr)
            return 1
        return 0
    OUT.write_text(text, encoding="utf-8")
    data = json.loads(text)
    print(f"{OUT}: {len(data['event_types'])} event types, {len(data['fields'])} fields")
    return 0


if __name__ == "__main__":
    sys.exit(main())
