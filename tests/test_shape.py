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
PACKAGES = ("rt", "capabilities", "agent", "cli", "server")
MAX_FUNCTION_LINES = 80
MAX_MODULES_PER_FOLDER = 14
LAYERS = {
    "rt": 0,
    "capabilities": 1,
    "agent": 2,
    "cli": 3,
    "server": 3,
}  # DESIGN.md: cli -> agent -> capabilities -> rt (server beside cli)


def _modules() -> list[Path]:
    return sorted(p for pkg in PACKAGES for p in (REPO / pkg).rglob("*.py"))


def test_no_function_over_80_lines() -> None:
    long = []
    for path in _modules():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = (node.end_lineno or node.lineno) - node.lineno + 1
                if lines > MAX_FUNCTION_LINES:
                    long.append(
                        f"{path.relative_to(REPO)}:{node.lineno} {node.name} ({lines} lines)"
                    )
    assert long == []


def test_no_package_folder_over_14_modules() -> None:
    folders = {p.parent for p in _modules()}
    crowded = {
        str(f.relative_to(REPO)): n
        for f in folders
        if (n := len(list(f.glob("*.py")))) > MAX_MODULES_PER_FOLDER
    }
    assert crowded == {}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports() -> dict[str, set[str]]:
    """Each package module and the package modules it imports (``from a.b import c`` counts
    as a.b.c when that is a module)."""
    modules = {_module_name(p): p for p in _modules()}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        found: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                sub = [f"{node.module}.{a.name}" for a in node.names]
                targets = [t if t in modules else node.module for t in sub]
            for target in targets:
                while target and target not in modules:
                    target = target.rpartition(".")[0]
                if target and target != name and (target, name) != ("agent", "agent"):
                    found.add(target)
        graph[name] = found
    return graph


def _folder(module: str) -> str:
    """The room a module is drawn in: a top-level module of agent/, or its subpackage."""
    parts = module.split(".")
    return ".".join(parts[:2]) if parts[0] == "agent" and len(parts) > 1 else module


def _cycle(graph: dict[str, set[str]]) -> list[str]:
    state: dict[str, int] = {}
    path: list[str] = []

    def visit(node: str) -> list[str]:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt) :] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        state[node] = 2
        path.pop()
        return []

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return []


def test_imports_run_down_the_layers_without_cycles() -> None:
    graph = _imports()
    upward = sorted(
        f"{a} -> {b}" for a, deps in graph.items() for b in deps
        if LAYERS[b.split(".")[0]] > LAYERS[a.split(".")[0]]
    )  # fmt: skip
    assert upward == []
    assert _cycle({m: deps - {"agent"} for m, deps in graph.items() if m != "agent"}) == []
    folders: dict[str, set[str]] = {}
    for module, deps in graph.items():
        if module.startswith("agent.") and module != "agent":
            folders.setdefault(_folder(module), set()).update(
                _folder(d) for d in deps if d.startswith("agent.") and _folder(d) != _folder(module)
            )
    assert _cycle(folders) == []


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
