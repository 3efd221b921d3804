"""Exact arithmetic on decimal strings, the numbers behind the ``math`` capability
(``capabilities.math`` reads expressions and offers the host functions).

Numbers are plain decimal strings: an optional sign, digits, an optional fraction
(``"-12"``, ``"3.5"``, ``".5"``); no exponents, no ``_``, ASCII digits only. Whole numbers
are Python ints, others ``decimal.Decimal``; results are rendered without an exponent, with
trailing zeros stripped, and a whole result has no ``.0``.

Exactness: ``+ - * // % **`` and the integer functions are exact. Only an inexact quotient
(``/``, or ``**`` with a negative exponent) is rounded: to ``DIV_DIGITS`` (28) significant
digits, half-even, widened to keep 10 decimals when the integer part is longer than 18
digits (``1/3`` is ``0.3333333333333333333333333333``). ``//`` and ``%`` floor like Python
(the remainder takes the sign of the divisor), also on decimals.

Sizes are estimated and refused BEFORE the work where the work could be large (``a**b``
from ``b*log10|a|``, factorial/comb/perm from log-gamma), so ``10**10**10`` is refused at
once: ENOMEM past ``MAX_DIGITS`` digits, and ``isprime`` past ``ISPRIME_MAX_DIGITS``; EBOUND
for division by zero and domain errors.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
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

from rt.codes import Err
from rt.host import GuestError

Number = int | Decimal

MAX_DIGITS = 10_000  # digits of any value: literal, intermediate or result
DIV_DIGITS = 28  # significant digits of an inexact quotient
DIV_MIN_DECIMALS = 10  # ... widened to keep this many decimals for a long integer part
ISPRIME_MAX_DIGITS = 300

_INT_LIMIT = 10**MAX_DIGITS
_ISPRIME_LIMIT = 10**ISPRIME_MAX_DIGITS
_EXACT_PREC = 2 * MAX_DIGITS + 10  # + - * of two capped values is always exact at this precision
_LN10 = math.log(10)
_STR_SAFE_BITS = 13_000  # ints below 2**13000 (~3900 digits) convert with str()/int() directly
_NUMBER = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)")


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
