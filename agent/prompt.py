"""The system prompt, built from live data: capabilities, error codes, macros, catalog.

Tuned against a real small model (qwen2.5-coder-1.5b; see bench/eval_real_model.py): the
reply forms come first, then worked first replies, the WAT-plus forms (calls nest like
functions; ``(answer X)`` ends the task from the program, so a task costs one model call),
the catalog (one short line per program), the host functions as operands (what a call yields;
a failing call stops the program), the error codes in one line, the jail root when fs is
granted, and the reply rules again at the end. The Wat examples are checked to run (tests),
the catalog examples are real programs with the arguments of their first ``[[examples]]``; each
is shown only when what it uses is granted: the prompt never names a function that is not
granted. They show the first reply only: that model copies any observation or answer shown
after a call into its own replies (measured with bench/eval_real_model.py).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping

from agent.parser import CatalogCall, WatCall, format_action
from agent.programs.catalog import Catalog, Program
from capabilities.base import Capability, Registry
from rt.codes import Err
from rt.host import HostFunction

INTRO = """\
You are Watt. You solve a task by running small programs in a sandbox, then answering.
Each reply is <reasoning>one short sentence</reasoning> then exactly ONE ToolCall, one of:
1. ToolCall::Wat(```wat
   ...a WAT function body that you write...
   ```, "first arg") runs your program. When its result is the whole answer, end it with
   (answer X): the task then ends with X and you need not reply again.
2. ToolCall::Catalog("program", "first arg", "second arg") runs a program of the catalog
   list below: when one does the task, call it instead of writing WAT; give each argument
   as its own quoted string.
3. ToolCall::Response(\"\"\"the answer\"\"\") gives the final answer and ends the task.
After 1 without answer, or 2, STOP: the next message is an Observation with the results.
Answer from those results; never guess a result you did not run. A task may need several
steps: one ToolCall per reply, then read its Observation and choose the next step."""

MACROS = """\
Writing WAT: a function body. Strings are pointers, numbers are i32. Calls nest like functions:
  (arg N)          argument N (the quoted values after the fence, from 0), a string
  ({call} X){pad}call a host function with operands; a call that fails stops the program
  (answer X)       end the task with the string X as the final answer
  (resv X)         add the string X to the results, to read them in the next step
  "text"           a string literal; \"\"\"raw text\"\"\" holds quotes as they are (JSON)
  (local $n i32) (local.set $n X) (local.get $n)   a local variable
  (i32.add A B) (i32.sub A B) (i32.mul A B) (i32.div_s A B) (i32.const 5)   i32 arithmetic"""

NUMBERS = """\
Numbers are text in arguments and results: (str.to_i32 S) reads one, (str.from_i32 N) writes one."""

MATH = """\
For big numbers, powers, factorials or a whole formula use math: (math.eval "2**64 + 1") takes and
returns text, so (answer (math.eval "3*(4+5)")) is a whole program."""

# Worked first replies: (reasoning, body, args). Each runs under the pure capabilities it names
# (tests/test_prompt.py runs them); a small model copies their shape: nested calls, one answer.
WAT_EXAMPLES: tuple[tuple[str, str, str, tuple[str, ...], frozenset[str]], ...] = (
    ('Upper-case "Hello, wörld" and add "!"',
     "No catalog program does both: str.upper, then str.concat; the result is the answer.",
     '(answer (str.concat (str.upper (arg 0)) "!"))', ("Hello, wörld",), frozenset({"str"})),
    ("What is 12 to the power 20, plus 7?",
     "No catalog program computes this: math.eval computes exactly, past i32.",
     '(answer (math.eval "12**20 + 7"))', (), frozenset({"math"})),
    ('What is the city in {"user": {"name": "Ana", "city": "Porto"}}?',
     "json.get reads the field by path; a raw string holds the JSON as it is.",
     '(answer (json.get """{"user": {"name": "Ana", "city": "Porto"}}""" "user.city"))', (),
     frozenset({"json"})),
    ('Add the line "milk" to list.txt', "fs.append writes the line; then the program answers.",
     '(fs.append "list.txt" "milk\\n")\n(answer "added milk to list.txt")', (), frozenset({"fs"})),
    ('Have a child agent count the words in "to be or not"',
     "agent.run gives the task to a child with the str grant.",
     '(answer (agent.run "Count the words in: to be or not" "str"))', (), frozenset({"agent"})),
)  # fmt: skip

FILES = (
    'Files live in the jail directory {root}: write paths relative to it, like "notes.txt" or '
    '"docs/a.md"; "{root}/notes.txt" names the same file.'
)

RULES = """\
Rules: exactly one ToolCall per reply; only the programs and functions listed above; write a
new program for each task (never copy an example). If a run fails, change the program or the
arguments: never send the same call again. When an Observation holds the result, reply
ToolCall::Response(\"\"\"...\"\"\") with the answer."""

# Catalog examples, phrased as a user asks: (program, task with {0}, {1}... for its first
# [[examples]] args). Without them a small model writes WAT for what the catalog does.
CATALOG_EXAMPLES = (
    ("count_substring", 'How many times does "{1}" occur in "{0}"?'),
    ("replace", 'In "{0}", replace "{1}" with "{2}".'),
)


def _catalog_examples(programs: Mapping[str, Program]) -> list[str]:
    out = []
    for name, task in CATALOG_EXAMPLES:
        p = programs.get(name)
        if p is None or not p.examples or not p.examples[0].results:
            continue
        args = tuple(p.examples[0].args)
        try:
            asked = task.format(*args)
        except IndexError:  # a user's program of that name, with fewer arguments
            continue
        call = format_action(CatalogCall(name, args))
        out.append(
            f"Task: {asked} A good first reply:\n"
            f"<reasoning>The catalog program {name} does this: "
            f"{p.description[:1].lower()}{p.description[1:].rstrip('.')}.</reasoning>\n{call}"
        )
    return out


def _examples(programs: Mapping[str, Program], names: Collection[str]) -> str:
    """The Wat replies whose capabilities are granted, alternating with Catalog replies
    drawn from catalog programs' first [[examples]]. Each reasoning states the choice: the
    catalog program and what it does, or that no catalog program does the task (catalog
    examples alone made the 1.5B model call max_number for 48271 * 3 + 17). No observation
    and no answer follow them: a small model copies whatever comes after its call into its
    replies."""
    wat = []
    for task, why, body, args, needs in WAT_EXAMPLES:
        if needs <= set(names):
            call = format_action(WatCall(body, args))
            end = "" if task.endswith(("?", ".", "!")) else "."
            wat.append(
                f"Task: {task}{end} A good first reply:\n<reasoning>{why}</reasoning>\n{call}"
            )
    catalog = _catalog_examples(programs)
    out = []  # alternating, Wat first: the model copies the kind of the examples around it
    for i in range(max(len(wat), len(catalog))):
        out.extend(wat[i : i + 1] + catalog[i : i + 1])
    return ("Examples:\n" + "\n\n".join(out)) if out else ""


def _macros(names: Collection[str]) -> str:
    call = "str.upper" if "str" in names else "ns.name"
    text = MACROS.format(call=call, pad=" " * (13 - len(call)))
    return "\n".join(
        [text] + ([NUMBERS] if "str" in names else []) + ([MATH] if "math" in names else [])
    )


def _function_line(f: HostFunction) -> str:
    """``str.slice (s start end) -> ptr: doc``: what a call yields as an operand (the error
    code stops the program), not the wasm pair."""
    params = " ".join(f.param_names if len(f.param_names) == len(f.params) else f.params)
    names = f.result_names if len(f.result_names) == len(f.results) else f.results
    value = names[:-1] if f.fallible else names
    shown = f" -> {value[0]}" if len(value) == 1 else ""
    return f"  {f.qualname} ({params}){shown}: {f.doc}"


def _describe(cap: Capability) -> str:
    return "\n".join(
        [f"{cap.namespace}: {cap.summary}"] + [_function_line(f) for f in cap.functions()]
    )


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
        _examples(programs, names),
        _macros(names),
        "Catalog programs:\n" + (listed or "(none)"),
        "Host functions, called as (namespace.name operands...); the (arg N), (answer X) and\n"
        "(resv X) forms above stand for sys.argv, sys.answer and sys.resv:\n"
        + "\n".join(_describe(c) for c in caps if c.namespace != "sys"),
        _errors(),
        _files(registry) if "fs" in names else "",
        RULES,
    ]
    return "\n\n".join(part for part in parts if part) + "\n"


def _files(registry: Registry) -> str:
    root = getattr(registry.get("fs"), "given_root", None)
    if root is None:
        return 'File paths are relative names like "notes.txt" or "docs/a.md".'
    return FILES.format(root=str(root).rstrip("/") or "/")
