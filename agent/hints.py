"""One-line fixes for the compile and link errors a small model makes most.

The real model (qwen2.5-coder-1.5b, bench/eval_real_model.py) answered a bare compile error by
sending the same program again, every time. What moves it is a concrete instruction naming
its own mistake, so ``repair_hint`` matches the error (its message, and the source line a
CompileError carries) against the mistakes seen in those runs and says what to write
instead. No match: no hint. What a body or a line calls is read with the preprocessor's
tokenizer (``rt.preprocess.called_functions``, ``list_heads``), so comments and strings never
count; the regexes below only rewrite the quoted line's text.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Sequence

from agent.parser import CatalogCall, format_action
from rt.errors import CompileError, LinkError
from rt.preprocess import WAT_FAMILIES, called_functions, list_heads, tokenize

_DOLLAR_HEAD = re.compile(
    r"\$([A-Za-z_][\w.]*)"
)  # a list head ($url) or ($argv ...) or ($str.len ...)
_UNCALLED_HEAD = re.compile(r"([a-z_]\w*\.[a-z_0-9]+)\b")  # a list head (json.get ...)
_UNKNOWN_NS = re.compile(r"unknown import \$([A-Za-z_]\w*)\.\w+; capabilities granted")
_UNKNOWN_NAME = re.compile(r"unknown local: failed to find name `(\$[^`]+)`")
_MACROS = ("argv", "check", "resv")
_ARITHMETIC = ("i32", "int", "num", "number", "calc", "arith", "maths")


# Rewrites of the quoted source line, applied in order; shown as the line to write instead.
_REWRITES = (
    (re.compile(r"\(\s*\$(argv|check|resv)\b"), r"(\1"),
    (re.compile(r"\(\s*\$([A-Za-z_]\w*\.[\w.]+)"), r"(call $\1"),
    (re.compile(r"\(\s*\$([A-Za-z_]\w*)\s*\)"), r"(local.get $\1)"),
    (
        re.compile(rf"\(\s*((?!(?:{'|'.join(sorted(WAT_FAMILIES))})\.)[a-z_]\w*\.[a-z_0-9]+)\b"),
        r"(call $\1",
    ),
)
_ARGV_LITERAL = re.compile(r'\(argv\s+(\d+)\s+"(?:[^"\\]|\\.)*"\s*\)')
_NAME = re.compile(r"\$[A-Za-z_]\w*(?![\w.])|(?<=[\s(])-?\d+(?=[\s)])")  # a $name or a bare integer
_NAME_TAKERS = frozenset(
    {
        "local.get",
        "local.set",
        "local.tee",
        "local",
        "check",
        "resv",
        "br",
        "br_if",
        "loop",
        "block",
        "if",
        "func",
        "param",
        "result",
        "memory",
        "table",
    }
)


def _wrap_bare_operands(line: str) -> str:
    """``(i32.add $a 17)`` -> ``(i32.add (local.get $a) (i32.const 17))``: a $name or an
    integer is an operand unless the instruction around it takes a name or an immediate."""
    out, last = [], 0
    for m in _NAME.finditer(line):
        owner = _owner(line[: m.start()])
        if owner in _NAME_TAKERS or owner in ("", "argv") or owner.endswith(".const"):
            continue
        wrapped = f"(local.get {m.group()})" if m.group()[0] == "$" else f"(i32.const {m.group()})"
        out += [line[last : m.start()], wrapped]
        last = m.end()
    return "".join(out) + line[last:]


def _owner(before: str) -> str:
    """The first word after the innermost unclosed ``(`` of ``before`` ("" if it has none)."""
    depth = 0
    for i in range(len(before) - 1, -1, -1):
        if before[i] == ")":
            depth += 1
        elif before[i] == "(":
            if depth == 0:
                word = re.match(r"\s*([\w.$]*)", before[i + 1 :])
                return word.group(1) if word else ""
            depth -= 1
    return ""


def repair_hint(error: CompileError | LinkError) -> str:
    """A one-line suggestion for ``error``, or "".

    When the mistake is in the quoted source line (``CompileError.source_line``), the hint
    ends with that line corrected: a small model that copies its last program copies the
    correction too.
    """
    if isinstance(error, CompileError):
        if error.fix:  # the error names its fix itself (rt.errors.known_fix): say it once
            return ""
        message, line, shown = error.message, error.line, (error.source_line or "").strip()
    else:
        message, line, shown = error.one_line(), None, ""
    hint = _advice(message, shown)
    fixed = shown
    for pattern, replacement in _REWRITES:
        fixed = pattern.sub(replacement, fixed)
    fixed = _wrap_bare_operands(fixed)
    if "argv expects" in message:
        fixed = _ARGV_LITERAL.sub(r"(argv \1 $text)", fixed)
    if hint and fixed != shown and line is not None:
        hint += f" Write line {line} as: {fixed.strip()}"
    return hint


def _advice(error: str, shown: str) -> str:
    """The hint's advice for the error message ``error``, whose source line is ``shown``."""
    if "argv expects" in error:
        return (
            "Hint: argv takes a local name, as in (argv 0 $text); put the value itself after the "
            'fence: ```, "the value")'
        )
    if m := _UNKNOWN_NS.search(error):
        hint = f"Hint: there is no {m.group(1)} namespace; call only the host functions listed."
        if m.group(1).lower() in _ARITHMETIC:
            hint += (
                ' For arithmetic on numbers as text: (math.eval "2*(3+4)"); or str.to_i32, then'
                " i32.add/i32.sub/i32.mul/i32.div_s, then str.from_i32."
            )
        return hint
    if m := _UNKNOWN_NAME.search(error):
        return f"Hint: declare {m.group(1)} before using it: (local {m.group(1)} i32)."
    if "expected an instruction" in error or "unknown operator" in error or "operand(s)" in error:
        heads = list_heads(shown)
        if name := _first_head(heads, _DOLLAR_HEAD):
            if name in _MACROS:
                return f"Hint: macros have no $: write ({name} ...), as in (argv 0 $text)."
            if "." in name:
                return f"Hint: call a host function with call: (call ${name} ...)."
            return f"Hint: read a local with (local.get ${name}), not (${name})."
        uncalled = [h for h in heads if h.partition(".")[0] not in WAT_FAMILIES]
        if name := _first_head(uncalled, _UNCALLED_HEAD):
            return f"Hint: call a host function with call and $: (call ${name} ...)."
        if _wrap_bare_operands(shown) != shown:
            return "Hint: an operand must be an instruction: read a local with (local.get $x)."
    if "type mismatch" in error:
        return (
            "Hint: use a call as an operand, where it gives one value: (local.set $out "
            "(str.upper (arg 0))) or (answer (str.upper (arg 0))); a (call ...) alone as a "
            "statement leaves two values, ptr then err."
        )
    return ""


def swapped_sets(body: str) -> tuple[int, str, str] | None:
    """The first host call whose two results are stored the wrong way round, as
    ``(line, err_local, ptr_local)``: ``(call $f ...) (local.set $ptr) (local.set $err)`` then
    ``(check $err)``. A call leaves ptr then err, so the first ``local.set`` takes the error;
    swapped, ``check`` returns the pointer (status 16, 20, ...) as if it were an error code.
    Read with the preprocessor's tokenizer: comments and strings never count."""
    try:
        words = [t for t in tokenize(body) if t.kind not in ("ws", "comment")]
    except CompileError:
        return None
    texts = [t.text for t in words]
    checked = {texts[i + 2] for i in range(len(texts) - 2) if texts[i : i + 2] == ["(", "check"]}
    for i in range(1, len(texts) - 8):
        if texts[i : i + 3] != ["(", "local.set", texts[i + 2]] or texts[i - 1] != ")":
            continue
        first, second = texts[i + 2], texts[i + 6]
        if texts[i + 3 : i + 6] != [")", "(", "local.set"] or texts[i + 7] != ")":
            continue
        if not _closes_a_call(texts, i - 1):
            continue
        if second in checked and first not in checked:
            return body.count("\n", 0, words[i].pos) + 1, second, first
    return None


def _closes_a_call(texts: Sequence[str], close: int) -> bool:
    """Whether the ``)`` at ``close`` ends a list whose head is a host call."""
    depth = 0
    for j in range(close, -1, -1):
        depth += {")": 1, "(": -1}.get(texts[j], 0)
        if depth == 0:
            head = texts[j + 1] if j + 1 < len(texts) else ""
            name = texts[j + 2] if head in ("call", "return_call") and j + 2 < len(texts) else head
            qual = name.removeprefix("$")
            return "." in qual and qual.partition(".")[0] not in WAT_FAMILIES
    return False


def status_hint(body: str, status: int) -> str:
    """For a run that returned ``status``: the fix when its body stores a call's results the
    wrong way round (``swapped_sets``), else ""."""
    if status == 0:
        return ""
    found = swapped_sets(body)
    if found is None:
        return ""
    line, err_name, ptr_name = found
    return (
        f"Hint: status {status} is a pointer, not an error code: on line {line} the call's "
        "results are stored the wrong way round; a call leaves ptr then err, so the first "
        f"local.set takes the error: write (local.set {err_name}) (local.set {ptr_name}), "
        f"then (check {err_name})."
    )


GENERIC_STATUS_HINT = (
    "Hint: status {status} is not an error code. If a (check $x) returned it, $x holds a "
    "pointer: a call leaves ptr then err, so store err first: (call ...) (local.set $err) "
    "(local.set $ptr) (check $err)."
)


def _first_head(heads: Sequence[str], pattern: re.Pattern[str]) -> str:
    """Group 1 of the first list head that ``pattern`` matches at its start, or ""."""
    for head in heads:
        if m := pattern.match(head):
            return m.group(1)
    return ""


def catalog_hint(
    body: str,
    args: Sequence[str],
    known: Collection[str],
    programs: Collection[str],
    reasoning: str = "",
) -> str:
    """The exact catalog call to send instead of a program that failed to compile: when
    ``body`` calls a host function that does not exist but a catalog program of that name
    does (``$str.word_count`` -> ``word_count``), or when the reply's ``reasoning`` names a
    catalog program (``named_program``).

    The real model imitates the prompt's WAT examples for tasks the catalog already does,
    even after naming the program in its reasoning ("word_count counts the words; ...");
    told the ToolCall to copy, it copies it.
    """
    named = named_program(reasoning, programs)
    if named:
        call = format_action(CatalogCall(named, tuple(args)))
        return f"Hint: the catalog program {named} does this: reply {call}"
    for qualname in called_functions(body):
        if qualname in known:
            continue
        ns, _, name = qualname.partition(".")
        for candidate in (name.lower(), f"{ns}_{name}".lower()):
            if candidate in programs:
                call = format_action(CatalogCall(candidate, tuple(args)))
                return (
                    f"Hint: there is no ${ns}.{name}, but the catalog program {candidate} does "
                    f"this: reply {call}"
                )
    return ""


_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def named_program(reasoning: str, programs: Collection[str]) -> str:
    """The catalog program ``reasoning`` names, or "": a name with an underscore
    (``word_count``) anywhere, a plain word (``replace``) only right after "catalog" or
    "program", since plain words are also what a WAT program does (str.replace)."""
    words: list[str] = _WORD.findall(reasoning)
    for i, word in enumerate(words):
        if word not in programs:
            continue
        before = words[i - 1].lower() if i else ""
        if "_" in word or before in ("catalog", "program"):
            return word
    return ""
