"""The codebase's shape (STYLE.md): small functions, a declared public API, a README example
that runs, and a config module that loads without the engine."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

import agent

REPO = Path(__file__).resolve().parent.parent
PACKAGES = ("rt", "capabilities", "agent", "cli")
MAX_FUNCTION_LINES = 80


def _modules() -> list[Path]:
    return sorted(p for pkg in PACKAGES for p in (REPO / pkg).rglob("*.py"))


def test_no_function_over_80_lines() -> None:
    long = []
    for path in _modules():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = (node.end_lineno or node.lineno) - node.lineno + 1
                if lines > MAX_FUNCTION_LINES:
                    long.append(f"{path.relative_to(REPO)}:{node.lineno} {node.name} ({lines} lines)")
    assert long == []


@pytest.mark.parametrize("name", agent.__all__)
def test_every_public_name_resolves(name: str) -> None:
    assert getattr(agent, name) is not None
    assert name in dir(agent)


def test_the_public_api_holds_what_library_users_need() -> None:
    assert sorted(agent.__all__) == sorted(agent._EXPORTS)
    needed = {"open_parts", "ask", "Settings", "TaskOutcome", "ChatModel", "Event", "ResponseEvent",
              "ErrorEvent", "OpenAIChatModel", "LocalModel", "ScriptedModel"}  # fmt: skip
    assert needed <= set(agent.__all__)
    with pytest.raises(AttributeError):
        agent.not_a_name  # noqa: B018


def test_readme_library_example_runs(capsys: pytest.CaptureFixture[str]) -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Library", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"^```python\n(.*?)^```$", section, re.DOTALL | re.MULTILINE)
    assert len(blocks) == 1
    exec(compile(blocks[0], "README.md", "exec"), {})
    assert capsys.readouterr().out == "answered HELLO\n"


def test_config_and_the_api_face_import_without_the_engine() -> None:
    code = (
        "import sys, agent, agent.config, agent.events, agent.outcome\n"
        "heavy = {'wasmtime', 'httpx', 'llama_cpp'} & set(sys.modules)\n"
        "assert not heavy, heavy"
    )
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True)
