"""Parse a model reply into one action: run WAT, run a catalog program, or answer.

The reply grammar (DESIGN.md, "The reply grammar")::

    <reasoning>why this step</reasoning>
    ToolCall::Wat(```wat
    (argv 0 $text) ... (i32.const 0)
    ```, "arg0", "arg1")
    ToolCall::Catalog("program_name", "arg0")
    ToolCall::Response(\"\"\"final answer\"\"\")

`parse_reply` never raises. It accepts every deviation seen from real small models and
records each fallback it applied in the action's ``notes`` (short, stable strings such as
"no ToolCall: whole text taken as the answer", "unclosed fence", "four-backtick fence",
"one-quote Response", "unquoted arg", "missing ')'", "several ToolCalls: first taken"),
so the loop can measure format compliance. It is a small hand-written scanner over
``str.find`` and single-token regexes, linear in the length of the reply.

`format_action` renders the canonical form. ``parse_reply(format_action(a))`` equals ``a``
(ignoring notes) when its text fields are stripped, the body holds no run of three
backticks and no field holds a <reasoning>/<think> tag.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from agent.steps import ActionKind


@dataclass(frozen=True)
class WatCall:
    """Run a WAT-plus function body (or a whole ``(module ...)``: the runtime tells) on ``args``."""

    body: str
    args: tuple[str, ...] = ()
    reasoning: str = ""
    notes: tuple[str, ...] = ()

    @property
    def kind(self) -> ActionKind:
        return ActionKind.WAT


@dataclass(frozen=True)
class CatalogCall:
    """Run the catalog program ``name`` on ``args``."""

    name: str
    args: tuple[str, ...] = ()
    reasoning: str = ""
    notes: tuple[str, ...] = ()

    @property
    def kind(self) -> ActionKind:
        return ActionKind.CATALOG


@dataclass(frozen=True)
class Response:
    """The final answer."""

    text: str
    reasoning: str = ""
    notes: tuple[str, ...] = ()

    @property
    def kind(self) -> ActionKind:
        return ActionKind.RESPONSE


Action = WatCall | CatalogCall | Response

NO_TOOLCALL = "no ToolCall: whole text taken as the answer"

_CALL = re.compile(
    r"tool[ \t]*_?call[ \t]*(::?|\.)[ \t]*([a-z][a-z0-9_]*(?:\.[a-z][a-z0-9_]*)*)[ \t]*(\(?)",
    re.IGNORECASE,
)
_CANONICAL = frozenset({"ToolCall::Wat(", "ToolCall::Catalog(", "ToolCall::Response("})
_NAMES = {
    "wat": ActionKind.WAT,
    "wasm": ActionKind.WAT,
    "catalog": ActionKind.CATALOG,
    "response": ActionKind.RESPONSE,
}
# `/` and its following spaces are one optional group: no ambiguous `\s*\s*` backtracking.
_TAG = re.compile(r"<\s*(?:(/)\s*)?(?:reasoning|think)\s*>", re.IGNORECASE)
_WS = re.compile(r"\s*")
_SPACES = re.compile(r"[ \t]*")
_TICKS = re.compile(r"`{3,}")
_FENCE_TAG = re.compile(r"[A-Za-z0-9_+.-]*")
_LANGS = frozenset({"wat", "wasm", "wast", "lisp", "scheme", "webassembly"})
_QUOTE_RUN = {'"': re.compile(r'"+'), "'": re.compile(r"'+")}
_UNESCAPES = (("\\n", "\n"), ("\\t", "\t"), ("\\r", "\r"), ('\\"', '"'), ("\\'", "'"))
_QUOTE_TABLE = str.maketrans({"\\": "\\\\", '"': '\\"', "\n": "\\n", "\t": "\\t", "\r": "\\r"})
# ToolCall::Catalog("replace" "abc" "b" "x"): a quoted name, then a blank, then a quote.
_NAME_THEN_BLANK = re.compile(r"""\s*(["'])([A-Za-z_][\w.-]*)\1[ \t]+(?=\1)""")
_BARE_END = re.compile(r"[,)\]\n]")
_PARENS = re.compile(r"\(+|\)+")
# Strings and comments are single tokens, so parens inside them do not count.
_WAT_TOKEN = re.compile(
    r'\(+|\)+|,|;;[^\n]*|"""[\s\S]*?(?:"""|\Z)|"(?:[^"\\]|\\.)*(?:"|\\?\Z)', re.DOTALL
)


# What may follow a closing quote, so that unescaped inner quotes survive: an argument ends
# at `,` `)` `]`; a Response at a `)` that ends its line (prose may follow on the next line).
_ENDINGS = {
    "any": "",
    "arg": r"(?=\s*(?:[,)\]]|\Z))",
    "response": r"(?=\s*(?:\)[ \t]*(?:\r?\n|\Z)|\Z))",
}


def _closer(quote: str, ending: str) -> re.Pattern[str]:
    """Match up to the first unescaped ``quote`` followed by ``ending``; group 1 is it."""
    close = quote + ending
    # Each alternative starts with a different character: no backtracking blow-up.
    return re.compile(rf"(?:[^{quote}\\]|\\.|(?!{close}){quote})*({close})", re.DOTALL)


_CLOSERS = {(q, name): _closer(q, ending) for q in "\"'" for name, ending in _ENDINGS.items()}


def parse_reply(text: str) -> Action:
    """Parse one model reply into an action; never raises."""
    if not isinstance(text, str):  # typed callers never do this; model plumbing might
        text = text.decode("utf-8", "replace") if isinstance(text, bytes | bytearray) else str(text)
    try:
        return _parse(text)
    except Exception as exc:  # the contract is "never raises"; the fuzz test keeps this unused
        return Response(text.strip(), notes=(f"internal parser error: {type(exc).__name__}",))


def format_action(action: Action) -> str:
    """Render ``action`` in the canonical reply grammar (for few-shot examples and history)."""
    head = f"<reasoning>{action.reasoning}</reasoning>\n" if action.reasoning else ""
    if isinstance(action, WatCall):
        tail = "".join(f", {quote_arg(arg)}" for arg in action.args)
        return f"{head}ToolCall::Wat(```wat\n{action.body}\n```{tail})"
    if isinstance(action, CatalogCall):
        args = ", ".join(quote_arg(arg) for arg in (action.name, *action.args))
        return f"{head}ToolCall::Catalog({args})"
    return f"{head}ToolCall::Response({_quote_block(action.text)})"


def quote_arg(value: str) -> str:
    """``value`` as a one-line double-quoted argument of the reply grammar."""
    return '"' + value.translate(_QUOTE_TABLE) + '"'


def _quote_block(text: str) -> str:
    for quotes in ('"""', "'''"):
        if quotes not in text:
            return f"{quotes}\n{text}\n{quotes}"
    return quote_arg(text)


def _parse(text: str) -> Action:
    if not text.strip():
        return Response("", notes=("empty reply",))
    notes: list[str] = []
    reasoning, visible = _split_reasoning(text, notes)
    call = _find_call(visible, 0, len(visible)) or _find_call(visible, 0, len(visible), False)
    if call is None:
        notes.append(NO_TOOLCALL)
        return Response(visible.strip(), reasoning, tuple(dict.fromkeys(notes)))
    reasoning = reasoning or visible[: call.start()].strip()
    kind = _NAMES.get(call.group(2).lower())
    if kind is not None and call.group() not in _CANONICAL:
        notes.append("nonstandard ToolCall spelling")
    action: Action
    if kind is None:  # ToolCall::upper("hi"): a catalog program called by its own name
        notes.append(f"ToolCall::{call.group(2)}(...) read as a catalog call")
        values, end = _parse_args(visible, call.end(), notes)
        action = CatalogCall(call.group(2), tuple(values), reasoning)
    elif kind is ActionKind.WAT:
        body, args, end = _parse_wat(visible, call.end(), notes)
        action = WatCall(body, args, reasoning)
    elif kind is ActionKind.CATALOG:
        values, end = _parse_catalog_args(visible, call.end(), notes)
        if not values:
            notes.append("missing catalog name")
        name = values[0].strip() if values else ""
        action = CatalogCall(name, tuple(values[1:]), reasoning)
    else:
        answer, end = _parse_response(visible, call.end(), bool(call.group(3)), notes)
        action = Response(answer, reasoning)
    if _find_call(visible, end, len(visible)):
        notes.append("several ToolCalls: first taken")
    return replace(action, notes=tuple(dict.fromkeys(notes)))


def _find_call(text: str, pos: int, end: int, need_paren: bool = True) -> re.Match[str] | None:
    """The first ToolCall head in text[pos:end]; a paren-less one only for Response.

    An unknown name with a paren (``ToolCall::upper(``) counts: it is read as a catalog call.
    """
    while (m := _CALL.search(text, pos, end)) is not None:
        kind = _NAMES.get(m.group(2).lower())
        if m.group(3) if need_paren else kind is ActionKind.RESPONSE:
            return m
        pos = m.end()
    return None


def _split_reasoning(text: str, notes: list[str]) -> tuple[str, str]:
    """Split <reasoning>/<think> blocks from the rest; return (reasoning, visible text)."""
    visible: list[str] = []
    reasons: list[str] = []
    pos, inside, seen = 0, -1, False
    for m in _TAG.finditer(text):
        closing = m.group(1) is not None
        if not closing and inside < 0:
            visible.append(text[pos : m.start()])
            inside = m.end()
        elif closing and inside >= 0:
            reasons.append(text[inside : m.start()])
            inside, pos = -1, m.end()
        elif closing and not seen and _find_call(text, pos, m.start()) is None:
            # A lone closing tag (chat templates often pre-fill the opening one).
            notes.append("missing opening reasoning tag")
            reasons.append(text[pos : m.start()])
            pos = m.end()
        seen = True
    if inside >= 0:
        notes.append("unclosed reasoning tag")
        call = _find_call(text, inside, len(text))
        if call is None:  # nothing but the open block: it is the answer
            pos = inside
        else:
            reasons.append(text[inside : call.start()])
            pos = call.start()
    visible.append(text[pos:])
    reasoning = "\n\n".join(r.strip() for r in reasons if r.strip())
    return reasoning, "".join(visible)


def _skip(pattern: re.Pattern[str], text: str, i: int) -> int:
    m = pattern.match(text, i)
    return m.end() if m else i


def _parse_wat(text: str, i: int, notes: list[str]) -> tuple[str, tuple[str, ...], int]:
    i = _skip(_WS, text, i)
    opening = _TICKS.match(text, i)
    if opening is not None:
        body, i = _read_fence(text, opening, notes)
    elif i < len(text) and text[i] in "\"'":
        notes.append("quoted body")
        body, i = _read_string(text, i, "arg", notes)
        body = body.strip()
    else:
        notes.append("unfenced body")
        body, i = _read_raw_wat(text, i)
    j = _skip(_WS, text, i)
    if j < len(text) and text[j] == ",":
        args, i = _parse_args(text, j + 1, notes)
        return body, tuple(args), i
    if j < len(text) and text[j] == ")":
        return body, (), j + 1
    notes.append("missing ')'")
    return body, (), i


def _read_fence(text: str, opening: re.Match[str], notes: list[str]) -> tuple[str, int]:
    """Read a ``` fenced body whose opening backticks matched; return (body, end)."""
    j = opening.end()
    tag = _FENCE_TAG.match(text, j)
    word = tag.group() if tag else ""
    if tag and word:
        after = _skip(_SPACES, text, tag.end())
        if word.lower() in _LANGS:
            j = tag.end()
        elif text.startswith(("\n", "\r\n"), after):
            notes.append("unknown fence tag")
            j = tag.end()
    j = _skip(_SPACES, text, j)
    if text.startswith("\r\n", j):
        j += 2
    elif text.startswith("\n", j):
        j += 1
    else:
        notes.append("no newline after fence tag")
    closing = _TICKS.search(text, j)
    if closing is None:
        notes.append("unclosed fence")
        return _drop_paren(text[j:]).strip(), len(text)
    sizes = (len(opening.group()), len(closing.group()))
    if 4 in sizes:
        notes.append("four-backtick fence")
    elif sizes != (3, 3):
        notes.append("long fence")
    return text[j : closing.start()].strip(), closing.end()


def _read_raw_wat(text: str, i: int) -> tuple[str, int]:
    """Unfenced WAT up to the `,` or `)` that closes it at depth 0; return (body, end)."""
    depth, pos = 0, i
    while (m := _WAT_TOKEN.search(text, pos)) is not None:
        token, pos = m.group(), m.end()
        if token[0] == "(":
            depth += len(token)
        elif token[0] == ")" and len(token) > depth:
            return text[i : m.start() + depth].strip(), m.start() + depth
        elif token[0] == ")":
            depth -= len(token)
        elif token == "," and depth == 0:
            return text[i : m.start()].strip(), m.start()
    return text[i:].strip(), len(text)


def _find_quote(text: str, pos: int, quote: str, ending: str) -> int:
    """Index of the first unescaped ``quote`` at or after ``pos`` followed by ``ending``
    (a key of _ENDINGS), or -1."""
    if text.find(quote, pos) < 0:
        return -1
    m = _CLOSERS[quote, ending].match(text, pos)
    return m.start(1) if m else -1


def _read_string(
    text: str, i: int, ending: str, notes: list[str], unescape: bool = True
) -> tuple[str, int]:
    """Read a one- or three-quote string starting at text[i]; return (value, end)."""
    quote = text[i]
    if text.startswith(quote * 3, i):
        k = text.find(quote * 3, i + 3)
        if k >= 0:
            run = _QUOTE_RUN[quote].match(text, k)
            k = run.end() - 3 if run else k  # a run of quotes closes at its last three
            value = text[i + 3 : k]
            if value.startswith(quote) and value.count(quote) % 2:  # """"4""": a stray quote
                notes.append("stray quote after the opening triple quote")
                value = value[1:]
            return value, k + 3
        before = len(notes)
        value, end = _read_single(text, i + 3, quote, ending, notes, False)
        if len(notes) == before:
            notes.append("triple quote closed by one quote")
        return value, end
    return _read_single(text, i + 1, quote, ending, notes, unescape)


def _read_single(
    text: str, i: int, quote: str, ending: str, notes: list[str], unescape: bool
) -> tuple[str, int]:
    """The closing quote is the first one followed by ``ending``; failing that, the first."""
    close = _find_quote(text, i, quote, ending)
    close = _find_quote(text, i, quote, "any") if close < 0 else close
    if close >= 0:
        return _unescape(text[i:close], unescape), close + 1
    notes.append("unclosed string")
    return _unescape(_drop_paren(text[i:]), unescape), len(text)


def _unescape(value: str, enabled: bool) -> str:
    if not enabled or "\\" not in value:
        return value
    parts = value.split("\\\\")  # a `\\` pair can never start another escape
    for escape, char in _UNESCAPES:
        parts = [part.replace(escape, char) for part in parts]
    return "\\".join(parts)


def _drop_paren(tail: str) -> str:
    """Drop the call's own trailing `)` from an unclosed tail, if it is unbalanced there."""
    tail = tail.rstrip()
    if tail.endswith(")") and tail.count(")") > tail.count("("):
        tail = tail[:-1]
    return tail


def _parse_args(text: str, i: int, notes: list[str]) -> tuple[list[str], int]:
    """Comma-separated quoted or bare arguments up to `)`; return (values, end)."""
    values: list[str] = []
    while True:
        i = _skip(_WS, text, i)
        if i >= len(text):
            notes.append("missing ')'")
            return values, i
        char = text[i]
        if char == ")":
            return values, i + 1
        if char in ",[]":
            if char != ",":
                notes.append("bracketed args")
            i += 1
            continue
        if char in "\"'":
            value, i = _read_string(text, i, "arg", notes)
        else:
            bare = _BARE_END.search(text, i)
            end = bare.start() if bare else len(text)
            value, i = text[i:end].strip(), end
            notes.append("unquoted arg")
        values.append(value)
        j = _skip(_WS, text, i)
        if j < len(text) and text[j] not in ",)]":
            notes.append("missing ')'")
            return values, i


def _parse_catalog_args(text: str, i: int, notes: list[str]) -> tuple[list[str], int]:
    """Catalog args, forgiving missing commas when the name is followed by a blank, not a comma."""
    m = _NAME_THEN_BLANK.match(text, i)
    if m is None:
        return _parse_args(text, i, notes)
    notes.append("args without commas")
    rest, end = _parse_args(text, m.end(), notes)
    quote = m.group(1)
    split = re.split(rf"{quote}\s+{quote}", rest[0]) if rest else []
    return [m.group(2), *split, *rest[1:]], end


def _parse_response(text: str, i: int, has_paren: bool, notes: list[str]) -> tuple[str, int]:
    i = _skip(_WS, text, i)
    if not has_paren:
        notes.append("missing '('")
        i = _skip(_WS, text, i + 1) if text.startswith((":", "="), i) else i
    if i < len(text) and text[i] in "\"'":
        if not text.startswith(text[i] * 3, i):
            notes.append("one-quote Response")
        value, i = _read_string(text, i, "response", notes)
        j = _skip(_WS, text, i)
        if j < len(text) and text[j] == ")":
            return value.strip(), j + 1
        if has_paren and "unclosed string" not in notes:
            notes.append("missing ')'")
        return value.strip(), i
    notes.append("unquoted Response")
    if has_paren:
        depth = 0
        for m in _PARENS.finditer(text, i):
            if m.group()[0] == "(":
                depth += len(m.group())
            elif len(m.group()) > depth:
                return text[i : m.start() + depth].strip(), m.start() + depth + 1
            else:
                depth -= len(m.group())
        notes.append("missing ')'")
    return _drop_paren(text[i:]).strip(), len(text)
