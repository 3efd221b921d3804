"""agent.models.local (LocalModel over a fake llama) and the frame-only reply grammar it defaults to
(the run's grammar built from live data is tested in test_grammar.py)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agent.models import local
from agent.models.grammar import GRAMMAR_ROOT, REPLY_GBNF
from agent.models.local import DEFAULT_MAX_TOKENS, LocalModel, wants_grammar
from agent.models.messages import Message, Usage
from agent.models.weights import MODELS, marker_path
from agent.parser import CatalogCall, Response, WatCall, format_action, parse_reply
from rt.errors import ConfigError, Interrupted, ModelAPIError
from tests.gbnf import Grammar

AGENT = [
    Message.system("Reply with exactly ONE ToolCall::Wat or ToolCall::Response."),
    Message.user("hi"),
]
PLAIN = [Message.system("You transform text exactly as instructed."), Message.user("upper: abc")]


class FakeLlama:
    """Stands in for ``llama_cpp.Llama``: streams scripted pieces, one chunk per token."""

    def __init__(
        self, pieces: list[str], prompt_tokens: int = 40, finish: str = "stop", **kwargs: Any
    ) -> None:
        self.kwargs = kwargs
        self.pieces = pieces
        self.prompt_tokens = prompt_tokens
        self.finish = finish
        self.calls: list[dict[str, Any]] = []
        self.n_tokens = 0
        self.closed_streams = 0
        self.produced = 0

    def create_chat_completion(self, **kwargs: Any) -> Iterator[dict[str, Any]]:
        self.calls.append(kwargs)
        return self._chunks()

    def _chunks(self) -> Iterator[dict[str, Any]]:
        self.produced = 0
        try:
            yield {"choices": [{"index": 0, "delta": {"role": "assistant"}, "finish_reason": None}]}
            for piece in self.pieces:
                self.produced += 1
                self.n_tokens = self.prompt_tokens + self.produced
                yield {
                    "choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}]
                }
            yield {"choices": [{"index": 0, "delta": {}, "finish_reason": self.finish}]}
        finally:
            self.closed_streams += 1


class Factory:
    def __init__(self, pieces: list[str], **kwargs: Any) -> None:
        self.pieces, self.kwargs = pieces, kwargs
        self.made: list[FakeLlama] = []

    def __call__(self, **kwargs: Any) -> FakeLlama:
        llama = FakeLlama(self.pieces, **self.kwargs, **kwargs)
        self.made.append(llama)
        return llama


@pytest.fixture
def gguf(tmp_path: Path) -> Path:
    path = tmp_path / "m.gguf"
    path.write_bytes(b"GGUF")
    return path


def make(gguf: Path, pieces: list[str], **kwargs: Any) -> tuple[LocalModel, Factory]:
    factory = Factory(pieces, **kwargs.pop("llama", {}))
    model = LocalModel(
        gguf, llama_factory=factory, grammar_factory=lambda text: ("GRAMMAR", text), **kwargs
    )
    return model, factory


def test_streams_text_to_on_text_and_counts_usage(gguf: Path) -> None:
    model, factory = make(gguf, ["Tool", "Call::", "Response", '("""hi""")'])
    seen: list[str] = []
    reply = model.complete(AGENT, on_text=seen.append)
    assert seen == ["Tool", "Call::", "Response", '("""hi""")']
    assert reply.text == 'ToolCall::Response("""hi""")' and reply.finish_reason == "stop"
    assert reply.usage == Usage(40, 4, estimated=False)
    assert model.total_usage == Usage(40, 4)
    model.complete(AGENT)
    assert model.total_usage == Usage(80, 8)
    assert model.name == "local:m.gguf"


def test_loads_once_with_the_documented_settings(gguf: Path) -> None:
    model, factory = make(gguf, ["x"])
    assert factory.made == []  # lazy: nothing is loaded before the first call
    model.complete(PLAIN)
    model.complete(PLAIN)
    assert len(factory.made) == 1
    assert factory.made[0].kwargs == {
        "model_path": str(gguf), "n_ctx": 8192, "n_threads": os.cpu_count() or 1, "verbose": False,
    }  # fmt: skip
    model.close()
    model.load()
    assert len(factory.made) == 2


def test_grammar_is_passed_for_agent_turns_only(gguf: Path) -> None:
    model, factory = make(gguf, ["x"])
    model.complete(AGENT, max_tokens=50, stop=["\n\n"])
    model.complete(PLAIN)
    first, second = factory.made[0].calls
    assert first["grammar"] == ("GRAMMAR", REPLY_GBNF)
    assert first["stream"] is True and first["max_tokens"] == 50 and first["stop"] == ["\n\n"]
    assert first["messages"][0] == {"role": "system", "content": AGENT[0].content}
    assert "grammar" not in second and "stop" not in second
    assert second["max_tokens"] == DEFAULT_MAX_TOKENS and second["temperature"] == 0.2
    assert wants_grammar(AGENT) and not wants_grammar(PLAIN)
    assert not wants_grammar([Message.user("ToolCall::Wat in a user message")])


def test_the_runs_grammar_replaces_the_default_and_is_compiled_once(gguf: Path) -> None:
    compiled: list[str] = []
    factory = Factory(["x"])

    def compile_grammar(text: str) -> tuple[str, str]:
        compiled.append(text)
        return ("GRAMMAR", text)

    model = LocalModel(gguf, llama_factory=factory, grammar_factory=compile_grammar)
    model.use_grammar('root ::= "x"\n')
    model.complete(AGENT)
    model.complete(AGENT)
    model.complete(PLAIN)
    calls = factory.made[0].calls
    assert [c.get("grammar") for c in calls] == [("GRAMMAR", 'root ::= "x"\n')] * 2 + [None]
    model.use_grammar(None)  # back to the frame-only default
    model.complete(AGENT)
    assert compiled == ['root ::= "x"\n', REPLY_GBNF]
    off, off_factory = make(gguf, ["x"], grammar=False)
    off.use_grammar('root ::= "x"\n')
    off.complete(AGENT)
    assert "grammar" not in off_factory.made[0].calls[0]


def test_grammar_can_be_turned_off(gguf: Path) -> None:
    model, factory = make(gguf, ["x"], grammar=False)
    model.complete(AGENT)
    assert "grammar" not in factory.made[0].calls[0]


def test_cancel_between_chunks_stops_generation(gguf: Path) -> None:
    model, factory = make(gguf, ["a", "b", "c", "d"])
    cancel = threading.Event()
    seen: list[str] = []

    def on_text(piece: str) -> None:
        seen.append(piece)
        cancel.set()

    with pytest.raises(Interrupted):
        model.complete(AGENT, on_text=on_text, cancel=cancel)
    llama = factory.made[0]
    assert seen == ["a"] and llama.produced == 1 and llama.closed_streams == 1
    assert model.total_usage == Usage()
    cancel.clear()
    assert model.complete(AGENT).text == "abcd"  # the model is still usable


def test_cancel_before_the_call_loads_nothing(gguf: Path) -> None:
    model, factory = make(gguf, ["a"])
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(Interrupted):
        model.complete(AGENT, cancel=cancel)
    assert factory.made == []


def test_usage_is_estimated_without_llama_counts(gguf: Path) -> None:
    class NoCounts(FakeLlama):
        n_tokens = None  # type: ignore[assignment]

        def _chunks(self) -> Iterator[dict[str, Any]]:
            yield {"choices": [{"delta": {"content": "four"}, "finish_reason": "length"}]}

    model = LocalModel(gguf, grammar=False, llama_factory=lambda **kw: NoCounts([]))
    reply = model.complete(PLAIN)
    assert reply.text == "four" and reply.finish_reason == "length"
    assert reply.usage.estimated and reply.usage.completion == 1


def test_llama_failures_become_watt_errors(gguf: Path) -> None:
    def broken(**kwargs: Any) -> Any:
        raise ValueError("Failed to load model from file")

    with pytest.raises(ConfigError, match="cannot load local model .*m.gguf: Failed to load"):
        LocalModel(gguf, grammar=False, llama_factory=broken).complete(PLAIN)

    class Overflow(FakeLlama):
        def create_chat_completion(self, **kwargs: Any) -> Iterator[dict[str, Any]]:
            raise ValueError("Requested tokens (9000) exceed context window of 8192")

    model = LocalModel(gguf, grammar=False, llama_factory=lambda **kw: Overflow([]))
    with pytest.raises(
        ModelAPIError, match=r"local model m.gguf failed: Requested tokens \(9000\)"
    ):
        model.complete(PLAIN)


def test_missing_file_and_missing_llama_cpp(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, gguf: Path
) -> None:
    with pytest.raises(
        ConfigError, match="local model file not found: .*nope.gguf .*watt model pull"
    ):
        LocalModel(tmp_path / "nope.gguf", llama_factory=Factory([]), grammar_factory=str)
    monkeypatch.setitem(sys.modules, "llama_cpp", None)  # makes `import llama_cpp` fail
    with pytest.raises(ConfigError, match=r"pip install 'watt-agent\[local\]'"):
        LocalModel(gguf)


def _fake_llama_cpp(monkeypatch: pytest.MonkeyPatch) -> types.SimpleNamespace:
    grammar = types.SimpleNamespace(from_string=lambda text, verbose=True: ("G", text, verbose))
    module = types.SimpleNamespace(Llama=Factory(["x"]), LlamaGrammar=grammar)
    monkeypatch.setattr(local, "_import_llama", lambda: module)
    monkeypatch.setattr(local, "llama_available", lambda: True)
    return module


def _install(home: Path, size: str) -> Path:
    path = home / "models" / MODELS[size].file
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"GGUF")
    marker_path(path).write_text(f"{MODELS[size].sha256}  {path.name}\n")
    return path


def test_default_local_model(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from agent.config import load_settings
    from agent.models.backends import choose_model, make_model

    settings = load_settings(environ={"WATT_HOME": str(tmp_path)})
    assert choose_model(settings).backend is None  # no models
    _install(tmp_path, "0.5b")
    big = _install(tmp_path, "1.5b")
    monkeypatch.setattr(local, "llama_available", lambda: False)
    assert choose_model(settings).backend is None  # no llama_cpp
    module = _fake_llama_cpp(monkeypatch)
    assert choose_model(settings).default
    model = make_model(settings)
    assert isinstance(model, LocalModel) and model.path == big
    model.complete(AGENT)
    assert module.Llama.made[0].calls[0]["grammar"] == ("G", REPLY_GBNF, False)


def test_make_model_uses_local_models(
    monkeypatch: pytest.MonkeyPatch, _watt_home: Path, gguf: Path
) -> None:
    from agent.config import load_settings
    from agent.models.backends import make_model

    _fake_llama_cpp(monkeypatch)
    settings = load_settings()
    model = make_model(settings, f"local:{gguf}")
    assert isinstance(model, LocalModel) and model.path == gguf and model.grammar
    off = load_settings({"grammar": "off"})
    assert not make_model(off, f"local:{gguf}").grammar  # type: ignore[attr-defined]
    with pytest.raises(ConfigError, match="no model endpoint configured"):
        make_model(settings)
    _install(_watt_home, "1.5b")
    assert isinstance(make_model(settings), LocalModel)


# ---- the reply grammar ---------------------------------------------------------------------------

REPLY = Grammar(REPLY_GBNF, GRAMMAR_ROOT)

CANONICAL = [
    WatCall("(argv 0 $text)\n(resv $text)\n(i32.const 0)", ("hello",), "Echo it."),
    WatCall(
        '(resv "a \\"quoted\\" `tick`")\n(i32.const 0)',
        ('say "hi"', "tab\there", "two\nlines", "back\\slash"),
    ),
    WatCall("(i32.const 0)"),
    CatalogCall("word_count", ("the quick brown fox",), "A catalog program fits."),
    CatalogCall("http_get"),
    Response("HELLO", "The result is in."),
    Response('multi-line\nanswer with "quotes" and ``ticks``'),
]


@pytest.mark.parametrize("action", CANONICAL, ids=lambda a: type(a).__name__)
def test_canonical_replies_match_the_grammar_and_parse_cleanly(action: Any) -> None:
    text = format_action(action)
    assert REPLY.accepts(text), text
    parsed = parse_reply(text)
    assert parsed.notes == () and parsed.kind == action.kind
    assert parsed == action


def test_prompt_examples_match_the_grammar() -> None:
    for text in [
        '<reasoning>Upper-case it.</reasoning>\nToolCall::Wat(```wat\n(argv 0 $text)\n(i32.const 0)\n```, "hello")',
        'ToolCall::Catalog("word_count", "the quick brown fox")',
        'ToolCall::Response("""HELLO""")',
        '<reasoning>x</reasoning>ToolCall::Response("""\n4\n""")',
    ]:
        assert REPLY.accepts(text), text
        assert parse_reply(text).notes == ()


@pytest.mark.parametrize(
    "text",
    [
        "The answer is 4.",  # no ToolCall
        'ToolCall::Response("4")',  # one-quote Response
        'ToolCall::Response(""""4""")',  # a one-quote answer inside the triple quotes (seen)
        'ToolCall::Response("""4")""")',  # a quote closing the call early, inside the answer
        'ToolCall::Response("""""")',  # an empty answer (seen, once the stray quote was ruled out)
        'ToolCall::Response("""4""") and more',  # trailing text
        'ToolCall::Response("""a""")ToolCall::Response("""b""")',  # two calls
        "ToolCall::Wat(```wat\n(i32.const 0)\n````)",  # four-backtick fence
        "ToolCall::Wat(```\n(i32.const 0)\n```)",  # no fence tag
        "ToolCall::Wat(```wat\n(i32.const 0)\n```, hello)",  # unquoted arg
        'ToolCall::Catalog("a b")',  # not a program name
        '<reasoning>unclosed ToolCall::Response("""x""")',
        'tool_call: Response("""x""")',
    ],
)
def test_deviations_are_outside_the_grammar(text: str) -> None:
    assert not REPLY.accepts(text)


def test_the_grammar_parses_with_llama_cpp() -> None:
    pytest.importorskip("llama_cpp")
    # llama.cpp parses GBNF in C (LlamaGrammar.from_string only stores the text) and a bad
    # grammar may crash the sampler, so parse it in a child process without a model.
    code = (
        "import sys, llama_cpp\n"
        "from agent.models.grammar import REPLY_GBNF, GRAMMAR_ROOT\n"
        "llama_cpp.LlamaGrammar.from_string(REPLY_GBNF, verbose=False)\n"
        "p = llama_cpp.llama_sampler_init_grammar(None, REPLY_GBNF.encode(), GRAMMAR_ROOT.encode())\n"
        "sys.exit(0 if p else 3)\n"
    )
    root = Path(__file__).resolve().parent.parent
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=root, capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stderr[-2000:]


class AbortingLlama(FakeLlama):
    """A llama whose prompt evaluation polls the abort callback, as llama_decode does."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._ctx = types.SimpleNamespace(ctx="CTX")
        self.abort: Any = None
        self.polls = 0

    def create_chat_completion(self, **kwargs: Any) -> Iterator[dict[str, Any]]:
        self.calls.append(kwargs)
        for _ in range(1000):  # the prompt, a batch at a time
            self.polls += 1
            if self.abort(None):
                raise RuntimeError("llama_decode returned 2")
            kwargs.get("tick", lambda: None)()
        return self._chunks()


def test_a_cancel_during_prompt_evaluation_aborts_it(
    gguf: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    made: list[AbortingLlama] = []

    def set_abort(ctx: str, callback: Any, data: Any) -> None:
        assert ctx == "CTX"
        made[-1].abort = callback

    fake_module = types.SimpleNamespace(
        llama_set_abort_callback=set_abort, ggml_abort_callback=lambda f: f
    )
    monkeypatch.setitem(sys.modules, "llama_cpp", fake_module)

    def factory(**kwargs: Any) -> AbortingLlama:
        made.append(AbortingLlama(["ok"], **kwargs))
        return made[-1]

    model = LocalModel(gguf, llama_factory=factory, grammar_factory=lambda text: text)
    cancel = threading.Event()
    assert model.complete(AGENT, cancel=cancel).text == "ok"  # not set: the callback says go on
    assert made[0].polls == 1000
    made[0].polls = 0
    made[0].create_chat_completion = _cancel_midway(made[0], cancel)  # type: ignore[method-assign]
    with pytest.raises(Interrupted):
        model.complete(AGENT, cancel=cancel)
    assert made[0].polls == 11  # stopped at the first poll after the cancel, not at the end
    assert model._cancel is None  # no call in flight any more


def test_a_real_decode_failure_is_still_a_model_error(
    gguf: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    class Broken(FakeLlama):
        def create_chat_completion(self, **kwargs: Any) -> Iterator[dict[str, Any]]:
            raise RuntimeError("llama_decode returned -1")

    model = LocalModel(
        gguf, llama_factory=lambda **kw: Broken([], **kw), grammar_factory=lambda text: text
    )
    with pytest.raises(ModelAPIError, match="returned -1"):
        model.complete(AGENT, cancel=threading.Event())


def _cancel_midway(llama: AbortingLlama, cancel: threading.Event) -> Any:
    original = AbortingLlama.create_chat_completion

    def create(**kwargs: Any) -> Iterator[dict[str, Any]]:
        kwargs["tick"] = lambda: cancel.set() if llama.polls == 10 else None
        return original(llama, **kwargs)

    return create


# ---- the prompt evaluated here, and the saved system-prompt state ---------------------------------

ROLES = {"system": 1000, "user": 1001, "assistant": 1002}
GENERATION_PROMPT = 1003


def _render(messages: list[dict[str, str]]) -> list[int]:
    """A chat template in miniature: role token, content, end token; then the generation prompt."""
    out: list[int] = []
    for m in messages:
        out += [ROLES[m["role"]], *(ord(c) for c in m["content"]), 999]
    return [*out, GENERATION_PROMPT]


class FakeOps(local.LlamaOps):
    """The llama seam over ``PrefillLlama``: its tokens, context and state (bytes it can check)."""

    def __init__(self, *, refuse: bool = False) -> None:
        super().__init__()
        self.refuse = refuse
        self.restored: list[int] = []

    def backend(self, llama: Any) -> str | None:
        return "fake-backend 1"

    def prompt_tokens(self, llama: Any, messages: Any) -> tuple[list[int], int] | None:
        tokens = _render([m.to_dict() for m in messages])
        alone = _render([messages[0].to_dict()])
        return tokens, local._common_prefix(alone, tokens)

    def get_state(self, llama: Any) -> bytes:
        return b"STATE" + bytes(str(self.context_tokens(llama)), "ascii")

    def set_state(self, llama: Any, tokens: Any, data: bytes) -> None:
        if self.refuse or data != b"STATE" + bytes(str(list(tokens)), "ascii"):
            raise RuntimeError("llama_state_set_data refused the saved state")
        llama.input_ids[: len(tokens)] = list(tokens)
        llama.n_tokens = len(tokens)
        self.restored.append(len(tokens))


class PrefillLlama(FakeLlama):
    """A llama with a context: ``eval`` appends to it; a completion evaluates what is missing."""

    n_batch = 16

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.input_ids = [0] * 4096
        self.evals: list[int] = []
        self.completion_evaluated: list[int] = []

    def eval(self, tokens: list[int]) -> None:
        assert len(tokens) <= self.n_batch
        self.input_ids[self.n_tokens : self.n_tokens + len(tokens)] = tokens
        self.n_tokens += len(tokens)
        self.evals.append(len(tokens))

    def create_chat_completion(self, **kwargs: Any) -> Iterator[dict[str, Any]]:
        tokens = _render(kwargs["messages"])
        kept = local._common_prefix(self.input_ids[: self.n_tokens], tokens[:-1])
        self.completion_evaluated.append(len(tokens) - kept)  # as llama-cpp-python's generate
        self.input_ids[: len(tokens)] = tokens
        self.prompt_tokens = len(tokens)
        return super().create_chat_completion(**kwargs)


SYSTEM = Message.system("Reply with exactly ONE ToolCall::Wat or ToolCall::Response. " * 3)


def _model(gguf: Path, home: Path | None, ops: FakeOps | None = None, **kw: Any) -> Any:
    made: list[PrefillLlama] = []

    def factory(**kwargs: Any) -> PrefillLlama:
        made.append(PrefillLlama(["ok"], **kwargs))
        return made[-1]

    model = LocalModel(
        gguf,
        llama_factory=factory,
        grammar_factory=lambda text: text,
        home=home,
        ops=ops or FakeOps(),
        **kw,
    )
    return model, made


def _states(home: Path) -> list[Path]:
    return sorted((home / "cache" / "prompt-state").glob("*.kvstate"))


def test_the_system_prompt_is_saved_and_a_new_process_restores_it(
    gguf: Path, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    seen: list[tuple[str, int, int]] = []
    first, made = _model(gguf, home, progress=lambda *a: seen.append(a))
    messages = [SYSTEM, Message.user("hi")]
    tokens = _render([m.to_dict() for m in messages])
    system, target = len(SYSTEM.content) + 2, len(tokens) - 1  # role, content, end
    assert first.complete(messages).text == "ok"
    assert first.last_prefill == local.Prefill(
        len(tokens), system, 0, 0, target, True, first.last_prefill.seconds
    )
    assert sum(made[0].evals) == target and made[0].completion_evaluated == [1]
    assert seen[:3] == [("load", 0, 1), ("load", 1, 1), ("prompt", 0, target)]
    assert seen[-1] == ("prompt", target, target) and ("prompt", system, target) in seen
    assert len(_states(home)) == 1

    later = [SYSTEM, Message.user("another question")]
    second, made2 = _model(gguf, home, ops=(ops := FakeOps()))  # a new process
    second.complete(later)
    prefill = second.last_prefill
    assert (prefill.restored, prefill.saved) == (system, False) and ops.restored == [system]
    assert (
        sum(made2[0].evals)
        == prefill.evaluated
        == len(_render([m.to_dict() for m in later])) - 1 - system
    )
    assert made2[0].completion_evaluated == [1]


@pytest.mark.parametrize("damage", ["corrupt", "refused", "other n_ctx", "other model"])
def test_a_state_that_does_not_check_out_is_evaluated_again_and_rewritten(
    gguf: Path, tmp_path: Path, damage: str
) -> None:
    home = tmp_path / "home"
    first, _ = _model(gguf, home)
    first.complete([SYSTEM, Message.user("hi")])
    (state,) = _states(home)
    kwargs: dict[str, Any] = {}
    path = gguf
    if damage == "corrupt":
        blob = state.read_bytes()
        state.write_bytes(blob[:-3] + b"xyz")
    elif damage == "other n_ctx":
        kwargs["n_ctx"] = 4096
    elif damage == "other model":
        path = tmp_path / "other.gguf"
        path.write_bytes(b"GGUF other weights")
    ops = FakeOps(refuse=damage == "refused")
    second, made = _model(path, home, ops=ops, **kwargs)
    second.complete([SYSTEM, Message.user("hi")])
    assert second.last_prefill.restored == 0 and second.last_prefill.saved
    assert sum(made[0].evals) == second.last_prefill.tokens - 1
    third, _ = _model(path, home, **kwargs)  # the rewritten file restores
    third.complete([SYSTEM, Message.user("hi")])
    assert third.last_prefill.restored == second.last_prefill.system


def test_one_process_reuses_its_context_without_the_disk(gguf: Path, tmp_path: Path) -> None:
    model, made = _model(gguf, tmp_path / "home")
    turn = [SYSTEM, Message.user("hi")]
    model.complete(turn)
    longer = [*turn, Message.assistant("ok"), Message.user("[Observation (step 1)] 4")]
    model.complete(longer)
    prefill = model.last_prefill
    assert prefill.restored == 0 and prefill.reused > prefill.system and not prefill.saved
    assert prefill.evaluated == prefill.tokens - 1 - prefill.reused


def test_without_home_the_prompt_is_evaluated_but_nothing_saved(gguf: Path, tmp_path: Path) -> None:
    model, made = _model(gguf, None)
    model.complete([SYSTEM, Message.user("hi")])
    assert model.last_prefill.evaluated == model.last_prefill.tokens - 1
    assert not model.last_prefill.saved and not (tmp_path / "cache").exists()


def test_a_cancel_between_prompt_batches_stops_at_once(gguf: Path, tmp_path: Path) -> None:
    cancel = threading.Event()

    def progress(phase: str, done: int, total: int) -> None:
        if phase == "prompt" and done >= 32:
            cancel.set()

    model, made = _model(gguf, tmp_path / "home", progress=progress)
    with pytest.raises(Interrupted):
        model.complete([SYSTEM, Message.user("hi")], cancel=cancel)
    assert made[0].evals == [16, 16] and made[0].calls == []  # no generation started
    assert _states(tmp_path / "home") == []  # stopped before the system prompt's end


def test_a_failed_prompt_evaluation_is_a_model_error(gguf: Path, tmp_path: Path) -> None:
    model, made = _model(gguf, tmp_path / "home")
    model.load()

    def broken(tokens: list[int]) -> None:
        raise RuntimeError("llama_decode returned -1")

    made[0].eval = broken  # type: ignore[method-assign]
    with pytest.raises(ModelAPIError, match="returned -1"):
        model.complete([SYSTEM, Message.user("hi")])
    assert made[0].n_tokens == 0


def test_the_default_ops_leave_other_chat_formats_to_llama(gguf: Path) -> None:
    ops = local.LlamaOps()
    llama = FakeLlama([])
    assert ops.prompt_tokens(llama, AGENT) is None  # no chat_format: not the GGUF's template
    llama.chat_format = "chatml"  # type: ignore[attr-defined]
    assert ops.prompt_tokens(llama, AGENT) is None


def test_the_backend_check_runs_once_before_the_first_load(
    gguf: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from agent.models import probe

    calls: list[tuple[Path, Path]] = []
    prompts: list[Any] = []

    def checked(home: Path, path: Path, **kw: Any) -> None:
        calls.append((home, path))
        prompts.append(kw.get("prompt"))

    monkeypatch.setattr(probe, "ensure_checked", checked)
    model, made = _model(gguf, tmp_path, check_backend=True)
    model.complete(AGENT)
    model.complete(AGENT)
    assert calls == [(tmp_path, gguf)] and len(made) == 1
    # the check evaluates this first call's system prompt, whose state the call then restores
    assert prompts == [probe.SystemPrompt(AGENT[0].content, model.n_ctx, tmp_path)]

    def crash(home: Path, path: Path, **kw: Any) -> None:
        raise ConfigError("local backend: ... was killed by signal 4 (SIGILL, Illegal instruction)")

    monkeypatch.setattr(probe, "ensure_checked", crash)
    other, made = _model(gguf, tmp_path, check_backend=True)
    with pytest.raises(ConfigError, match="SIGILL"):
        other.complete(AGENT)
    assert made == []  # nothing loaded in this process


def test_a_prompt_past_the_context_is_left_to_llama_to_refuse(gguf: Path, tmp_path: Path) -> None:
    model, made = _model(gguf, tmp_path / "home", n_ctx=50)
    model.complete([SYSTEM, Message.user("hi")])  # the fake does not refuse; llama would
    assert model.last_prefill == local.Prefill() and made[0].evals == []


def test_a_ctrl_c_inside_a_native_callback_prints_no_traceback(gguf: Path) -> None:
    class Interrupting(FakeLlama):
        def create_chat_completion(self, **kwargs: Any) -> Iterator[dict[str, Any]]:
            # what ctypes does with a KeyboardInterrupt raised inside a callback
            exc = KeyboardInterrupt()
            sys.unraisablehook(
                types.SimpleNamespace(
                    exc_type=KeyboardInterrupt, exc_value=exc, exc_traceback=None,
                    err_msg="Exception ignored on calling ctypes callback function", object=None,
                )
            )  # fmt: skip
            seen.append(sys.unraisablehook)
            return super().create_chat_completion(**kwargs)

    seen: list[Any] = []
    before = sys.unraisablehook
    model = LocalModel(gguf, grammar=False, llama_factory=lambda **kw: Interrupting(["ok"]))
    assert model.complete(PLAIN).text == "ok"  # nothing reported, and the hook is restored
    assert seen and seen[0] is not before and sys.unraisablehook is before


def test_a_degenerate_loop_is_cut_like_the_token_cap(gguf: Path) -> None:
    # seen from the 1.5B model: "(i32.const 0) " until the 1,024-token cap, minutes per reply
    start = ["ToolCall::Wat(```wat\n", "(answer (str.len (arg 0)))", "\n"]
    model, factory = make(gguf, start + ["(i32", ".const", " 0)", " "] * 300)
    reply = model.complete(AGENT)
    assert reply.finish_reason == "length"
    assert factory.made[0].produced < 80  # cut within a few repeats, not at the end
    assert factory.made[0].closed_streams == 1
    assert reply.text.startswith("ToolCall::Wat(```wat\n(answer (str.len (arg 0)))\n(i32.const 0)")


@pytest.mark.parametrize(
    ("text", "loops"),
    [
        (" " * 64, True),
        ("x" * 63, False),
        ("ok " + "(i32.const 0) " * 8, True),
        ("(i32.const 0) (i32.const 1) (i32.const 2) " * 3, False),
        ("\n".join(f"(call $debug.log {i})" for i in range(20)), False),
        ("ab" * 40, True),
    ],
)
def test_repeating(text: str, loops: bool) -> None:
    from agent.models.local import repeating

    assert repeating(text) is loops


def test_a_cancel_during_the_load_acts_after_it_and_the_model_stays_loaded(gguf: Path) -> None:
    cancel = threading.Event()
    made: list[PrefillLlama] = []

    def factory(**kwargs: Any) -> PrefillLlama:
        cancel.set()  # a Ctrl-C while llama.cpp loads (a native call)
        made.append(PrefillLlama(["ok"], **kwargs))
        return made[-1]

    model = LocalModel(gguf, llama_factory=factory, grammar_factory=lambda text: text)
    with pytest.raises(Interrupted):
        model.complete(AGENT, cancel=cancel)
    assert model.complete(AGENT).text == "ok" and len(made) == 1  # not loaded twice


def test_a_load_that_fails_is_one_config_error(gguf: Path) -> None:
    def broken(**kwargs: Any) -> Any:
        raise ValueError("Failed to load model from file")

    model = LocalModel(gguf, llama_factory=broken, grammar_factory=lambda text: text)
    with pytest.raises(ConfigError, match="cannot load local model .*Failed to load model"):
        model.complete(AGENT)
