"""The ``math`` capability: exact arithmetic on decimal strings (pure, granted by default).

The numbers (plain decimal strings, exact except an inexact quotient, rounded to 28
significant digits) and their operations live in ``capabilities.numbers``; this module reads
expressions and offers the host functions.

``evaluate`` reads an expression with its own tokenizer and recursive-descent parser (no
Python ``eval``), in Python's precedence: ``+ -`` < ``* / // %`` < unary ``- +`` < ``**``
(right-associative, so ``-2**2`` is -4 and ``2**3**2`` is 512), with postfix ``n!`` binding
tighter still (``-3!`` is -6, ``2**3!`` is 64). Calls: ``abs min max
factorial gcd lcm comb perm isqrt`` (``isprime`` answers true/false, so it is a host
function only); a one-argument call may be written before a number without parentheses
(``factorial 25``). The parser emits postfix steps that a loop evaluates, so a long chain such
as ``1+1+...+1`` never recurses; nesting (parentheses, calls, unary signs, exponent chains)
is capped at ``MAX_DEPTH``. Positions in error details are 0-based code-point indexes.

Errors (``GuestError``): EPARSE for bad syntax or a bad number (the detail says what and
where, e.g. ``unexpected ')' at 5``); EBOUND for division by zero and domain errors
(negative factorial, isqrt of a negative, fractional exponent or integer-function argument,
negative comb/perm arguments); ENOMEM for inputs over ``MAX_INPUT_BYTES``, any value
(literal, intermediate or result) over ``MAX_DIGITS`` digits, ``isprime`` past
``ISPRIME_MAX_DIGITS`` digits, and an expression still running after ``TIME_CAP_S``.
Sizes are estimated and refused BEFORE the work where the work could be large (``a**b``
from ``b*log10|a|``, factorial/comb/perm from log-gamma), so ``10**10**10`` is refused at
once. Within the caps one operation takes at most tens of milliseconds (the slowest,
``comb`` near the digit cap or ``isprime`` of a 300-digit prime, about 40 ms here).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

from capabilities.base import host
from capabilities.numbers import (
    ISPRIME_MAX_DIGITS,
    Number,
    _literal,
    absolute,
    add,
    comb,
    div,
    factorial,
    floordiv,
    format_number,
    gcd,
    isprime,
    isqrt,
    lcm,
    mod,
    mul,
    negate,
    parse_number,
    perm,
    power,
    sub,
)
from rt.codes import Err
from rt.host import GuestError, HostFunction, RunContext

MAX_INPUT_BYTES = 25_000  # one expression or number argument (two max-size numbers fit)
MAX_DEPTH = 100  # nesting of parentheses, calls, unary signs and ** chains
TIME_CAP_S = 0.05  # wall-clock budget of one math.eval, checked between operations

_TOKEN = re.compile(
    r"(?P<num>[0-9]+(?:\.[0-9]*)?|\.[0-9]+)|(?P<name>[A-Za-z_][A-Za-z0-9_]*)|(?P<op>\*\*|//|[-+*/%(),!])"
)


# ---- expressions --------------------------------------------------------------------------


@dataclass(frozen=True)
class _Func:
    fn: Callable[..., Number]
    min_args: int
    max_args: int | None  # None: any number, folded pairwise


def _fold(fn: Callable[[Number, Number], Number]) -> Callable[..., Number]:
    def folded(*args: Number) -> Number:
        acc = args[0]
        for x in args[1:]:
            acc = fn(acc, x)
        return acc

    return folded


FUNCTIONS: dict[str, _Func] = {
    "abs": _Func(absolute, 1, 1),
    "min": _Func(_fold(lambda a, b: b if b < a else a), 1, None),
    "max": _Func(_fold(lambda a, b: b if b > a else a), 1, None),
    "factorial": _Func(factorial, 1, 1),
    "gcd": _Func(_fold(gcd), 2, None),
    "lcm": _Func(_fold(lcm), 2, None),
    "comb": _Func(comb, 2, 2),
    "perm": _Func(perm, 2, 2),
    "isqrt": _Func(isqrt, 1, 1),
}

BINARY: dict[str, Callable[[Number, Number], Number]] = {
    "+": add,
    "-": sub,
    "*": mul,
    "/": div,
    "//": floordiv,
    "%": mod,
    "**": power,
}


@dataclass(frozen=True)
class _Token:
    kind: str  # "num", "name", "op" or "end"
    text: str
    pos: int


@dataclass(frozen=True)
class _Step:
    """One postfix step: push ``value``, or apply ``op`` to the top ``nargs`` values."""

    op: str  # "num", "neg", a BINARY key or a FUNCTIONS key
    pos: int
    nargs: int = 0
    value: Number = 0


def _skip_space(text: str, pos: int) -> int:
    while pos < len(text) and text[pos].isspace():
        pos += 1
    return pos


def _tokenize(text: str) -> list[_Token]:
    tokens = []
    pos = _skip_space(text, 0)
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:
            raise GuestError(Err.EPARSE, f"unexpected {text[pos]!r} at {pos}")
        kind = m.lastgroup
        assert kind is not None, "every alternative of _TOKEN is a named group"
        tokens.append(_Token(kind, m.group(), pos))
        pos = _skip_space(text, m.end())
    tokens.append(_Token("end", "", len(text)))
    return tokens


def _unexpected(tok: _Token) -> GuestError:
    if tok.kind == "end":
        return GuestError(Err.EPARSE, f"unexpected end of expression at {tok.pos}")
    return GuestError(Err.EPARSE, f"unexpected {tok.text[:20]!r} at {tok.pos}")


class _Parser:
    """Recursive descent over the tokens, emitting postfix ``_Step``s; depth-capped."""

    def __init__(self, text: str) -> None:
        self.tokens = _tokenize(text)
        self.i = 0
        self.depth = 0
        self.steps: list[_Step] = []

    def parse(self) -> list[_Step]:
        if self._peek().kind == "end":
            raise GuestError(Err.EPARSE, "empty expression")
        self._expr()
        if self._peek().kind != "end":
            raise _unexpected(self._peek())
        return self.steps

    def _peek(self) -> _Token:
        return self.tokens[self.i]

    def _next(self) -> _Token:
        tok = self.tokens[self.i]
        self.i += 1
        return tok

    def _at(self, *ops: str) -> bool:
        tok = self.tokens[self.i]
        return tok.kind == "op" and tok.text in ops

    def _nest(self, tok: _Token) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise GuestError(Err.EPARSE, f"nested deeper than {MAX_DEPTH} at {tok.pos}")

    def _expr(self) -> None:
        self._term()
        while self._at("+", "-"):
            tok = self._next()
            self._term()
            self.steps.append(_Step(tok.text, tok.pos, 2))

    def _term(self) -> None:
        self._unary()
        while self._at("*", "/", "//", "%"):
            tok = self._next()
            self._unary()
            self.steps.append(_Step(tok.text, tok.pos, 2))

    def _unary(self) -> None:
        if not self._at("-", "+"):
            self._power()
            return
        tok = self._next()
        self._nest(tok)
        self._unary()
        self.depth -= 1
        if tok.text == "-":
            self.steps.append(_Step("neg", tok.pos, 1))

    def _power(self) -> None:
        self._atom()
        while self._at("!"):  # n! as mathematics writes it (and the model does): factorial(n)
            self.steps.append(_Step("factorial", self._next().pos, 1))
        if self._at("**"):
            tok = self._next()
            self._nest(tok)
            self._unary()  # right-associative, and 2**-1 is allowed
            self.depth -= 1
            self.steps.append(_Step("**", tok.pos, 2))

    def _close(self, opener: _Token) -> None:
        if not self._at(")"):
            tok = self._peek()
            found = "the end" if tok.kind == "end" else repr(tok.text[:20])
            raise GuestError(
                Err.EPARSE, f"missing ')' for the '(' at {opener.pos}: found {found} at {tok.pos}"
            )
        self._next()
        self.depth -= 1

    def _atom(self) -> None:
        tok = self._next()
        if tok.kind == "num":
            try:
                value = _literal(tok.text)
            except GuestError as exc:
                raise GuestError(exc.code, f"{exc.detail} at {tok.pos}") from None
            self.steps.append(_Step("num", tok.pos, value=value))
        elif tok.kind == "name":
            self._call(tok)
        elif tok.kind == "op" and tok.text == "(":
            self._nest(tok)
            self._expr()
            self._close(tok)
        else:
            raise _unexpected(tok)

    def _call(self, name: _Token) -> None:
        func = FUNCTIONS.get(name.text)
        if func is None:
            known = ", ".join(FUNCTIONS)
            raise GuestError(
                Err.EPARSE, f"unknown function {name.text[:40]!r} at {name.pos}; known: {known}"
            )
        opener = self._peek()
        if not self._at("(") and opener.kind == "num" and func.min_args == 1:
            self._atom()  # "factorial 25", as the model writes it: factorial(25)
            self.steps.append(_Step(name.text, name.pos, 1))
            return
        if not self._at("("):
            raise GuestError(Err.EPARSE, f"expected '(' after {name.text!r} at {opener.pos}")
        self._next()
        self._nest(opener)
        nargs = 0
        if not self._at(")"):
            self._expr()
            nargs = 1
            while self._at(","):
                self._next()
                self._expr()
                nargs += 1
        self._close(opener)
        if nargs < func.min_args or (func.max_args is not None and nargs > func.max_args):
            want = f"{func.min_args} argument" + ("" if func.min_args == 1 else "s")
            if func.max_args is None:
                want += " or more"
            raise GuestError(Err.EPARSE, f"{name.text} takes {want}, got {nargs} at {name.pos}")
        self.steps.append(_Step(name.text, name.pos, nargs))


def parse_expression(text: str) -> list[_Step]:
    """The postfix steps of ``text``; EPARSE if malformed, ENOMEM if too long or a literal is."""
    if len(text) > MAX_INPUT_BYTES:
        raise GuestError(
            Err.ENOMEM, f"expression of {len(text)} characters exceeds {MAX_INPUT_BYTES}"
        )
    return _Parser(text).parse()


def _apply(step: _Step, args: list[Number]) -> Number:
    if step.op == "neg":
        return negate(args[0])
    binary = BINARY.get(step.op)
    if binary is not None:
        return binary(args[0], args[1])
    return FUNCTIONS[step.op].fn(*args)


def evaluate(text: str, deadline: float | None = None) -> Number:
    """The value of the expression ``text``; ``deadline`` is a ``time.monotonic()`` instant.

    Every syntax error is found before any arithmetic runs. A failing operation's detail
    gets the operator's position appended.
    """
    steps = parse_expression(text)
    stack: list[Number] = []
    for step in steps:
        if deadline is not None and time.monotonic() > deadline:
            raise GuestError(Err.ENOMEM, "expression ran out of time; split it into smaller calls")
        if step.op == "num":
            stack.append(step.value)
            continue
        args = stack[len(stack) - step.nargs :]
        del stack[len(stack) - step.nargs :]
        try:
            stack.append(_apply(step, args))
        except GuestError as exc:
            raise GuestError(exc.code, f"{exc.detail} at {step.pos}") from None
    return stack[0]


# ---- the capability -----------------------------------------------------------------------


class MathCapability:
    """Host functions of the ``math`` namespace; pure (no state, no side effects)."""

    namespace = "math"
    pure = True  # no side effects: a run may be repeated
    summary = "exact decimal-string math; EPARSE bad input; EBOUND /0, negative or fractional args; ENOMEM >10000 digits"

    def __init__(self, time_cap_s: float = TIME_CAP_S) -> None:
        self.time_cap_s = time_cap_s

    def _arg(self, ctx: RunContext, ptr: int) -> str:
        raw = ctx.read_bytes(ptr)
        if len(raw) > MAX_INPUT_BYTES:
            raise GuestError(Err.ENOMEM, f"input of {len(raw)} bytes exceeds {MAX_INPUT_BYTES}")
        return raw.decode("utf-8", errors="replace")

    def eval(self, ctx: RunContext, expr: int) -> tuple[int, int]:
        text = self._arg(ctx, expr)
        deadline = time.monotonic() + min(self.time_cap_s, ctx.remaining())
        return ctx.alloc_str(format_number(evaluate(text, deadline))), 0

    def _unary(
        self, fn: Callable[[Number], Number]
    ) -> Callable[[RunContext, int], tuple[int, int]]:
        def impl(ctx: RunContext, n: int) -> tuple[int, int]:
            return ctx.alloc_str(format_number(fn(parse_number(self._arg(ctx, n))))), 0

        return impl

    def _binary(
        self, fn: Callable[[Number, Number], Number]
    ) -> Callable[[RunContext, int, int], tuple[int, int]]:
        def impl(ctx: RunContext, a: int, b: int) -> tuple[int, int]:
            left, right = self._arg(ctx, a), self._arg(ctx, b)
            value = fn(parse_number(left), parse_number(right))
            return ctx.alloc_str(format_number(value)), 0

        return impl

    def isprime(self, ctx: RunContext, n: int) -> tuple[int, int]:
        answer = isprime(parse_number(self._arg(ctx, n)))
        return ctx.alloc_str("true" if answer else "false"), 0

    def functions(self) -> list[HostFunction]:
        fn = partial(host, self.namespace)
        return [
            fn("eval", "expr -> ptr err", self.eval,
               'Python-like expr, e.g. "2**100 // 7 + comb(52,5)"; n!, abs min max and calls '
               "below but isprime; EPARSE syntax"),
            fn("add", "a b -> ptr err", self._binary(add), "a + b"),
            fn("sub", "a b -> ptr err", self._binary(sub), "a - b"),
            fn("mul", "a b -> ptr err", self._binary(mul), "a * b"),
            fn("div", "a b -> ptr err", self._binary(div), "a / b, inexact rounds to 28 significant digits"),
            fn("mod", "a b -> ptr err", self._binary(mod), "a % b with the sign of b"),
            fn("pow", "a b -> ptr err", self._binary(power), "a ** b for whole b (b < 0 rounds like div)"),
            fn("factorial", "n -> ptr err", self._unary(factorial), "n!"),
            fn("gcd", "a b -> ptr err", self._binary(gcd), "greatest common divisor"),
            fn("lcm", "a b -> ptr err", self._binary(lcm), "least common multiple"),
            fn("comb", "n k -> ptr err", self._binary(comb), "ways to choose k of n"),
            fn("perm", "n k -> ptr err", self._binary(perm), "ordered choices of k of n"),
            fn("isqrt", "n -> ptr err", self._unary(isqrt), "floor of the square root"),
            fn("isprime", "n -> ptr err", self.isprime, f'"true" or "false"; ENOMEM past {ISPRIME_MAX_DIGITS} digits'),
        ]  # fmt: skip
