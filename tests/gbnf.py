"""A small GBNF reader, matcher and random generator for tests (the subset agent.models.grammar uses).

``Grammar(text)`` reads llama.cpp GBNF: rules ``name ::= ...``, string literals and character
classes (negation, ranges, escapes ``\\n \\t \\r \\\\ \\" \\[ \\] \\xHH \\uHHHH``), alternation,
grouping, ``? * +`` and rule references, ``#`` comments. As in llama.cpp, a rule ends at a
newline that is not inside parentheses. It refuses undefined rules, rules defined twice,
left recursion and a repetition of something that can match nothing.

``accepts(text)`` says whether the whole text derives from the root; ``generate(rng)`` walks
the grammar at random and returns the text with the spans of chosen rules (``captures``).
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Lit:
    text: str


@dataclass(frozen=True)
class Cls:
    ranges: tuple[tuple[str, str], ...]
    negated: bool

    def has(self, char: str) -> bool:
        inside = any(lo <= char <= hi for lo, hi in self.ranges)
        return inside != self.negated


@dataclass(frozen=True)
class Ref:
    name: str


@dataclass(frozen=True)
class Seq:
    items: tuple[Node, ...]


@dataclass(frozen=True)
class Alt:
    options: tuple[Node, ...]


@dataclass(frozen=True)
class Rep:
    node: Node
    low: int  # 0 or 1
    many: bool  # * and + (else ?)


Node = Lit | Cls | Ref | Seq | Alt | Rep

_SIMPLE_ESCAPES = {
    "n": "\n",
    "t": "\t",
    "r": "\r",
    "\\": "\\",
    '"': '"',
    "[": "[",
    "]": "]",
    "-": "-",
    "^": "^",
}
_NAME = re.compile(r"[a-zA-Z][a-zA-Z0-9-]*")


class GrammarError(ValueError):
    pass


class _Reader:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def error(self, what: str) -> GrammarError:
        line = self.text.count("\n", 0, self.pos) + 1
        return GrammarError(f"line {line}: {what} at {self.text[self.pos : self.pos + 30]!r}")

    def space(self, newlines: bool) -> None:
        while self.pos < len(self.text):
            c = self.text[self.pos]
            if c == "#":
                end = self.text.find("\n", self.pos)
                self.pos = len(self.text) if end < 0 else end
            elif c in " \t" or (newlines and c in "\r\n"):
                self.pos += 1
            else:
                return

    def char(self) -> str:
        c = self.text[self.pos]
        if c != "\\":
            self.pos += 1
            return c
        e = self.text[self.pos + 1]
        if e in _SIMPLE_ESCAPES:
            self.pos += 2
            return _SIMPLE_ESCAPES[e]
        width = {"x": 2, "u": 4, "U": 8}.get(e)
        digits = self.text[self.pos + 2 : self.pos + 2 + (width or 0)]
        if width is None or not re.fullmatch(r"[0-9a-fA-F]+", digits) or len(digits) != width:
            raise self.error("bad escape")
        self.pos += 2 + width
        return chr(int(digits, 16))

    def rules(self) -> dict[str, Node]:
        rules: dict[str, Node] = {}
        self.space(True)
        while self.pos < len(self.text):
            m = _NAME.match(self.text, self.pos)
            if m is None:
                raise self.error("expected a rule name")
            self.pos = m.end()
            self.space(False)
            if not self.text.startswith("::=", self.pos):
                raise self.error("expected ::=")
            self.pos += 3
            self.space(True)
            if m.group() in rules:
                raise self.error(f"rule {m.group()} defined twice")
            rules[m.group()] = self.alternates(nested=False)
            if self.pos < len(self.text) and self.text[self.pos] not in "\r\n":
                raise self.error("expected the end of the rule")
            self.space(True)
        return rules

    def alternates(self, nested: bool) -> Node:
        options = [self.sequence(nested)]
        while self.pos < len(self.text) and self.text[self.pos] == "|":
            self.pos += 1
            self.space(True)
            options.append(self.sequence(nested))
        return options[0] if len(options) == 1 else Alt(tuple(options))

    def sequence(self, nested: bool) -> Node:
        items: list[Node] = []
        while self.pos < len(self.text):
            c = self.text[self.pos]
            if c == '"':
                self.pos += 1
                chars = []
                while self.text[self.pos] != '"':
                    if self.text[self.pos] == "\n":
                        raise self.error("newline in a literal")
                    chars.append(self.char())
                self.pos += 1
                item: Node = Lit("".join(chars))
            elif c == "[":
                self.pos += 1
                negated = self.text.startswith("^", self.pos)
                self.pos += negated
                ranges = []
                while self.text[self.pos] != "]":
                    lo = self.char()
                    hi = lo
                    if self.text[self.pos] == "-" and self.text[self.pos + 1] != "]":
                        self.pos += 1
                        hi = self.char()
                    ranges.append((lo, hi))
                self.pos += 1
                item = Cls(tuple(ranges), negated)
            elif c == "(":
                self.pos += 1
                self.space(True)
                item = self.alternates(nested=True)
                if self.text[self.pos : self.pos + 1] != ")":
                    raise self.error("expected )")
                self.pos += 1
            elif (m := _NAME.match(self.text, self.pos)) is not None:
                after = self.pos
                self.pos = m.end()
                self.space(False)
                if self.text.startswith("::=", self.pos):  # the next rule: this one ended
                    self.pos = after
                    raise self.error("a rule name follows without a newline")
                self.pos = m.end()
                item = Ref(m.group())
            else:
                break
            self.space(False)
            while self.pos < len(self.text) and self.text[self.pos] in "*+?":
                op = self.text[self.pos]
                item = Rep(item, 1 if op == "+" else 0, op != "?")
                self.pos += 1
                self.space(False)
            items.append(item)
            self.space(nested)
        return items[0] if len(items) == 1 else Seq(tuple(items))


@dataclass
class Generated:
    text: str
    captures: list[tuple[str, str]] = field(default_factory=list)  # (rule, text) in order

    def of(self, rule: str) -> list[str]:
        return [text for name, text in self.captures if name == rule]


class Grammar:
    def __init__(self, text: str, root: str = "root") -> None:
        self.rules = _Reader(text).rules()
        self.root = root
        for node in self.rules.values():
            self._check_refs(node)
        if root not in self.rules:
            raise GrammarError(f"no root rule {root}")
        self._nullable = self._compute_nullable()
        self._check_repetitions()
        self._check_left_recursion()
        self._cost = self._compute_cost()

    # -- checks ----------------------------------------------------------------------------

    def _children(self, node: Node) -> tuple[Node, ...]:
        if isinstance(node, Seq):
            return node.items
        if isinstance(node, Alt):
            return node.options
        if isinstance(node, Rep):
            return (node.node,)
        return ()

    def _walk(self, node: Node) -> list[Node]:
        out = [node]
        for child in self._children(node):
            out += self._walk(child)
        return out

    def _check_refs(self, node: Node) -> None:
        for n in self._walk(node):
            if isinstance(n, Ref) and n.name not in self.rules:
                raise GrammarError(f"undefined rule {n.name}")

    def _compute_nullable(self) -> dict[str, bool]:
        nullable = dict.fromkeys(self.rules, False)

        def null(node: Node) -> bool:
            if isinstance(node, Lit):
                return node.text == ""
            if isinstance(node, Cls):
                return False
            if isinstance(node, Ref):
                return nullable[node.name]
            if isinstance(node, Seq):
                return all(null(i) for i in node.items)
            if isinstance(node, Alt):
                return any(null(o) for o in node.options)
            return node.low == 0 or null(node.node)

        changed = True
        while changed:
            changed = False
            for name, node in self.rules.items():
                if not nullable[name] and null(node):
                    nullable[name] = changed = True
        self._null = null
        return nullable

    def _check_repetitions(self) -> None:
        for name, rule in self.rules.items():
            for n in self._walk(rule):
                if isinstance(n, Rep) and n.many and self._null(n.node):
                    raise GrammarError(f"rule {name}: a repetition of something that can be empty")

    def _firsts(self, node: Node) -> set[str]:
        """Rules reachable at the start of ``node`` without consuming a character."""
        if isinstance(node, Ref):
            return {node.name}
        if isinstance(node, Seq):
            out: set[str] = set()
            for item in node.items:
                out |= self._firsts(item)
                if not self._null(item):
                    break
            return out
        if isinstance(node, Alt):
            return set().union(*(self._firsts(o) for o in node.options))
        if isinstance(node, Rep):
            return self._firsts(node.node)
        return set()

    def _check_left_recursion(self) -> None:
        edges = {name: self._firsts(rule) for name, rule in self.rules.items()}
        for start in self.rules:
            seen, todo = set(), list(edges[start])
            while todo:
                name = todo.pop()
                if name == start:
                    raise GrammarError(f"left recursion through rule {start}")
                if name not in seen:
                    seen.add(name)
                    todo += edges[name]

    def _compute_cost(self) -> dict[str, int]:
        """The length of the shortest text each rule derives (for bounded generation)."""
        inf = 10**9
        cost = dict.fromkeys(self.rules, inf)

        def c(node: Node) -> int:
            if isinstance(node, Lit):
                return len(node.text)
            if isinstance(node, Cls):
                return 1
            if isinstance(node, Ref):
                return cost[node.name]
            if isinstance(node, Seq):
                return min(inf, sum(c(i) for i in node.items))
            if isinstance(node, Alt):
                return min(c(o) for o in node.options)
            return 0 if node.low == 0 else c(node.node)

        changed = True
        while changed:
            changed = False
            for name, node in self.rules.items():
                value = c(node)
                if value < cost[name]:
                    cost[name], changed = value, True
        self._c = c
        return cost

    # -- matching --------------------------------------------------------------------------

    def accepts(self, text: str, rule: str | None = None) -> bool:
        return self.matches(Ref(rule or self.root), text)

    def matches(self, node: Node, text: str) -> bool:
        """Whether ``node`` derives exactly ``text``."""
        return len(text) in _Matcher(self.rules, text).ends(node, 0)

    # -- generation ------------------------------------------------------------------------

    def generate(
        self,
        rng: random.Random,
        *,
        chars: Callable[[random.Random, Cls], str],
        fragments: Callable[[random.Random, str], str | None] = lambda rng, rule: None,
        capture: frozenset[str] = frozenset(),
        max_depth: int = 40,
        mean_repeat: float = 2.0,
    ) -> Generated:
        """A random text of the grammar.

        ``chars(rng, cls)`` picks a character a class accepts. Inside a repetition within rule
        R, ``fragments(rng, R)`` may offer a string; when the repetition derives it exactly,
        it is used as a run of repetitions (so "ToolCall::Response(" can appear in a text).
        Past ``max_depth`` the shortest choices are taken.
        """
        out: list[str] = []
        caps: list[tuple[str, str]] = []

        def gen(node: Node, depth: int, rule: str) -> None:
            if isinstance(node, Lit):
                out.append(node.text)
            elif isinstance(node, Cls):
                out.append(chars(rng, node))
            elif isinstance(node, Ref):
                start = len("".join(out))
                gen(self.rules[node.name], depth + 1, node.name)
                if node.name in capture:
                    caps.append((node.name, "".join(out)[start:]))
            elif isinstance(node, Seq):
                for item in node.items:
                    gen(item, depth, rule)
            elif isinstance(node, Alt):
                options = node.options
                if depth > max_depth:
                    best = min(self._c(o) for o in options)
                    options = tuple(o for o in options if self._c(o) == best)
                gen(rng.choice(options), depth, rule)
            else:
                if not node.many:
                    count = 0 if depth > max_depth else rng.randint(0, 1)
                else:
                    count = 0 if depth > max_depth else int(rng.expovariate(1 / mean_repeat))
                count = max(count, node.low)
                i = 0
                while i < count:
                    offer = fragments(rng, rule) if node.many else None
                    if offer and self.matches(Rep(node.node, 1, True), offer):
                        out.append(offer)
                    else:
                        gen(node.node, depth + 1, rule)
                    i += 1

        gen(Ref(self.root), 0, self.root)
        return Generated("".join(out), caps)


class _Matcher:
    def __init__(self, rules: dict[str, Node], text: str) -> None:
        self.rules = rules
        self.text = text
        self.memo: dict[tuple[str, int], frozenset[int]] = {}

    def ends(self, node: Node, pos: int) -> frozenset[int]:
        text = self.text
        if isinstance(node, Lit):
            return (
                frozenset({pos + len(node.text)})
                if text.startswith(node.text, pos)
                else frozenset()
            )
        if isinstance(node, Cls):
            return frozenset({pos + 1}) if pos < len(text) and node.has(text[pos]) else frozenset()
        if isinstance(node, Ref):
            key = (node.name, pos)
            found = self.memo.get(key)
            if found is None:
                self.memo[key] = frozenset()  # no left recursion (checked), so never read early
                found = self.memo[key] = self.ends(self.rules[node.name], pos)
            return found
        if isinstance(node, Seq):
            positions = frozenset({pos})
            for item in node.items:
                positions = frozenset().union(*(self.ends(item, p) for p in positions))
                if not positions:
                    break
            return positions
        if isinstance(node, Alt):
            return frozenset().union(*(self.ends(o, pos) for o in node.options))
        result: set[int] = {pos} if node.low == 0 else set()
        frontier = {pos}
        seen: set[int] = set()
        first = True
        while frontier:
            nxt: set[int] = set()
            for p in frontier:
                nxt |= self.ends(node.node, p)
            if first or node.many:
                result |= nxt
            if not node.many:
                break
            first = False
            seen |= frontier
            frontier = nxt - seen
        return frozenset(result)
