"""The fs capability: path rules and root validation, then every function through WAT."""

from __future__ import annotations

import errno
import os
import unicodedata
from pathlib import Path

import pytest

from capabilities.arrays import ArrCapability
from capabilities.fs import NO_ROOT, TEMP_PREFIX, FsCapability, split_path, validate_root
from capabilities.sys import SysCapability
from rt.codes import Err
from rt.engine import RunResult, Runtime
from rt.errors import CapabilityError
from rt.host import GuestError
from rt.limits import Limits

READ = """
(argv 0 $p)
(local $d i32) (local $e i32)
(call $fs.read (local.get $p)) (local.set $e) (local.set $d)
(check $e)
(resv $d)
(i32.const 0)
"""
WRITE = "(argv 0 $p) (argv 1 $d) (call $fs.write (local.get $p) (local.get $d))"
APPEND = "(argv 0 $p) (argv 1 $d) (call $fs.append (local.get $p) (local.get $d))"
DELETE = "(argv 0 $p) (call $fs.del (local.get $p))"
EXISTS = """
(argv 0 $p)
(local $b i32) (local $e i32)
(call $fs.exists (local.get $p)) (local.set $e) (local.set $b)
(check $e)
(if (local.get $b) (then (resv "yes")) (else (resv "no")))
(i32.const 0)
"""
LIST = """
(argv 0 $p)
(local $h i32) (local $e i32) (local $n i32) (local $i i32) (local $s i32)
(call $fs.list (local.get $p)) (local.set $e) (local.set $h)
(check $e)
(call $arr.len (local.get $h)) (local.set $e) (local.set $n)
(check $e)
(block $done
  (loop $next
    (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
    (call $arr.get (local.get $h) (local.get $i)) (local.set $e) (local.set $s)
    (check $e)
    (resv $s)
    (local.set $i (i32.add (local.get $i) (i32.const 1)))
    (br $next)))
(i32.const 0)
"""


@pytest.fixture
def jail(tmp_path: Path) -> Path:
    root = tmp_path / "jail"
    root.mkdir()
    (root / "a.txt").write_text("hello")
    (root / "sub").mkdir()
    (root / "sub" / "b.txt").write_text("inner")
    return root


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    secret = tmp_path / "outside"
    secret.mkdir()
    (secret / "secret.txt").write_text("TOP SECRET")
    return secret


def runtime(cap: FsCapability) -> Runtime:
    fns = [*SysCapability().functions(), *ArrCapability().functions(), *cap.functions()]
    return Runtime(functions=fns, limits=Limits())


def run(cap: FsCapability | Runtime, body: str, *args: str) -> RunResult:
    rt = cap if isinstance(cap, Runtime) else runtime(cap)
    return rt.run(body, args=list(args))


def no_temp_files(root: Path) -> bool:
    return not [p for p in root.rglob("*") if p.name.startswith(TEMP_PREFIX)]


# ---- pure parts ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "allow_root", "expected"),
    [
        ("a.txt", False, ["a.txt"]),
        ("sub/b.txt", False, ["sub", "b.txt"]),
        ("./sub/./b.txt", False, ["sub", "b.txt"]),
        ("", True, []),
        (".", True, []),
        ("./", True, []),
        ("sub/", False, ["sub"]),
        ("naïve/日本.txt", False, ["naïve", "日本.txt"]),
        ("..foo", False, ["..foo"]),
    ],
)
def test_split_path_accepts(path: str, allow_root: bool, expected: list[str]) -> None:
    assert split_path(path, allow_root=allow_root, dir_slash=path.endswith("/")) == expected


@pytest.mark.parametrize(
    "path",
    [
        "",
        ".",
        "..",
        "../x",
        "a/../b",
        "a/..",
        "/etc/passwd",
        "//x",
        "a\x00b",
        "a\\b",
        "..\\x",
        "C:/x",
        "c:x",
        "a//b",
        "a/",
        "/",
    ],
)
def test_split_path_refuses(path: str) -> None:
    with pytest.raises(GuestError) as info:
        split_path(path)
    assert info.value.code == Err.EACCESS


@pytest.mark.parametrize("path", ["/", "sub//", "./", "//"])
def test_split_path_refuses_with_dir_slash(path: str) -> None:
    with pytest.raises(GuestError) as info:
        split_path(path, dir_slash=True)
    assert info.value.code == Err.EACCESS


def test_split_path_caps_length() -> None:
    with pytest.raises(GuestError) as info:
        split_path("a/" * 600 + "b")
    assert info.value.code == Err.EBOUND


def test_validate_root_resolves(jail: Path, tmp_path: Path) -> None:
    link = tmp_path / "link-to-jail"
    link.symlink_to(jail)
    assert validate_root(link, [tmp_path / "home"]) == jail.resolve()


@pytest.mark.parametrize("which", ["same", "root_inside", "protected_inside"])
def test_validate_root_refuses_overlap(tmp_path: Path, which: str) -> None:
    home = tmp_path / "home"
    (home / "cache").mkdir(parents=True)
    root, protected = {
        "same": (home, home),
        "root_inside": (home / "cache", home),
        "protected_inside": (tmp_path, home / "cache"),
    }[which]
    with pytest.raises(CapabilityError, match="overlaps"):
        validate_root(root, [protected])
    with pytest.raises(CapabilityError):
        FsCapability(root, protected=[protected])


def test_validate_root_refuses_missing_or_file(tmp_path: Path) -> None:
    with pytest.raises(CapabilityError, match="does not exist"):
        validate_root(tmp_path / "nope")
    (tmp_path / "f").write_text("x")
    with pytest.raises(CapabilityError, match="not a directory"):
        validate_root(tmp_path / "f")


def test_signatures_and_docs() -> None:
    fns = FsCapability(None).functions()
    assert [f.signature() for f in fns] == [
        "fs.read (path) -> (ptr err)",
        "fs.write (path data) -> (err)",
        "fs.append (path data) -> (err)",
        "fs.list (dir) -> (arr err)",
        "fs.exists (path) -> (bool err)",
        "fs.del (path) -> (err)",
    ]
    assert all(len(f.doc.split()) <= 15 for f in fns)


# ---- no root ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "args"),
    [
        (READ, ["a"]),
        (WRITE, ["a", "x"]),
        (APPEND, ["a", "x"]),
        (LIST, [""]),
        (EXISTS, ["a"]),
        (DELETE, ["a"]),
    ],
)
def test_no_root_is_eaccess(body: str, args: list[str]) -> None:
    result = run(FsCapability(None), body, *args)
    assert result.status == Err.EACCESS
    assert any(NO_ROOT in line for line in result.debug)


# ---- read ------------------------------------------------------------------------------------


def test_read(jail: Path) -> None:
    rt = runtime(FsCapability(jail))
    assert run(rt, READ, "a.txt").results == ["hello"]
    assert run(rt, READ, "sub/b.txt").results == ["inner"]
    assert run(rt, READ, "./sub/b.txt").results == ["inner"]


@pytest.mark.parametrize(
    ("path", "code"),
    [
        ("missing.txt", Err.ENOENT),
        ("nodir/x.txt", Err.ENOENT),
        ("a.txt/x", Err.ENOENT),  # through a file
        ("sub", Err.EACCESS),  # a directory where a file is expected
        ("", Err.EACCESS),
        ("../outside/secret.txt", Err.EACCESS),
        ("sub/../../outside/secret.txt", Err.EACCESS),
        ("/etc/passwd", Err.EACCESS),
        ("a\x00b", Err.EACCESS),
        ("sub\\b.txt", Err.EACCESS),
        ("C:/a.txt", Err.EACCESS),
        ("sub//b.txt", Err.EACCESS),
    ],
)
def test_read_errors(jail: Path, path: str, code: Err) -> None:
    result = run(FsCapability(jail), READ, path)
    assert (result.status, result.results) == (code, [])
    assert result.debug and result.debug[0].startswith(f"fs.read: {code.name}")


def test_read_bad_pointer_is_etrfm(jail: Path) -> None:
    body = "(local $e i32) (call $fs.read (i32.const -16)) (local.set $e) (drop) (local.get $e)"
    assert run(FsCapability(jail), body).status == Err.ETRFM


def test_symlinks_are_refused_everywhere(jail: Path, outside: Path) -> None:
    (jail / "file-link").symlink_to(outside / "secret.txt")
    (jail / "dir-link").symlink_to(outside)
    (jail / "inner-link").symlink_to(jail / "a.txt")  # even pointing inside the jail
    (jail / "dangling").symlink_to(jail / "nothing-here")
    (jail / "sub" / "up").symlink_to("..")
    rt = runtime(FsCapability(jail))
    for path in ["file-link", "dir-link/secret.txt", "inner-link", "dangling", "sub/up/a.txt"]:
        result = run(rt, READ, path)
        assert (result.status, result.results) == (Err.EACCESS, []), path
        assert "symlink" in result.debug[0]
    for body, args in [
        (WRITE, ["dir-link/new.txt", "x"]),
        (WRITE, ["file-link", "pwned"]),
        (APPEND, ["file-link", "pwned"]),
        (WRITE, ["dangling", "x"]),
        (WRITE, ["dangling/x.txt", "x"]),
        (DELETE, ["file-link"]),
        (DELETE, ["dir-link/secret.txt"]),
        (LIST, ["dir-link"]),
        (EXISTS, ["dir-link"]),
        (EXISTS, ["dir-link/secret.txt"]),
    ]:
        assert run(rt, body, *args).status == Err.EACCESS, (body, args)
    assert (outside / "secret.txt").read_text() == "TOP SECRET"
    assert sorted(p.name for p in outside.iterdir()) == ["secret.txt"]
    assert not (jail / "nothing-here").exists()
    assert (jail / "file-link").is_symlink()


def test_fifo_is_refused_without_blocking(jail: Path) -> None:
    os.mkfifo(jail / "pipe")
    rt = runtime(FsCapability(jail))
    for body, args in [
        (READ, ["pipe"]),
        (APPEND, ["pipe", "x"]),
        (WRITE, ["pipe", "x"]),
        (EXISTS, ["pipe"]),
        (DELETE, ["pipe"]),
    ]:
        result = run(rt, body, *args)
        assert result.status == Err.EACCESS, body
        assert "not a regular file" in result.debug[0]
    assert run(rt, LIST, "").results == ["a.txt", "pipe", "sub/"]


def test_read_too_big_is_enomem(jail: Path) -> None:
    (jail / "big.bin").write_bytes(b"x" * 101)
    cap = FsCapability(jail, max_file_bytes=100)
    assert run(cap, READ, "big.bin").status == Err.ENOMEM
    (jail / "ok.bin").write_bytes(b"y" * 100)
    assert run(cap, READ, "ok.bin").results == ["y" * 100]


def test_root_gone_is_eaccess(jail: Path) -> None:
    cap = FsCapability(jail)
    jail.rename(jail.with_name("moved"))
    result = run(cap, READ, "a.txt")
    assert result.status == Err.EACCESS
    assert "no longer available" in result.debug[0]


# ---- write / append --------------------------------------------------------------------------


def test_write_creates_and_replaces(jail: Path) -> None:
    cap = FsCapability(jail)
    rt = runtime(cap)
    assert run(rt, WRITE, "new.txt", "one").status == 0
    assert run(rt, WRITE, "deep/er/x.txt", "two").status == 0
    assert run(rt, WRITE, "a.txt", "replaced").status == 0
    assert (jail / "new.txt").read_text() == "one"
    assert (jail / "deep" / "er" / "x.txt").read_text() == "two"
    assert run(rt, READ, "a.txt").results == ["replaced"]
    assert cap.bytes_written == len("onetworeplaced")
    assert cap.files_created == 4  # new.txt, deep/, deep/er/, x.txt
    assert no_temp_files(jail)


def test_write_keeps_mode(jail: Path) -> None:
    (jail / "a.txt").chmod(0o600)
    assert run(FsCapability(jail), WRITE, "a.txt", "x").status == 0
    assert (jail / "a.txt").stat().st_mode & 0o777 == 0o600


@pytest.mark.parametrize(
    ("path", "code"),
    [
        ("sub", Err.EACCESS),
        ("a.txt/x.txt", Err.EACCESS),
        ("", Err.EACCESS),
        ("sub/", Err.EACCESS),
        ("../x.txt", Err.EACCESS),
        ("/tmp/x.txt", Err.EACCESS),
    ],
)
def test_write_errors(jail: Path, path: str, code: Err) -> None:
    assert run(FsCapability(jail), WRITE, path, "x").status == code
    assert (jail / "a.txt").read_text() == "hello"


def test_append(jail: Path) -> None:
    rt = runtime(FsCapability(jail))
    assert run(rt, APPEND, "a.txt", " world").status == 0
    assert run(rt, APPEND, "log/new.txt", "line1\n").status == 0
    assert run(rt, APPEND, "log/new.txt", "line2\n").status == 0
    assert (jail / "a.txt").read_text() == "hello world"
    assert (jail / "log" / "new.txt").read_text() == "line1\nline2\n"
    assert run(rt, APPEND, "sub", "x").status == Err.EACCESS
    assert no_temp_files(jail)


def test_file_size_quota(jail: Path) -> None:
    rt = runtime(FsCapability(jail, max_file_bytes=10))
    assert run(rt, WRITE, "f.txt", "x" * 11).status == Err.ENOMEM
    assert not (jail / "f.txt").exists()
    assert run(rt, WRITE, "f.txt", "x" * 10).status == 0
    result = run(rt, APPEND, "f.txt", "y")
    assert result.status == Err.ENOMEM
    assert "would grow past 10 bytes" in result.debug[0]
    assert (jail / "f.txt").read_text() == "x" * 10


def test_session_write_quota_spans_runs(jail: Path) -> None:
    cap = FsCapability(jail, max_total_write_bytes_per_session=10)
    assert run(cap, WRITE, "a.txt", "123456").status == 0
    assert run(cap, APPEND, "a.txt", "7890").status == 0
    result = run(cap, WRITE, "b.txt", "x")
    assert result.status == Err.ENOMEM
    assert "session write quota" in result.debug[0]
    assert run(cap, READ, "a.txt").results == ["1234567890"]  # reading is not charged


def test_file_count_quota(jail: Path) -> None:
    cap = FsCapability(jail, max_files=2)
    rt = runtime(cap)
    assert run(rt, WRITE, "one.txt", "1").status == 0
    assert run(rt, WRITE, "two.txt", "2").status == 0
    assert run(rt, WRITE, "three.txt", "3").status == Err.ENOMEM
    assert run(rt, WRITE, "d/four.txt", "4").status == Err.ENOMEM
    assert run(rt, WRITE, "one.txt", "replaced").status == 0  # replacing is not a new file
    assert not (jail / "three.txt").exists() and not (jail / "d").exists()


def test_calls_per_run_quota(jail: Path) -> None:
    body = """
    (local $b i32) (local $e i32)
    (call $fs.exists "a.txt") (local.set $e) (local.set $b) (check $e)
    (call $fs.exists "a.txt") (local.set $e) (local.set $b) (check $e)
    (call $fs.exists "a.txt") (local.set $e) (local.set $b) (check $e)
    (i32.const 0)
    """
    rt = runtime(FsCapability(jail, max_calls_per_run=2))
    result = run(rt, body)
    assert result.status == Err.ENOMEM
    assert "more than 2 fs calls" in result.debug[0]
    assert run(rt, EXISTS, "a.txt").results == ["yes"]  # the count is per run


def test_failed_write_keeps_old_content(jail: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rt = runtime(FsCapability(jail))

    def broken_fsync(fd: int) -> None:
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(os, "fsync", broken_fsync)
    for body in (WRITE, APPEND):
        result = run(rt, body, "a.txt", "NEW CONTENT")
        assert result.status == Err.EACCESS
        assert "Input/output error" in result.debug[0]
        assert (jail / "a.txt").read_text() == "hello"
        assert no_temp_files(jail)
    assert run(rt, WRITE, "sub/fresh.txt", "x").status == Err.EACCESS
    assert sorted(p.name for p in (jail / "sub").iterdir()) == ["b.txt"]


def test_disk_full_is_enomem(jail: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def full(fd: int, data: object) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "write", full)
    assert run(FsCapability(jail), WRITE, "a.txt", "x").status == Err.ENOMEM
    assert (jail / "a.txt").read_text() == "hello"
    assert no_temp_files(jail)


# ---- list / exists / del ---------------------------------------------------------------------


def test_list(jail: Path) -> None:
    (jail / "B.md").write_text("")
    (jail / "zdir").mkdir()
    (jail / "sub" / "deeper").mkdir()
    (jail / (TEMP_PREFIX + "abandoned")).write_text("")
    rt = runtime(FsCapability(jail))
    top = ["B.md", "a.txt", "sub/", "zdir/"]
    assert run(rt, LIST, "").results == top
    assert run(rt, LIST, ".").results == top
    assert run(rt, LIST, "sub").results == ["b.txt", "deeper/"]
    assert run(rt, LIST, "sub/").results == ["b.txt", "deeper/"]
    assert run(rt, LIST, "zdir").results == []


@pytest.mark.parametrize(
    ("path", "code"),
    [
        ("missing", Err.ENOENT),
        ("a.txt", Err.EACCESS),
        ("a.txt/x", Err.ENOENT),
        ("..", Err.EACCESS),
        ("/", Err.EACCESS),
        ("sub//", Err.EACCESS),
    ],
)
def test_list_errors(jail: Path, path: str, code: Err) -> None:
    assert run(FsCapability(jail), LIST, path).status == code


@pytest.mark.parametrize(
    ("path", "answer"),
    [
        ("a.txt", "yes"),
        ("sub", "yes"),
        ("sub/", "yes"),
        ("sub/b.txt", "yes"),
        ("", "yes"),
        ("missing", "no"),
        ("nodir/x", "no"),
        ("a.txt/x", "no"),
    ],
)
def test_exists(jail: Path, path: str, answer: str) -> None:
    result = run(FsCapability(jail), EXISTS, path)
    assert (result.status, result.results) == (0, [answer])


@pytest.mark.parametrize("path", ["..", "../outside", "/etc", "a\\b"])
def test_exists_escape_is_eaccess(jail: Path, path: str) -> None:
    assert run(FsCapability(jail), EXISTS, path).status == Err.EACCESS


def test_del(jail: Path) -> None:
    (jail / "empty").mkdir()
    rt = runtime(FsCapability(jail))
    assert run(rt, DELETE, "a.txt").status == 0
    assert run(rt, DELETE, "empty/").status == 0  # as list prints it
    assert not (jail / "a.txt").exists() and not (jail / "empty").exists()
    assert run(rt, DELETE, "a.txt").status == Err.ENOENT
    assert run(rt, DELETE, "nodir/x").status == Err.ENOENT
    result = run(rt, DELETE, "sub")
    assert result.status == Err.EACCESS
    assert "not empty" in result.debug[0]
    assert run(rt, DELETE, "").status == Err.EACCESS
    assert run(rt, DELETE, ".").status == Err.EACCESS
    assert run(rt, DELETE, "../outside").status == Err.EACCESS
    assert run(rt, EXISTS, "sub/b.txt").results == ["yes"]


# ---- absolute paths under the jail root ------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "allow_root", "dir_slash", "expected"),
    [
        ("/r/a.txt", False, False, ["a.txt"]),
        ("/r/sub/b.txt", False, False, ["sub", "b.txt"]),
        ("//r//sub/./b.txt", False, False, ["sub", "b.txt"]),
        ("/./r/sub/.", False, False, ["sub"]),
        ("/r/sub/", False, True, ["sub"]),
        ("/r", True, False, []),
        ("/r/", True, True, []),
        ("/r/.", True, False, []),
        ("/real/x/a.txt", False, False, ["a.txt"]),  # the second spelling of the root
        ("/r/..foo", False, False, ["..foo"]),
    ],
)
def test_split_path_accepts_absolute_under_root(
    path: str, allow_root: bool, dir_slash: bool, expected: list[str]
) -> None:
    roots = ["/r", "/real/x"]
    assert split_path(path, allow_root=allow_root, dir_slash=dir_slash, roots=roots) == expected


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("/r/../etc/passwd", "'..' in path"),
        ("/r/sub/../a.txt", "'..' in path"),
        ("/r/..", "'..' in path"),
        ("/etc/passwd", "outside the fs jail '/r'; use a path relative to it"),
        ("/r2/x", "outside the fs jail '/r'"),  # a prefix of the name is not the directory
        ("/", "outside the fs jail"),
        ("/real/a.txt", "outside the fs jail"),
        ("/r", "names the jail root"),
        ("/r/", "names the jail root"),
        ("/r/a.txt/", "empty component"),  # a trailing / still needs dir_slash
        ("/r/C:x", "drive letter"),
        ("/r/a\\b", "backslash"),
        ("/r/a\x00b", "NUL"),
    ],
)
def test_split_path_refuses_absolute(path: str, message: str) -> None:
    with pytest.raises(GuestError) as info:
        split_path(path, roots=["/r", "/real/x"])
    assert info.value.code == Err.EACCESS
    assert message in info.value.detail


def test_root_spellings(jail: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    link = tmp_path / "link"
    link.symlink_to(jail)
    assert FsCapability(None).given_root is None
    assert FsCapability(jail).given_root == jail
    assert FsCapability(f"{jail}//./").given_root == jail
    cap = FsCapability(link)
    assert (cap.root, cap.given_root) == (jail.resolve(), link)
    # a ".." in the user's spelling is only resolved by the file system: the realpath is used
    assert FsCapability(jail / ".." / "jail").given_root == jail.resolve()
    monkeypatch.chdir(tmp_path)
    assert FsCapability("jail").given_root == jail


def test_summary_mentions_absolute_paths() -> None:
    summary = FsCapability.summary
    assert "\n" not in summary and "absolute under it" in summary


@pytest.mark.parametrize("spelling", ["given", "trailing_slash", "link", "through_link"])
def test_absolute_paths_under_root(jail: Path, tmp_path: Path, spelling: str) -> None:
    link = tmp_path / "link"
    link.symlink_to(jail)
    root: Path | str
    root, prefix = {
        "given": (jail, str(jail)),
        "trailing_slash": (f"{jail}/", f"{jail}/"),
        "link": (link, str(link)),  # the root as given, reached through a symlink
        "through_link": (link, str(jail)),  # its realpath
    }[spelling]
    prefix = prefix.rstrip("/")
    rt = runtime(FsCapability(root))
    assert run(rt, READ, f"{prefix}/a.txt").results == ["hello"]
    assert run(rt, READ, f"{prefix}//sub/./b.txt").results == ["inner"]
    assert run(rt, WRITE, f"{prefix}/new/c.txt", "made").status == 0
    assert (jail / "new" / "c.txt").read_text() == "made"
    assert run(rt, APPEND, f"{prefix}/new/c.txt", "+").status == 0
    assert (jail / "new" / "c.txt").read_text() == "made+"
    top = ["a.txt", "new/", "sub/"]
    for root_path in (prefix, f"{prefix}/", f"{prefix}/."):
        assert run(rt, LIST, root_path).results == top, root_path
    assert run(rt, LIST, f"{prefix}/sub/").results == ["b.txt"]
    assert run(rt, EXISTS, f"{prefix}/sub/b.txt").results == ["yes"]
    assert run(rt, EXISTS, f"{prefix}/sub/").results == ["yes"]
    assert run(rt, EXISTS, f"{prefix}/missing").results == ["no"]
    assert run(rt, EXISTS, prefix).results == ["yes"]
    assert run(rt, DELETE, f"{prefix}/new/c.txt").status == 0
    assert run(rt, DELETE, f"{prefix}/new/").status == 0
    assert sorted(p.name for p in jail.iterdir()) == ["a.txt", "sub"]
    for body, args in [(READ, [prefix]), (WRITE, [f"{prefix}/", "x"]), (DELETE, [prefix])]:
        assert run(rt, body, *args).status == Err.EACCESS, (body, args)
    assert no_temp_files(jail)


def test_absolute_dotdot_is_refused(jail: Path, outside: Path) -> None:
    rt = runtime(FsCapability(jail))
    for body, args in [
        (READ, [f"{jail}/../outside/secret.txt"]),
        (READ, [f"{jail}/sub/../a.txt"]),  # even one that stays inside
        (WRITE, [f"{jail}/../outside/secret.txt", "pwned"]),
        (LIST, [f"{jail}/.."]),
        (EXISTS, [f"{jail}/../outside"]),
        (DELETE, [f"{jail}/../outside/secret.txt"]),
    ]:
        result = run(rt, body, *args)
        assert (result.status, result.results) == (Err.EACCESS, []), (body, args)
        assert "'..' in path" in result.debug[0]
    assert (outside / "secret.txt").read_text() == "TOP SECRET"


def test_absolute_outside_names_the_root(jail: Path, outside: Path) -> None:
    sibling = jail.with_name(jail.name + "2")  # shares the root's name as a prefix
    sibling.mkdir()
    (sibling / "x").write_text("sibling")
    rt = runtime(FsCapability(jail))
    for body, args in [
        (READ, ["/etc/passwd"]),
        (READ, [f"{outside}/secret.txt"]),
        (READ, [f"{sibling}/x"]),
        (WRITE, [f"{sibling}/x", "pwned"]),
        (WRITE, [f"{sibling}/new", "x"]),
        (DELETE, [f"{sibling}/x"]),
        (LIST, [str(sibling)]),
        (EXISTS, [f"{sibling}/x"]),
        (LIST, ["/"]),
    ]:
        result = run(rt, body, *args)
        assert result.status == Err.EACCESS, (body, args)
        assert f"is outside the fs jail {str(jail)!r}; use a path relative to it" in result.debug[0]
    assert sorted(p.name for p in sibling.iterdir()) == ["x"]
    assert (sibling / "x").read_text() == "sibling"


def test_absolute_symlink_under_root_is_refused(jail: Path, outside: Path) -> None:
    (jail / "dir-link").symlink_to(outside)
    (jail / "file-link").symlink_to(outside / "secret.txt")
    (jail / "sub" / "up").symlink_to("..")
    rt = runtime(FsCapability(jail))
    for body, args in [
        (READ, [f"{jail}/dir-link/secret.txt"]),
        (READ, [f"{jail}/file-link"]),
        (READ, [f"{jail}/sub/up/a.txt"]),
        (WRITE, [f"{jail}/file-link", "pwned"]),
        (WRITE, [f"{jail}/dir-link/new.txt", "x"]),
        (APPEND, [f"{jail}/file-link", "pwned"]),
        (LIST, [f"{jail}/dir-link"]),
        (EXISTS, [f"{jail}/dir-link/secret.txt"]),
        (DELETE, [f"{jail}/dir-link/secret.txt"]),
    ]:
        result = run(rt, body, *args)
        assert result.status == Err.EACCESS, (body, args)
        assert "symlink" in result.debug[0], (body, args)
    assert (outside / "secret.txt").read_text() == "TOP SECRET"
    assert sorted(p.name for p in outside.iterdir()) == ["secret.txt"]


# ---- names are NFC ---------------------------------------------------------------------------

NFC = unicodedata.normalize("NFC", "café.txt")
NFD = unicodedata.normalize("NFD", "café.txt")


def names(root: Path) -> list[str]:
    return sorted(os.listdir(root))


def test_nfc_and_nfd_spellings_are_one_file(jail: Path) -> None:
    assert NFC != NFD
    rt = runtime(FsCapability(jail))
    assert run(rt, WRITE, NFD, "one").status == 0
    assert NFC in names(jail) and NFD not in names(jail)  # stored under the NFC name
    for spelling in (NFC, NFD):
        assert run(rt, READ, spelling).results == ["one"]
        assert run(rt, EXISTS, spelling).results == ["yes"]
    assert run(rt, APPEND, NFC, "+two").status == 0
    assert run(rt, APPEND, NFD, "+three").status == 0
    assert run(rt, WRITE, NFC, "replaced").status == 0
    assert run(rt, READ, NFD).results == ["replaced"]
    assert [n for n in names(jail) if n.startswith("caf")] == [NFC]
    assert run(rt, LIST, "").results == ["a.txt", NFC, "sub/"]
    assert run(rt, DELETE, NFD).status == 0
    assert run(rt, EXISTS, NFC).results == ["no"]
    assert no_temp_files(jail)


def test_nfc_directories(jail: Path) -> None:
    rt = runtime(FsCapability(jail))
    nfd_dir = unicodedata.normalize("NFD", "résumé")
    assert run(rt, WRITE, f"{nfd_dir}/{NFD}", "x").status == 0
    assert names(jail / "résumé") == [NFC]
    assert run(rt, READ, f"résumé/{NFC}").results == ["x"]
    assert run(rt, LIST, nfd_dir + "/").results == [NFC]
    assert run(rt, DELETE, f"{nfd_dir}/{NFC}").status == 0
    assert run(rt, DELETE, "résumé/").status == 0
    assert "résumé" not in names(jail)


def test_an_entry_made_outside_in_nfd_is_found_by_either_spelling(jail: Path) -> None:
    (jail / NFD).write_text("from outside")
    nfd_dir = unicodedata.normalize("NFD", "répertoire")
    (jail / nfd_dir).mkdir()
    (jail / nfd_dir / "n.txt").write_text("inside")
    rt = runtime(FsCapability(jail))
    for spelling in (NFC, NFD):
        assert run(rt, READ, spelling).results == ["from outside"]
        assert run(rt, EXISTS, spelling).results == ["yes"]
    assert run(rt, READ, "répertoire/n.txt").results == ["inside"]
    assert run(rt, LIST, "").results == ["a.txt", NFC, "répertoire/", "sub/"]  # shown in NFC
    assert run(rt, WRITE, NFC, "rewritten").status == 0  # the same file, not a second one
    assert [n for n in names(jail) if n.startswith("caf")] == [NFD]
    assert (jail / NFD).read_text() == "rewritten"
    assert run(rt, WRITE, "répertoire/m.txt", "new").status == 0  # into the existing dir
    assert sorted(os.listdir(jail / nfd_dir)) == ["m.txt", "n.txt"]
    assert run(rt, DELETE, NFC).status == 0
    assert NFD not in names(jail)


def test_nfc_absolute_paths_under_a_root_spelled_nfd(tmp_path: Path) -> None:
    root = tmp_path / unicodedata.normalize("NFD", "jaïl")
    root.mkdir()
    rt = runtime(FsCapability(root))
    nfc_root = unicodedata.normalize("NFC", str(root))
    assert run(rt, WRITE, f"{nfc_root}/{NFD}", "abs").status == 0
    assert run(rt, READ, f"{root}/{NFC}").results == ["abs"]


# ---- sizes are checked before the guest's buffer is copied ----------------------------------

CLAIM = '(i32.store (i32.const {at}) (i32.const {n})) (call $fs.{fn} "big.bin" (i32.const {at}))'


@pytest.mark.parametrize("fn", ["write", "append"])
def test_a_length_prefix_past_memory_is_etrfm(jail: Path, fn: str) -> None:
    # 1 GB claimed inside a 16 MiB memory: refused from the prefix, nothing read or written
    result = run(FsCapability(jail), CLAIM.format(at=65000, n=1_000_000_000, fn=fn))
    assert result.status == Err.ETRFM and "past the end of memory" in result.debug[0]
    assert not (jail / "big.bin").exists()


@pytest.mark.parametrize("fn", ["write", "append"])
def test_a_length_prefix_over_the_quota_is_enomem(jail: Path, fn: str) -> None:
    cap = FsCapability(jail, max_file_bytes=1000)
    result = run(cap, CLAIM.format(at=100, n=60_000, fn=fn))  # fits in memory, not in the quota
    assert result.status == Err.ENOMEM and "data is larger than 1000 bytes" in result.debug[0]
    cap = FsCapability(jail, max_total_write_bytes_per_session=1000)
    result = run(cap, CLAIM.format(at=100, n=60_000, fn=fn))
    assert result.status == Err.ENOMEM and "session write quota" in result.debug[0]
    assert not (jail / "big.bin").exists() and cap.bytes_written == 0


def test_append_is_refused_from_the_files_size(jail: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (jail / "log.txt").write_text("x" * 8)
    cap = FsCapability(jail, max_file_bytes=10)
    reads: list[str] = []
    real = FsCapability._read_file

    def spy(self: FsCapability, dfd: int, name: str, shown: str) -> bytes:
        reads.append(name)
        return real(self, dfd, name, shown)

    monkeypatch.setattr(FsCapability, "_read_file", spy)
    result = run(cap, APPEND, "log.txt", "123")
    assert result.status == Err.ENOMEM and "would grow past 10 bytes" in result.debug[0]
    assert reads == []  # the old content was never read
    assert run(cap, APPEND, "log.txt", "12").status == 0
    assert (jail / "log.txt").read_text() == "x" * 8 + "12"


def test_an_overlong_path_is_refused_from_its_length_prefix(jail: Path) -> None:
    body = '(i32.store (i32.const 100) (i32.const 60000)) (call $fs.write (i32.const 100) "x")'
    result = run(FsCapability(jail), body)
    assert result.status == Err.EBOUND and "path longer than 1024 bytes" in result.debug[0]
