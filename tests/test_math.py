"""The math capability: table tests of the arithmetic and the parser, every cap, property
tests against Python's own arithmetic, then the host functions through the real runtime."""

from __future__ import annotations

import math
import random
import time
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction

import pytest

from capabilities import standard_registry
from capabilities.math import MAX_DEPTH, MAX_INPUT_BYTES, MathCapability, evaluate
from capabilities.numbers import (
    MAX_DIGITS,
    Number,
    _strong_lucas_probable_prime,
    add,
    div,
    floordiv,
    format_number,
    isprime,
    mod,
    mul,
    parse_number,
    sub,
)
from capabilities.sys import SysCapability
from rt.codes import Err
from rt.engine import Runtime
from rt.host import GuestError, HostFunction
from rt.limits import Limits


def short_id(value: object) -> str | None:
    """A test id that never str()s a huge int (CPython refuses past 4300 digits)."""
    if isinstance(value, int) and value.bit_length() > 1000:
        return f"int{value.bit_length()}bits"
    if isinstance(value, str) and len(value) > 40:
        return f"{value[:20]}...({len(value)})"
    return None


def ev(text: str) -> str:
    return format_number(evaluate(text))


def code_of(text: str) -> GuestError:
    with pytest.raises(GuestError) as info:
        evaluate(text)
    return info.value


# ---- numbers ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0", 0),
        ("42", 42),
        (" -17 \n", -17),
        ("+8", 8),
        ("007", 7),
        ("-0", 0),
        ("1.500", Decimal("1.5")),
        ("2.000", 2),
        ("0.0", 0),
        (".5", Decimal("0.5")),
        ("-.25", Decimal("-0.25")),
        ("3.", 3),
        ("9" * MAX_DIGITS, 10**MAX_DIGITS - 1),
    ],
    ids=short_id,
)
def test_parse_number(text: str, expected: Number) -> None:
    value = parse_number(text)
    assert value == expected and type(value) is type(expected)


@pytest.mark.parametrize(
    "text",
    [
        "",
        " ",
        "abc",
        "1e5",
        "1E5",
        "1_000",
        "0x10",
        "--1",
        "1 2",
        "1,5",
        "١٢",
        "４２",
        ".",
        "-",
        "inf",
        "NaN",
    ],
    ids=short_id,
)
def test_parse_number_rejects(text: str) -> None:
    with pytest.raises(GuestError) as info:
        parse_number(text)
    assert info.value.code is Err.EPARSE


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (0, "0"),
        (-5, "-5"),
        (Decimal("0.5"), "0.5"),
        (Decimal("-0.001"), "-0.001"),
        (10**5000, "1" + "0" * 5000),  # past CPython's 4300-digit str() limit
        (-(10**MAX_DIGITS - 1), "-" + "9" * MAX_DIGITS),
    ],
    ids=short_id,
)
def test_format_number(value: Number, text: str) -> None:
    assert format_number(value) == text


# ---- expressions --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        ("2**100", str(2**100)),
        ("(3+4)*5", "35"),
        ("7/2", "3.5"),
        ("10/4", "2.5"),
        ("100/10/2", "5"),
        ("1/8", "0.125"),
        ("1/3", "0.3333333333333333333333333333"),  # 28 significant digits
        ("2/3", "0.6666666666666666666666666667"),  # rounded half-even
        ("1/3000", "0.0003333333333333333333333333333"),
        ("10**30/7", "142857142857142857142857142857.1428571429"),  # 10 decimals kept
        ("2*3+4*5", "26"),
        ("3-2-1", "0"),
        ("2**3**2", "512"),  # right-associative
        ("(2**3)**2", "64"),
        ("-2**2", "-4"),  # unary minus binds looser than **
        ("(-2)**3", "-8"),
        ("2**-1", "0.5"),
        ("2**-3", "0.125"),
        ("0.5**-3", "8"),
        ("0**0", "1"),
        ("1.1**2", "1.21"),
        ("0.5**3", "0.125"),
        ("--3", "3"),
        ("+3", "3"),
        ("2*-3", "-6"),
        ("7//2", "3"),
        ("-7//2", "-4"),  # floor, like Python
        ("-7%3", "2"),  # sign of the divisor, like Python
        ("7%-3", "-2"),
        ("7.5%2", "1.5"),
        ("-7.5%2", "0.5"),
        ("-7.5//2", "-4"),
        ("0.1+0.2", "0.3"),  # exact
        ("1.50*2", "3"),  # a whole result has no .0
        ("1.25*1.25", "1.5625"),
        ("0.1*3-0.3", "0"),
        (".5*2", "1"),
        ("1.", "1"),
        ("  1 +\n\t2 ", "3"),
        ("factorial(20)", "2432902008176640000"),
        ("factorial(0)", "1"),
        ("gcd(12, 18)", "6"),
        ("gcd(-12, 18, 4)", "2"),
        ("lcm(4, 6)", "12"),
        ("lcm(4, 6, 10)", "60"),
        ("comb(52, 5)", "2598960"),
        ("comb(5, 7)", "0"),
        ("perm(5, 2)", "20"),
        ("isqrt(99)", "9"),
        ("isqrt(10**40)", str(10**20)),
        ("abs(-3.5)", "3.5"),
        ("abs(-3)", "3"),
        ("min(3, -2, 7)", "-2"),
        ("max(1.5, 1)", "1.5"),
        ("max(1.50, 1)", "1.5"),
        ("1.500", "1.5"),
        ("-0.0", "0"),
        ("max(2)", "2"),
        ("2**100 % 1000", "376"),
        ("factorial(25) // factorial(23)", "600"),
        ("25!", "15511210043330985984000000"),  # as mathematics (and the model) writes it
        ("factorial 25", "15511210043330985984000000"),  # a one-argument call on a number
        ("isqrt 99", "9"),
        ("factorial 3 * 2", "12"),  # binds like factorial(3)
        ("3!!", "720"),
        ("-3!", "-6"),  # the factorial binds first, as in mathematics
        ("2**3!", "64"),
        ("3!**2", "36"),
        ("(1+2)! + 0!", "7"),
        ("(((((1)))))", "1"),
        ("10**9999 % 7", str(10**9999 % 7)),
    ],
    ids=short_id,
)
def test_evaluate(expr: str, expected: str) -> None:
    assert ev(expr) == expected


@pytest.mark.parametrize(
    ("expr", "detail"),
    [
        ("", "empty expression"),
        ("   ", "empty expression"),
        ("1+", "unexpected end of expression at 2"),
        ("(1", "missing ')' for the '(' at 0: found the end at 2"),
        ("(1 2)", "missing ')' for the '(' at 0: found '2' at 3"),
        ("1)", "unexpected ')' at 1"),
        ("(3+4))*5", "unexpected ')' at 5"),
        ("2x", "unexpected 'x' at 1"),
        ("1 2", "unexpected '2' at 2"),
        ("1e5", "unexpected 'e5' at 1"),
        ("1..2", "unexpected '.2' at 2"),
        ("*3", "unexpected '*' at 0"),
        ("2 ^ 3", "unexpected '^' at 2"),
        ("2***3", "unexpected '*' at 3"),
        ("()", "unexpected ')' at 1"),
        ("2(3)", "unexpected '(' at 1"),
        ("１", "unexpected '１' at 0"),
        ("sqrt(4)", "unknown function 'sqrt' at 0; known: abs, min"),
        ("isprime(7)", "unknown function 'isprime'"),
        ("abs x", "expected '(' after 'abs' at 4"),
        ("gcd 12", "expected '(' after 'gcd' at 4"),  # only a one-argument call needs no (
        ("abs", "expected '(' after 'abs' at 3"),
        ("abs()", "abs takes 1 argument, got 0 at 0"),
        ("abs(1, 2)", "abs takes 1 argument, got 2 at 0"),
        ("gcd(1)", "gcd takes 2 arguments or more, got 1 at 0"),
        ("comb(1, 2, 3)", "comb takes 2 arguments, got 3 at 0"),
        ("gcd(1,)", "unexpected ')' at 6"),
        ("1/0 + )", "unexpected ')' at 6"),  # syntax errors come before any arithmetic
        ("!3", "unexpected '!' at 0"),
        ("3 != 4", "unexpected '=' at 3"),
    ],
    ids=short_id,
)
def test_parse_errors(expr: str, detail: str) -> None:
    err = code_of(expr)
    assert err.code is Err.EPARSE
    assert detail in err.detail


@pytest.mark.parametrize(
    ("expr", "detail"),
    [
        ("1/0", "division by zero at 1"),
        ("1//0", "division by zero"),
        ("1%0", "division by zero"),
        ("1.5/0.0", "division by zero"),
        ("5 % (2-2)", "division by zero at 2"),
        ("0**-1", "zero to a negative power"),
        ("2**0.5", "exponent 0.5 is not a whole number"),
        ("(-8)**(1/3)", "not a whole number"),
        ("factorial(-1)", "factorial of a negative number (-1)"),
        ("factorial(2.5)", "factorial needs whole numbers, got 2.5"),
        ("isqrt(-4)", "isqrt of a negative number"),
        ("comb(-1, 2)", "comb needs n >= 0 and k >= 0"),
        ("perm(5, -1)", "perm needs n >= 0 and k >= 0"),
        ("gcd(1.5, 3)", "gcd needs whole numbers"),
        ("lcm(2, 0.5)", "lcm needs whole numbers"),
    ],
    ids=short_id,
)
def test_domain_errors_are_ebound(expr: str, detail: str) -> None:
    err = code_of(expr)
    assert err.code is Err.EBOUND
    assert detail in err.detail


def test_isprime_is_not_an_eval_function_but_is_listed() -> None:
    assert "isprime" not in code_of("isprime(7)").detail.split("known: ")[1]


# ---- caps ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ok", "too_big"),
    [
        ("10**9999", "10**10000"),
        ("2**33219", "2**33220"),
        ("factorial(3248)", "factorial(3249)"),
        ("9" * MAX_DIGITS, "9" * (MAX_DIGITS + 1)),  # a literal
        ("0." + "0" * (MAX_DIGITS - 1) + "1", "0." + "0" * MAX_DIGITS + "1"),
        ("1/10**9999", "1/10**10000"),
        ("0.5**10000", "0.5**10001"),
        ("10**5000*10**4999", "10**5000*10**5000"),
        ("10**9998+0.5", "10**9999+0.5"),
    ],
    ids=short_id,
)
def test_digit_cap_boundary(ok: str, too_big: str) -> None:
    assert len(ev(ok).lstrip("-").replace(".", "").lstrip("0")) <= MAX_DIGITS
    err = code_of(too_big)
    assert err.code is Err.ENOMEM, err
    assert f"more than {MAX_DIGITS} digits" in err.detail


@pytest.mark.parametrize(
    "bomb",
    [
        "10**10**10",
        "9**9**9**9",
        "2**(2**64)",
        "(10**9999)**(10**9999)",
        "1.0000001**(10**12)",
        "0.5**(10**100)",
        "2**-(10**12)",
        "(-3)**100000",
        "factorial(10**100)",
        "factorial(100000)",
        "factorial(factorial(20))",
        "comb(10**100, 10**50)",
        "comb(10**15, 10**7)",
        "comb(100000, 50000)",
        "perm(10**6, 10**6)",
        "perm(10**100, 10**4)",
        "lcm(10**6000 + 1, 10**6000 + 3)",
        "1/3/10**9990",
        "(1/3)**(10**5)",
        "10**9999 * 10**9999 * 10**9999",
    ],
    ids=short_id,
)
def test_bombs_are_refused_with_enomem(bomb: str) -> None:
    # the caps refuse these before the work (no timing assertion: a hang would show here)
    assert code_of(bomb).code is Err.ENOMEM


def test_isprime_digit_cap() -> None:
    assert isprime(10**299 + 1) in (True, False)
    with pytest.raises(GuestError) as info:
        isprime(10**300 + 1)
    assert info.value.code is Err.ENOMEM


def test_expression_length_cap() -> None:
    chain = "1+" * 10_000 + "1"  # long, but a flat chain: evaluated without recursion
    assert ev(chain) == "10001"
    too_long = "1+" * (MAX_INPUT_BYTES // 2) + "1"
    assert len(too_long) > MAX_INPUT_BYTES
    err = code_of(too_long)
    assert err.code is Err.ENOMEM and "exceeds" in err.detail


@pytest.mark.parametrize(
    ("opener", "closer", "value"),
    [
        ("(", ")", "1"),
        ("abs(", ")", "1"),
        ("-", "", "1"),  # an even number of signs
        ("+", "", "1"),
        ("1**", "", "1"),
    ],
    ids=short_id,
)
def test_nesting_cap(opener: str, closer: str, value: str) -> None:
    assert ev(opener * MAX_DEPTH + "1" + closer * MAX_DEPTH) == value
    err = code_of(opener * (MAX_DEPTH + 1) + "1" + closer * (MAX_DEPTH + 1))
    assert err.code is Err.EPARSE and f"nested deeper than {MAX_DEPTH}" in err.detail


def test_deep_nesting_never_recurses_far() -> None:
    for text in ["(" * 5000 + "1" + ")" * 5000, "-" * 20_000 + "1", "2**" * 8000 + "2"]:
        assert code_of(text).code is Err.EPARSE


def test_time_cap() -> None:
    err = code_of_deadline("1+1", time.monotonic() - 1)
    assert err.code is Err.ENOMEM and "ran out of time" in err.detail
    assert format_number(evaluate("1+1", time.monotonic() + 60)) == "2"


def code_of_deadline(text: str, deadline: float) -> GuestError:
    with pytest.raises(GuestError) as info:
        evaluate(text, deadline)
    return info.value


# ---- primality ----------------------------------------------------------------------------


def _sieve(n: int) -> list[bool]:
    flags = [False, False] + [True] * (n - 1)
    for i in range(2, math.isqrt(n) + 1):
        if flags[i]:
            flags[i * i :: i] = [False] * len(flags[i * i :: i])
    return flags


def test_isprime_matches_a_sieve() -> None:
    flags = _sieve(20_000)
    assert [n for n in range(-5, 20_001) if isprime(n)] == [n for n, f in enumerate(flags) if f]


@pytest.mark.parametrize(
    ("n", "prime"),
    [
        (2**31 - 1, True),
        (2**61 - 1, True),
        (2**89 - 1, True),
        (2**127 - 1, True),
        (2**521 - 1, True),
        (2**607 - 1, True),
        (10**100 + 267, True),  # the first prime after a googol
        (2**128 + 1, False),  # the Fermat number F7
        (561, False),  # Carmichael numbers
        (41041, False),
        (3215031751, False),  # strong pseudoprime to the bases 2, 3, 5, 7
        (3825123056546413051, False),  # ... to every base up to 23
        (318665857834031151167461, False),  # ... to every base up to 37
        (3317044064679887385961981, False),  # ... to every base up to 41
        ((2**89 - 1) * (2**107 - 1), False),
        ((10**100 + 267) ** 2, False),
        (3, True),
        (1, False),
        (0, False),
        (-7, False),
    ],
    ids=short_id,
)
def test_isprime_known_values(n: int, prime: bool) -> None:
    assert isprime(n) is prime


def test_strong_lucas_alone() -> None:
    # strong Lucas pseudoprimes (OEIS A217255) pass the Lucas half; Miller-Rabin catches them
    for n in (5459, 5777, 10877, 16109, 18971, 22499, 24569, 25199, 40309, 58519):
        assert _strong_lucas_probable_prime(n) and not isprime(n), n
    flags = _sieve(5000)
    for n in range(5, 5000, 2):
        if math.isqrt(n) ** 2 != n and flags[n]:
            assert _strong_lucas_probable_prime(n), n


def test_isprime_rejects_non_integers() -> None:
    with pytest.raises(GuestError) as info:
        isprime(Decimal("7.5"))
    assert info.value.code is Err.EBOUND


# ---- properties against Python ------------------------------------------------------------

ADD, MUL, UNARY, POW, ATOM = range(1, 6)


@dataclass(frozen=True)
class Tree:
    op: str  # "num", "neg", a binary operator, or a function name
    kids: tuple[Tree, ...] = ()
    n: int = 0


_CALLS = {"abs": 1, "min": 3, "max": 2, "gcd": 2, "lcm": 2}


def gen(rng: random.Random, depth: int) -> Tree:
    if depth == 0 or rng.random() < 0.25:
        return Tree(
            "num",
            n=rng.choice([rng.randint(-9, 9), rng.randint(-1000, 1000), rng.randint(0, 10**12)]),
        )
    kind = rng.random()
    if kind < 0.1:
        return Tree("neg", (gen(rng, depth - 1),))
    if kind < 0.2:
        return Tree("**", (gen(rng, min(depth - 1, 2)), Tree("num", n=rng.randint(0, 3))))
    if kind < 0.3:
        name = rng.choice(sorted(_CALLS))
        return Tree(name, tuple(gen(rng, depth - 1) for _ in range(_CALLS[name])))
    op = rng.choice(["+", "-", "*", "//", "%", "+", "-", "*"])
    return Tree(op, (gen(rng, depth - 1), gen(rng, depth - 1)))


def value(t: Tree) -> int:
    """Python's own arithmetic on the tree (ZeroDivisionError for // or % by zero)."""
    v = [value(k) for k in t.kids]
    ops = {
        "num": lambda: t.n,
        "neg": lambda: -v[0],
        "+": lambda: v[0] + v[1],
        "-": lambda: v[0] - v[1],
        "*": lambda: v[0] * v[1],
        "//": lambda: v[0] // v[1],
        "%": lambda: v[0] % v[1],
        "**": lambda: v[0] ** v[1],
        "abs": lambda: abs(v[0]),
        "min": lambda: min(v),
        "max": lambda: max(v),
        "gcd": lambda: math.gcd(*v),
        "lcm": lambda: math.lcm(*v),
    }
    return ops[t.op]()


def render(t: Tree, rng: random.Random) -> tuple[str, int]:
    """Python-precedence text with as few parentheses as needed (sometimes more, and spaces)."""

    def sub(k: Tree, need: int) -> str:
        text, prec = render(k, rng)
        return f"({text})" if prec < need or rng.random() < 0.05 else text

    sp = " " if rng.random() < 0.3 else ""
    if t.op == "num":
        return (str(t.n), ATOM) if t.n >= 0 else (f"-{sp}{-t.n}", UNARY)
    if t.op == "neg":
        return f"-{sp}{sub(t.kids[0], UNARY)}", UNARY
    if t.op == "**":
        return f"{sub(t.kids[0], ATOM)}{sp}**{sp}{sub(t.kids[1], UNARY)}", POW
    if t.op in ("+", "-"):
        return f"{sub(t.kids[0], ADD)}{sp}{t.op}{sp}{sub(t.kids[1], MUL)}", ADD
    if t.op in ("*", "//", "%"):
        return f"{sub(t.kids[0], MUL)}{sp}{t.op}{sp}{sub(t.kids[1], UNARY)}", MUL
    args = f",{sp}".join(render(k, rng)[0] for k in t.kids)
    return f"{t.op}({args})", ATOM


def test_random_integer_expressions_match_python() -> None:
    rng = random.Random(1234)
    errors = 0
    for _ in range(3000):
        tree = gen(rng, rng.randint(1, 5))
        text, _ = render(tree, rng)
        try:
            expected: int | None = value(tree)
        except ZeroDivisionError:
            expected = None
        if expected is None:
            errors += 1
            assert code_of(text).code is Err.EBOUND, text
        else:
            assert ev(text) == str(expected), text
    assert 0 < errors < 1000, "the generator should sometimes divide by zero, not mostly"


def _random_number(rng: random.Random) -> Number:
    """``mantissa / 10**scale`` written out as decimal text, then parsed."""
    scale = rng.choice([0, 0, 1, 2, 5, 12, 30])
    mantissa = rng.choice([rng.randint(-100, 100), rng.randint(-(10**40), 10**40)])
    digits = str(abs(mantissa)).rjust(scale + 1, "0")
    text = digits[: len(digits) - scale] + ("." + digits[-scale:] if scale else "")
    return parse_number(("-" if mantissa < 0 else "") + text)


def test_random_decimal_arithmetic_is_exact() -> None:
    rng = random.Random(1234)
    ops = [(add, lambda a, b: a + b), (sub, lambda a, b: a - b), (mul, lambda a, b: a * b)]
    ops += [(floordiv, lambda a, b: a // b), (mod, lambda a, b: a % b)]
    for _ in range(2000):
        a, b = _random_number(rng), _random_number(rng)
        for ours, exact in ops:
            if b == 0 and ours in (floordiv, mod):
                continue
            result = ours(a, b)
            assert Fraction(format_number(result)) == exact(Fraction(a), Fraction(b)), (ours, a, b)
            assert isinstance(result, int) == (Fraction(format_number(result)).denominator == 1)


def test_random_quotients_are_correctly_rounded() -> None:
    rng = random.Random(1234)
    for _ in range(2000):
        a, b = _random_number(rng), _random_number(rng)
        if b == 0:
            continue
        q = div(a, b)
        exact = Fraction(a) / Fraction(b)
        if exact.denominator == 1:
            assert q == exact and isinstance(q, int), (a, b)
            continue
        got = Fraction(format_number(q))
        digits = Decimal(format_number(q)).as_tuple().digits
        int_digits = max(Decimal(format_number(q)).adjusted() + 1, 0)
        assert len(digits) <= max(28, int_digits + 10), (a, b, q)
        assert abs(got - exact) <= abs(exact) / 10**27, (a, b, q)


# ---- the capability -----------------------------------------------------------------------


def test_docs_are_short_and_complete() -> None:
    cap = MathCapability()
    assert len(cap.summary.split()) <= 15
    fns = cap.functions()
    assert [f.name for f in fns] == [
        "eval", "add", "sub", "mul", "div", "mod", "pow", "factorial", "gcd", "lcm", "comb", "perm",
        "isqrt", "isprime",
    ]  # fmt: skip
    for f in fns:
        assert f.namespace == "math" and f.results == ("i32", "i32")
        assert "\n" not in f.doc
        assert len(f.doc.split()) <= (20 if f.name == "eval" else 15), f.name
        assert len(f.param_names) == len(f.params) and f.result_names == ("ptr", "err")


def test_registered_after_str_and_pure() -> None:
    registry = standard_registry()
    assert registry.names()[:3] == ["sys", "str", "math"]
    assert "math.eval (expr) -> (ptr err)" in registry.describe()
    assert "math.comb (n k) -> (ptr err)" in registry.describe()
    assert "math" in registry.pure_names()


def _runtime(**kw: float) -> Runtime:
    return Runtime(
        functions=[*SysCapability().functions(), *MathCapability(**kw).functions()],
        limits=Limits(),
    )


@pytest.fixture(scope="module")
def runtime() -> Runtime:
    return _runtime()


def show(call: str) -> str:
    """A body that makes ``call`` (returning ``(ptr err)``) and appends the string to the results."""
    return (
        "(local $p i32) (local $err i32)\n"
        f"{call} (local.set $err) (local.set $p)\n"
        "(check $err)\n(resv $p)\n(i32.const 0)"
    )


def status_of(call: str) -> str:
    return f"(local $err i32)\n{call} (local.set $err) (drop)\n(local.get $err)"


def test_long_form_eval(runtime: Runtime) -> None:
    body = (
        "(local $p i32) (local $err i32)\n"
        '(call $math.eval "2**100") (local.set $err) (local.set $p)\n'
        "(check $err)\n"
        "(resv $p)\n"
        '(call $math.eval "(3+4)*5 + factorial(20) / gcd(12, 18)") (local.set $err) (local.set $p)\n'
        "(check $err)\n"
        "(resv $p)\n"
        "(i32.const 0)"
    )
    result = runtime.run(body)
    assert (result.status, result.results) == (0, [str(2**100), str(35 + 2432902008176640000 // 6)])


A, B = 123456789012345678901234567890, 987654321098765432109876543210


@pytest.mark.parametrize(
    ("call", "args", "expected"),
    [
        ('(call $math.eval "7/2")', [], "3.5"),
        ('(call $math.eval "1/3")', [], "0.3333333333333333333333333333"),
        ("(call $math.eval (local.get $a))", ["gcd(12, 18) * -3.5"], "-21"),
        ("(call $math.add (local.get $a) (local.get $b))", ["0.1", "0.2"], "0.3"),
        ("(call $math.add (local.get $a) (local.get $b))", [" 1 ", "-1"], "0"),
        ("(call $math.sub (local.get $a) (local.get $b))", ["1", "1.5"], "-0.5"),
        ("(call $math.mul (local.get $a) (local.get $b))", [str(A), str(B)], str(A * B)),
        ("(call $math.div (local.get $a) (local.get $b))", ["1", "8"], "0.125"),
        ("(call $math.div (local.get $a) (local.get $b))", ["10", "4"], "2.5"),
        ("(call $math.mod (local.get $a) (local.get $b))", ["-7", "3"], "2"),
        ("(call $math.pow (local.get $a) (local.get $b))", ["2", "100"], str(2**100)),
        ("(call $math.pow (local.get $a) (local.get $b))", ["2", "-2"], "0.25"),
        ("(call $math.pow (local.get $a) (local.get $b))", ["2", "5000"], str(2**5000)),
        ("(call $math.factorial (local.get $a))", ["25"], str(math.factorial(25))),
        ("(call $math.gcd (local.get $a) (local.get $b))", ["12", "18"], "6"),
        ("(call $math.lcm (local.get $a) (local.get $b))", ["4", "6"], "12"),
        ("(call $math.comb (local.get $a) (local.get $b))", ["52", "5"], "2598960"),
        ("(call $math.perm (local.get $a) (local.get $b))", ["10", "3"], "720"),
        ("(call $math.isqrt (local.get $a))", [str(10**21)], str(math.isqrt(10**21))),
        ("(call $math.isprime (local.get $a))", ["2147483647"], "true"),
        ("(call $math.isprime (local.get $a))", ["561"], "false"),
        ("(call $math.isprime (local.get $a))", [str(2**521 - 1)], "true"),
    ],
    ids=short_id,
)
def test_host_functions(runtime: Runtime, call: str, args: list[str], expected: str) -> None:
    body = "".join(f"(argv {i} ${n}) " for i, n in enumerate("ab"[: len(args)])) + show(call)
    result = runtime.run(body, args)
    assert (result.status, result.results) == (0, [expected]), result.debug


BAD = "(i32.const -1)"  # 0xFFFFFFFF: outside any memory


@pytest.mark.parametrize("fn", MathCapability().functions(), ids=lambda f: f.name)
def test_every_pointer_is_checked(runtime: Runtime, fn: HostFunction) -> None:
    for i in range(len(fn.params)):
        operands = " ".join(BAD if j == i else '"1"' for j in range(len(fn.params)))
        result = runtime.run(status_of(f"(call ${fn.qualname} {operands})"))
        assert result.status == Err.ETRFM, (fn.name, i, result.debug)


@pytest.mark.parametrize(
    ("call", "args", "code", "detail"),
    [
        ('(call $math.eval "1)")', [], Err.EPARSE, "unexpected ')' at 1"),
        ('(call $math.eval "(3+4))*5")', [], Err.EPARSE, "unexpected ')' at 5"),
        ('(call $math.add "abc" "1")', [], Err.EPARSE, "not a decimal number: 'abc'"),
        ('(call $math.add "1" "1e5")', [], Err.EPARSE, "not a decimal number"),
        ('(call $math.isprime "2+3")', [], Err.EPARSE, "not a decimal number"),
        ('(call $math.eval "1/0")', [], Err.EBOUND, "division by zero at 1"),
        ('(call $math.div "1" "0")', [], Err.EBOUND, "division by zero"),
        ('(call $math.mod "1.5" "0")', [], Err.EBOUND, "division by zero"),
        ('(call $math.factorial "-1")', [], Err.EBOUND, "negative"),
        ('(call $math.isqrt "-4")', [], Err.EBOUND, "negative"),
        ('(call $math.pow "2" "0.5")', [], Err.EBOUND, "not a whole number"),
        ('(call $math.gcd "2.5" "5")', [], Err.EBOUND, "whole numbers"),
        ('(call $math.eval "10**10**10")', [], Err.ENOMEM, "more than 10000 digits"),
        ('(call $math.pow "10" "10000")', [], Err.ENOMEM, "more than 10000 digits"),
        ('(call $math.factorial "100000")', [], Err.ENOMEM, "more than 10000 digits"),
        ('(call $math.comb "1000000" "500000")', [], Err.ENOMEM, "more than 10000 digits"),
        ("(call $math.isprime (local.get $a))", [str(10**300)], Err.ENOMEM, "at most 300 digits"),
        ("(call $math.eval (local.get $a))", ["(" * 5000], Err.EPARSE, "nested deeper than 100"),
        ("(call $math.eval (local.get $a))", ["1" * (MAX_INPUT_BYTES + 1)], Err.ENOMEM, "exceeds"),
        (
            "(call $math.add (local.get $a) (local.get $a))",
            ["1" * (MAX_INPUT_BYTES + 1)],
            Err.ENOMEM,
            "exceeds",
        ),
    ],
    ids=short_id,
)
def test_host_function_errors(
    runtime: Runtime, call: str, args: list[str], code: Err, detail: str
) -> None:
    body = ("(argv 0 $a) " if args else "") + status_of(call)
    result = runtime.run(body, args)
    assert result.status == code, result.debug
    assert result.debug and result.debug[0].startswith("math."), (
        "the detail reaches the debug lines"
    )
    assert detail in result.debug[0]
    assert "internal error" not in " ".join(result.debug)


def test_host_time_cap() -> None:
    result = _runtime(time_cap_s=-1.0).run(status_of('(call $math.eval "1+1")'))
    assert result.status == Err.ENOMEM and "ran out of time" in result.debug[0]


def test_a_big_result_reaches_the_guest(runtime: Runtime) -> None:
    result = runtime.run(show('(call $math.eval "10**9999")'))
    assert (result.status, result.results) == (0, ["1" + "0" * 9999])


def test_literals_are_canonical() -> None:
    assert [format_number(parse_number(t)) for t in ["1.500", "-0.10", "+007.250", "0.000"]] == [
        "1.5",
        "-0.1",
        "7.25",
        "0",
    ]
