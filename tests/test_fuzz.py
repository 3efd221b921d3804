"""A slice of the random-input run (``bench/fuzz_preprocess.py`` runs 100,000): WAT-plus bodies
built from fragments of real ones, with a fixed seed, through the preprocessor and the
compiler. Every input ends in a result or a typed ``WattError``, never another exception."""

from __future__ import annotations

import pytest

from bench.fuzz_preprocess import DEFAULT_SEED, Maker, fragments, fuzz, real_bodies
from rt.errors import CompileError
from rt.preprocess import preprocess

SLICE = 3000


def test_the_pool_is_the_real_bodies() -> None:
    bodies = real_bodies()
    assert len(bodies) >= 30  # the shipped catalog and the prompt's examples
    assert len(fragments(bodies)) > 500


def test_inputs_are_reproducible() -> None:
    first = Maker(real_bodies(), DEFAULT_SEED)
    second = Maker(real_bodies(), DEFAULT_SEED)
    assert [first.make() for _ in range(50)] == [second.make() for _ in range(50)]


def test_a_slice_of_the_random_run_ends_in_results_or_typed_errors() -> None:
    counts = fuzz(SLICE, DEFAULT_SEED)
    assert counts.inputs == SLICE
    assert counts.other == [], counts.other[:5]
    # the run reaches the compiler, not only the preprocessor's first refusal
    assert counts.preprocessed > SLICE // 10 and counts.compiled > SLICE // 20
    assert sum(counts.typed_errors.values()) + counts.preprocessed >= SLICE


@pytest.mark.parametrize("text", ['(resv "a\ud800b")', '(resv "\udfff")\n(i32.const 0)'])
def test_a_lone_surrogate_in_a_literal_is_a_compile_error(text: str) -> None:
    with pytest.raises(CompileError, match="lone surrogate"):
        preprocess(text, {})
