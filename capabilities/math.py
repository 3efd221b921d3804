"""The ``math`` capability: exact arithmetic on decimal strings (pure, granted by default).

Numbers are plain decimal strings: an optional sign, digits, an optional fraction
(``"-12"``, ``"3.5"``, ``".5"``); no exponents, no ``_``, ASCII digits only. Whole numbers
are Python ints, others ``decimal.Decimal``; results are rendered without an exponent, with
trailing zeros stripped, and a whole result has no ``.0``.

Exactness: ``+ - * // % **`` and the integer functions are exact. Only an inexact quotient
(``/``, or ``**`` with a negative exponent) is rounded: to ``DIV_DIGITS`` (28) significant
digits, half-even, widened to keep 10 decimals when the integer part is longer than 18
digits (``1/3`` is ``0.3333333333333333333333333333``). ``//`` and ``%`` floor like Python
(the remainder takes the sign of the divisor), also on decimals.

``evaluate`` reads an expression with its own tokenizer and recursive-descent parser (no
Python ``eval``), in Python's precedence: ``+ -`` < ``* / // %`` < unary ``- +`` < ``**``
(right-associative, so ``-2**2`` is -4 and ``2**3**2`` is 512). Calls: ``abs min max
factorial gcd lcm comb perm isqrt`` (``isprime`` answers true/false, so it is a host
function only). The parser emits postfix steps that a loop evaluates, so a long chain such
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

import math
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from decimal import (
    ROUND_HALF_EVEN,
    Context,
    Decimal,
    DecimalException,
    DivisionByZero,
    Inexact,
    InvalidOperation,
    Overflow,
)
from functools import partial

from capabilities.base import host
from rt.codes import Err
from rt.host import GuestError, HostFunction, RunContext

Number = int | Decimal

MAX_DIGITS = 10_000  # digits of any value: literal, intermediate or result
MAX_INPUT_BYTES = 25_000  # one expression or number argument (two max-size numbers fit)
MAX_DEPTH = 100  # nesting of parentheses, calls, unary signs and ** chains
DIV_DIGITS = 28  # significant digits of an inexact quotient
DIV_MIN_DECIMALS = 10  # ... widened to keep this many decimals for a long integer part
ISPRIME_MAX_DIGITS = 300
TIME_CAP_S = 0.05  # wall-clock budget of one math.eval, checked between operations

_INT_LIMIT = 10**MAX_DIGITS
_ISPRIME_LIMIT = 10**ISPRIME_MAX_DIGITS
_EXACT_PREC = 2 * MAX_DIGITS + 10  # + - * of two capped values is always exact at this precision
_LN10 = math.log(10)
_STR_SAFE_BITS = 13_000  # ints below 2**13000 (~3900 digits) convert with str()/int() directly
_NUMBER = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)")
_TOKEN = re.compile(
    r"(?P<num>[0-9]+(?:\.[0-9]*)?|\.[0-9]+)|(?P<name>[A-Za-z_][A-Za-z0-9_]*)|(?P<op>\*\*|//|[-+*/%(),])"
)


# ---- numbers ------------------------------------------------------------------------------


def _context(prec: int, *, exact: bool = False) -> Context:
    """A fresh context per use: contexts record flags, so none is shared between calls."""
    traps = [InvalidOperation, DivisionByZero, Overflow] + ([Inexact] if exact else [])
    return Context(prec=prec, rounding=ROUND_HALF_EVEN, traps=traps)


def _too_big(what: str) -> GuestError:
    return GuestError(Err.ENOMEM, f"{what} has more than {MAX_DIGITS} digits")


def _int(v: int) -> int:
    if -_INT_LIMIT < v < _INT_LIMIT:
        return v
    raise _too_big("result")


def _dec(d: Decimal) -> Number:
    """``d`` capped and in canonical form: an int when whole, else without trailing zeros."""
    d = d.normalize(_context(_EXACT_PREC))  # exact: values never have more digits than that
    _, digits, exp = d.as_tuple()
    assert isinstance(exp, int), "only finite values reach here (the traps are on)"
    if exp >= 0:
        if len(digits) + exp > MAX_DIGITS:
            raise _too_big("result")
        return int(d)
    if max(len(digits), -exp) > MAX_DIGITS:
        raise _too_big("result")
    return d


def _d(v: Number) -> Decimal:
    return v if isinstance(v, Decimal) else Decimal(v)


def _digits_to_int(digits: str) -> int:
    """``int(digits)`` without CPython's 4300-digit conversion limit (pieces of 4000)."""
    value = 0
    for i in range(0, len(digits), 4000):
        piece = digits[i : i + 4000]
        value = value * 10 ** len(piece) + int(piece)
    return value


def parse_number(text: str) -> Number:
    """A decimal number (surrounding whitespace allowed); EPARSE if malformed, ENOMEM if too long."""
    stripped = text.strip()
    if not _NUMBER.fullmatch(stripped):
        raise GuestError(Err.EPARSE, f"not a decimal number: {text[:40]!r}")
    return _literal(stripped)


def _literal(text: str) -> Number:
    sign = -1 if text.startswith("-") else 1
    whole, _, frac = text.lstrip("+-").partition(".")
    whole, frac = whole.lstrip("0"), frac.rstrip("0")
    if max(len(whole), len(frac)) > MAX_DIGITS:
        raise _too_big(f"number {text[:20]}...")
    if not frac:
        return sign * _digits_to_int(whole or "0")
    return _dec(Decimal(text))  # exact: the constructor never rounds


def format_number(v: Number) -> str:
    """The decimal text of ``v``: no exponent, no trailing zeros, no ``.0``."""
    if isinstance(v, int):
        return str(v) if v.bit_length() < _STR_SAFE_BITS else format(Decimal(v), "f")
    return format(v, "f")


def _show(v: Number) -> str:
    """``v`` for an error detail: cut short (and a huge int is never str()-ed whole)."""
    text = format_number(v)
    return text if len(text) <= 30 else text[:27] + "..."


def _whole(v: Number, fn: str) -> int:
    if isinstance(v, int):
        return v
    raise GuestError(Err.EBOUND, f"{fn} needs whole numbers, got {_show(v)}")


def _exact(op: Callable[[Context], Decimal]) -> Number:
    try:
        return _dec(op(_context(_EXACT_PREC, exact=True)))
    except Inexact:
        raise _too_big("result") from None
    except DecimalException as exc:
        raise GuestError(Err.EBOUND, f"undefined operation ({type(exc).__name__})") from None


# ---- operations (exact unless noted; each checks the caps) ---------------------------------


def add(a: Number, b: Number) -> Number:
    if isinstance(a, int) and isinstance(b, int):
        return _int(a + b)
    return _exact(lambda c: c.add(_d(a), _d(b)))


def sub(a: Number, b: Number) -> Number:
    if isinstance(a, int) and isinstance(b, int):
        return _int(a - b)
    return _exact(lambda c: c.subtract(_d(a), _d(b)))


def mul(a: Number, b: Number) -> Number:
    if isinstance(a, int) and isinstance(b, int):
        return _int(a * b)
    return _exact(lambda c: c.multiply(_d(a), _d(b)))


def negate(a: Number) -> Number:
    return -a if isinstance(a, int) else a.copy_negate()  # copy_negate never rounds


def absolute(a: Number) -> Number:
    return abs(a) if isinstance(a, int) else a.copy_abs()


def _nonzero(b: Number) -> None:
    if b == 0:
        raise GuestError(Err.EBOUND, "division by zero")


def div(a: Number, b: Number) -> Number:
    """``a / b``: exact when the quotient is whole or short, else rounded (see the module doc)."""
    _nonzero(b)
    if isinstance(a, int) and isinstance(b, int) and a % b == 0:
        return _int(a // b)
    x, y = _d(a), _d(b)
    q = _context(DIV_DIGITS).divide(x, y)
    int_digits = q.adjusted() + 1
    if int_digits > DIV_DIGITS - DIV_MIN_DECIMALS:
        if int_digits > MAX_DIGITS:
            raise _too_big("quotient")
        q = _context(int_digits + DIV_MIN_DECIMALS).divide(x, y)
    return _dec(q)


def floordiv(a: Number, b: Number) -> Number:
    """``a // b``, the floor of the quotient, like Python."""
    _nonzero(b)
    if isinstance(a, int) and isinstance(b, int):
        return _int(a // b)
    x, y = _d(a), _d(b)
    q = _exact(lambda c: c.divide_int(x, y))
    r = _exact(lambda c: c.remainder(x, y))
    return sub(q, 1) if r != 0 and (r < 0) != (y < 0) else q


def mod(a: Number, b: Number) -> Number:
    """``a % b`` with the sign of ``b``, like Python."""
    _nonzero(b)
    if isinstance(a, int) and isinstance(b, int):
        return a % b
    y = _d(b)
    r = _exact(lambda c: c.remainder(_d(a), y))
    return add(r, b) if r != 0 and (r < 0) != (y < 0) else r


def _log10(v: Number) -> float:
    """``log10(|v|)`` for any capped value (a float of a 10,000-digit Decimal would overflow)."""
    if isinstance(v, int):
        return math.log10(abs(v))
    d = _context(DIV_DIGITS).plus(v.copy_abs())  # 28 digits are plenty for an estimate
    return d.adjusted() + math.log10(float(d.scaleb(-d.adjusted())))


def power(a: Number, b: Number) -> Number:
    """``a ** b`` for a whole ``b``; a negative ``b`` is ``1 / a**-b`` (rounded like ``/``)."""
    if not isinstance(b, int):
        raise GuestError(Err.EBOUND, f"exponent {_show(b)} is not a whole number")
    if b < 0:
        if a == 0:
            raise GuestError(Err.EBOUND, "zero to a negative power")
        return div(1, power(a, -b))
    if a == 0 or a == 1 or b == 0:
        return 1 if b == 0 else a
    if a == -1:
        return 1 if b % 2 == 0 else -1
    # |a| >= 2, or a non-whole decimal: either way at least b/4 digits (0.5**b has b decimals).
    if b > 4 * MAX_DIGITS:
        raise _too_big(f"{_show(a)}**{_show(b)}")
    if isinstance(a, int):
        estimate = b * _log10(a)
    else:  # a = m * 10**e: m**b has about b*log10|m| digits and e*b places follow the point
        exp = a.as_tuple().exponent
        assert isinstance(exp, int)
        estimate = b * (-exp + max(_log10(a), 0.0))
    if estimate > MAX_DIGITS + 1:
        raise GuestError(
            Err.ENOMEM,
            f"{_show(a)}**{_show(b)} has more than {MAX_DIGITS} digits (about {estimate:.0f})",
        )
    if isinstance(a, int):
        return _int(a**b)
    return _exact(lambda c: c.power(a, b))


def _log10_factorial(n: int) -> float:
    return math.lgamma(n + 1) / _LN10


def factorial(n: Number) -> Number:
    n = _whole(n, "factorial")
    if n < 0:
        raise GuestError(Err.EBOUND, f"factorial of a negative number ({_show(n)})")
    if n > 10**6 or _log10_factorial(n) > MAX_DIGITS + 1:
        raise _too_big(f"factorial({_show(n)})")
    return _int(math.factorial(n))


def _log10_falling(n: int, k: int) -> float:
    """log10 of ``n * (n-1) * ... * (n-k+1)``, an upper bound when ``n`` is huge."""
    if n <= 10**15:  # float log-gamma is accurate to well under a digit here
        return (math.lgamma(n + 1) - math.lgamma(n - k + 1)) / _LN10
    if k > MAX_DIGITS:  # every factor is over 10**15 (and k may not fit a float)
        return math.inf
    return k * _log10(n)


def _comb_perm_args(n: Number, k: Number, fn: str) -> tuple[int, int]:
    n, k = _whole(n, fn), _whole(k, fn)
    if n < 0 or k < 0:
        raise GuestError(Err.EBOUND, f"{fn} needs n >= 0 and k >= 0, got ({_show(n)}, {_show(k)})")
    return n, k


def comb(n: Number, k: Number) -> Number:
    """Ways to choose ``k`` of ``n`` (0 when k > n)."""
    n, k = _comb_perm_args(n, k, "comb")
    if k > n:
        return 0
    k = min(k, n - k)
    if _log10_falling(n, k) - _log10_factorial(k) > MAX_DIGITS + 2:
        raise _too_big(f"comb({_show(n)}, {_show(k)})")
    return _int(math.comb(n, k))


def perm(n: Number, k: Number) -> Number:
    """Ordered arrangements of ``k`` of ``n`` (0 when k > n)."""
    n, k = _comb_perm_args(n, k, "perm")
    if k > n:
        return 0
    if _log10_falling(n, k) > MAX_DIGITS + 2:
        raise _too_big(f"perm({_show(n)}, {_show(k)})")
    return _int(math.perm(n, k))


def gcd(a: Number, b: Number) -> Number:
    return math.gcd(_whole(a, "gcd"), _whole(b, "gcd"))


def lcm(a: Number, b: Number) -> Number:
    return _int(math.lcm(_whole(a, "lcm"), _whole(b, "lcm")))


def isqrt(n: Number) -> Number:
    n = _whole(n, "isqrt")
    if n < 0:
        raise GuestError(Err.EBOUND, f"isqrt of a negative number ({_show(n)})")
    return math.isqrt(n)


# ---- primality ----------------------------------------------------------------------------

_SMALL_PRIMES = (2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37, 41, 43, 47, 53, 59, 61, 67, 71)
# Miller-Rabin with the primes up to 41 as bases is exact below this bound (Sorenson & Webster).
_MR_EXACT_BOUND = 3_317_044_064_679_887_385_961_981


def _strong_probable_prime(n: int, base: int) -> bool:
    d, s = n - 1, 0
    while d % 2 == 0:
        d, s = d // 2, s + 1
    x = pow(base, d, n)
    if x in (1, n - 1):
        return True
    for _ in range(s - 1):
        x = x * x % n
        if x == n - 1:
            return True
    return False


def _jacobi(a: int, n: int) -> int:
    """The Jacobi symbol (a/n) for odd n > 0."""
    a %= n
    result = 1
    while a:
        while a % 2 == 0:
            a //= 2
            if n % 8 in (3, 5):
                result = -result
        a, n = n, a
        if a % 4 == 3 and n % 4 == 3:
            result = -result
        a %= n
    return result if n == 1 else 0


def _strong_lucas_probable_prime(n: int) -> bool:
    """Strong Lucas test with Selfridge's parameters (odd n > 2, not a perfect square)."""
    d_param = 5
    while True:
        j = _jacobi(d_param, n)
        if j == -1:
            break
        if j == 0 and abs(d_param) != n:
            return False
        d_param = -d_param - 2 if d_param > 0 else -d_param + 2
    p, q = 1, (1 - d_param) // 4
    d, s = n + 1, 0
    while d % 2 == 0:
        d, s = d // 2, s + 1
    u, v, qk = 1, p, q % n  # U_1, V_1, Q^1
    for bit in bin(d)[3:]:
        u, v, qk = u * v % n, (v * v - 2 * qk) % n, qk * qk % n  # index k -> 2k
        if bit == "1":  # 2k -> 2k+1; the halvings are exact mod odd n
            u, v = p * u + v, d_param * u + p * v
            u = (u + n if u % 2 else u) // 2 % n
            v = (v + n if v % 2 else v) // 2 % n
            qk = qk * q % n
    if u == 0 or v == 0:
        return True
    for _ in range(s - 1):
        v, qk = (v * v - 2 * qk) % n, qk * qk % n
        if v == 0:
            return True
    return False


def isprime(n: Number) -> bool:
    """Exact below 3.3e24 (Miller-Rabin, fixed bases), Baillie-PSW above (no known error)."""
    n = _whole(n, "isprime")
    if abs(n) >= _ISPRIME_LIMIT:
        raise GuestError(Err.ENOMEM, f"isprime takes at most {ISPRIME_MAX_DIGITS} digits")
    if n < 2:
        return False
    for p in _SMALL_PRIMES:
        if n % p == 0:
            return n == p
    if n < _MR_EXACT_BOUND:
        return all(_strong_probable_prime(n, p) for p in _SMALL_PRIMES[:13])
    if math.isqrt(n) ** 2 == n:
        return False
    return _strong_probable_prime(n, 2) and _strong_lucas_probable_prime(n)


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
               'Python-like expr, e.g. "2**100 // 7 + comb(52,5)"; abs min max and calls '
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
