"""ScriptedModel: the replay model used by tests and by ``--model script:FILE.jsonl``."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from agent.models.messages import ChatModel, Message, Usage, estimate_usage
from agent.models.scripted import ScriptedModel, apply_limits, parse_script_line, split_chunks
from rt.errors import ConfigError, Interrupted, ModelAPIError

ASK = [Message.system("sys"), Message.user("question")]


def test_queue_replays_in_order_and_records_requests() -> None:
    model = ScriptedModel(["first reply", "second"])
    texts: list[str] = []
    one = model.complete(ASK, on_text=texts.append)
    two = model.complete([*ASK, Message.assistant(one.text), Message.user("more")])

    assert (one.text, two.text) == ("first reply", "second")
    assert one.finish_reason == "stop"
    assert "".join(texts) == "first reply" and 1 < len(texts) <= 3
    assert model.requests == [ASK, [*ASK, Message.assistant("first reply"), Message.user("more")]]
    assert one.usage == estimate_usage(ASK, "first reply") and one.usage.estimated
    assert model.total_usage == one.usage + two.usage
    assert model.remaining == 0


def test_requests_are_copies() -> None:
    model = ScriptedModel(["a"])
    messages = list(ASK)
    model.complete(messages)
    messages.append(Message.user("later"))
    assert model.requests == [ASK]


def test_exhausted_queue_raises_model_api_error() -> None:
    model = ScriptedModel(["only"])
    model.complete(ASK)
    with pytest.raises(ModelAPIError, match="scripted model has no more replies"):
        model.complete(ASK)
    assert len(model.requests) == 2


def test_empty_model_and_add() -> None:
    model = ScriptedModel()
    with pytest.raises(ModelAPIError):
        model.complete(ASK)
    model.add("late", ModelAPIError("boom"))
    assert model.complete(ASK).text == "late"
    with pytest.raises(ModelAPIError, match="boom"):
        model.complete(ASK)
    with pytest.raises(TypeError):
        model.add(3)  # type: ignore[arg-type]


def test_single_string_is_one_reply() -> None:
    model = ScriptedModel("just this")
    assert model.complete(ASK).text == "just this"
    assert model.remaining == 0


def test_function_mode() -> None:
    def respond(messages: list[Message]) -> str:
        return f"{len(messages)} messages, last: {messages[-1].content}"

    model = ScriptedModel(respond, name="echo")
    assert model.name == "echo"
    assert model.complete(ASK).text == "2 messages, last: question"
    assert model.complete(ASK[:1]).text == "1 messages, last: sys"
    assert len(model.requests) == 2


def test_function_mode_must_return_text() -> None:
    model = ScriptedModel(lambda messages: None)  # type: ignore[arg-type, return-value]
    with pytest.raises(ModelAPIError, match="returned NoneType"):
        model.complete(ASK)


def test_cancel_before_and_during_the_reply() -> None:
    cancel = threading.Event()
    cancel.set()
    model = ScriptedModel(["a long enough reply", "next"])
    with pytest.raises(Interrupted):
        model.complete(ASK, cancel=cancel)
    assert model.remaining == 1  # the cancelled call consumed its reply
    assert model.total_usage == Usage()

    cancel.clear()
    texts: list[str] = []

    def on_text(text: str) -> None:
        texts.append(text)
        cancel.set()

    with pytest.raises(Interrupted):
        model.complete(ASK, on_text=on_text, cancel=cancel)
    assert len(texts) == 1


def test_stop_and_max_tokens_are_applied() -> None:
    model = ScriptedModel(["answer\n\nextra", "x" * 100])
    assert model.complete(ASK, stop=["\n\n"]).text == "answer"
    truncated = model.complete(ASK, max_tokens=5)
    assert (truncated.text, truncated.finish_reason) == ("x" * 20, "length")
    assert truncated.usage.completion == 5


@pytest.mark.parametrize(
    ("text", "max_tokens", "stop", "expected"),
    [
        ("abc", None, None, ("abc", "stop")),
        ("a.b;c", None, [";", "."], ("a", "stop")),
        ("abc", None, ["", "z"], ("abc", "stop")),
        ("abcdefghij", 2, None, ("abcdefgh", "length")),
        ("abcdefgh", 2, None, ("abcdefgh", "stop")),
        ("abc", 0, None, ("", "length")),
    ],
)
def test_apply_limits(
    text: str, max_tokens: int | None, stop: list[str] | None, expected: tuple[str, str]
) -> None:
    assert apply_limits(text, max_tokens=max_tokens, stop=stop) == expected


@pytest.mark.parametrize(
    ("text", "count", "expected"),
    [("", 3, []), ("ab", 3, ["a", "b"]), ("abcdefg", 3, ["abc", "def", "g"]), ("abc", 1, ["abc"])],
)
def test_split_chunks(text: str, count: int, expected: list[str]) -> None:
    assert split_chunks(text, count) == expected


def test_is_a_chat_model() -> None:
    model: ChatModel = ScriptedModel(["x"])
    assert model.name == "scripted"


# -- script files ---------------------------------------------------------------------------------


def test_from_jsonl_good_lines(tmp_path: Path) -> None:
    script = tmp_path / "run.jsonl"
    script.write_text(
        '"plain string"\n'
        "\n"
        '{"reply": "multi\\nline \\u2028 reply"}\r\n'
        '{"error": "HTTP 503 from the scripted endpoint"}\n'
        '"after the failure"\n',
        encoding="utf-8",
    )
    model = ScriptedModel.from_jsonl(script)
    assert model.name == "script:run.jsonl"
    assert model.remaining == 4
    assert model.complete(ASK).text == "plain string"
    assert model.complete(ASK).text == "multi\nline \u2028 reply"
    with pytest.raises(ModelAPIError, match="^HTTP 503 from the scripted endpoint$"):
        model.complete(ASK)
    assert model.complete(ASK).text == "after the failure"
    with pytest.raises(ModelAPIError, match="no more replies"):
        model.complete(ASK)


def test_from_jsonl_keeps_raw_line_separators_inside_strings(tmp_path: Path) -> None:
    script = tmp_path / "s.jsonl"
    script.write_text('"a\u2028b"\n', encoding="utf-8")
    assert ScriptedModel.from_jsonl(str(script)).complete(ASK).text == "a\u2028b"


@pytest.mark.parametrize(
    "bad_line",
    [
        "not json",
        '{"reply": 3}',
        '{"reply": "x", "extra": 1}',
        '{"answer": "x"}',
        "[1, 2]",
        "42",
        '{"error": null}',
    ],
)
def test_from_jsonl_bad_line_names_file_and_line(tmp_path: Path, bad_line: str) -> None:
    script = tmp_path / "bad.jsonl"
    script.write_text(f'"ok"\n\n{bad_line}\n', encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        ScriptedModel.from_jsonl(script)
    assert str(info.value).startswith(f"{script}:3: ")
    assert '{"reply": "..."}' in str(info.value)


def test_from_jsonl_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read model script .*nope.jsonl"):
        ScriptedModel.from_jsonl(tmp_path / "nope.jsonl")


def test_from_jsonl_empty_file(tmp_path: Path) -> None:
    script = tmp_path / "empty.jsonl"
    script.write_text("\n  \n", encoding="utf-8")
    with pytest.raises(ConfigError, match="no replies"):
        ScriptedModel.from_jsonl(script)


def test_from_jsonl_not_utf8(tmp_path: Path) -> None:
    script = tmp_path / "latin.jsonl"
    script.write_bytes(b'"caf\xe9"\n')
    with pytest.raises(ConfigError, match="not UTF-8"):
        ScriptedModel.from_jsonl(script)


def test_parse_script_line() -> None:
    assert parse_script_line('"x"', "f:1") == "x"
    error = parse_script_line('{"error": "down"}', "f:1")
    assert isinstance(error, ModelAPIError) and str(error) == "down"
