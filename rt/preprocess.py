"""WAT-plus -> WAT: macros, string literals and local hoisting, as pure functions.

WAT-plus is a function body with four conveniences (DESIGN.md "Preprocessor"):

    (argv N $x)    declare $x, load argument N into it, return the error code on failure
    (check $err)   return $err from $run when it is non-zero
    (resv X)       append the string at X ($name, a literal or an expression) to the results
    "text"         (with \\n \\t \\" \\\\ escapes) and \"\"\"raw text\"\"\" become (i32.const PTR)

``(local $x i32)`` anywhere is hoisted and de-duplicated. Expansions never add or remove
newlines, so line N of the output is line N of the input (compile errors map back exactly).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from rt.errors import CompileError
from rt.host import HostFunction
from rt.wattext import (  # re-exported: the reader is part of what the preprocessor offers
    FIRST_IMMEDIATE,
    MAX_DEPTH,
    NAME_RE,
    SURROGATE,
    WAT_FAMILIES,
    Node,
    Token,
    called_functions,
    consumers,
    decode_string,
    error_at,
    list_heads,
    module_imports,
    next_word,
    node_head,
    node_qual,
    node_text,
    node_words,
    operand_fix,
    parse,
    takes_operand_atoms,
    tokenize,
)

__all__ = [
    "DATA_BASE", "ERR_LOCAL", "MAX_DEPTH", "SITE_GLOBAL", "TMP_LOCAL", "WAT_FAMILIES", "Node",
    "Preprocessed", "Token", "called_functions", "decode_string", "error_at", "list_heads",
    "module_imports", "parse", "preprocess", "tokenize",
]  # fmt: skip

DATA_BASE = 8  # first static-data offset; 0 stays an obviously bad pointer
ERR_LOCAL = "$__watt_err"
TMP_LOCAL = "$__watt_tmp"
SITE_GLOBAL = "$__watt_site"  # which checked call failed: 1 + its index in Preprocessed.sites


@dataclass(frozen=True)
class Preprocessed:
    body: str  # the WAT body, same line count as the input
    locals: tuple[str, ...]  # hoisted declarations, e.g. "(local $x i32)"
    data: bytes  # static data placed at DATA_BASE
    initial_top: int  # first free byte after static data (8-aligned)
    sites: tuple[tuple[int, str], ...] = ()  # (line, host function) of each checked call
    notes: tuple[str, ...] = ()  # one line per certain rewrite ("line 2: read $x as ...")
    calls: tuple[tuple[str, int], ...] = ()  # host functions called (not in comments), with offsets


_INT_RE = re.compile(r"-?(?:0x[0-9a-fA-F]+|\d+)")
_DECIMAL_RE = re.compile(r"-?\d+(?:\.\d+)?")
# Namespaces whose every operand is a string: a bare number there means its decimal text.
_TEXT_NAMESPACES = frozenset({"math"})

STMT, OPERAND = "stmt", "operand"
# Heads whose children are statements, and type annotations copied as they are.
_STRUCTURAL = frozenset({"block", "loop", "then", "else"})
_ANNOTATIONS = frozenset({"result", "param", "type"})
# Statements that leave nothing on the stack (or end the function), for the final status.
_NO_VALUE = frozenset(
    {"local.set", "global.set", "drop", "nop", "return", "br", "br_table", "unreachable",
     "local", "argv", "check", "resv", "answer",
     "i32.store", "i32.store8", "i32.store16", "i64.store", "i64.store8", "i64.store16", "i64.store32"}
)  # fmt: skip
_LOCAL_REFS = frozenset({"local.get", "local.set", "local.tee"})
_NUMBER_RESULTS = frozenset({"n", "idx", "bool"})  # result names of host calls that yield numbers
_OLD_NAMES = {"get_local": "local.get", "set_local": "local.set", "tee_local": "local.tee"}


@dataclass(frozen=True)
class _Callee:
    qual: str
    sugar: bool  # written without `call` (then its statement form is checked)
    rest: int  # index in node.children of the first operand


class _Expander:
    def __init__(self, source: str, functions: Mapping[str, HostFunction] | None) -> None:
        self.source = source
        self.functions = functions or {}
        self.namespaces = {q.partition(".")[0] for q in self.functions}
        self.locals: dict[str, str] = {}  # name (or unique key) -> declaration
        self.data = bytearray()
        self.offsets: dict[bytes, int] = {}
        self.sites: list[tuple[int, str]] = []
        self.notes: list[str] = []
        self.calls: list[tuple[str, int]] = []
        self.refs: dict[str, int] = {}  # local names used -> first position
        self.quiet: set[int] = set()  # nodes whose expansion leaves nothing on the stack

    # -- static data and bookkeeping --------------------------------------------------------
    def intern(self, value: bytes) -> int:
        if value in self.offsets:
            return self.offsets[value]
        while len(self.data) % 4:
            self.data.append(0)
        offset = DATA_BASE + len(self.data)
        self.data += len(value).to_bytes(4, "little") + value
        self.offsets[value] = offset
        return offset

    def declare(self, name: str, wtype: str, pos: int) -> None:
        decl = f"(local {name} {wtype})"
        old = self.locals.get(name)
        if old is not None and old != decl:
            raise error_at(self.source, pos, f"local {name} declared twice with different types")
        self.locals[name] = decl

    def line(self, pos: int) -> int:
        return self.source.count("\n", 0, pos) + 1

    def note(self, pos: int, text: str) -> None:
        self.notes.append(f"line {self.line(pos)}: {text}")

    def ref(self, name: str, pos: int) -> None:
        self.refs.setdefault(name, pos)

    # -- expansion --------------------------------------------------------------------------
    def seq(self, items: list[Token | Node]) -> str:
        """A list of statements: each host call written without `call` sees what follows it."""
        out = []
        for i, it in enumerate(items):
            if isinstance(it, Node):
                out.append(self.node(it, STMT, lambda i=i: consumers(items, i + 1)))  # type: ignore[misc]
            else:
                out.append(self.token(it, None))
                if it.kind == "atom" and it.text == "call":
                    self._flat_call(items, i)
                elif it.kind == "atom" and it.text in _LOCAL_REFS:
                    self._flat_ref(items, i)
        return "".join(out)

    def _flat_call(self, items: list[Token | Node], i: int) -> None:
        nxt = next_word(items, i + 1)
        if isinstance(nxt, Token) and nxt.text.startswith("$") and "." in nxt.text:
            self.calls.append((nxt.text[1:], nxt.pos))

    def _flat_ref(self, items: list[Token | Node], i: int) -> None:
        nxt = next_word(items, i + 1)
        if isinstance(nxt, Token) and NAME_RE.fullmatch(nxt.text):
            self.ref(nxt.text, nxt.pos)

    def token(
        self,
        it: Token,
        owner: str | None,
        rewrite: tuple[bool, bool] = (False, False),
        *,
        quiet: bool = False,
    ) -> str:
        """A leaf; ``rewrite`` says whether a bare $name / integer here is an operand."""
        if it.kind in ("str", "raw"):
            offset = self.intern(decode_string(it, self.source))
            return f"(i32.const {offset})" + "\n" * it.text.count("\n")
        if it.kind == "atom" and owner is not None:
            names, ints = rewrite
            if names and NAME_RE.fullmatch(it.text) and it.text[1:] not in self.functions:
                self.ref(it.text, it.pos)
                self.note(it.pos, f"read the operand {it.text} of {owner} as (local.get {it.text})")
                return f"(local.get {it.text})"
            if (
                ints
                and owner.partition(".")[0] in _TEXT_NAMESPACES
                and _DECIMAL_RE.fullmatch(it.text)
            ):
                self.note(it.pos, f'read the operand {it.text} of {owner} as the text "{it.text}"')
                return f"(i32.const {self.intern(it.text.encode())})"
            if ints and _INT_RE.fullmatch(it.text):
                if quiet:
                    return f"(i32.const {it.text})"
                self.note(it.pos, f"read the operand {it.text} of {owner} as (i32.const {it.text})")
                return f"(i32.const {it.text})"
        return it.text

    def operands(
        self,
        children: list[Token | Node],
        owner: str,
        rewrite: tuple[bool, bool],
        *,
        quiet: bool = False,
    ) -> str:
        out = []
        for c in children:
            if isinstance(c, Node):
                out.append(self.node(c, OPERAND))
            else:
                out.append(self.token(c, owner, rewrite, quiet=quiet))
        return "".join(out)

    def node(self, node: Node, ctx: str, consumers: Callable[[], int] = lambda: 0) -> str:
        words = node_words(node)
        if words and isinstance(words[0], Token) and words[0].text in _OLD_NAMES:
            old = words[0]
            new = _OLD_NAMES[old.text]
            self.note(old.pos, f"read the old name {old.text} as {new}")
            node.children[node.children.index(old)] = Token("atom", new, old.pos)
            words = node_words(node)
        head = (
            words[0].text
            if words and isinstance(words[0], Token) and words[0].kind == "atom"
            else ""
        )
        newlines = "\n" * node_text(node).count("\n")
        macro = _MACROS.get(head)
        if macro is not None:
            self.quiet.add(id(node))
            return macro(self, node, words[1:], newlines)
        callee = self.callee(node, words, head)
        if callee is not None:
            return self.call(node, callee, ctx, consumers)
        if len(words) == 1 and NAME_RE.fullmatch(head):  # ($x): a local read
            self.ref(head, node.open.pos)
            self.note(node.open.pos, f"read ({head}) as (local.get {head})")
            return f"(local.get {head})" + newlines
        if head in _ANNOTATIONS:
            return node_text(node)
        if head in _STRUCTURAL:
            if head in ("block", "loop") and not any(
                isinstance(w, Node) and node_head(w) == "result" for w in words
            ):
                self.quiet.add(id(node))
            return "(" + self.seq(node.children) + ")"
        if head == "if":
            if not any(isinstance(w, Node) and node_head(w) == "result" for w in words):
                self.quiet.add(id(node))
            parts = []
            for c in node.children:
                if isinstance(c, Node):
                    clause = node_head(c) in ("then", "else")
                    parts.append(self.node(c, STMT if clause else OPERAND))
                else:
                    parts.append(self.token(c, None))
            return "(" + "".join(parts) + ")"
        if (
            head in _LOCAL_REFS
            and len(words) > 1
            and isinstance(words[1], Token)
            and NAME_RE.fullmatch(words[1].text)
        ):
            self.ref(words[1].text, words[1].pos)
        if (
            head == "local.set"
            and ctx == OPERAND
            and len(words) > 2
            and isinstance(words[0], Token)
        ):
            # a set whose value is used
            old = words[0]
            self.note(
                old.pos,
                f"(local.set {node_text(words[1])} X) used as a value: read it as local.tee",
            )
            node.children[node.children.index(old)] = Token("atom", "local.tee", old.pos)
            head = "local.tee"
        if head in _NO_VALUE:
            self.quiet.add(id(node))
        rewrite = takes_operand_atoms(head)
        if head in FIRST_IMMEDIATE and len(words) > 1:
            first = node.children.index(words[1]) + 1
            return (
                "("
                + "".join(
                    self.token(c, None) if isinstance(c, Token) else self.node(c, OPERAND)
                    for c in node.children[:first]
                )
                + self.operands(node.children[first:], head, rewrite)
                + ")"
            )
        return "(" + self.operands(node.children, head, rewrite) + ")"

    # -- host calls ---------------------------------------------------------------------------
    def callee(self, node: Node, words: list[Token | Node], head: str) -> _Callee | None:
        """The host function a node calls, in any of its spellings, else None."""
        if (
            head == "call"
            and len(words) > 1
            and isinstance(words[1], Token)
            and words[1].text.startswith("$")
        ):
            name = words[1]
            if "." not in name.text:
                return None
            self.calls.append((name.text[1:], name.pos))
            return _Callee(name.text[1:], False, node.children.index(name) + 1)
        if head == "arg":
            self.calls.append(("sys.argv", node.open.pos))
            return _Callee("sys.argv", True, node.children.index(words[0]) + 1)
        dotted = head[1:] if head.startswith("$") else head
        ns = dotted.partition(".")[0]
        if (
            "." in dotted
            and (head.startswith("$") or ns in self.namespaces)
            and NAME_RE.fullmatch("$" + dotted)
        ):
            self.calls.append((dotted, words[0].pos))  # type: ignore[union-attr]
            if head.startswith("$"):
                self.note(node.open.pos, f"read ({head} ...) as (call {head} ...)")
            return _Callee(dotted, True, node.children.index(words[0]) + 1)
        return None

    def call(self, node: Node, callee: _Callee, ctx: str, consumers: Callable[[], int]) -> str:
        """``(call $q args)``; in operand position a ``(ptr err)`` call yields ptr and returns
        its error from $run (recording the call site); written without ``call`` as a statement,
        it is checked unless the long form's ``(local.set ...)`` consumers follow."""
        f = self.functions.get(callee.qual)
        skipped = "".join(node_text(c) for c in node.children[: callee.rest])
        rest = node.children[callee.rest :]
        given = [c for c in rest if isinstance(c, Node) or c.kind not in ("ws", "comment")]
        if f is not None and given and len(given) != len(f.params):
            names = " ".join(f.param_names) or "nothing"
            raise error_at(
                self.source, node.open.pos,
                f"{callee.qual} takes {len(f.params)} operand(s) ({names}); {len(given)} given"
                + operand_fix(callee.qual, f.param_names, given),
            )  # fmt: skip
        if callee.qual == "sys.argv" and node_head(node) == "arg":
            args = self.operands(rest, "arg", (True, True), quiet=True)
        else:
            args = self.operands(rest, callee.qual, (True, True))
        inner = f"(call ${callee.qual}{args})" + "\n" * skipped.count("\n")
        if f is None or not f.fallible or not f.results:
            return inner
        pair = len(f.results) == 2
        if ctx == OPERAND:
            return (
                self.checked(inner, callee.qual, node.open.pos, value=True, block=True)
                if pair
                else inner
            )
        if not callee.sugar:
            return inner
        used = consumers()
        if used >= len(f.results):
            return inner  # the long form: (local.set $err) (local.set $ptr)
        if pair and used == 1:
            return self.checked(inner, callee.qual, node.open.pos, value=True, block=False)
        self.quiet.add(id(node))
        text = self.checked(inner, callee.qual, node.open.pos, value=pair, block=False)
        return text + (" (drop)" if pair else "")

    def checked(self, inner: str, qual: str, pos: int, *, value: bool, block: bool) -> str:
        self.declare(ERR_LOCAL, "i32", pos)
        self.sites.append((self.line(pos), qual))
        site = len(self.sites)
        fail = (
            f"(if (local.get {ERR_LOCAL}) (then (global.set {SITE_GLOBAL} (i32.const {site})) "
            f"(return (local.get {ERR_LOCAL}))))"
        )
        if not value:
            return f"{inner} (local.set {ERR_LOCAL}) {fail}"
        self.declare(TMP_LOCAL, "i32", pos)
        text = f"{inner} (local.set {ERR_LOCAL}) (local.set {TMP_LOCAL}) {fail} (local.get {TMP_LOCAL})"
        return f"(block (result i32) {text})" if block else text

    # -- macros -----------------------------------------------------------------------------
    def local(self, node: Node, args: list[Token | Node], newlines: str) -> str:
        atoms = [a.text for a in args if isinstance(a, Token) and a.kind == "atom"]
        if len(atoms) != len(args) or not atoms:
            raise error_at(
                self.source, node.open.pos, "local expects (local $name type) or (local type ...)"
            )
        if atoms[0].startswith("$"):
            if len(atoms) != 2:
                raise error_at(self.source, node.open.pos, "local expects (local $name type)")
            self.declare(atoms[0], atoms[1], node.open.pos)
        else:
            self.locals[f"#{len(self.locals)}"] = f"(local {' '.join(atoms)})"
        return newlines

    def argv(self, node: Node, args: list[Token | Node], newlines: str) -> str:
        ok = (
            len(args) == 2
            and all(isinstance(a, Token) and a.kind == "atom" for a in args)
            and re.fullmatch(r"\d+", args[0].text)  # type: ignore[union-attr]
            and args[1].text.startswith("$")  # type: ignore[union-attr]
        )
        if not ok:
            raise error_at(self.source, node.open.pos, "argv expects (argv <int> $name)")
        index, name = args[0].text, args[1].text  # type: ignore[union-attr]
        self.declare(name, "i32", node.open.pos)
        self.declare(ERR_LOCAL, "i32", node.open.pos)
        return (
            f"(call $sys.argv (i32.const {index})) (local.set {ERR_LOCAL}) (local.set {name}) "
            + _return_if(ERR_LOCAL)
            + newlines
        )

    def check(self, node: Node, args: list[Token | Node], newlines: str) -> str:
        if len(args) == 1 and isinstance(args[0], Node):
            value = self.node(args[0], OPERAND)
            self.declare(ERR_LOCAL, "i32", node.open.pos)
            rest = "\n" * (newlines.count("\n") - value.count("\n"))
            return f"(local.set {ERR_LOCAL} {value}) " + _return_if(ERR_LOCAL) + rest
        if len(args) != 1 or not isinstance(args[0], Token) or not NAME_RE.fullmatch(args[0].text):
            raise error_at(
                self.source, node.open.pos, "check expects (check $name) or (check (expr))"
            )
        self.ref(args[0].text, args[0].pos)
        return _return_if(args[0].text) + newlines

    def resv(self, node: Node, args: list[Token | Node], newlines: str) -> str:
        value = self._value(node, args, "resv")
        self.declare(ERR_LOCAL, "i32", node.open.pos)
        rest = "\n" * (newlines.count("\n") - value.count("\n"))
        return f"(call $sys.resv {value}) (local.set {ERR_LOCAL}) " + _return_if(ERR_LOCAL) + rest

    def answer(self, node: Node, args: list[Token | Node], newlines: str) -> str:
        value = self._value(node, args, "answer")
        self.declare(ERR_LOCAL, "i32", node.open.pos)
        self.calls.append(("sys.answer", node.open.pos))
        rest = "\n" * (newlines.count("\n") - value.count("\n"))
        return (
            f"(call $sys.answer {value}) (local.set {ERR_LOCAL}) (return (local.get {ERR_LOCAL}))"
            + rest
        )

    def _value(self, node: Node, args: list[Token | Node], macro: str) -> str:
        """The one string operand of resv/answer: $name, a literal or an expression."""
        if len(args) != 1 or (
            isinstance(args[0], Token)
            and args[0].kind == "atom"
            and not NAME_RE.fullmatch(args[0].text)
        ):
            raise error_at(
                self.source,
                node.open.pos,
                f'{macro} expects ({macro} $name), ({macro} "text") or ({macro} (expr))',
            )
        arg = args[0]
        if isinstance(arg, Token) and arg.kind == "atom":
            self.ref(arg.text, arg.pos)
            return f"(local.get {arg.text})"
        if isinstance(arg, Node):
            if self._yields(arg) == "err":
                raise error_at(
                    self.source, arg.open.pos,
                    f"{macro}: {node_qual(arg)} gives no value to {macro}; make the call on its own line, "
                    f'then ({macro} "text")',
                )  # fmt: skip
            value = self.node(arg, OPERAND)
            if self._yields(arg) == "arr" and "str.join" in self.functions:
                self.note(
                    arg.open.pos,
                    f"({macro} X) needs text: wrote the array X as its items, one per line",
                )
                self.calls.append(("str.join", arg.open.pos))
                newline = self.intern(b"\n")
                joined = f"(call $str.join {value} (i32.const {newline}))"
                return self.checked(joined, "str.join", arg.open.pos, value=True, block=True)
            if self._numeric(arg) and "str.from_i32" in self.functions:
                self.note(
                    arg.open.pos, f"({macro} X) needs text: wrote the number X as (str.from_i32 X)"
                )
                self.calls.append(("str.from_i32", arg.open.pos))
                return self.checked(
                    f"(call $str.from_i32 {value})",
                    "str.from_i32",
                    arg.open.pos,
                    value=True,
                    block=True,
                )
            return value
        return self.token(arg, None)

    def _numeric(self, node: Node) -> bool:
        """Whether ``node`` certainly yields a number, not a string pointer: i32 arithmetic, or
        a host call whose value is a count, an index or a flag."""
        head = node_head(node)
        if head.startswith("i32.") and head != "i32.const" and ".load" not in head:
            return True
        return self._yields(node) in _NUMBER_RESULTS

    def _yields(self, node: Node) -> str:
        """The name of the value a host-call node yields ("ptr", "n", "arr", "err"), else ""."""
        f = self.functions.get(node_qual(node))
        return f.result_names[0] if f is not None and f.result_names else ""

    # -- the whole body -----------------------------------------------------------------------
    def body(self, items: list[Token | Node]) -> str:
        text = self.seq(items)
        for name, pos in self.refs.items():
            if name not in self.locals:
                self.declare(name, "i32", pos)
                self.note(pos, f"{name} was not declared: declared it as (local {name} i32)")
        if not self._leaves_value(items):
            text += " (i32.const 0)"
        return text

    def _leaves_value(self, items: list[Token | Node]) -> bool:
        words = [it for it in items if isinstance(it, Node) or it.kind not in ("ws", "comment")]
        if not words:
            return False
        last = words[-1]
        if isinstance(last, Node):
            return id(last) not in self.quiet
        if last.kind == "atom" and last.text in ("drop", "nop", "return", "unreachable"):
            return False
        before = words[-2] if len(words) > 1 else None
        return not (isinstance(before, Token) and before.text in ("local.set", "global.set", "br"))


_MACROS: dict[str, Callable[[_Expander, Node, list[Token | Node], str], str]] = {
    "local": _Expander.local,
    "argv": _Expander.argv,
    "check": _Expander.check,
    "resv": _Expander.resv,
    "answer": _Expander.answer,
}


def _return_if(name: str) -> str:
    return f"(if (local.get {name}) (then (return (local.get {name}))))"


def preprocess(source: str, functions: Mapping[str, HostFunction] | None = None) -> Preprocessed:
    """Expand a WAT-plus body. Raises CompileError with line and column on bad input.

    ``functions`` (qualified name -> host function) lets host calls compose as expressions
    and be written without ``call`` or ``$``; without it only the long form is understood.
    """
    nul = source.find("\x00")
    if nul >= 0:
        raise error_at(source, nul, "source contains a NUL byte")
    if lone := SURROGATE.search(source):
        raise error_at(
            source,
            lone.start(),
            f"source holds a lone surrogate U+{ord(lone.group()):04X}, which is not text",
        )
    if not source.strip():
        raise CompileError("empty program: the body needs at least (i32.const 0)")
    ex = _Expander(source, functions)
    body = ex.body(parse(source))
    top = DATA_BASE + len(ex.data)
    top = (top + 7) & ~7
    return Preprocessed(
        body,
        tuple(ex.locals.values()),
        bytes(ex.data),
        top,
        tuple(ex.sites),
        tuple(sorted(ex.notes, key=_note_line)),
        tuple(ex.calls),
    )


def _note_line(note: str) -> int:
    return int(note.split(":", 1)[0].removeprefix("line "))
