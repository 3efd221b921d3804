"""Table tests for the model-reply parser (agent/parser.py): every fallback of DESIGN.md's
reply grammar, replies seen from a real small model, a seeded fuzz loop, and round-trips."""

from __future__ import annotations

import dataclasses
import random

import pytest

from agent.parser import (
    NO_TOOLCALL,
    Action,
    CatalogCall,
    Response,
    WatCall,
    format_action,
    parse_reply,
)
from agent.steps import ActionKind

W, C, R = WatCall, CatalogCall, Response
BODY = "(argv 0 $s)\n(resv $s)\n(i32.const 0)"
MODULE = '(module\n  (func (export "run") (result i32) (i32.const 0)))'
FENCED = f"```wat\n{BODY}\n```"
BIG_BODY = "(i32.const 1) (drop)\n" * 50_000  # ~1 MB
BIG_PROSE = "Lorem ipsum dolor sit amet (and so on), 'quoted' \"text\"; 漢字 🙂\n" * 16_000

CASES: list[tuple[str, str, Action]] = [
    # --- the canonical forms -------------------------------------------------------------
    (
        "wat",
        f'<reasoning>echo it</reasoning>\nToolCall::Wat({FENCED}, "a", "b")',
        W(BODY, ("a", "b"), "echo it"),
    ),
    ("wat-no-args", f"ToolCall::Wat({FENCED})", W(BODY)),
    (
        "catalog",
        'ToolCall::Catalog("word_count", "hello world")',
        C("word_count", ("hello world",)),
    ),
    ("response", 'ToolCall::Response("""\nThe answer is 42.\n""")', R("The answer is 42.")),
    (
        "response-multiline",
        'ToolCall::Response("""\nline one\n\nline "two"\n""")',
        R('line one\n\nline "two"'),
    ),
    # --- Response quoting ------------------------------------------------------------------
    (
        "one-quote",
        'ToolCall::Response("The answer is 42")',
        R("The answer is 42", notes=("one-quote Response",)),
    ),
    ("single-quotes", "ToolCall::Response('It's 42')", R("It's 42", notes=("one-quote Response",))),
    ("triple-single", "ToolCall::Response('''\nsay \"\"\" here\n''')", R('say """ here')),
    ("no-quotes", "ToolCall::Response(42)", R("42", notes=("unquoted Response",))),
    (
        "no-quotes-parens",
        "ToolCall::Response(f(x) = 2 (exactly)) thanks",
        R("f(x) = 2 (exactly)", notes=("unquoted Response",)),
    ),
    (
        "no-quotes-unclosed",
        "ToolCall::Response(the end",
        R("the end", notes=("unquoted Response", "missing ')'")),
    ),
    (
        "inner-quotes",
        'ToolCall::Response("He said "hi" twice")',
        R('He said "hi" twice', notes=("one-quote Response",)),
    ),
    (
        "escapes-in-response",
        r'ToolCall::Response("a\nb \"c\"")',
        R('a\nb "c"', notes=("one-quote Response",)),
    ),
    (
        "unclosed-triple",
        'ToolCall::Response("""The answer\nis 42',
        R("The answer\nis 42", notes=("unclosed string",)),
    ),
    (
        "unclosed-one-quote-drops-paren",
        'ToolCall::Response("The answer is 42)',
        R("The answer is 42", notes=("one-quote Response", "unclosed string")),
    ),
    (
        "unclosed-keeps-balanced-paren",
        'ToolCall::Response("see (a)',
        R("see (a)", notes=("one-quote Response", "unclosed string")),
    ),
    (
        "triple-closed-by-one",
        'ToolCall::Response("""abc")',
        R("abc", notes=("triple quote closed by one quote",)),
    ),
    ("empty-response", 'ToolCall::Response("")', R("", notes=("one-quote Response",))),
    (
        "response-missing-paren",
        'ToolCall::Response("42"\nHope that helps',
        R("42", notes=("one-quote Response", "missing ')'")),
    ),
    (
        "one-quote-inner-call",
        'ToolCall::Response("Call f("x") now")',
        R('Call f("x") now', notes=("one-quote Response",)),
    ),
    (
        "one-quote-prose-same-line",
        'ToolCall::Response("42") hope that helps',
        R("42", notes=("one-quote Response",)),
    ),
    (
        "response-no-open-paren",
        "ToolCall::Response: 42",
        R("42", notes=("nonstandard ToolCall spelling", "missing '('", "unquoted Response")),
    ),
    (
        "response-keeps-markdown",
        'ToolCall::Response("""\n```py\nprint(1)\n```\n""")',
        R("```py\nprint(1)\n```"),
    ),
    # --- fences ------------------------------------------------------------------------------
    (
        "four-backtick-close",
        f'ToolCall::Wat(```wat\n{BODY}\n````, "x")',
        W(BODY, ("x",), notes=("four-backtick fence",)),
    ),
    (
        "four-backtick-both",
        f"ToolCall::Wat(````wat\n{BODY}\n````)",
        W(BODY, notes=("four-backtick fence",)),
    ),
    (
        "unclosed-fence",
        f"ToolCall::Wat(```wat\n{BODY}\n)",
        W(BODY, notes=("unclosed fence", "missing ')'")),
    ),
    (
        "unclosed-fence-eof",
        f"ToolCall::Wat(```wat\n{BODY}",
        W(BODY, notes=("unclosed fence", "missing ')'")),
    ),
    ("fence-no-tag", f"ToolCall::Wat(```\n{BODY}\n```)", W(BODY)),
    ("fence-wasm", f"ToolCall::Wat(```wasm\n{BODY}\n```)", W(BODY)),
    ("fence-lisp", f"ToolCall::Wat(```lisp\n{BODY}\n```)", W(BODY)),
    (
        "fence-unknown-tag",
        f"ToolCall::Wat(```python\n{BODY}\n```)",
        W(BODY, notes=("unknown fence tag",)),
    ),
    (
        "fence-no-newline",
        "ToolCall::Wat(```wat(i32.const 0)```)",
        W("(i32.const 0)", notes=("no newline after fence tag",)),
    ),
    (
        "fence-crlf",
        'ToolCall::Wat(```wat\r\n(i32.const 0)\r\n```, "a")\r\n',
        W("(i32.const 0)", ("a",)),
    ),
    # --- arguments ---------------------------------------------------------------------------
    ("missing-arg-tail", f"ToolCall::Wat({FENCED}", W(BODY, notes=("missing ')'",))),
    (
        "missing-arg-tail-prose",
        f"ToolCall::Wat({FENCED}\nThis echoes the input.",
        W(BODY, notes=("missing ')'",)),
    ),
    ("single-quoted-args", f"ToolCall::Wat({FENCED}, 'a b', 'c')", W(BODY, ("a b", "c"))),
    (
        "escaped-args",
        f'ToolCall::Wat({FENCED}, "say \\"hi\\"", "a\\\\b", "x\\ny")',
        W(BODY, ('say "hi"', "a\\b", "x\ny")),
    ),
    ("unknown-escape-kept", r'ToolCall::Catalog("f", "C:\dir")', C("f", ("C:\\dir",))),
    (
        "bare-numbers",
        f"ToolCall::Wat({FENCED}, 5, -3, 2.5)",
        W(BODY, ("5", "-3", "2.5"), notes=("unquoted arg",)),
    ),
    ("trailing-comma", 'ToolCall::Catalog("f", "a", )', C("f", ("a",))),
    (
        "bracketed-args",
        'ToolCall::Catalog("f", ["a", "b"])',
        C("f", ("a", "b"), notes=("bracketed args",)),
    ),
    ("json-arg-unescaped", 'ToolCall::Catalog("f", "{"a": [1, 2]}")', C("f", ('{"a": [1, 2]}',))),
    (
        "unquoted-catalog-name",
        'ToolCall::Catalog(word_count, "hello world")',
        C("word_count", ("hello world",), notes=("unquoted arg",)),
    ),
    ("catalog-no-args", 'ToolCall::Catalog("list_files")', C("list_files")),
    ("catalog-empty", "ToolCall::Catalog()", C("", notes=("missing catalog name",))),
    # --- bodies --------------------------------------------------------------------------------
    ("whole-module", f"ToolCall::Wat(```wat\n{MODULE}\n```)", W(MODULE)),
    ("module-named", "ToolCall::Wat(```wat\n(module $m)\n```)", W("(module $m)")),
    (
        "module-after-comment",
        "ToolCall::Wat(```wat\n;; echo\n(module)\n```)",
        W(";; echo\n(module)"),
    ),
    (
        "not-a-module",
        "ToolCall::Wat(```wat\n(i32.const 0) ;; (module\n```)",
        W("(i32.const 0) ;; (module"),
    ),
    (
        "unfenced-body",
        'ToolCall::Wat((argv 0 $x)\n(resv $x)\n(i32.const 0), "hi")',
        W("(argv 0 $x)\n(resv $x)\n(i32.const 0)", ("hi",), notes=("unfenced body",)),
    ),
    (
        "unfenced-strings-comments",
        'ToolCall::Wat((call $f ")" """raw ) """) ;; not ) here\n(i32.const 0))',
        W('(call $f ")" """raw ) """) ;; not ) here\n(i32.const 0)', notes=("unfenced body",)),
    ),
    ("unfenced-module", f"ToolCall::Wat({MODULE})", W(MODULE, notes=("unfenced body",))),
    (
        "unfenced-unclosed",
        "ToolCall::Wat((i32.const 0)",
        W("(i32.const 0)", notes=("unfenced body", "missing ')'")),
    ),
    (
        "quoted-body",
        'ToolCall::Wat("(i32.const 0)", "a")',
        W("(i32.const 0)", ("a",), notes=("quoted body",)),
    ),
    # --- reasoning, prose and several calls ----------------------------------------------------
    (
        "reasoning-from-prose",
        f"I will echo the text.\nToolCall::Wat({FENCED})",
        W(BODY, reasoning="I will echo the text."),
    ),
    (
        "prose-before-after",
        'Sure!\nToolCall::Catalog("f", "x")\nLet me know if that helps.',
        C("f", ("x",), "Sure!"),
    ),
    (
        "two-toolcalls",
        'ToolCall::Catalog("f", "x")\nToolCall::Response("done")',
        C("f", ("x",), notes=("several ToolCalls: first taken",)),
    ),
    (
        "toolcall-in-reasoning-ignored",
        '<reasoning>Use ToolCall::Catalog("f") later.</reasoning>\nToolCall::Response("""ok""")',
        R("ok", 'Use ToolCall::Catalog("f") later.'),
    ),
    ("think-tags", '<think>\nhmm\n</think>\nToolCall::Response("""ok""")', R("ok", "hmm")),
    (
        "lone-closing-tag",
        'Let me see.</think>\nToolCall::Response("""ok""")',
        R("ok", "Let me see.", notes=("missing opening reasoning tag",)),
    ),
    (
        "unclosed-reasoning",
        f"<reasoning>echo it\nToolCall::Wat({FENCED})",
        W(BODY, reasoning="echo it", notes=("unclosed reasoning tag",)),
    ),
    (
        "unclosed-reasoning-only",
        "<reasoning>The answer is 42.",
        R("The answer is 42.", notes=("unclosed reasoning tag", NO_TOOLCALL)),
    ),
    (
        "spacing-variation",
        f"ToolCall :: wat({FENCED})",
        W(BODY, notes=("nonstandard ToolCall spelling",)),
    ),
    (
        "case-variation",
        f"toolcall::Wat({FENCED})",
        W(BODY, notes=("nonstandard ToolCall spelling",)),
    ),
    ("markdown-wrapped", '```\nToolCall::Response("""ok""")\n```', R("ok", "```")),
    # --- no ToolCall ---------------------------------------------------------------------------
    ("no-toolcall", "  The answer is 42.\n", R("The answer is 42.", notes=(NO_TOOLCALL,))),
    (
        "no-toolcall-reasoning",
        "<reasoning>easy</reasoning>\nIt is 42.",
        R("It is 42.", "easy", notes=(NO_TOOLCALL,)),
    ),
    (
        "stray-quote-inside-triple-quotes",
        'ToolCall::Response(""""4""")',
        R("4", notes=("stray quote after the opening triple quote",)),
    ),
    (
        "quoted-answer-inside-triple-quotes-kept",
        'ToolCall::Response(""""hi" she said""")',
        R('"hi" she said'),
    ),
    (
        "catalog-args-without-commas",
        'ToolCall::Catalog("replace" "a b" "b" "c")',
        C("replace", ("a b", "b", "c"), notes=("args without commas",)),
    ),
    (
        "catalog-args-without-commas-single",
        "ToolCall::Catalog('upper' 'hi')",
        C("upper", ("hi",), notes=("args without commas",)),
    ),
    (
        "unknown-tool-is-a-catalog-call",
        'ToolCall::Python("print(1)")',
        C("Python", ("print(1)",), notes=("ToolCall::Python(...) read as a catalog call",)),
    ),
    (
        "program-called-by-name",
        'I will shout.\nToolCall::upper("hi")',
        C(
            "upper",
            ("hi",),
            "I will shout.",
            notes=("ToolCall::upper(...) read as a catalog call",),
        ),
    ),
    (
        "program-name-with-digits",
        "ToolCall::kv_incr('n')",
        C("kv_incr", ("n",), notes=("ToolCall::kv_incr(...) read as a catalog call",)),
    ),
    (
        "host-function-name-is-a-catalog-call",
        "ToolCall::kv.get('city')",
        C("kv.get", ("city",), notes=("ToolCall::kv.get(...) read as a catalog call",)),
    ),
    (
        "unknown-tool-without-paren-is-prose",
        "ToolCall::Python is not a thing",
        R("ToolCall::Python is not a thing", notes=(NO_TOOLCALL,)),
    ),
    ("no-toolcall-fenced-kept", "```\n42\n```", R("```\n42\n```", notes=(NO_TOOLCALL,))),
    ("empty", "", R("", notes=("empty reply",))),
    ("blank", " \n\t ", R("", notes=("empty reply",))),
    # --- unicode and size ----------------------------------------------------------------------
    (
        "unicode-args",
        f'ToolCall::Wat({FENCED}, "héllo 🙂", "漢字かな")',
        W(BODY, ("héllo 🙂", "漢字かな")),
    ),
    ("unicode-answer", 'ToolCall::Response("""答えは 42 です 🎉""")', R("答えは 42 です 🎉")),
    (
        "unicode-reasoning",
        '<reasoning>σκέψη 🤔</reasoning>ToolCall::Catalog("f", "ü")',
        C("f", ("ü",), "σκέψη 🤔"),
    ),
    ("megabyte-body", f'ToolCall::Wat(```wat\n{BIG_BODY}```, "x")', W(BIG_BODY.strip(), ("x",))),
    ("many-args", 'ToolCall::Catalog("f", ' + '"a", ' * 150_000 + ")", C("f", ("a",) * 150_000)),
    (
        "many-bare-args",
        "ToolCall::Catalog(f, " + "1, " * 300_000 + ")",
        C("f", ("1",) * 300_000, notes=("unquoted arg",)),
    ),
    ("megabyte-prose", BIG_PROSE, R(BIG_PROSE.strip(), notes=(NO_TOOLCALL,))),
    (
        "megabyte-answer",
        f'Done.\nToolCall::Response("""{BIG_PROSE}""")',
        R(BIG_PROSE.strip(), "Done."),
    ),
]


@pytest.mark.parametrize(("reply", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_parse_table(reply: str, expected: Action) -> None:
    assert parse_reply(reply) == expected


def test_table_is_large_and_ids_unique() -> None:
    assert len(CASES) >= 45
    assert len({c[0] for c in CASES}) == len(CASES)


def test_kind_property() -> None:
    assert W("x").kind is ActionKind.WAT
    assert C("f").kind is ActionKind.CATALOG
    assert R("x").kind is ActionKind.RESPONSE
    assert ActionKind.WAT == "wat"


def test_never_raises_on_non_string_input() -> None:
    assert parse_reply(b'ToolCall::Response("ok")') == R("ok", notes=("one-quote Response",))  # type: ignore[arg-type]
    assert parse_reply(None).kind is ActionKind.RESPONSE  # type: ignore[arg-type]


# --- fuzz: random garbage built from grammar fragments never raises ------------------------------

FRAGMENTS = [
    "ToolCall::",
    "toolcall :: ",
    "Wat(",
    "wasm(",
    "Catalog(",
    "Response(",
    "Response:",
    "Python(",
    "```",
    "````",
    "```wat\n",
    "```wat",
    "\n",
    "\r\n",
    " ",
    "\t",
    '"',
    "'",
    '"""',
    "'''",
    "\\",
    '\\"',
    "\\\\",
    "(",
    ")",
    ",",
    "[",
    "]",
    ", 5",
    ', "arg"',
    "(module",
    "(argv 0 $x)",
    ";;",
    "(i32.const 0)",
    "<reasoning>",
    "</reasoning>",
    "<think>",
    "</think>",
    "< / Reasoning >",
    "42",
    "é",
    "漢字",
    "🙂",
    "\x00",
    "\u200b",
    "\ud800",
    'ToolCall::Response("""',
    "$",
]


def _garbage(rng: random.Random) -> str:
    parts = []
    for _ in range(rng.randint(0, 30)):
        if rng.random() < 0.8:
            parts.append(rng.choice(FRAGMENTS))
        else:
            parts.append("".join(chr(rng.randint(0, 0x2FFF)) for _ in range(rng.randint(1, 8))))
    return "".join(parts)


def _roundtrippable(action: Action) -> bool:
    fields = [action.reasoning, action.text if isinstance(action, Response) else ""]
    if isinstance(action, WatCall):
        fields.append(action.body)
    blob = "\n".join(fields).lower()
    return "```" not in blob and "reasoning" not in blob and "think" not in blob


def test_fuzz_never_raises() -> None:
    rng = random.Random(20240601)
    checked = 0
    for _ in range(2000):
        reply = _garbage(rng)
        action = parse_reply(reply)
        assert isinstance(action, WatCall | CatalogCall | Response)
        assert not any(n.startswith("internal parser error") for n in action.notes), reply
        again = parse_reply(format_action(action))  # rendering what we parsed is safe too
        if _roundtrippable(action):
            assert _plain(again) == _plain(action), reply
            checked += 1
    assert checked > 500


@pytest.mark.parametrize(
    "reply",
    [
        '"' * 1_000_000,
        "(" * 1_000_000,
        "ToolCall::Wat(" + "(" * 1_000_000,
        "ToolCall::Response(" + '"' + " " * 1_000_000 + "x",
        "ToolCall::Catalog(" + '"a" ' * 250_000,
        "toolcall::" * 100_000,
        "`" * 1_000_000,
        "<" + " " * 1_000_000 + "x",
        "<reasoning>" * 80_000,
        "</think>" * 120_000,
        "\\" * 1_000_000,
        "ToolCall::Wat(```wat\n" + '"\\' * 500_000,
        'ToolCall::Response("' + "a\\n" * 330_000,
        "ToolCall::Wat(" + '(call $f "\\"x")' * 60_000,
    ],
    ids=lambda r: repr(r[:24]),
)
def test_adversarial_megabyte_inputs_parse(reply: str) -> None:
    assert isinstance(parse_reply(reply), WatCall | CatalogCall | Response)


# --- round-trip: parse_reply(format_action(a)) == a, ignoring notes ---------------------------


def _plain(action: Action) -> Action:
    return dataclasses.replace(action, notes=())


ROUND_TRIP: list[Action] = [
    W(BODY),
    W(BODY, ("a", 'say "hi"', "back\\slash", "two\nlines", "tab\there", ""), "why"),
    W(MODULE, ("x",)),
    C("word_count", ("hello world",), "count them"),
    C("f"),
    C("f", ("🙂", "漢字", "'single'", ", )")),
    R("The answer is 42."),
    R('He said "hi"'),
    R('ends with a quote"'),
    R('"starts with a quote'),
    R('contains """ triple'),
    R("contains \"\"\" and ''' both\nand a \\n escape"),
    R("答えは 42 です 🎉", "σκέψη"),
    R(""),
    R("ToolCall::Wat(```wat\n(i32.const 0)\n```)"),
]


@pytest.mark.parametrize("action", ROUND_TRIP, ids=lambda a: format_action(a)[:30])
def test_round_trip(action: Action) -> None:
    assert _plain(parse_reply(format_action(action))) == action


def test_canonical_forms_need_no_fallback() -> None:
    for action in ROUND_TRIP:
        if not (isinstance(action, Response) and '"""' in action.text and "'''" in action.text):
            assert parse_reply(format_action(action)).notes == ()


def test_random_round_trip() -> None:
    rng = random.Random(7)
    alphabet = "ab \n\t\"'\\(),`<>é漢🙂"

    def text(size: int) -> str:
        return "".join(rng.choice(alphabet) for _ in range(rng.randint(0, size))).strip()

    for _ in range(500):
        args = tuple(text(12) for _ in range(rng.randint(0, 3)))
        reasoning = text(20)
        action: Action = rng.choice(
            [
                W(("(i32.const 0) " + text(30).replace("`", "")).strip(), args, reasoning),
                C(text(10) or "f", args, reasoning),
                R(text(40), reasoning),
            ]
        )
        assert _plain(parse_reply(format_action(action))) == action, action


def test_format_action_canonical_text() -> None:
    assert format_action(W("(i32.const 0)", ("a",), "why")) == (
        '<reasoning>why</reasoning>\nToolCall::Wat(```wat\n(i32.const 0)\n```, "a")'
    )
    assert format_action(C("f", ('a"b',))) == 'ToolCall::Catalog("f", "a\\"b")'
    assert format_action(R("42")) == 'ToolCall::Response("""\n42\n""")'
