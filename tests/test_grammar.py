"""agent.models.grammar: the reply grammar built from the live registry and catalog, checked with a
GBNF matcher of our own (tests/gbnf.py), and round-tripped through agent.parser."""

from __future__ import annotations

import random
import re
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest

from agent.models.grammar import GRAMMAR_ROOT, REPLY_GBNF, reply_grammar
from agent.parser import (
    Action,
    CatalogCall,
    Response,
    WatCall,
    format_action,
    parse_reply,
    quote_arg,
)
from agent.programs.catalog import Catalog, catalog_dirs
from agent.prompt import build_system_prompt
from capabilities import standard_registry
from tests.gbnf import Cls, Generated, Grammar, GrammarError

REGISTRY = standard_registry()
CATALOG, _ = Catalog.load(catalog_dirs(None))
FUNCTIONS = REGISTRY.functions()


def granted(*namespaces: str) -> list:
    keep = {"sys", *namespaces}
    return [f for f in FUNCTIONS if f.namespace in keep]


FULL_TEXT = reply_grammar(FUNCTIONS, CATALOG.names())
FULL = Grammar(FULL_TEXT, GRAMMAR_ROOT)
NO_HTTP = Grammar(
    reply_grammar(
        [f for f in FUNCTIONS if f.namespace != "http"],
        [p.name for p in CATALOG if "http" not in p.capabilities],
    )
)
FRAME = Grammar(REPLY_GBNF)


def wat(body: str, *args: str) -> str:
    return format_action(WatCall(body, tuple(args)))


# ---- the grammar's shape ---------------------------------------------------------------------


def test_the_grammar_is_built_from_live_names_and_stays_small() -> None:
    rules = [line.split("::=")[0].strip() for line in FULL_TEXT.splitlines() if "::=" in line]
    assert len(rules) == len(set(rules)) and len(rules) <= 45
    assert len(FULL_TEXT.encode()) < 8000
    host = FULL_TEXT[FULL_TEXT.index("host          ::=") :]
    for f in FUNCTIONS:
        assert f'"{f.name}"' in host, f.qualname
    for name in CATALOG.names():
        assert f'"{name}"' in FULL_TEXT
    assert reply_grammar() == REPLY_GBNF
    assert reply_grammar(granted(), CATALOG.names()).count('"http.') == 0


def test_bad_names_cannot_reach_the_grammar() -> None:
    class Fn:
        qualname = 'str.x" | [^]'

    with pytest.raises(ValueError, match="cannot be used"):
        reply_grammar([Fn()], [])
    with pytest.raises(ValueError, match="cannot be used"):
        reply_grammar(FUNCTIONS, ['upper" | "x'])


def test_no_catalog_program_means_no_catalog_call() -> None:
    text = reply_grammar(FUNCTIONS, [])
    grammar = Grammar(text)
    assert "catalog-call" not in text
    assert not grammar.accepts('ToolCall::Catalog("upper", "x")')
    assert grammar.accepts('ToolCall::Response("""x""")')


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ('root ::= "a" b\n', "undefined rule b"),
        ('root ::= "a"\nroot ::= "b"\n', "defined twice"),
        ('root ::= root "a" | "b"\n', "left recursion"),
        ('root ::= ("a"?)*\n', "can be empty"),
        ('root ::= "a"\n  | "b"\n', "expected a rule name"),  # llama.cpp ends a rule at a newline
    ],
)
def test_the_matcher_refuses_what_llama_cpp_refuses(text: str, error: str) -> None:
    with pytest.raises(GrammarError, match=error):
        Grammar(text)


def test_the_grammar_parses_with_llama_cpp() -> None:
    pytest.importorskip("llama_cpp")
    # llama.cpp parses GBNF in C and a bad grammar may crash the sampler: use a child process.
    code = (
        "import sys, llama_cpp\n"
        "text = sys.stdin.read()\n"
        "p = llama_cpp.llama_sampler_init_grammar(None, text.encode(), b'root')\n"
        "sys.exit(0 if p else 3)\n"
    )
    for text in (FULL_TEXT, REPLY_GBNF, reply_grammar(granted(), [])):
        proc = subprocess.run(
            [sys.executable, "-c", code], input=text, capture_output=True, text=True, check=False
        )
        assert proc.returncode == 0, proc.stderr[-2000:]


# ---- what the grammar accepts ----------------------------------------------------------------


@pytest.mark.parametrize("program", list(CATALOG), ids=lambda p: p.name)
def test_every_shipped_catalog_body_is_accepted(program) -> None:  # type: ignore[no-untyped-def]
    args = tuple(program.examples[0].args) if program.examples else ()
    reply = wat(program.body, *args)
    assert FULL.accepts(reply), program.name
    assert parse_reply(reply) == WatCall(program.body, args)
    usable = Grammar(reply_grammar(granted(*program.capabilities), [program.name]))
    assert usable.accepts(reply) and usable.accepts(format_action(CatalogCall(program.name, args)))


def prompt_examples(prompt: str) -> list[str]:
    """The worked replies of a system prompt: blocks that start a line right after a line
    ending in ':' ("A good first reply:") and run to a blank line."""
    return re.findall(r"(?<=:\n)(?:<reasoning>|ToolCall::)[\s\S]*?(?=\n\n|\n?\Z)", prompt)


@pytest.mark.parametrize("grants", [None, ("str",), ("fs", "kv")], ids=str)
def test_every_worked_example_in_the_system_prompt_is_accepted(
    grants: Sequence[str] | None,
) -> None:
    names = set(REGISTRY.names()) if grants is None else {"sys", *grants}
    prompt = build_system_prompt(REGISTRY, CATALOG, names)
    examples = prompt_examples(prompt)
    assert examples or grants is not None, prompt[:800]  # few grants may leave no example
    usable = [p.name for p in CATALOG if set(p.capabilities) <= names]
    grammar = FULL if grants is None else Grammar(reply_grammar(granted(*names), usable))
    for example in examples:
        assert grammar.accepts(example), example
        assert parse_reply(example).notes == ()


SHORT_FORMS = [
    '(answer (str.upper (fs.read "input.txt")))',
    '(resv (json.get (http.get (arg 0)) "user.email"))',
    "(resv ($str.upper (arg 0)))",
    "(resv (call $str.upper (arg 0)))",
    "(answer ($str.upper $text))",
    "(local $n i32)\n(local.set $n (i32.add 1 0x2A))\n(resv (str.from_i32 ($n)))",
    '(check (call $kv.set "k" "v"))',
    "(argv 0 $s)\n(resv $s)",
    "local.get $x\ncall $str.len\nlocal.set $err\nlocal.set $n\ni32.const 0",
    "block $b\n  i32.const 1\n  br_if $b\nend\nloop (result i32)\n  i32.const -1\nend\ndrop\ni32.const 0",
    "i32.const 1\nif\n  nop\nelse\n  unreachable\nend\ni32.const 0",
    "(if (result i32) (i32.const 1) (then (i32.const 2)) (else (i32.const 3)))",
    "(block $out (br_table $out 0 (i32.const 0)))\n(i32.const 0)",
    "(i32.store offset=4 align=4 (i32.const 64) (i32.const 7))\n(i32.load8_u (i32.const 64))",
    "(drop (memory.grow (memory.size)))\n(select (i32.const 1) (i32.const 2) (i32.const 0))",
    '(resv "tab\\there \\"q\\" \\41 \\u{1F600} a < b")\n;; a comment < 3\n(i32.const 0) ;; done',
    '(resv """\nraw "quoted" text\nover lines\n""")',
    "( i32.const 0 )",
    "(local.set $err)(local.set $out)(check $err)(i32.const 0)",
    "(return (i32.const 0))",
    "(local $big i64)\n(local.set $big (i64.extend_i32_s (i32.const 3)))\n(i32.wrap_i64 (local.get $big))",
]


@pytest.mark.parametrize("body", SHORT_FORMS)
def test_short_and_flat_forms_are_accepted(body: str) -> None:
    reply = wat(body, "https://example.com/u.json")
    assert FULL.accepts(reply), body
    assert parse_reply(reply) == WatCall(body, ("https://example.com/u.json",))


def test_http_calls_need_the_http_grant() -> None:
    for body in (
        '(resv (json.get (http.get (arg 0)) "user.email"))',
        "(call $http.get (arg 0))",
        '(resv ($http.post (arg 0) "{}" "application/json"))',
    ):
        assert FULL.accepts(wat(body)) and not NO_HTTP.accepts(wat(body))
    assert NO_HTTP.accepts(wat('(answer (str.upper (fs.read "input.txt")))'))
    assert not NO_HTTP.accepts('ToolCall::Catalog("http_get", "https://example.com/")')
    assert NO_HTTP.accepts('ToolCall::Catalog("upper", "x")')


@pytest.mark.parametrize(
    "body",
    [
        "(call $str.count_vowels (local.get $s))",  # invented functions, in every spelling
        "($str.count_vowels $s)",
        "(str.count_vowels $s)",
        "(resv $str.count_vowels)",
        "(call $str.write (local.get $s))",
        "(resv (math.nope 1))",
        "call $str.count_vowels",
        "(set $x 0)",  # invented syntax
        "(+ a b)",
        "(print x)",
        '(argv 0 "a literal")',
        "(argv $x 0)",
        "(local $x string)",
        "(local.get x)",
        "(i32.const)",
        "(i32.const 1.5)",
        "(i32.add (local.get $a) (local.get $b)",  # unbalanced
        "i32.const 1i32.add",  # atoms must be separated
        '(resv "a""b")',
        '(resv "two\nlines")',
        '(resv "bad \\q escape")',
        '(resv "ticks ``` close the fence")',
        '(resv "<think>")',
        "(i32.const 0)\n",  # the parser strips the body: no trailing blank
        " (i32.const 0)",
        "",
        '(module (func (export "run") (result i32) (i32.const 0)))',
        "(i32.const 0) ;; trailing blank ",
    ],
)
def test_invented_functions_and_syntax_are_rejected(body: str) -> None:
    assert not FULL.accepts(wat(body)), body


@pytest.mark.parametrize(
    "text",
    [
        'ToolCall::Catalog("count_vowels", "abc")',  # not a loaded program
        'ToolCall::Catalog("Upper", "abc")',
        "The answer is 4.",  # no ToolCall
        'ToolCall::Response("4")',  # one-quote Response
        'ToolCall::Response(""""4""")',  # a one-quote answer inside the triple quotes (seen)
        'ToolCall::Response("""4")""")',  # a quote closing the call early, inside the answer
        'ToolCall::Response("""""")',  # an empty answer (seen, once the stray quote was ruled out)
        'ToolCall::Response("""\n""")',  # a blank answer
        'ToolCall::Response(""" 4""")',  # the parser would strip the blank
        'ToolCall::Response("""4""") and more',  # trailing text
        'ToolCall::Response("""a""")ToolCall::Response("""b""")',  # two calls
        'ToolCall::Response("""use <think> tags""")',  # the parser takes tags out of any text
        "ToolCall::Wat(```wat\n(i32.const 0)\n````)",  # four-backtick fence
        "ToolCall::Wat(```\n(i32.const 0)\n```)",  # no fence tag
        "ToolCall::Wat(```wat\n(i32.const 0)\n```, hello)",  # unquoted arg
        'ToolCall::Wat(```wat\n(i32.const 0)\n```, "a\\/b")',  # an escape the parser keeps
        '<reasoning>unclosed ToolCall::Response("""x""")',
        '<reasoning> padded </reasoning>ToolCall::Response("""x""")',
        'tool_call: Response("""x""")',
    ],
)
def test_deviations_are_outside_the_grammar(text: str) -> None:
    assert not FULL.accepts(text)


def test_catalog_calls_name_loaded_programs_only() -> None:
    for name in CATALOG.names():
        assert FULL.accepts(f'ToolCall::Catalog("{name}", "x")')
    only = Grammar(reply_grammar(FUNCTIONS, ["upper"]))
    assert only.accepts('ToolCall::Catalog("upper", "x")')
    assert not only.accepts('ToolCall::Catalog("lower", "x")')


# ---- grammar and parser agree: a round trip of generated replies -----------------------------

POOL = list("\"'\\`()<>/,;: \t\n[]{}$._-=rtRTkeaZ09") + [
    "\r",
    "\x0b",
    "\x85",
    "\xa0",
    "\u2028",
    "\u3000",
    "é",
    "漢",
    "🙂",
]
FRAGMENTS = [
    'ToolCall::Response("""x""")',
    "ToolCall::Wat(```wat\n",
    'ToolCall::Catalog("upper", "a")',
    "tool_call: Response(",
    "```",
    "``",
    "`",
    '"""',
    '""',
    '"',
    '")',
    '" )',
    '\\"',
    "\\\\",
    "\\n",
    "\\",
    ")",
    "))",
    "(",
    "<think>",
    "</think>",
    "<reasoning>",
    "</reasoning>",
    "< think >",
    "a < b",
    "<b>",
    "<",
    ', "x")',
    "\n```\n",
    "'''",
    "'",
    "\n",
    "\r\n",
    " \n ",
    ";; c\n",
    "[Observation (step 1)]",
    "$str.upper",
    '(resv "x")',
    "wat\n",
    "\u3000",
    "\x85",
    "\n(call $str.upper (local.get $s)) (local.set $err) (local.set $out)",
    " (call $str.len $s)",
    '\n(answer (str.concat (str.upper (arg 0)) "!"))',
    '\n(resv ($json.get (arg 0) "a.b"))',
]


def pick_char(rng: random.Random, cls: Cls) -> str:
    for _ in range(20):
        c = rng.choice(POOL)
        if cls.has(c):
            return c
    if cls.negated:
        return next(c for c in map(chr, range(32, 0x3000)) if cls.has(c))
    lo, hi = rng.choice(cls.ranges)
    return chr(rng.randint(ord(lo), ord(hi)))


def offer(rng: random.Random, rule: str) -> str | None:
    return rng.choice(FRAGMENTS) if rng.random() < 0.3 else None


_ARG_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", '"': '"', "'": "'"}


def decode_arg(quoted: str) -> str:
    """A grammar ``arg`` ("..." with \\n \\t \\r \\\\ \\" \\') as the text it stands for."""
    out, i, inner = [], 0, quoted[1:-1]
    while i < len(inner):
        if inner[i] == "\\":
            out.append(_ARG_ESCAPES[inner[i + 1]])
            i += 2
        else:
            out.append(inner[i])
            i += 1
    return "".join(out)


def expected_action(gen: Generated) -> Action:
    """What a reply generated from the grammar means, read from the rules that produced it."""
    reasoning = (gen.of("reason") or [""])[0]
    args = tuple(decode_arg(a) for a in gen.of("arg"))
    if gen.of("body"):
        return WatCall(gen.of("body")[0], args, reasoning)
    if gen.of("catalog-name"):
        return CatalogCall(gen.of("catalog-name")[0], args, reasoning)
    return Response(gen.of("answer")[0], reasoning)


CAPTURE = frozenset({"reason", "body", "catalog-name", "answer", "arg"})


def round_trip(
    grammar: Grammar, seed: int, count: int, max_depth: int
) -> list[tuple[str, Action, Action]]:
    rng = random.Random(seed)
    failures = []
    for _ in range(count):
        gen = grammar.generate(
            rng, chars=pick_char, fragments=offer, capture=CAPTURE, max_depth=max_depth
        )
        want = expected_action(gen)
        got = parse_reply(gen.text)
        if got != want:
            failures.append((gen.text, want, got))
    return failures


@pytest.mark.parametrize(
    ("name", "seed", "count", "depth"),
    [("full", 1, 4000, 10), ("frame", 2, 2000, 8), ("no-catalog", 3, 1000, 10)],
)
def test_replies_generated_from_the_grammar_parse_to_what_was_generated(
    name: str, seed: int, count: int, depth: int
) -> None:
    grammar = {
        "full": FULL,
        "frame": FRAME,
        "no-catalog": Grammar(reply_grammar(granted("str"), [])),
    }[name]
    failures = round_trip(grammar, seed, count, depth)
    assert not failures, "\n".join(f"{t!r}\n  want {w!r}\n  got  {g!r}" for t, w, g in failures[:5])


def test_the_generator_covers_the_hard_cases() -> None:
    rng = random.Random(7)
    texts = [
        FULL.generate(rng, chars=pick_char, fragments=offer, capture=CAPTURE, max_depth=10).text
        for _ in range(600)
    ]
    joined = "\n".join(texts)
    for needle in [
        '"""',
        r"ToolCall::Response\(",
        "```",
        r"\\\\",
        "<",
        r"\(\s*call\s+\$",
        r"\(\s*local\s",
        r"\(\s*if\b",
        r"\(\s*answer\b",
        r"\bend\b",
        "\n",
    ]:
        assert len(re.findall(needle, joined)) > 5, needle
    sample = random.Random(8).sample(texts, 40)
    assert all(FULL.accepts(t) for t in sample)  # the generator and the matcher agree


NASTY = [
    "42",
    "a (b) c",
    'say "hi"',
    "x)",
    "(",
    "```wat\n(i32.const 0)\n```",
    'ToolCall::Response("""no""")',
    "back\\slash",
    "\\n literally",
    "tab\there",
    "two\nlines",
    "a < b",
    "<b>bold</b>",
    "'single'",
    '"quoted"',
    'ends with "q"',
    "```",
    "``",
    "); drop",
    "`code`",
    "漢字 🙂",
    "[Observation (step 2)]",
    ', "next")',
    "é\u3000é",
]


def test_handwritten_replies_parse_to_what_was_written() -> None:
    rng = random.Random(11)
    checked = 0
    for _ in range(3000):
        parts = [rng.choice(NASTY) for _ in range(rng.randint(1, 3))]
        text = "".join(parts)
        reasoning = rng.choice(["", "Think (a bit).", 'Use "quotes" ToolCall::Wat('])
        args = tuple(rng.choice(NASTY) for _ in range(rng.randint(0, 2)))
        kind = rng.randrange(3)
        if kind == 0:
            action: Action = Response(text, reasoning)
            inner = rng.choice([text, "\n" + text + "\n", text + "\n"])
            reply = f'ToolCall::Response("""{inner}""")'
        elif kind == 1:
            action = WatCall(f"(resv {quote_arg(text)})\n(i32.const 0)", args, reasoning)
            reply = format_action(WatCall(action.body, args))  # type: ignore[union-attr]
        else:
            action = CatalogCall(rng.choice(CATALOG.names()), args, reasoning)
            reply = format_action(CatalogCall(action.name, args))  # type: ignore[union-attr]
        if reasoning:
            reply = f"<reasoning>{reasoning}</reasoning>" + rng.choice(["", "\n"]) + reply
        if not FULL.accepts(reply):
            continue  # outside the grammar: a model sampled under it cannot write this
        checked += 1
        assert parse_reply(reply) == action, reply
    assert checked > 1500


# Replies where grammar and parser once disagreed, and what they mean now.
AGREED: list[tuple[str, Action]] = [
    # The parser strips blanks around the answer; the grammar no longer allows them, nor a
    # blank-only answer (it parsed as an empty one).
    ('ToolCall::Response("""\n4\n""")', Response("4")),
    ('ToolCall::Response("""4\n""")', Response("4")),
    # An arg escape the parser does not decode ("\/") is no longer in the grammar.
    ('ToolCall::Wat(```wat\n(i32.const 0)\n```, "a/b")', WatCall("(i32.const 0)", ("a/b",))),
    # A "<" may appear in text, but not as the start of a <think>/<reasoning> tag, which the
    # parser takes out of any text.
    ('ToolCall::Response("""a < b and <b>""")', Response("a < b and <b>")),
    ('ToolCall::Wat(```wat\n(resv "<p>")\n```, "x<y")', WatCall('(resv "<p>")', ("x<y",))),
    # Quotes, parentheses, fences and ToolCall text inside a Response.
    ('ToolCall::Response("""\n)\n```\nToolCall::Wat(\n""")', Response(")\n```\nToolCall::Wat(")),
    (
        'ToolCall::Response("""He said "it" ) with the reversed text.""")',
        Response('He said "it" ) with the reversed text.'),
    ),
    (
        '<reasoning>ToolCall::Response("""x""")</reasoning>\nToolCall::Response("""y""")',
        Response("y", 'ToolCall::Response("""x""")'),
    ),
]


@pytest.mark.parametrize(("text", "action"), AGREED)
def test_replies_where_grammar_and_parser_agree(text: str, action: Action) -> None:
    assert FULL.accepts(text), text
    assert parse_reply(text) == action


def test_no_argument_form_still_serves_callers_without_a_registry() -> None:
    assert FRAME.accepts(wat("anything at all (even (invented $calls))"))
    assert FRAME.accepts('ToolCall::Catalog("whatever_name", "x")')
    assert not FRAME.accepts(wat("body with ``` inside"))
    assert Path(__file__).name == "test_grammar.py"


# ---- the run's grammar reaches the model (agent.app, agent.config) --------------------------


class GrammarRecorder:
    """A scripted stand-in that takes a grammar, as LocalModel and OpenAIChatModel do."""

    name = "recorder"

    def __init__(self) -> None:
        self.grammars: list[str | None] = []

    def use_grammar(self, gbnf: str | None) -> None:
        self.grammars.append(gbnf)

    def complete(self, messages, **kwargs):  # type: ignore[no-untyped-def]
        raise AssertionError("not called")


def test_the_app_hands_the_model_the_grammar_of_the_granted_run(tmp_path: Path) -> None:
    from agent.app import open_parts
    from agent.config import load_settings
    from agent.models.grammar import GrammarAware
    from agent.models.scripted import ScriptedModel

    recorder = GrammarRecorder()
    assert isinstance(recorder, GrammarAware) and not isinstance(ScriptedModel([]), GrammarAware)
    settings = load_settings({"ai": False}, environ={"WATT_HOME": str(tmp_path)})
    parts = open_parts(settings, model=recorder, use_session=False)  # type: ignore[arg-type]
    assert parts.model is recorder and parts.model is recorder
    (text,) = recorder.grammars  # once, when the model is made
    assert text == parts.reply_grammar()
    grammar = Grammar(text)
    assert grammar.accepts(wat("(resv (str.upper (arg 0)))"))
    assert not grammar.accepts(wat('(resv (ai.assist (arg 0) "x" 0))'))  # ai is not granted
    assert "summarize_text" in CATALOG.names() and '"summarize_text"' not in text
    assert grammar.accepts('ToolCall::Catalog("upper", "x")')
    scripted = open_parts(settings, model=ScriptedModel([]), use_session=False)
    assert scripted.model.name  # a model without use_grammar still works


def test_make_model_passes_the_grammar_setting(tmp_path: Path) -> None:
    from agent.config import load_settings
    from agent.models.backends import make_model
    from agent.models.client import OpenAIChatModel

    env = {
        "WATT_HOME": str(tmp_path),
        "WATT_BASE_URL": "http://127.0.0.1:8765/v1",
        "WATT_MODEL": "m",
    }
    model = make_model(load_settings({}, environ=env))
    assert isinstance(model, OpenAIChatModel) and model.grammar == "auto"
    model = make_model(load_settings({}, environ={**env, "WATT_GRAMMAR": "off"}))
    assert isinstance(model, OpenAIChatModel) and model.grammar == "off"


def test_grammar_setting_precedence_and_validation(tmp_path: Path) -> None:
    from agent.config import load_settings
    from rt.errors import ConfigError

    env = {"WATT_HOME": str(tmp_path)}
    assert load_settings({}, environ=env).grammar == "auto"
    (tmp_path / "config.toml").write_text("grammar = false\n")
    assert load_settings({}, environ=env).grammar == "off"  # a TOML boolean reads as on/off
    s = load_settings({}, environ={**env, "WATT_GRAMMAR": "ON"})
    assert s.grammar == "on" and s.sources["grammar"] == "WATT_GRAMMAR"
    assert (
        load_settings({"grammar": "auto"}, environ={**env, "WATT_GRAMMAR": "on"}).grammar == "auto"
    )
    with pytest.raises(
        ConfigError, match=r"^WATT_GRAMMAR: grammar must be auto, on or off, got 'maybe'$"
    ):
        load_settings({}, environ={**env, "WATT_GRAMMAR": "maybe"})
    with pytest.raises(ConfigError, match=r"--grammar: grammar must be auto, on or off"):
        load_settings({"grammar": "sometimes"}, environ=env)
    (tmp_path / "config.toml").write_text('grammar = "never"\n')
    with pytest.raises(
        ConfigError, match=r"config.toml: grammar must be auto, on or off, got 'never'"
    ):
        load_settings({}, environ=env)


def test_a_run_of_blanks_is_bounded() -> None:
    # a small model under the grammar once emitted spaces until its 1,024-token cap
    assert FULL.accepts(wat("(i32.const 0)" + " " * 40 + "(drop (i32.const 1))"))
    assert FULL.accepts(wat(";; a\n" + " " * 30 + "(i32.const 0)\n" + " " * 30 + ";; b"))
    assert not FULL.accepts(wat("(i32.const 0)" + " " * 41 + "(drop (i32.const 1))"))
    assert not FULL.accepts(wat("(i32.const" + "\n" * 60 + "0)"))
