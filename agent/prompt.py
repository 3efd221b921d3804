"""The system prompt, built from live data: capabilities, error codes, macros, catalog.

Tuned against a real small model (qwen2.5-coder-1.5b; see bench/eval_real_model.py): the
reply forms come first, then two example replies, the WAT-plus macros with the stack-order
rule, the catalog (one short line per program), the host functions, the error codes in one
line, and the reply rules again at the end. The example replies are real catalog programs
(name or body, and arguments from their first ``[[examples]]``), shown only when the program
is usable under the grants: the prompt never names a function that is not granted. They show
the first reply only: that model copies any observation or answer shown after a call into
its own replies (measured with bench/eval_real_model.py).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence

from agent.catalog import Catalog, Program
from agent.parser import CatalogCall, WatCall, format_action, quote_arg
from capabilities.base import Registry, describe
from rt.codes import Err

INTRO = """\
You are Watt. You solve a task by running small programs in a sandbox, then answering.
Each reply is <reasoning>one short sentence</reasoning> then exactly ONE ToolCall, one of:
1. ToolCall::Catalog("program", "first arg", "second arg") runs a catalog program. Prefer
   this when one fits; give each argument as its own quoted string.
2. ToolCall::Wat(```wat
   ...a WAT function body that you write...
   ```, "first arg") runs your program.
3. ToolCall::Response(\"\"\"the answer\"\"\") gives the final answer and ends the task.
After 1 or 2, STOP: the next message is an Observation with the status and the results.
Answer from those results; never guess a result you did not run. A task may need several
steps: one ToolCall per reply, then read its Observation and choose the next step."""

MACROS = """\
Writing WAT: the body runs inside (func $run (result i32) ...) and must end with (i32.const 0).
  (argv N $x)     declare local $x = argument N; $x is a name, the value goes after the fence
  (local $x i32)  declare a local (every value is an i32); declare $err too
  (check $err)    stop and return $err if it is not 0
  (resv $p)       add the string $p to the results; (resv "text") also works
  "text"          a string literal; strings are pointers
STACK ORDER: a call returning (ptr err) leaves err on top, so set err FIRST:
  {stack_example}
  (check $err)
Store every call's results in locals like this; never nest a call inside another call."""

NUMBERS = """\
Numbers: arguments and results are text. str.to_i32 turns text into a number, str.from_i32 a
number into text for resv; compute with nested i32.add, i32.sub, i32.mul, i32.div_s."""

STACK_EXAMPLES = {
    "str": "(call $str.upper (local.get $s)) (local.set $err) (local.set $out)",
    "sys": "(call $sys.argv (i32.const 1)) (local.set $err) (local.set $second)",
}

FILES = 'File paths are plain relative names like "notes.txt" or "docs/a.md".'

RULES = """\
Rules: exactly one ToolCall per reply; only the programs and functions listed above; write a
new program for each task (never copy an example). If a run fails, change the program or the
arguments: never send the same call again. When an Observation holds the result, reply
ToolCall::Response(\"\"\"...\"\"\") with the answer."""

# Worked exchanges, by preference: a catalog call, and a WAT body taken from a real program.
# A small model copies the WAT example's shape (argv, one call, resv), so it is the simplest.
CATALOG_EXAMPLES = ("replace", "contains", "word_count", "reverse", "lower")
WAT_EXAMPLES = ("upper", "lower", "reverse", "char_count")


def _body(program: Program) -> str:
    """The program's body without its comment lines."""
    return "\n".join(
        line for line in program.body.splitlines() if not line.lstrip().startswith(";;")
    ).strip()


def _pick(programs: Mapping[str, Program], names: Sequence[str], skip: str = "") -> Program | None:
    for name in names:
        p = programs.get(name)
        if p is not None and name != skip and p.examples and p.examples[0].results:
            return p
    return None


def _example(program: Program, call: str) -> str:
    """A reply to a task taken from ``program``'s first [[examples]]. No observation and no
    answer follow it: a small model copies whatever comes after its call into its replies."""
    args = ", ".join(quote_arg(a) for a in program.examples[0].args)
    return f"Task: {program.description.rstrip('.')}, with {args}. A good first reply:\n{call}"


def _examples(programs: Mapping[str, Program]) -> str:
    """Replies drawn from catalog programs and their first [[examples]]: one Catalog, one Wat."""
    cat = _pick(programs, CATALOG_EXAMPLES)
    wat = _pick(programs, WAT_EXAMPLES, skip=cat.name if cat else "")
    out = []
    if cat is not None:
        out.append(_example(cat, format_action(CatalogCall(cat.name, tuple(cat.examples[0].args)))))
    if wat is not None:
        out.append(_example(wat, format_action(WatCall(_body(wat), tuple(wat.examples[0].args)))))
    return ("Examples:\n" + "\n\n".join(out)) if out else ""


def _macros(names: Collection[str]) -> str:
    text = MACROS.format(stack_example=STACK_EXAMPLES["str" if "str" in names else "sys"])
    return text + ("\n" + NUMBERS if "str" in names else "")


def _errors() -> str:
    """One line: each code with the first clause of its meaning."""

    def short(e: Err) -> str:
        return e.meaning.split(":")[0].split("(")[0].strip()

    return "Error codes (err results and the status): " + "; ".join(
        f"{int(e)} {e.name}" + ("" if e is Err.SUCCESS else f" {short(e)}") for e in Err
    )


def build_system_prompt(
    registry: Registry, catalog: Catalog, granted: Collection[str] | None = None
) -> str:
    """The whole system prompt for the granted capabilities and the usable catalog programs."""
    caps = [
        c for c in registry if granted is None or c.namespace in granted or c.namespace == "sys"
    ]
    names = {c.namespace for c in caps}
    programs = {p.name: p for p in catalog if set(p.capabilities) <= names}
    listed = "\n".join(f"- {p.usage()}: {p.description}" for p in programs.values())
    parts = [
        INTRO,
        _examples(programs),
        _macros(names),
        "Catalog programs:\n" + (listed or "(none)"),
        "Host functions, called as (call $namespace.name ...); err is the last result:\n"
        + "\n".join(describe(c) for c in caps),
        _errors(),
        FILES if "fs" in names else "",
        RULES,
    ]
    return "\n\n".join(part for part in parts if part) + "\n"
