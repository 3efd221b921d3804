"""A random-input run of the WAT-plus preprocessor and the compiler, from fragments of real bodies.

    python bench/fuzz_preprocess.py [--count N] [--seed S] [--compile-every K]

The inputs are built with a fixed seed from the shipped catalog bodies (``catalog/*.wat``, front
matter removed) and the worked examples of the system prompt (``agent.prompt.WAT_EXAMPLES``):
lines and balanced forms spliced across bodies, spans cut out (unbalancing parentheses and
strings), hostile atoms inserted (lone surrogates, NUL and control characters, huge numbers,
unterminated strings and comments, unknown macros), fragments repeated and nested deep.

Every input must end in a result or a typed ``WattError``: anything else is a bug and is listed
with its seed index. Each input goes through ``rt.preprocess.preprocess``; every K-th one
(default 1: all) that preprocesses also goes through ``Runtime.prepare`` (assemble, compile
with wasmtime, link). Prints counts; exits 1 if any input raised something else.
"""

from __future__ import annotations

import argparse
import random
import re
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from agent.programs.catalog import split_front_matter  # noqa: E402
from agent.prompt import WAT_EXAMPLES  # noqa: E402
from capabilities import standard_registry  # noqa: E402
from rt.engine import Runtime  # noqa: E402
from rt.errors import WattError  # noqa: E402
from rt.preprocess import preprocess  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
DEFAULT_COUNT = 100_000
DEFAULT_SEED = 20261201

HOSTILE = (
    "(", ")", "((", "))", '"', '"""', "\\", '\\"', ";;", "(;", ";)", "\n", "\t", "\r", "\x00",
    "\x1b[2J", "\u202e", "\ud800", "\udfff", "\ud83d", "\ufeff", "é", "日本", "😀",
    "$", "$x", "$err", "$$", "(local.get $nope)", "(argv)", "(argv -1 $a)", "(argv 99999999999 $a)",
    "(arg 4294967296)", "(arg -1)", "(check)", "(check 1 2)", "(resv)", "(resv 1 2)", "(answer)",
    "(local)", "(local $x)", "(local $x i64)", "(local $x f32 i32)", "(call)", "(call $)",
    "(call $str.)", "(str.upper)", "(str.upper 1 2 3)", "($str.upper)", "(call $nope.fn)",
    "(http.get)", "(i32.const)", "(i32.const 99999999999999999999)", "(i32.const -0x80000001)",
    "0x", "1e309", "-0", "18446744073709551616", "(module)", "(module (func))", "(func)",
    "(block", "(loop $l", "(br 0)", "(br 4294967295)", "(unreachable)", "(return)",
    "(memory.grow (i32.const 65536))", "(drop)", '"\\u{110000}"', '"\\x"', '"\\', '"""\\',
)  # fmt: skip


@dataclass
class Counts:
    inputs: int = 0
    preprocessed: int = 0
    compiled: int = 0
    typed_errors: Counter[str] = field(default_factory=Counter)
    other: list[tuple[int, str, str]] = field(default_factory=list)  # (index, error, input head)

    @property
    def ok(self) -> bool:
        return not self.other


def real_bodies(root: Path = REPO) -> list[str]:
    """The catalog's bodies and the prompt's worked examples."""
    bodies = []
    for path in sorted((root / "catalog").glob("*.wat")):
        _front, _line, body = split_front_matter(path.read_text(encoding="utf-8"))
        if body.strip():
            bodies.append(body)
    bodies.extend(example[2] for example in WAT_EXAMPLES)
    return bodies


_FORM = re.compile(r"\([^()]*\)")


def fragments(bodies: Sequence[str]) -> list[str]:
    """Lines, innermost balanced forms and atoms of the real bodies."""
    pieces: set[str] = set()
    for body in bodies:
        for line in body.splitlines():
            if line.strip():
                pieces.add(line)
        pieces.update(_FORM.findall(body))
        pieces.update(body.split())
    return sorted(pieces)


class Maker:
    """Builds input ``i`` from the pool; the same seed gives the same inputs."""

    def __init__(self, bodies: Sequence[str], seed: int) -> None:
        self.bodies = list(bodies)
        self.pieces = fragments(bodies)
        self.rng = random.Random(seed)
        self.ops: tuple[Callable[[str], str], ...] = (
            self.splice_lines,
            self.replace_span,
            self.cut_span,
            self.insert_hostile,
            self.insert_piece,
            self.repeat,
            self.nest,
            self.swap_lines,
        )

    def make(self) -> str:
        text = self.rng.choice(self.bodies)
        for _ in range(self.rng.randint(1, 3)):
            text = self.rng.choice(self.ops)(text)
        return text

    def _span(self, text: str) -> tuple[int, int]:
        if not text:
            return 0, 0
        a = self.rng.randrange(len(text))
        return a, min(len(text), a + self.rng.randint(0, 80))

    def splice_lines(self, text: str) -> str:
        other = self.rng.choice(self.bodies).splitlines() or [""]
        lines = text.splitlines() or [""]
        cut = self.rng.randrange(len(lines) + 1)
        start = self.rng.randrange(len(other))
        return "\n".join(lines[:cut] + other[start : start + self.rng.randint(1, 12)])

    def replace_span(self, text: str) -> str:
        a, b = self._span(text)
        return text[:a] + self.rng.choice(self.pieces) + text[b:]

    def cut_span(self, text: str) -> str:
        a, b = self._span(text)
        return text[:a] + text[b:]

    def insert_hostile(self, text: str) -> str:
        a = self.rng.randrange(len(text) + 1)
        return text[:a] + self.rng.choice(HOSTILE) + text[a:]

    def insert_piece(self, text: str) -> str:
        a = self.rng.randrange(len(text) + 1)
        return text[:a] + " " + self.rng.choice(self.pieces) + " " + text[a:]

    def repeat(self, text: str) -> str:
        piece = self.rng.choice(self.pieces)
        return text + "\n" + "\n".join([piece] * self.rng.randint(2, 30))

    def nest(self, text: str) -> str:
        depth = self.rng.choice((3, 10, 30, 100, 300)) if self.rng.random() < 0.97 else 6000
        head = self.rng.choice(("(block ", "(i32.add ", "(", "(str.upper ", "(if (then "))
        return head * depth + text + ")" * self.rng.randint(0, depth)

    def swap_lines(self, text: str) -> str:
        lines = text.splitlines()
        if len(lines) > 1:
            i, j = self.rng.randrange(len(lines)), self.rng.randrange(len(lines))
            lines[i], lines[j] = lines[j], lines[i]
        return "\n".join(lines)


def fuzz(
    count: int = DEFAULT_COUNT,
    seed: int = DEFAULT_SEED,
    *,
    compile_every: int = 1,
    runtime: Runtime | None = None,
) -> Counts:
    """Run ``count`` inputs; every exception that is not a ``WattError`` is listed in ``other``."""
    if runtime is None:
        runtime = Runtime(standard_registry().functions(), cache_dir=None)
    functions = runtime.functions
    maker = Maker(real_bodies(), seed)
    counts = Counts()
    for index in range(count):
        source = maker.make()
        counts.inputs += 1
        try:
            preprocess(source, functions)
            counts.preprocessed += 1
            if index % compile_every == 0:
                runtime.prepare(source)
                counts.compiled += 1
        except WattError as exc:
            counts.typed_errors[type(exc).__name__] += 1
        except Exception as exc:  # the bug this run looks for
            head = source[:120].encode("unicode_escape").decode("ascii")
            counts.other.append((index, f"{type(exc).__name__}: {exc}"[:200], head))
    return counts


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=DEFAULT_COUNT)
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--compile-every", type=int, default=1)
    args = parser.parse_args(argv)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory():
        counts = fuzz(args.count, args.seed, compile_every=args.compile_every)
    seconds = time.perf_counter() - started
    print(f"inputs          {counts.inputs}  (seed {args.seed}, {seconds:.1f} s)")
    print(f"bodies / pieces {len(real_bodies())} / {len(fragments(real_bodies()))}")
    print(f"preprocessed    {counts.preprocessed}")
    print(f"compiled        {counts.compiled}")
    for name, n in counts.typed_errors.most_common():
        print(f"  {name:<14}{n}")
    print(f"other exceptions {len(counts.other)}")
    for index, error, head in counts.other[:20]:
        print(f"  #{index}: {error}\n      {head}")
    return 0 if counts.ok else 1


if __name__ == "__main__":
    sys.exit(main())
