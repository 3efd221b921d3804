"""The reply grammar (DESIGN.md, "The reply grammar") as llama.cpp GBNF, for constrained decoding.

``reply_grammar(functions, catalog_names)`` is built from LIVE data, once per run: host
functions can only be the granted ones (``functions``: anything with a ``qualname``, e.g.
``rt.host.HostFunction``) and ``ToolCall::Catalog`` names only the loaded programs. A model
sampled under it writes only replies the parser takes without a fallback, whose Wat body is
WAT-plus built from known instructions, macros and granted functions:

    <reasoning>why</reasoning>            optional, then exactly one call, then end of text
    ToolCall::Wat(```wat
    <body>
    ```, "arg0", "arg1")
    ToolCall::Catalog("name", "arg0")
    ToolCall::Response(\"\"\"answer\"\"\")

``reply_grammar()`` without functions (``REPLY_GBNF``) is the frame alone: any body text, any
catalog name. It is for callers that have no registry.

The body (rule ``body``) accepts, with whitespace and ``;;`` comments between tokens:

- folded instructions ``(op immediates operands...)`` and their flat forms, for the i32
  subset: ``i32.const`` (decimal, negative, ``0x``), ``local.get/set/tee $x``, arithmetic and
  comparisons (also as ``i64.``, with ``i64.extend_i32_s/u`` and ``i32.wrap_i64``, which a
  shipped program uses), loads and stores with ``offset=``/``align=``, ``memory.size/grow``, ``drop``,
  ``select``, ``nop``, ``unreachable``, ``return``, ``br``, ``br_if``, ``br_table``, ``call``,
  ``block``/``loop`` (label and ``(result i32)`` optional; folded, or flat up to ``end``),
  ``if`` (folded with ``(then ...)`` and ``(else ...)``, or flat ``if ... else ... end``);
- host calls spelled ``(call $str.upper X)``, ``($str.upper X)`` or ``(str.upper X)``, flat
  ``call $str.upper``: granted names only;
- macros ``(local $x i32)`` (or ``i64``), ``(argv N $x)``, ``(check X)``, ``(resv X)``, ``(answer X)`` and
  the expression ``(arg N)``;
- operands: folded expressions, ``"strings"`` (escapes ``\\n \\t \\r \\" \\' \\\\``, hex pairs
  and ``\\u{...}``, one line), ``\"\"\"raw multi-line strings\"\"\"``, ``$x``, ``($x)`` and integers.

Local names and labels are ``$`` and an identifier ``[A-Za-z_][A-Za-z0-9_]*`` (no dots, so an
invented ``$str.count_vowels`` is neither a function nor a local).

Deliberate narrowings, each so that ``parse_reply`` returns exactly what was sampled (no
fallback note, no stripped or lost text; tests/test_grammar.py round-trips thousands of
generated replies):

- reasoning holds no ``<``; reasoning, body and answer start and end with a non-blank
  character (the parser strips them);
- no run of three backticks anywhere in the body (it would close the fence); the body
  ends with an instruction or a comment;
- a ``<`` inside text is followed by blanks and a character that cannot begin
  ``reasoning``/``think`` or ``/`` (the parser takes ``<think>`` tags out of any reply);
- arguments are one-line double-quoted strings with the escapes ``\\" \\\\ \\n \\t \\r \\'``;
- a Response is triple-quoted, not blank, holds no ``\"\"\"``, does not start with ``\"`` and
  has no ``\"`` right before a ``)``: the 1.5B model wrote ``\"\"\"\"4\"\"\"`` (a one-quote answer
  inside the triple quotes), then, with that ruled out, an empty answer.

Nothing bounds the length: the caller caps tokens (``LocalModel`` does by default).
Rule names use ``-`` (llama.cpp rejects ``_``); a rule's alternatives stay on one line
unless they are inside parentheses (llama.cpp ends a rule at a newline).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Protocol, runtime_checkable

from agent.models.messages import Message

GRAMMAR_ROOT = "root"
GRAMMAR_TRIGGER = "ToolCall::"

# Every character Python's str.strip() and the parser's \s take for whitespace.
_BLANKS = r"\t\n\x0b\x0c\r\x1c-\x1f \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
# What may follow "<" and blanks: nothing that starts "reasoning", "think" or "/" (a tag),
# no quote, backtick or backslash (they mean something in the text around it).
_AFTER_LT = r"0-9a-qsu-zA-QSU-Z!#$%&'()*+,.:;=?@^_{|}~\[\]-"

_FRAME = r"""
root          ::= reasoning? call
reasoning     ::= "<reasoning>" reason "</reasoning>" "\n"?
reason        ::= [^<@B@] ([^<]* [^<@B@])?
call          ::= @CALLS@

wat-call      ::= "ToolCall::Wat(```wat\n" body "\n```" args ")"
catalog-call  ::= "ToolCall::Catalog(\"" catalog-name "\"" args ")"
response-call ::= "ToolCall::Response(\"\"\"" "\n"? answer "\n"? "\"\"\")"

answer        ::= answer-edge (answer-char* answer-edge)?
answer-edge   ::= [^"<@B@] | lt
answer-char   ::= [^"<] | lt | "\"" "\""? ([^")<] | lt)

args          ::= ("," " "? arg)*
arg           ::= "\"" ([^"\\\n<] | "\\" ["\\nrt'] | lt)* "\""
lt            ::= "<" [ \t]* [@LT@]
"""

_FREE_BODY = r"""
body          ::= body-edge (body-char* body-edge)?
body-char     ::= [^`<] | lt | "`" "`"? ([^`<] | lt)
body-edge     ::= [^`<@B@] | lt
"""

_WAT_BODY = r"""
body          ::= (comment ws)? instr (ws pinstr | ws1 ainstr)* (ws ";;" (comment-char* comment-edge)?)?
comment       ::= ";;" comment-char* "\n"
comment-char  ::= [^\n`<] | lt
comment-edge  ::= [^\n`<@B@] | lt
# at most 40 blanks in a row: a small model can otherwise emit spaces until its token cap.
# Nested, not a flat run of optionals: llama.cpp keeps one parse stack per way to match, and
# a flat run of 39 optionals has exponentially many ways to match a few blanks.
ws            ::= blanks? (comment blanks?)*
ws1           ::= blanks (comment blanks?)* | (comment blanks?)+
blanks        ::= [ \t\n] ([ \t\n] ([ \t\n] ([ \t\n] ([ \t\n] ([ \t\n] ([ \t\n] ([ \t\n] ([ \t\n] ([ \t\n] ([ \t\n] ([ \t\n] ([ \t\n] ([ \t\n] ([ \t\n] ([ \t\n] ([ \t\n] ([ \t\n] ([ \t\n] ([ \t\n] ([ \t\n] ([ \t\n] ([ \t\n] ([ \t\n] ([ \t\n] ([ \t\n] ([ \t\n] ([ \t\n] ([ \t\n] ([ \t\n] ([ \t\n] ([ \t\n] ([ \t\n] ([ \t\n] ([ \t\n] ([ \t\n] ([ \t\n] ([ \t\n] ([ \t\n] ([ \t\n])?)?)?)?)?)?)?)?)?)?)?)?)?)?)?)?)?)?)?)?)?)?)?)?)?)?)?)?)?)?)?)?)?)?)?)?)?)?)?

instr         ::= pinstr | ainstr
seq           ::= (ws pinstr | ws1 ainstr)*
pinstr        ::= pexpr | "(" ws macro ws ")"
pexpr         ::= "(" ws expr ws ")"
ainstr        ::= op | string | ("block" | "loop") block-type seq ws1 "end" | "if" block-type seq (ws1 "else" seq)? ws1 "end"
block-type    ::= (ws1 id)? (ws "(" ws "result" ws1 num-type ws ")")?
expr          ::= (op | "$"? host) operand* | ("block" | "loop") block-type seq | "if" block-type operand* ws "(" ws "then" seq ws ")" (ws "(" ws "else" seq ws ")")? | "arg" ws1 nat | id
macro         ::= "local" ws1 id ws1 num-type | "argv" ws1 nat ws1 id | ("check" | "resv" | "answer") operand
operand       ::= ws pexpr | ws1 (string | id | int)

op            ::= (
  ("i32." | "i64.") ("const" ws1 int | "add" | "sub" | "mul" | "div_s" | "div_u" | "rem_s" | "rem_u" | "and" | "or" | "xor" | "shl" | "shr_s" | "shr_u" | "rotl" | "rotr" | "eqz" | "eq" | "ne" | "lt_s" | "lt_u" | "gt_s" | "gt_u" | "le_s" | "le_u" | "ge_s" | "ge_u" | "clz" | "ctz" | "popcnt") |
  "i32.wrap_i64" | "i64.extend_i32_" ("s" | "u") |
  "i32." ("load" | "load8_u" | "load8_s" | "load16_u" | "store" | "store8" | "store16") (ws1 "offset=" nat)? (ws1 "align=" nat)? |
  "local." ("get" | "set" | "tee") ws1 id | "br" "_if"? ws1 label | "br_table" (ws1 label)+ | "call" ws1 "$" host |
  "memory." ("size" | "grow") | "drop" | "select" | "nop" | "unreachable" | "return"
)
host          ::= @HOSTS@

num-type      ::= "i32" | "i64"
label         ::= id | nat
id            ::= "$" [A-Za-z_] [A-Za-z0-9_]*
nat           ::= [0-9]+
int           ::= "-"? ("0x" [0-9a-fA-F]+ | [0-9]+)
string        ::= "\"" ("`" "`"?)? (str-char ("`" "`"?)?)* "\"" | "\"\"\"" raw-char* "\"\"\""
str-char      ::= [^"\\\n`<] | "\\" (["\\nrt'] | [0-9a-fA-F] [0-9a-fA-F] | "u{" [0-9a-fA-F]+ "}") | lt
raw-char      ::= [^"`<] | lt | ("\"" "\""? | "`" "`"?) ([^"`<] | lt)
"""

_HOST_RE = re.compile(r"[a-z_][a-z0-9_]*\.[a-z_][a-z0-9_]*")
_CATALOG_RE = re.compile(r"[a-z][a-z0-9_]*")


class HasQualname(Protocol):
    @property
    def qualname(self) -> str: ...


@runtime_checkable
class GrammarAware(Protocol):
    """A model that can constrain its agent turns with a GBNF grammar (None: the default)."""

    def use_grammar(self, gbnf: str | None) -> None: ...


def _literal(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _hosts(names: Iterable[str]) -> str:
    """One alternative per granted function, grouped by namespace: ``"str." ("len" | ...)``."""
    by_ns: dict[str, list[str]] = {}
    for qualname in names:
        if not _HOST_RE.fullmatch(qualname):
            raise ValueError(f"host function name {qualname!r} cannot be used in the grammar")
        ns, _, name = qualname.partition(".")
        if name not in by_ns.setdefault(ns, []):
            by_ns[ns].append(name)
    if not by_ns:
        raise ValueError("the reply grammar needs at least one host function (sys)")
    lines = [
        _literal(ns + ".") + " (" + " | ".join(_literal(n) for n in fns) + ")"
        for ns, fns in by_ns.items()
    ]
    return "(\n  " + " |\n  ".join(lines) + "\n)"


def _fill(template: str, **values: str) -> str:
    for key, value in values.items():
        template = template.replace(f"@{key}@", value)
    return template


def reply_grammar(
    functions: Sequence[HasQualname] | None = None, catalog_names: Sequence[str] | None = None
) -> str:
    """The GBNF text of the reply grammar (root rule ``root``).

    ``functions``: the host functions granted in this run (each with a ``qualname`` such as
    ``"str.upper"``); None gives the frame-only grammar whose body is any text.
    ``catalog_names``: the loaded (and usable) programs; None allows any program name,
    an empty list removes ``ToolCall::Catalog`` from the grammar.
    """
    calls = "wat-call | catalog-call | response-call"
    catalog = "catalog-name  ::= [A-Za-z0-9_.-]+\n"
    if catalog_names is not None:
        names = list(dict.fromkeys(catalog_names))
        for name in names:
            if not _CATALOG_RE.fullmatch(name):
                raise ValueError(f"catalog name {name!r} cannot be used in the grammar")
        catalog = f"catalog-name  ::= {' | '.join(_literal(n) for n in names)}\n" if names else ""
        calls = calls if names else "wat-call | response-call"
    if functions is None:
        body = _FREE_BODY
    else:
        body = _fill(_WAT_BODY, HOSTS=_hosts(f.qualname for f in functions))
    frame = _fill(_FRAME, CALLS=calls)
    if not catalog:  # no program loaded: no ToolCall::Catalog at all
        frame = "\n".join(line for line in frame.split("\n") if not line.startswith("catalog-call"))
    text = frame + catalog + body
    return _fill(text, B=_BLANKS, LT=_AFTER_LT).strip() + "\n"


REPLY_GBNF = reply_grammar()
"""The frame-only grammar: any body text and any catalog name (no registry needed)."""


def wants_grammar(messages: Sequence[Message]) -> bool:
    """Whether the conversation asks for replies in the ToolCall grammar (an agent turn)."""
    return any(m.role == "system" and GRAMMAR_TRIGGER in m.content for m in messages)
