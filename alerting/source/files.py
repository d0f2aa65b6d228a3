"""Events from exported files: a JSON array or JSONL, plain or gzip, a path or stdin.

Exports can be large (a month of DI traffic), so reading streams in constant memory:
JSONL line by line, a JSON array record by record with ``JSONDecoder.raw_decode`` over a
sliding buffer. One bad record never sinks the run: it is skipped and reported as
``file:LINE: reason`` through ``on_skip``. A file that yields no events at all is an error,
because "0 alerts" from an empty input would read as "this rule never fires".
"""

from __future__ import annotations

import codecs
import functools
import gzip
import io
import itertools
import json
import logging
import re
import sys
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from alerting import jsonutil
from alerting.errors import AlertingError, EventError
from alerting.events import Event, JsonEvent, LazyEvent, RecentIds, identify, parse_timestamp

__all__ = ["MAX_LINE", "NoEventsError", "SkipCounter", "read_events", "read_lines"]

log = logging.getLogger(__name__)

MAX_LINE = 1 << 20  # a JSONL line (or array record) longer than this is skipped
MAX_RECORD = 16 << 20  # an array record this long cannot be skipped: the file is refused
_CHUNK = 1 << 16
_GZIP_MAGIC = b"\x1f\x8b"
_BOM = b"\xef\xbb\xbf"
_UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")
_WHITESPACE = b" \t\r\n"
_WS = re.compile(r"[ \t\r\n]*")
_ESCAPED_BYTES = re.compile("[\udc80-\udcff]")  # undecodable bytes (surrogateescape)
# orjson parses UTF-8 bytes strictly as the careful path would; the stdlib guesses UTF-16/32.
_BYTES_JSON = jsonutil.orjson is not None


class NoEventsError(AlertingError):
    """The input held no usable event at all."""


class SkipCounter:
    """An ``on_skip`` callback that logs every skipped record and counts them."""

    def __init__(self, logger: logging.Logger | None = None, *, keep: int = 20) -> None:
        self.count = 0
        self.examples: list[str] = []
        self._keep = keep
        self._log = logger or log

    def __call__(self, message: str) -> None:
        self.count += 1
        if len(self.examples) < self._keep:
            self.examples.append(message)
        self._log.warning("skipped %s", message)

    def summary(self) -> str:
        """``"3 malformed records skipped"`` (for the end-of-run line)."""
        return f"{self.count} malformed record{'' if self.count == 1 else 's'} skipped"


class _Prefixed(io.RawIOBase):
    """A stream with bytes already read put back in front (stdin cannot seek)."""

    def __init__(self, prefix: bytes, rest: IO[bytes]) -> None:
        self._prefix = prefix
        self._rest = rest

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        if self._prefix:
            n = min(len(view), len(self._prefix))
            view[:n] = self._prefix[:n]
            self._prefix = self._prefix[n:]
            return n
        data = self._rest.read(len(view))
        n = len(data)
        view[:n] = data
        return n


def _open(path: str | Path, name: str) -> tuple[IO[bytes], IO[bytes] | None]:
    """(the decoded byte stream, the file to close or None for stdin)."""
    if str(path) == "-":
        raw: IO[bytes] = sys.stdin.buffer
        owned = None
    else:
        try:
            # 64 KiB reads: with the default (the file system's 4 KiB block) splitting
            # lines costs twice as much, a refill every few DI events.
            raw = open(path, "rb", buffering=_CHUNK)  # noqa: SIM115 - closed by read_events
        except FileNotFoundError:
            raise AlertingError(f"{name}: no such file; check the path (- reads stdin)") from None
        except IsADirectoryError:
            raise AlertingError(f"{name}: is a directory, not an events file") from None
        except PermissionError:
            raise AlertingError(f"{name}: permission denied; check the file's mode") from None
        except OSError as exc:
            raise AlertingError(f"{name}: cannot read ({exc.strerror})") from None
        owned = raw
    magic = b""
    while len(magic) < 2:
        more = raw.read(2 - len(magic))
        if not more:
            break
        magic += more
    stream: IO[bytes]
    if owned is not None and raw.seekable():
        raw.seek(0)  # a regular file: read it directly, no copy through _Prefixed
        stream = raw
    else:
        stream = io.BufferedReader(_Prefixed(magic, raw), buffer_size=_CHUNK)
    if magic == _GZIP_MAGIC:
        # buffered, so that a UTF-16 byte-order mark inside can be looked at
        unzipped = io.BufferedReader(gzip.GzipFile(fileobj=stream, mode="rb"), _CHUNK)
        stream = unzipped
        try:
            magic = unzipped.peek(2)[:2]
        except (OSError, EOFError, zlib.error):
            magic = b""  # the first read says what is wrong with the gzip data
    if magic in _UTF16_BOMS:
        stream = io.BufferedReader(_Utf16ToUtf8(stream), buffer_size=_CHUNK)
    return stream, owned


class _Utf16ToUtf8(io.RawIOBase):
    """A UTF-16 stream (with its byte-order mark) read as UTF-8: what Windows PowerShell
    5.1 writes by default (``>`` and ``Out-File``), read like any other export."""

    def __init__(self, stream: IO[bytes]) -> None:
        self._text = io.TextIOWrapper(stream, encoding="utf-16", errors="surrogatepass")
        self._pending = b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while not self._pending:
            text = self._text.read(_CHUNK // 2)
            if not text:
                return 0
            # a lone surrogate stays invalid UTF-8, so the reader reports its line
            self._pending = text.encode("utf-8", "surrogatepass")
        view = memoryview(buffer).cast("B")
        n = min(len(view), len(self._pending))
        view[:n] = self._pending[:n]
        self._pending = self._pending[n:]
        return n


def _chunks(stream: IO[bytes], name: str) -> Iterator[bytes]:
    try:
        while chunk := stream.read(_CHUNK):
            yield chunk
    except (OSError, EOFError, zlib.error) as exc:
        raise AlertingError(f"{name}: corrupt or truncated gzip data ({exc})") from None
    except UnicodeDecodeError as exc:
        raise AlertingError(
            f"{name}: invalid UTF-16 ({exc.reason}): save the export as UTF-8 or UTF-16 again"
        ) from None


@dataclass(slots=True)
class HeadFilter:
    """Which JSONL events a reader yields, told from their head alone (``read_events``).

    ``verdict(head)`` falsy: the event is counted here, with its time span, and never
    yielded (no rule can match it: nothing to hold or decode). Otherwise the event is
    yielded as a ``LazyEvent`` whose ``verdict`` is what this returned (the replay keeps
    the engine's route for it there).
    """

    verdict: Callable[[dict[str, Any]], Any]
    dropped: int = 0
    first_ns: int | None = None
    last_ns: int | None = None
    # Set by a replay that drops duplicates: which of the dropped events repeat one seen
    # before (counted in ``duplicates`` too, left out of the span), so that the count of
    # repeats does not depend on which rules were loaded.
    repeats: RecentIds | None = None
    duplicates: int = 0


def read_events(
    path: str | Path,
    *,
    on_skip: Callable[[str], None],
    head: frozenset[str] | None = None,
    keep: HeadFilter | None = None,
    name: str | None = None,
    body: frozenset[str] | None = None,
) -> Iterator[Event]:
    """Stream the events of a JSON array or JSONL file (``-`` = stdin, gzip detected;
    UTF-8, or UTF-16 with a byte-order mark as Windows PowerShell 5.1 writes it).

    Malformed records are skipped through ``on_skip("file:LINE: reason")``; a file with
    no events raises ``NoEventsError``; a missing file or a broken JSON array raises
    ``AlertingError``.

    ``head`` (a replay's hot path, where msgspec is installed): JSONL events come as
    ``LazyEvent``s, of which only these fields (and the time, id and type) are decoded,
    and only those ``keep`` lets through (it counts the others); ``parsed()`` decodes the
    rest, reporting a malformed body to ``on_skip`` then. ``body`` (a superset of
    ``head``): while most events are let through, they are decoded once, in these
    fields, as partial ``JsonEvent``s carrying the verdict (``_decode_once``).
    ``name``: what messages call the input (default: the path).
    """
    if name is None:
        name = "<stdin>" if str(path) == "-" else str(path)
    stream, owned = _open(path, name)
    try:
        chunks = _chunks(stream, name)
        first, line = _first_content(chunks)
        if first[:1] == b"[":
            records = _array_events(first, chunks, name, line, on_skip)
        else:
            # A regular file is read on from where its content starts; anything else
            # (stdin, gzip) through the chunks already read.
            regular = stream if stream is owned and type(stream) is io.BufferedReader else None
            readline = _line_reader(first, chunks, regular)
            records = _jsonl_events(readline, name, line, on_skip, head, keep, body)
        for event in records:
            yield event
            yield from records  # the rest without a Python-level loop per event
            break
        else:
            if keep is not None and keep.dropped:
                return  # events, none of which ``keep`` lets through
            raise NoEventsError(
                f"{name}: no events found; an empty input would read as 'no alerts'"
            )
    finally:
        if owned is not None:
            owned.close()


def first_events(path: str | Path, count: int) -> list[Event]:
    """The first ``count`` events of ``path``, whole, to look at before a replay; fewer or
    none when they cannot be read (whoever reads the file next reports every malformed
    record and error)."""
    events = read_events(path, on_skip=lambda _message: None)
    try:
        return list(itertools.islice(events, count))
    except AlertingError:
        return []
    finally:
        events.close()  # type: ignore[attr-defined]  # a generator: the file, now


def read_lines(
    lines: Iterator[bytes],
    name: str,
    *,
    on_skip: Callable[[str], None],
    head: frozenset[str] | None = None,
    keep: HeadFilter | None = None,
    body: frozenset[str] | None = None,
) -> Iterator[Event]:
    """``read_events`` over JSON lines already at hand (each with its newline), such as a
    sorted input's merged runs; ``name`` is what messages call them."""
    readline = functools.partial(next, lines, b"")
    return _jsonl_events(readline, name, 1, on_skip, head, keep, body)


def _first_content(chunks: Iterator[bytes]) -> tuple[bytes, int]:
    """The data from the first non-space byte on, and that byte's 1-based line."""
    line = 1
    start = True
    for chunk in chunks:
        if start and chunk.startswith(_BOM):
            chunk = chunk[len(_BOM) :]
        start = False
        stripped = chunk.lstrip(_WHITESPACE)
        line += chunk.count(b"\n", 0, len(chunk) - len(stripped))
        if stripped:
            return stripped, line
    return b"", line


# ---------------------------------------------------------------------------- JSONL


class _ChunkStream(io.RawIOBase):
    """Byte chunks as a raw stream, so that a ``BufferedReader`` splits lines in C."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self._pending = b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self._pending or next(self._chunks, b"")
        view = memoryview(buffer).cast("B")
        n = min(len(view), len(data))
        view[:n] = data[:n]
        self._pending = data[n:]
        return n


_LINE_LIMIT = MAX_LINE + 1  # a full line of MAX_LINE bytes plus its newline still fits


def _line_reader(
    first: bytes, chunks: Iterator[bytes], regular: io.BufferedReader | None
) -> Callable[[], bytes]:
    """``readline()`` from ``first`` on, in C: each call returns one line with its end
    (``b""`` at the end of input), or a ``_LINE_LIMIT``-byte piece of a longer line.

    ``regular``: the plain file the chunks came from, read on directly from where
    ``first`` starts (no copy through the chunks).
    """
    if regular is not None:
        regular.seek(regular.tell() - len(first))
        return functools.partial(regular.readline, _LINE_LIMIT)
    stream = io.BufferedReader(_ChunkStream(_chain(first, chunks)), buffer_size=_CHUNK)
    return functools.partial(stream.readline, _LINE_LIMIT)


def _too_long(data: bytes, readline: Callable[[], bytes]) -> bool:
    """Whether ``data`` is the start of a line over ``MAX_LINE``; if so, read past it."""
    if len(data) < _LINE_LIMIT or data[-1] == 10:  # 10: the newline
        return False
    while (more := readline()) and more[-1] != 10:
        pass
    return True


def _chain(first: bytes, chunks: Iterable[bytes]) -> Iterator[bytes]:
    if first:
        yield first
    yield from chunks


class _LineReader:
    """The careful parse of one line, shared by the reader and its ``LazyEvent``s."""

    __slots__ = ("name", "on_skip")

    def __init__(self, name: str, on_skip: Callable[[str], None]) -> None:
        self.name = name
        self.on_skip = on_skip

    def parse(self, data: bytes, line: int) -> Any:
        """The JSON value of a line; ``EventError("file:LINE: reason")`` if it has none."""
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise EventError(f"{self.name}:{line}: invalid UTF-8 at byte {exc.start + 1}") from None
        try:
            return jsonutil.loads(text)
        except jsonutil.JSONDecodeError as exc:
            raise EventError(f"{self.name}:{line}: invalid JSON ({_json_reason(exc)})") from None


def _jsonl_events(
    readline: Callable[[], bytes],
    name: str,
    line: int,
    on_skip: Callable[[str], None],
    head: frozenset[str] | None,
    keep: HeadFilter | None,
    body: frozenset[str] | None = None,
) -> Iterator[Event]:
    # Three decode paths: head, one orjson parse, careful (benchmarks/README.md, steps 1-4).
    reader = _LineReader(name, on_skip)
    decode_head = jsonutil.projection_decoder(head | _IDENTITY) if head is not None else None
    decoders = _decode_once(head, body) if decode_head is not None else None
    once = decoders is not None
    decode = decoders[0] if decoders is not None else decode_head
    heads = 0
    block_dropped = 0
    if keep is None:
        keep = HeadFilter(_every)
    verdict_of = keep.verdict
    repeats = keep.repeats  # set before the first line is asked for (replay)
    loads = jsonutil.loads
    from_json = JsonEvent.from_json
    from_raw = Event.from_raw
    fast = _BYTES_JSON
    lineno = line - 1
    for data in iter(readline, b""):
        lineno += 1
        if len(data) == _LINE_LIMIT and _too_long(data, readline):
            on_skip(f"{name}:{lineno}: line longer than 1 MiB")
            continue
        if decode is not None:
            try:
                fields: dict[str, Any] | None = decode(data)
                whole = once
            except ValueError:  # the paths below say why, or find an event the head could not
                fields = _head_only(decoders, data) if once else None
                whole = False
            if fields is not None:
                event_id = fields.get("id")
                # No id: the whole event is needed, for its content hash. The head decoder
                # skips unread text unchecked, so UTF-8 is checked here (ASCII: at once).
                if type(event_id) is str and event_id and (data.isascii() or _utf8(data)):
                    try:
                        time_ns = parse_timestamp(fields.get("timestamp"))  # type: ignore[arg-type]
                    except ValueError:
                        on_skip(f"{name}:{lineno}: {_unusable(fields)}")
                    else:
                        verdict = verdict_of(fields)
                        if not verdict:  # no rule can match it: counted, never held or decoded
                            keep.dropped += 1
                            if repeats is not None and repeats.repeated(event_id, time_ns):
                                keep.duplicates += 1
                            else:
                                if keep.first_ns is None or time_ns < keep.first_ns:
                                    keep.first_ns = time_ns
                                if keep.last_ns is None or time_ns > keep.last_ns:
                                    keep.last_ns = time_ns
                        elif whole:  # benchmarks/README.md, "Positional arguments"
                            yield JsonEvent(fields, time_ns, event_id, data, True, verdict)
                        else:
                            yield LazyEvent(data, time_ns, event_id, verdict, reader, lineno)
                        if decoders is not None:
                            heads += 1
                            if heads == _CHOOSE_EVERY:  # decode once or twice, for what comes
                                once = _once_pays(keep.dropped - block_dropped, heads)
                                decode = decoders[0] if once else decoders[1]
                                heads, block_dropped = 0, keep.dropped
                    continue
        if fast:
            try:
                raw = loads(data)
            except ValueError:
                pass
            else:
                try:
                    event = from_json(raw, data)
                except EventError as exc:
                    on_skip(f"{name}:{lineno}: {exc}")
                else:
                    yield event
                continue
        data = data.strip()
        if not data:
            continue
        try:
            raw = reader.parse(data, lineno)
        except EventError as exc:
            on_skip(str(exc))
            continue
        try:
            yield from_raw(raw)
        except EventError as exc:
            on_skip(f"{name}:{lineno}: {exc}")


_IDENTITY = frozenset({"timestamp", "id", "event_type"})
_CHOOSE_EVERY = 1024  # lines read between two choices of ``_once_pays``
_ONCE_SHARE = 0.25  # the share of events let through above which decoding once pays


def _decode_once(
    head: frozenset[str] | None, body: frozenset[str] | None
) -> tuple[Callable[[bytes], dict[str, Any]], Callable[[bytes], dict[str, Any]]] | None:
    """(the body's decoder, the head's), where each line can be decoded once, at read time,
    in every field the rules read (benchmarks/README.md, "Decode once"), or None.

    Held as a partial ``JsonEvent`` rather than its line, an event the rules read is
    decoded once instead of twice (the head, then the body on release); an event no rule
    can match then costs the body's extra fields for nothing. Which pays depends on the
    share let through (``_once_pays``), so the reader chooses as it reads.
    """
    if head is None or body is None or not head <= body:
        return None
    decode_body = jsonutil.projection_decoder(body | _IDENTITY)
    decode_head = jsonutil.projection_decoder(head | _IDENTITY)
    if decode_body is None or decode_head is None:
        return None
    return decode_body, decode_head


def _head_only(
    decoders: tuple[Callable[[bytes], dict[str, Any]], Callable[[bytes], dict[str, Any]]] | None,
    data: bytes,
) -> dict[str, Any] | None:
    """The head of a line whose body did not decode (e.g. a number beyond float range in
    a field no condition reads): its event is dropped or held as a ``LazyEvent``, which
    reports the body on release, as when the head was decoded alone."""
    assert decoders is not None
    try:
        return decoders[1](data)
    except ValueError:
        return None


def _once_pays(dropped: int, read: int) -> bool:
    """Whether decoding whole bodies at once pays, given ``dropped`` of the last ``read``
    events were no rule's."""
    return read - dropped >= _ONCE_SHARE * read


def _every(_head: dict[str, Any]) -> bool:
    return True


def _unusable(raw: dict[str, Any]) -> str:
    """Why ``identify`` refuses an event whose timestamp did not parse."""
    try:
        identify(raw)
    except EventError as exc:
        return str(exc)
    return "unusable timestamp"  # not reached: identify() parses the same timestamp


def _utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _json_reason(exc: ValueError) -> str:
    text = getattr(exc, "msg", None) or str(exc)
    return str(text).split(": line ")[0]


# ---------------------------------------------------------------------------- JSON array


class _ArrayReader:
    """A sliding text buffer over the byte chunks, tracking line numbers."""

    def __init__(self, first: bytes, chunks: Iterator[bytes], line: int) -> None:
        self._chunks = chunks
        self._decoder = codecs.getincrementaldecoder("utf-8")("surrogateescape")
        self.buf = self._decoder.decode(first)
        self.pos = 0
        self.line = line
        self.eof = False

    def fill(self) -> bool:
        """Read one more chunk; False at the end of the input."""
        if self.eof:
            return False
        if self.pos > _CHUNK:
            self.buf = self.buf[self.pos :]
            self.pos = 0
        chunk = next(self._chunks, None)
        if chunk is None:
            self.eof = True
            self.buf += self._decoder.decode(b"", final=True)
            return False
        self.buf += self._decoder.decode(chunk)
        return True

    def advance(self, end: int) -> None:
        self.line += self.buf.count("\n", self.pos, end)
        self.pos = end

    def skip_space(self) -> bool:
        """Move past whitespace; False when the input ends first."""
        while True:
            match = _WS.match(self.buf, self.pos)
            self.advance(match.end() if match else self.pos)
            if self.pos < len(self.buf):
                return True
            if not self.fill():
                return False


def _array_events(
    first: bytes,
    chunks: Iterator[bytes],
    name: str,
    line: int,
    on_skip: Callable[[str], None],
) -> Iterator[Event]:
    reader = _ArrayReader(first, chunks, line)
    decoder = json.JSONDecoder()
    reader.advance(reader.pos + 1)  # the '['
    expect_value = True
    first_item = True
    while True:
        if not reader.skip_space():
            raise AlertingError(
                f"{name}:{reader.line}: the JSON array is not closed (is the file truncated?)"
            )
        char = reader.buf[reader.pos]
        if not expect_value:
            if char == ",":
                reader.advance(reader.pos + 1)
                expect_value = True
                continue
            if char == "]":
                reader.advance(reader.pos + 1)
                break
            raise AlertingError(
                f"{name}:{reader.line}: invalid JSON (expected ',' or ']' after a record): "
                "fix the file, or export JSONL, where a bad line is skipped"
            )
        if char == "]" and first_item:
            reader.advance(reader.pos + 1)
            break
        try:
            raw, end = decoder.raw_decode(reader.buf, reader.pos)
        except json.JSONDecodeError as exc:
            if _maybe_incomplete(exc, reader) and reader.fill():
                continue
            reader.advance(max(reader.pos, min(exc.pos, len(reader.buf))))
            raise AlertingError(
                f"{name}:{reader.line}: invalid JSON ({exc.msg}): fix the file, or export "
                "JSONL, where a bad line is skipped"
            ) from None
        if end >= len(reader.buf) and not reader.eof and reader.fill():
            continue  # a number at the buffer's end may go on in the next chunk
        record_line = reader.line
        start = reader.pos
        reader.advance(end)
        expect_value = first_item = False
        if _ESCAPED_BYTES.search(reader.buf, start, end):
            on_skip(f"{name}:{record_line}: invalid UTF-8")
            continue
        if end - start > MAX_LINE:
            on_skip(f"{name}:{record_line}: record longer than 1 MiB")
            continue
        try:
            yield Event.from_raw(raw)
        except EventError as exc:
            on_skip(f"{name}:{record_line}: {exc}")
    if reader.skip_space():
        raise AlertingError(f"{name}:{reader.line}: unexpected data after the closing ']'")


def _maybe_incomplete(exc: json.JSONDecodeError, reader: _ArrayReader) -> bool:
    """Could more input fix this error (the record is cut by the buffer's end)?"""
    if reader.eof or len(reader.buf) - reader.pos > MAX_RECORD:
        return False
    return exc.msg.startswith("Unterminated string") or exc.pos >= len(reader.buf) - 8
