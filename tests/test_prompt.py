"""The system prompt: a golden copy of the full prompt, its token budget, and grant filtering."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from agent.models.messages import estimate_tokens
from agent.parser import CatalogCall, WatCall, parse_reply
from agent.programs.catalog import Catalog
from agent.prompt import build_system_prompt
from capabilities import standard_registry
from tests.golden_util import assert_golden

# 36 catalog programs, math and agent (--agents), two catalog examples; measured 3004
TOKEN_BUDGET = 3025
NAMESPACES = ("str", "arr", "json", "debug", "kv", "fs", "http", "ai")


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    loaded, errors = Catalog.load([Catalog.shipped_dir()])
    assert errors == []
    return loaded


def full_prompt(catalog: Catalog) -> str:
    registry = standard_registry()
    return build_system_prompt(registry, catalog, set(registry.names()))


def test_full_prompt_matches_golden(catalog: Catalog) -> None:
    assert_golden("system_prompt.txt", full_prompt(catalog))


def test_full_prompt_fits_token_budget(catalog: Catalog) -> None:
    assert estimate_tokens(full_prompt(catalog)) <= TOKEN_BUDGET


def test_granted_none_means_everything(catalog: Catalog) -> None:
    registry = standard_registry()
    assert build_system_prompt(registry, catalog, None) == full_prompt(catalog)


def test_full_prompt_lists_every_function_and_program(catalog: Catalog) -> None:
    text = full_prompt(catalog)
    for f in standard_registry().functions():
        if f.namespace != "sys":  # sys is written as the (arg N), (answer X) and (resv X) forms
            assert f"{f.namespace}.{f.name} " in text, f.namespace + "." + f.name
    for program in catalog:
        assert f"{program.name}(" in text
    for code in ("ETRFM", "ENOMEM", "EACCESS", "ENOENT", "EBOUND", "EREMOTE", "EPARSE"):
        assert code in text


def _mentions(text: str, namespace: str) -> bool:
    return re.search(rf"(?<![\w.]){re.escape(namespace)}\.[a-z_0-9]+", text) is not None


@pytest.mark.parametrize(
    "granted", [set(), {"str"}, {"str", "kv"}, {"fs", "arr"}, {"http", "json"}]
)
def test_lists_only_granted_capabilities(catalog: Catalog, granted: set[str]) -> None:
    text = build_system_prompt(standard_registry(), catalog, granted)
    for ns in NAMESPACES:
        assert _mentions(text, ns) == (ns in granted), ns
    assert "(arg N)" in text and "(answer X)" in text  # sys is always granted
    for program in catalog:
        usable = set(program.capabilities) <= granted | {"sys"}
        assert (f"- {program.name}(" in text) == usable, program.name


def test_smaller_grant_gives_smaller_prompt(catalog: Catalog) -> None:
    registry = standard_registry()
    small = build_system_prompt(registry, catalog, {"str"})
    assert estimate_tokens(small) < estimate_tokens(full_prompt(catalog))


def _examples(text: str) -> list[str]:
    """Every ToolCall of the worked examples, as a reply would carry it."""
    text = text[text.index("Examples:") : text.index("Writing WAT")]
    starts = [m.start() for m in re.finditer(r"ToolCall::(Wat|Catalog|Response)\(", text)]
    out = []
    for start in starts:
        head = text[start:]
        if head.startswith("ToolCall::Wat("):
            end = head.index("```", head.index("```") + 3)
            end = head.index(")", end) + 1
        elif head.startswith("ToolCall::Response("):
            close = '"""' if head.startswith('ToolCall::Response("""') else '"'
            end = head.index(
                close + ")", len('ToolCall::Response("') + (2 if close == '"""' else 0)
            )
            end += len(close) + 1
        else:
            end = head.index(")") + 1
        out.append(head[:end])
    return out


def test_reply_forms_come_first(catalog: Catalog) -> None:
    text = full_prompt(catalog)
    head = text[: text.index("Examples:")]
    for form in ("ToolCall::Catalog(", "ToolCall::Wat(```wat", 'ToolCall::Response("""'):
        assert form in head


def test_wat_examples_use_the_short_forms(catalog: Catalog) -> None:
    bodies = [parse_reply(e) for e in _examples(full_prompt(catalog))]
    wat = [a for a in bodies if isinstance(a, WatCall)]
    assert wat and all("(answer " in a.body and "(call" not in a.body for a in wat)


def test_examples_follow_the_grants(catalog: Catalog) -> None:
    text = build_system_prompt(standard_registry(), catalog, set())
    assert "Examples:" not in text and "Numbers are text" not in text
    assert "(ns.name X)" in text  # the call form is still shown


def test_files_name_the_jail_root(catalog: Catalog, tmp_path: Path) -> None:
    text = build_system_prompt(standard_registry(fs_root=tmp_path), catalog, {"fs"})
    assert f'"{tmp_path}/notes.txt" names the same file' in text


def test_every_example_parses_without_fallbacks(catalog: Catalog) -> None:
    examples = _examples(full_prompt(catalog))
    kinds = {type(parse_reply(e)) for e in examples}
    assert kinds == {WatCall, CatalogCall}  # no Response: a small model copies example answers
    for example in examples:
        action = parse_reply(example)
        assert action.notes == (), (example, action.notes)


def test_wat_examples_compile_and_run(catalog: Catalog) -> None:
    from rt.engine import Runtime

    registry = standard_registry()
    runtime = Runtime(registry.functions())
    for example in _examples(full_prompt(catalog)):
        action = parse_reply(example)
        if isinstance(action, WatCall) and not any(
            _mentions(action.body, ns) for ns in ("fs", "http", "kv", "ai", "agent")
        ):
            result = runtime.run(action.body, list(action.args))
            assert result.ok, (example, result.status_name, result.debug)
            assert result.answer is not None and result.notes == (), example


def test_catalog_examples_name_real_programs(catalog: Catalog) -> None:
    names = []
    for example in _examples(full_prompt(catalog)):
        action = parse_reply(example)
        if isinstance(action, CatalogCall):
            names.append(action.name)
    assert names and all(catalog.get(name) is not None for name in names), names


def test_a_user_program_named_like_a_catalog_example_with_fewer_arguments_is_skipped(
    tmp_path: Path,
) -> None:
    (tmp_path / "replace.wat").write_text(
        ';;; name = "replace"\n;;; description = "Strip dashes"\n;;;\n'
        ';;; [[args]]\n;;; name = "text"\n;;; description = "the text"\n;;;\n'
        ';;; [[examples]]\n;;; args = ["a-b"]\n;;; results = ["ab"]\n'
        '(argv 0 $t)\n(resv (str.replace (local.get $t) "-" ""))\n(i32.const 0)\n'
    )
    loaded, errors = Catalog.load([Catalog.shipped_dir(), tmp_path])
    assert not errors and loaded.get("replace") is not None
    assert loaded.get("replace").description == "Strip dashes"  # type: ignore[union-attr]
    text = build_system_prompt(standard_registry(), loaded)
    assert "The catalog program count_substring does this" in text  # the other one is shown
    assert "The catalog program replace does this" not in text
