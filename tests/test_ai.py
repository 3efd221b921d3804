"""The ai capability: text helpers, then ai.assist through WAT with a fake assistant."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

import pytest

from capabilities.ai import AiCapability, cap_utf8, failure_detail, first_line, scrub
from capabilities.sys import SysCapability
from rt.codes import Err
from rt.engine import RunResult, Runtime
from rt.errors import Interrupted, ModelAPIError, Timeout
from rt.host import GuestError, RunContext
from rt.limits import Limits

KEY = "sk-proj-Abc123SECRETkey456"


def assist_body(flags: int) -> str:
    return f"""
    (argv 0 $in) (argv 1 $ins)
    (local $out i32) (local $e i32)
    (call $ai.assist (local.get $in) (local.get $ins) (i32.const {flags})) (local.set $e) (local.set $out)
    (check $e)
    (resv $out)
    (i32.const 0)
    """


THREE_CALLS = """
(local $out i32) (local $e i32)
(call $ai.assist "a" "x" (i32.const 0)) (local.set $e) (local.set $out) (check $e)
(call $ai.assist "b" "x" (i32.const 0)) (local.set $e) (local.set $out) (check $e)
(call $ai.assist "c" "x" (i32.const 0)) (local.set $e) (local.set $out) (check $e)
(resv $out)
(i32.const 0)
"""


@dataclass
class FakeAssistant:
    """Answers from a script (or raises), recording every call."""

    answer: str = "ANSWER"
    error: Exception | None = None
    calls: list[tuple[str, str, bool]] = field(default_factory=list)
    cancels: list[threading.Event | None] = field(default_factory=list)

    def __call__(
        self,
        instruction: str,
        text: str,
        *,
        single_line: bool,
        cancel: threading.Event | None = None,
    ) -> str:
        self.calls.append((instruction, text, single_line))
        self.cancels.append(cancel)
        if self.error is not None:
            raise self.error
        return self.answer


def runtime(cap: AiCapability) -> Runtime:
    return Runtime(functions=[*SysCapability().functions(), *cap.functions()], limits=Limits())


def run(rt: Runtime, body: str, *args: str) -> RunResult:
    return rt.run(body, args=list(args))


# ---- helpers ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("401: Authorization: Bearer sk-abcdef123456", "401: Authorization: *** ***"),
        ("bad header Bearer abc.def-ghi", "bad header Bearer ***"),
        (f"invalid key {KEY} given", "invalid key sk-*** given"),
        ("url?api_key=hunter2&x=1", "url?api_key=***&x=1"),
        ("token: abcdef", "token: ***"),
        ("connection refused", "connection refused"),
    ],
)
def test_scrub(text: str, expected: str) -> None:
    assert scrub(text) == expected


def test_scrub_known_secret() -> None:
    assert scrub("the key is plainkey99 ok", ["plainkey99", ""]) == "the key is *** ok"


def test_failure_detail_is_short_and_first_line() -> None:
    exc = ModelAPIError(f"HTTP 401 for key {KEY}\nrequest headers: Authorization: Bearer {KEY}")
    detail = failure_detail(exc)
    assert detail == "ai.assist failed: ModelAPIError: HTTP 401 for key sk-***"
    assert KEY not in failure_detail(ModelAPIError("x" * 500 + KEY))
    assert len(failure_detail(ModelAPIError("y" * 500))) == 200
    assert failure_detail(ModelAPIError("")) == "ai.assist failed: ModelAPIError"


@pytest.mark.parametrize(
    ("text", "expected"),
    [("one\ntwo", "one"), ("\n\n  spaced  \nnext", "spaced"), ("", ""), ("  \n ", "")],
)
def test_first_line(text: str, expected: str) -> None:
    assert first_line(text) == expected


def test_cap_utf8_keeps_characters_whole() -> None:
    assert cap_utf8("abc", 3) == ("abc", False)
    assert cap_utf8("abcd", 3) == ("abc", True)
    assert cap_utf8("日本語", 7) == ("日本", True)  # 9 bytes; the third char would be split
    assert cap_utf8("é", 1) == ("", True)


def test_signatures_and_docs() -> None:
    (fn,) = AiCapability(None).functions()
    assert fn.signature() == "ai.assist (input instruction flags) -> (ptr err)"
    assert len(fn.doc.split()) <= 15


# ---- through WAT -----------------------------------------------------------------------------


def test_assist_passes_text_and_instruction() -> None:
    fake = FakeAssistant(answer="a short summary")
    result = run(runtime(AiCapability(fake)), assist_body(0), "long text", "summarise")
    assert (result.status, result.results) == (0, ["a short summary"])
    assert fake.calls == [("summarise", "long text", False)]


def test_single_line_flag() -> None:
    fake = FakeAssistant(answer="\n  positive  \nbecause the text is cheerful")
    result = run(runtime(AiCapability(fake)), assist_body(1), "I love it", "sentiment")
    assert result.results == ["positive"]
    assert fake.calls == [("sentiment", "I love it", True)]


@pytest.mark.parametrize("flags", [2, 3, -1])
def test_unknown_flags_are_ebound(flags: int) -> None:
    fake = FakeAssistant()
    result = run(runtime(AiCapability(fake)), assist_body(flags), "t", "i")
    assert result.status == Err.EBOUND
    assert fake.calls == []


def test_no_assistant_is_eaccess() -> None:
    result = run(runtime(AiCapability(None)), assist_body(0), "t", "i")
    assert result.status == Err.EACCESS
    assert result.debug == ["ai.assist: EACCESS: no ai assistant granted"]


def test_input_size_quota() -> None:
    fake = FakeAssistant()
    rt = runtime(AiCapability(fake, max_input_bytes=10))
    assert run(rt, assist_body(0), "12345", "12345").status == 0
    result = run(rt, assist_body(0), "123456", "12345")
    assert result.status == Err.ENOMEM
    assert "str.chunk" in result.debug[0]
    assert len(fake.calls) == 1


def test_calls_per_run_quota() -> None:
    fake = FakeAssistant()
    rt = runtime(AiCapability(fake, max_calls_per_run=2))
    result = run(rt, THREE_CALLS)
    assert result.status == Err.ENOMEM
    assert "more than 2 ai calls in one run" in result.debug[0]
    assert [c[1] for c in fake.calls] == ["a", "b"]
    assert run(rt, assist_body(0), "t", "i").status == 0  # a new run has a new count


def test_calls_per_session_quota() -> None:
    fake = FakeAssistant()
    cap = AiCapability(fake, max_calls_per_session=3)
    rt = runtime(cap)
    assert run(rt, THREE_CALLS).status == 0
    result = run(rt, assist_body(0), "t", "i")
    assert result.status == Err.ENOMEM
    assert "session's 3 ai calls are used up" in result.debug[0]
    assert run(runtime(cap), assist_body(0), "t", "i").status == Err.ENOMEM
    assert cap.session_calls == 3


def test_session_time_quota() -> None:
    fake = FakeAssistant()
    cap = AiCapability(fake, max_seconds_per_session=0.0)
    result = run(runtime(cap), assist_body(0), "t", "i")
    assert result.status == Err.ENOMEM
    assert "0 s of ai time are used up" in result.debug[0]
    assert fake.calls == []


def test_time_spent_waiting_for_the_model_is_counted() -> None:
    def slow(
        instruction: str, text: str, *, single_line: bool, cancel: threading.Event | None = None
    ) -> str:
        time.sleep(0.02)
        return "ok"

    cap = AiCapability(slow)
    assert run(runtime(cap), assist_body(0), "t", "i").status == 0
    assert cap.session_seconds >= 0.02


def test_the_run_deadline_reaches_the_assistant_through_cancel() -> None:
    woken: list[bool] = []

    def waits(
        instruction: str, text: str, *, single_line: bool, cancel: threading.Event | None = None
    ) -> str:
        assert cancel is not None
        woken.append(cancel.wait(30))  # set by the run's wall clock, long before 30 s
        raise Interrupted("the run was stopped")

    rt = Runtime(
        functions=[*SysCapability().functions(), *AiCapability(waits).functions()],
        limits=Limits(timeout_s=0.3),
    )
    with pytest.raises(Timeout) as info:  # the run did not finish in time: a Timeout
        rt.run(assist_body(0), args=["t", "i"])
    assert woken == [True]
    result = info.value.partial
    assert result.status == Err.EREMOTE and "Interrupted" in result.debug[0]


@pytest.mark.parametrize(
    "error",
    [
        ModelAPIError(f"HTTP 401 Unauthorized (key {KEY})\nAuthorization: Bearer {KEY}"),
        ModelAPIError(f"token budget spent; Authorization: Bearer {KEY}"),
        RuntimeError(f"unexpected failure with {KEY}"),
    ],
)
def test_failure_is_eremote_without_the_key(error: Exception) -> None:
    fake = FakeAssistant(error=error)
    cap = AiCapability(fake, secrets=[KEY])
    result = run(runtime(cap), assist_body(0), "t", "i")
    assert (result.status, result.results) == (Err.EREMOTE, [])
    assert len(result.debug) == 1
    line = result.debug[0]
    assert line.startswith(f"ai.assist: EREMOTE: ai.assist failed: {type(error).__name__}")
    assert KEY not in line and "Abc123SECRET" not in line
    assert "\n" not in line
    assert cap.session_calls == 1  # a failed call still counts


def test_output_is_capped() -> None:
    fake = FakeAssistant(answer="é" * 10)
    result = run(runtime(AiCapability(fake, max_output_bytes=5)), assist_body(0), "t", "i")
    assert result.results == ["éé"]
    assert result.debug == ["ai.assist: answer truncated to 5 bytes"]


def test_non_text_answer_is_eremote() -> None:
    fake = FakeAssistant(answer=None)  # type: ignore[arg-type]
    assert run(runtime(AiCapability(fake)), assist_body(0), "t", "i").status == Err.EREMOTE


class _Ctx(RunContext):
    """A RunContext whose memory is a dict of pointers, for calling ``assist`` directly."""

    def __init__(self, buffers: dict[int, bytes], deadline: float, cancel: threading.Event) -> None:
        super().__init__(
            args=[], max_result_bytes=1000, max_debug_lines=10, deadline=deadline, cancel=cancel
        )
        self.buffers = buffers

    def read_bytes(self, ptr: int) -> bytes:
        return self.buffers[ptr]


@pytest.mark.parametrize("why", ["cancelled", "deadline"])
def test_no_time_left_is_eremote(why: str) -> None:
    fake = FakeAssistant()
    cancel = threading.Event()
    deadline = time.monotonic() + 60
    if why == "cancelled":
        cancel.set()
    else:
        deadline = time.monotonic() - 1
    ctx = _Ctx({1: b"text", 2: b"instruction"}, deadline, cancel)
    with pytest.raises(GuestError) as info:
        AiCapability(fake).assist(ctx, 1, 2, 0)
    assert info.value.code == Err.EREMOTE
    assert fake.calls == []
