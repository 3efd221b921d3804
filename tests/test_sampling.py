"""Grammar-first-check sampling (agent.models.sampling): the grammar is asked about the token
the free chain sampled, and the vocabulary is masked only when it refuses."""

from __future__ import annotations

from typing import Any

from agent.models import sampling
from agent.models.sampling import GrammarFirstCheck


class FakeOps:
    """A 'grammar' that allows only the tokens of ``allowed``; the free chain proposes
    ``proposals`` in order; a masked sample returns the smallest allowed token."""

    def __init__(self, proposals: list[int], allowed: set[int]) -> None:
        self.proposals, self.allowed = list(proposals), allowed
        self.accepted: list[int] = []
        self.masked = 0

    def sample_free(self, ctx: Any, idx: int) -> int:
        return self.proposals.pop(0)

    def grammar_allows(self, ctx: Any, idx: int, token: int) -> bool:
        return token in self.allowed

    def sample_masked(self, ctx: Any, idx: int) -> int:
        self.masked += 1
        return min(self.allowed)

    def accept(self, token: int) -> None:
        self.accepted.append(token)


def test_an_allowed_token_costs_one_check_and_no_mask() -> None:
    ops = FakeOps([5, 6, 7], {5, 6, 7})
    sampler = GrammarFirstCheck(ops)
    assert [sampler.sample(None, -1) for _ in range(3)] == [5, 6, 7]
    assert ops.masked == 0 and sampler.fallbacks == 0 and sampler.tokens == 3
    assert ops.accepted == [5, 6, 7]


def test_a_refused_token_is_sampled_again_from_the_masked_vocabulary() -> None:
    ops = FakeOps([5, 99, 7], {5, 7, 3})
    sampler = GrammarFirstCheck(ops)
    assert [sampler.sample(None, -1) for _ in range(3)] == [5, 3, 7]
    assert ops.masked == 1 and sampler.fallbacks == 1
    assert ops.accepted == [5, 3, 7]  # the grammar advances past the token returned, never 99


def test_install_leaves_a_stand_in_untouched() -> None:
    class NotLlama:
        def _init_sampler(self, **kwargs: Any) -> str:
            return "original"

    fake = NotLlama()
    assert sampling.install(fake) is False
    assert fake._init_sampler() == "original"
