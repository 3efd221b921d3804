"""What a new user hit in the catalog: shadowing, /save's arguments, check DIR, failed loads."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from agent.app import open_parts
from agent.config import load_settings
from agent.models.scripted import ScriptedModel
from agent.programs.catalog import Catalog, load_file
from agent.programs.writer import new_program
from cli.main import app
from cli.slash import find_program
from rt.errors import CatalogError
from rt.wattext import arguments_read

runner = CliRunner()
ENV = {"COLUMNS": "100", "TERM": "dumb", "NO_COLOR": "1"}


def invoke(*args: str):
    return runner.invoke(app, list(args), env=ENV)


# ---- catalog new never silently shadows --------------------------------------------------------
def test_new_refuses_a_shipped_name_without_force(_watt_home: Path) -> None:
    result = invoke("catalog", "new", "upper")
    assert result.exit_code == 2
    assert "'upper' is already a catalog program" in result.stderr and "--force" in result.stderr
    assert not (_watt_home / "catalog" / "upper.wat").exists()
    result = invoke("catalog", "new", "upper", "--force")
    assert result.exit_code == 0, result.output
    assert "warning: upper now overrides" in result.stderr
    assert (_watt_home / "catalog" / "upper.wat").exists()


def test_new_program_library_call_checks_the_catalog(tmp_path: Path) -> None:
    catalog, _ = Catalog.load([Catalog.shipped_dir()])
    with pytest.raises(CatalogError, match="already a catalog program"):
        new_program(tmp_path, "upper", catalog=catalog)
    assert new_program(tmp_path, "upper", catalog=catalog, force=True).exists()
    assert new_program(tmp_path, "fresh_name", catalog=catalog).exists()


# ---- /save keeps only the arguments the body reads ---------------------------------------------
@pytest.mark.parametrize(
    ("body", "count"),
    [
        ('(answer (str.upper "hello"))', 0),
        ("(argv 0 $t) (resv $t)", 1),
        ("(resv (arg 2))", 3),
        ('(resv "(arg 3)") ;; (arg 5)', 0),
        ("(call $sys.argv (i32.const 1))", 2),
        ("(i32.const 0) (call $sys.argv)", None),
        ("(call $sys.argc)", None),
        ("(resv (arg (local.get $i)))", None),
    ],
)
def test_arguments_read(body: str, count: int | None) -> None:
    assert arguments_read(body) == count


def test_save_leaves_out_an_argument_the_program_never_reads(_watt_home: Path) -> None:
    reply = 'ToolCall::Wat(```wat\n(answer (str.upper "hello"))\n```, "hello")'
    with open_parts(load_settings(), model=ScriptedModel([reply])) as parts:
        from agent.app import ask

        list(ask(parts, "shout hello"))
        saved = parts.save_last_program("shout")
    assert saved.program.usage() == "shout()"
    assert any("never reads" in note for note in saved.notes)
    program = load_file(saved.path)
    assert [(e.args, e.results) for e in program.examples] == [((), ("HELLO",))]
    result = invoke("run", "shout")  # the call with no arguments works
    assert (result.exit_code, result.stdout) == (0, "HELLO\n"), result.output
    assert "1 passed, 0 failed" in invoke("catalog", "test", "shout").stdout


# ---- catalog check DIR ---------------------------------------------------------------------------
def test_check_a_directory_checks_its_programs(tmp_path: Path) -> None:
    good = ';;; name = "good"\n;;; description = "ok"\n(i32.const 0)\n'
    (tmp_path / "good.wat").write_text(good)
    (tmp_path / "bad.wat").write_text(';;; name = "bad"\n;;; description =\n(i32.const 0)\n')
    result = invoke("catalog", "check", str(tmp_path))
    assert result.exit_code == 1
    assert "Is a directory" not in result.output and "not a regular file" not in result.output
    assert f"{tmp_path / 'bad.wat'}:2: malformed front matter" in result.stdout
    assert "1 program(s) checked, 1 problem(s)" in result.stdout
    (tmp_path / "bad.wat").unlink()
    assert invoke("catalog", "check", str(tmp_path)).exit_code == 0


# ---- a file that failed to load says so when asked for ---------------------------------------
@pytest.mark.parametrize(
    "command", [["run", "broken"], ["catalog", "show", "broken"], ["catalog", "test", "broken"]]
)
def test_a_program_that_failed_to_load_is_reported_with_its_error(
    _watt_home: Path, command: list[str]
) -> None:
    (_watt_home / "catalog").mkdir(parents=True)
    path = _watt_home / "catalog" / "broken.wat"
    path.write_text(';;; name = "broken"\n;;; description =\n(i32.const 0)\n')
    result = invoke(*command)
    assert result.exit_code == 2
    assert f"catalog program 'broken' failed to load: {path}:2: malformed front matter" in (
        result.stderr
    )
    assert "no catalog program" not in result.stderr


def test_find_program_in_the_repl_names_the_load_error(tmp_path: Path) -> None:
    (tmp_path / "broken.wat").write_text("no front matter\n")
    catalog, errors = Catalog.load([tmp_path])
    assert len(errors) == 1
    with pytest.raises(CatalogError, match="'broken' failed to load: .*no front matter"):
        find_program(catalog, "broken")
    with pytest.raises(CatalogError, match="no catalog program named 'other'"):
        find_program(catalog, "other")
