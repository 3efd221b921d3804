"""The ``str`` capability: Unicode string functions over guest strings.

Lengths and indexes count Unicode code points (not bytes), so ``str.len "日本"`` is 2.
Every string the capability creates is capped at ``max_output_bytes`` UTF-8 bytes (ENOMEM).
The text logic lives in plain functions (``chunk_text``, ``slice_text``, ``parse_i32``, ...)
and the host functions are thin wrappers that read and write guest memory.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import partial

from capabilities.base import host
from rt.codes import Err
from rt.host import U32, GuestError, HostFunction, RunContext

I32_MIN = -(2**31)
I32_MAX = 2**31 - 1
MIN_CHUNK_BYTES = 4  # the longest UTF-8 character

# Boundaries that chunk_text prefers, best first: blank line, sentence end, whitespace.
_PARAGRAPH = re.compile(r"\n\s*\n")
_SENTENCE = re.compile(r"(?<=[.!?])\s+")
_WORD = re.compile(r"\s+")
_SEPARATORS = (_PARAGRAPH, _SENTENCE, _WORD)
_INT = re.compile(r"[+-]?[0-9]+")


def signed_i32(n: int) -> int:
    """``n`` as a signed 32-bit value, whatever sign convention it arrived in."""
    return ((n & U32) ^ 0x80000000) - 0x80000000


# ---- pure text functions ------------------------------------------------------------------


def slice_text(text: str, start: int, end: int) -> str:
    """Code points ``[start, end)``; ``end`` is clamped to the length.

    Raises ``GuestError(EBOUND)`` for a negative bound, ``start > end`` or ``start > len``.
    """
    if start < 0 or end < 0:
        raise GuestError(Err.EBOUND, f"negative slice bound ({start}, {end})")
    if start > len(text):
        raise GuestError(Err.EBOUND, f"slice start {start} is past the length {len(text)}")
    if start > end:
        raise GuestError(Err.EBOUND, f"slice start {start} is after end {end}")
    return text[start : min(end, len(text))]


def find_text(text: str, needle: str) -> int:
    """Code-point index of the first ``needle`` in ``text``; ``GuestError(ENOENT)`` if absent."""
    idx = text.find(needle)
    if idx < 0:
        raise GuestError(Err.ENOENT, "substring not found")
    return idx


def split_text(text: str, sep: str) -> list[str]:
    """``text`` split on ``sep``; an empty ``sep`` splits on runs of whitespace (no empty pieces)."""
    return text.split() if sep == "" else text.split(sep)


def parse_i32(text: str) -> int:
    """A decimal i32 (optional sign, surrounding whitespace allowed); ``GuestError(EPARSE)`` otherwise."""
    stripped = text.strip()
    if not _INT.fullmatch(stripped):
        raise GuestError(Err.EPARSE, f"not an integer: {text[:40]!r}")
    value = int(stripped)
    if not I32_MIN <= value <= I32_MAX:
        raise GuestError(Err.EPARSE, f"integer out of i32 range: {stripped[:40]}")
    return value


def _utf8_len(ch: str) -> int:
    cp = ord(ch)
    return 1 if cp < 0x80 else 2 if cp < 0x800 else 3 if cp < 0x10000 else 4


def _nbytes(text: str, start: int, end: int) -> int:
    return len(text[start:end].encode("utf-8", "surrogatepass"))


def chunk_text(text: str, max_bytes: int) -> list[str]:
    """Split ``text`` into pieces of at most ``max_bytes`` UTF-8 bytes.

    Cuts prefer paragraph boundaries (a blank line), then sentence ends (``.``, ``!`` or ``?``
    followed by whitespace), then whitespace, and only then a character boundary inside a
    word; a UTF-8 character is never cut. Neighbouring pieces are packed greedily into one
    chunk when they fit. Whitespace at the cuts is dropped, never anything else, and no
    chunk is empty, so an all-whitespace text gives no chunks.
    """
    if max_bytes < MIN_CHUNK_BYTES:
        raise ValueError(f"max_bytes must be at least {MIN_CHUNK_BYTES}, got {max_bytes}")
    out: list[str] = []
    _chunk_span(text, 0, len(text), 0, max_bytes, out)
    return out


def _trim(text: str, start: int, end: int) -> tuple[int, int]:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end


def _pieces(text: str, start: int, end: int, sep: re.Pattern[str]) -> list[tuple[int, int]]:
    """Trimmed, non-empty spans of ``text[start:end]`` between matches of ``sep``."""
    spans: list[tuple[int, int]] = []
    pos = start
    for m in sep.finditer(text, start, end):
        spans.append(_trim(text, pos, m.start()))
        pos = m.end()
    spans.append(_trim(text, pos, end))
    return [(s, e) for s, e in spans if s < e]


def _chunk_span(
    text: str, start: int, end: int, level: int, max_bytes: int, out: list[str]
) -> None:
    start, end = _trim(text, start, end)
    if start == end:
        return
    if _nbytes(text, start, end) <= max_bytes:
        out.append(text[start:end])
        return
    if level == len(_SEPARATORS):
        _hard_split(text, start, end, max_bytes, out)
        return
    pieces = _pieces(text, start, end, _SEPARATORS[level])
    if len(pieces) == 1:
        _chunk_span(text, start, end, level + 1, max_bytes, out)
        return
    # Greedy packing: ``cur`` is the open chunk [cur_start, cur_end) of ``cur_bytes`` bytes.
    cur_start = cur_end = -1
    cur_bytes = 0
    for ps, pe in pieces:
        if cur_start >= 0:
            grown = cur_bytes + _nbytes(text, cur_end, pe)
            if grown <= max_bytes:
                cur_end, cur_bytes = pe, grown
                continue
            out.append(text[cur_start:cur_end])
            cur_start = -1
        size = _nbytes(text, ps, pe)
        if size <= max_bytes:
            cur_start, cur_end, cur_bytes = ps, pe, size
        else:
            _chunk_span(text, ps, pe, level + 1, max_bytes, out)
    if cur_start >= 0:
        out.append(text[cur_start:cur_end])


def _hard_split(text: str, start: int, end: int, max_bytes: int, out: list[str]) -> None:
    piece_start, size = start, 0
    for i in range(start, end):
        n = _utf8_len(text[i])
        if size + n > max_bytes:
            out.append(text[piece_start:i])
            piece_start, size = i, 0
        size += n
    out.append(text[piece_start:end])


# ---- the capability -----------------------------------------------------------------------


class StrCapability:
    """Host functions of the ``str`` namespace."""

    namespace = "str"
    pure = True  # no side effects: a run may be repeated
    summary = "Unicode strings; indexes count code points; bad pointer ETRFM, too large ENOMEM"

    def __init__(self, max_output_bytes: int = 1_000_000) -> None:
        self.max_output_bytes = max_output_bytes

    # -- helpers
    def _check_size(self, size: int) -> None:
        if size > self.max_output_bytes:
            raise GuestError(Err.ENOMEM, f"string of {size} bytes exceeds {self.max_output_bytes}")

    def _out_bytes(self, ctx: RunContext, data: bytes) -> tuple[int, int]:
        self._check_size(len(data))
        return ctx.alloc_bytes(data), 0

    def _out(self, ctx: RunContext, text: str) -> tuple[int, int]:
        return self._out_bytes(ctx, text.encode("utf-8"))

    # -- impls
    def length(self, ctx: RunContext, s: int) -> tuple[int, int]:
        return len(ctx.read_str(s)), 0

    def concat(self, ctx: RunContext, a: int, b: int) -> tuple[int, int]:
        left, right = ctx.read_bytes(a), ctx.read_bytes(b)
        self._check_size(len(left) + len(right))
        return self._out_bytes(ctx, left + right)

    def substring(self, ctx: RunContext, s: int, start: int, end: int) -> tuple[int, int]:
        text = ctx.read_str(s)
        return self._out(ctx, slice_text(text, signed_i32(start), signed_i32(end)))

    def find(self, ctx: RunContext, s: int, needle: int) -> tuple[int, int]:
        return find_text(ctx.read_str(s), ctx.read_str(needle)), 0

    def replace(self, ctx: RunContext, s: int, old: int, new: int) -> tuple[int, int]:
        text = ctx.read_str(s).encode("utf-8")
        old_b, new_b = ctx.read_str(old).encode("utf-8"), ctx.read_str(new).encode("utf-8")
        if not old_b:
            raise GuestError(Err.EBOUND, "replace: old must not be empty")
        # On valid UTF-8 a byte match is always a whole-character match.
        self._check_size(len(text) + text.count(old_b) * (len(new_b) - len(old_b)))
        return self._out_bytes(ctx, text.replace(old_b, new_b))

    def split(self, ctx: RunContext, s: int, sep: int) -> tuple[int, int]:
        parts = split_text(ctx.read_str(s), ctx.read_str(sep))
        return ctx.new_array([p.encode("utf-8") for p in parts]), 0

    def chunk(self, ctx: RunContext, s: int, max_bytes: int) -> tuple[int, int]:
        limit = signed_i32(max_bytes)
        if limit < MIN_CHUNK_BYTES:
            raise GuestError(Err.EBOUND, f"max_bytes {limit} is below {MIN_CHUNK_BYTES}")
        text = ctx.read_str(s)
        return ctx.new_array([c.encode("utf-8") for c in chunk_text(text, limit)]), 0

    def join(self, ctx: RunContext, handle: int, sep: int) -> tuple[int, int]:
        items = ctx.array(handle)
        glue = ctx.read_bytes(sep)
        self._check_size(sum(len(i) for i in items) + len(glue) * max(0, len(items) - 1))
        return self._out_bytes(ctx, glue.join(items))

    def _map(self, fn: Callable[[str], str]) -> Callable[[RunContext, int], tuple[int, int]]:
        def impl(ctx: RunContext, s: int) -> tuple[int, int]:
            return self._out(ctx, fn(ctx.read_str(s)))

        return impl

    def eq(self, ctx: RunContext, a: int, b: int) -> tuple[int, int]:
        return int(ctx.read_bytes(a) == ctx.read_bytes(b)), 0

    def from_i32(self, ctx: RunContext, n: int) -> tuple[int, int]:
        return self._out(ctx, str(signed_i32(n)))

    def to_i32(self, ctx: RunContext, s: int) -> tuple[int, int]:
        return parse_i32(ctx.read_str(s)), 0

    def functions(self) -> list[HostFunction]:
        fn = partial(host, self.namespace)
        return [
            fn("len", "s -> n err", self.length, "length in code points"),
            fn("concat", "a b -> ptr err", self.concat, "a followed by b"),
            fn("slice", "s start end -> ptr err", self.substring,
               "code points [start, end), end clamped; EBOUND if start > end or start > len"),
            fn("find", "s needle -> idx err", self.find, "code-point index of first needle; ENOENT if absent"),
            fn("replace", "s old new -> ptr err", self.replace, "replace every old with new; EBOUND if old is empty"),
            fn("split", "s sep -> arr err", self.split, "array of pieces; empty sep splits on whitespace runs"),
            fn("chunk", "s max_bytes -> arr err", self.chunk,
               "array of pieces <= max_bytes, cut at paragraph/sentence/word; EBOUND if < 4"),
            fn("join", "arr sep -> ptr err", self.join, "array items joined with sep; EBOUND bad handle"),
            fn("trim", "s -> ptr err", self._map(str.strip), "without surrounding whitespace"),
            fn("upper", "s -> ptr err", self._map(str.upper), "upper-cased copy"),
            fn("lower", "s -> ptr err", self._map(str.lower), "lower-cased copy"),
            fn("reverse", "s -> ptr err", self._map(lambda t: t[::-1]), "code points in reverse order"),
            fn("eq", "a b -> bool err", self.eq, "1 if a and b are equal, else 0"),
            fn("from_i32", "n -> ptr err", self.from_i32, "decimal text of n"),
            fn("to_i32", "s -> n err", self.to_i32,
               "parse a decimal integer; EPARSE if not a number or out of i32 range"),
        ]  # fmt: skip
