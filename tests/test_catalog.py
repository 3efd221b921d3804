"""The catalog loader: front matter parsing, validation errors at file:line, load order."""

from __future__ import annotations

import os
import threading
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from agent.programs.catalog import (
    MAX_FILE_BYTES,
    MAX_FRONT_MATTER_DEPTH,
    ArgSpec,
    CannedResponse,
    Catalog,
    Example,
    apply_defaults,
    body_capabilities,
    catalog_dirs,
    load_file,
    parse_program,
    shipped_dir,
)
from agent.programs.writer import render_front_matter, scaffold
from capabilities import standard_registry
from capabilities.ai import AiCapability
from capabilities.arrays import ArrCapability
from capabilities.fs import FsCapability
from capabilities.http import HttpCapability
from capabilities.jsonpath import JsonCapability
from capabilities.kv import KvCapability, MemoryKv
from capabilities.math import MathCapability
from capabilities.strings import StrCapability
from capabilities.sys import DebugCapability, SysCapability
from rt.engine import Runtime
from rt.errors import CatalogError, ModelAPIError

BODY = "(argv 0 $s)\n(resv $s)\n(i32.const 0)\n"

GOOD = """\
;;; name = "echo"
;;; description = "Return the argument"
;;; [[args]]
;;; name = "text"
;;; type_hint = "string"
;;; description = "what to echo"
;;; [[args]]
;;; name = "times"
;;; description = "how often"
;;; default = 2

;; the body
(argv 0 $s)
(resv $s)
(i32.const 0)
"""


def parse(text: str | bytes, name: str = "p.wat") -> object:
    data = text.encode() if isinstance(text, str) else text
    return parse_program(data, Path(name))


def write(directory: Path, filename: str, name: str, description: str = "d") -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / filename
    path.write_text(f';;; name = "{name}"\n;;; description = "{description}"\n{BODY}')
    return path


# ---- parsing ------------------------------------------------------------------------------


def test_good_program_parses() -> None:
    p = parse_program(GOOD.encode(), Path("echo.wat"))
    assert p.name == "echo"
    assert p.description == "Return the argument"
    assert p.args == (
        ArgSpec("text", "string", "what to echo", None),
        ArgSpec("times", "string", "how often", "2"),
    )
    assert p.body_line == 12
    assert p.body.splitlines()[0] == ";; the body"
    assert p.body.endswith("(i32.const 0)")
    assert p.capabilities == ()
    assert len(p.source_hash) == 64
    assert p.usage() == 'echo(text, times="2")'
    assert p.required == 1


def test_front_matter_without_space_and_crlf() -> None:
    text = ';;;name = "a"\r\n;;;description = "b"\r\n(i32.const 0)\r\n'
    p = parse_program(text.encode(), Path("a.wat"))
    assert (p.name, p.description, p.body, p.body_line) == ("a", "b", "(i32.const 0)", 3)


def test_bom_is_ignored() -> None:
    p = parse_program(
        b'\xef\xbb\xbf;;; name = "a"\n;;; description = "b"\n(i32.const 0)', Path("a.wat")
    )
    assert p.name == "a"


HEAD = ';;; name = "p"\n;;; description = "d"\n'

ERRORS = [
    # (file text, expected line, fragment of the message)
    (BODY, 1, "no front matter"),
    (';;; name = "p"\n;;; description = \n' + BODY, 2, "malformed front matter: Invalid value"),
    (';;; name = "p"\n;;; description = "d\n' + BODY, 2, "malformed front matter"),
    (';;; name = "p"\n;;; name = "q"\n;;; description = "d"\n' + BODY, 2, "malformed front matter"),
    (';;; description = "d"\n' + BODY, 1, "front matter is missing 'name'"),
    (';;; name = "p"\n' + BODY, 1, "front matter is missing 'description'"),
    (';;; name = "p"\n;;; description = "  "\n' + BODY, 2, "'description' must not be empty"),
    (';;; name = 3\n;;; description = "d"\n' + BODY, 1, "'name' must be a string"),
    (';;; description = "d"\n;;; name = "Bad-Name"\n' + BODY, 2, "must match [a-z][a-z0-9_]{0,63}"),
    (';;; description = "d"\n;;; name = "9abc"\n' + BODY, 2, "must match"),
    (';;; name = "' + "a" * 65 + '"\n;;; description = "d"\n' + BODY, 1, "must match"),
    (HEAD + ';;; descripton = "typo"\n' + BODY, 3, "unknown key 'descripton'"),
    (HEAD + ';;; [[args]]\n;;; description = "x"\n' + BODY, 3, "args[0] is missing 'name'"),
    (HEAD + ';;; [[args]]\n;;; name = "a"\n' + BODY, 3, "args[0] is missing 'description'"),
    (
        HEAD + ';;; [[args]]\n;;; name = "a"\n;;; description = "x"\n;;; [[args]]\n;;; name = "a"\n'
        ';;; description = "y"\n' + BODY,
        7,
        "duplicate argument name 'a'",
    ),
    (
        HEAD + ';;; [[args]]\n;;; name = "a"\n;;; description = "x"\n;;; default = "1"\n'
        ';;; [[args]]\n;;; description = "y"\n;;; name = "b"\n' + BODY,
        9,
        "required argument 'b' follows 'a', which has a default",
    ),
    (
        HEAD + ';;; [[args]]\n;;; name = "a"\n;;; description = "x"\n;;; tpye_hint = "s"\n' + BODY,
        6,
        "unknown key 'tpye_hint'",
    ),
    (
        HEAD + ';;; [[args]]\n;;; name = "a b"\n;;; description = "x"\n' + BODY,
        4,
        "not an identifier",
    ),
    (
        HEAD + ';;; [[args]]\n;;; name = "a"\n;;; description = "x"\n;;; default = true\n' + BODY,
        6,
        "must be a string or a number",
    ),
    (HEAD + ';;; args = "url"\n' + BODY, 3, "args must be written as [[args]] tables"),
    (HEAD + ";;; [[examples]]\n;;; result = []\n" + BODY, 4, "unknown key 'result'"),
    (
        HEAD + ';;; [[examples]]\n;;; args = ["x"]\n' + BODY,
        4,
        "example gives 1 arguments; the program takes 0",
    ),
    (HEAD + ";;; [[examples]]\n;;; results = [1]\n" + BODY, 4, "results must be a list of strings"),
    (HEAD + ';;; [[examples]]\n;;; status = "0"\n' + BODY, 4, "status must be an integer"),
    (
        HEAD + ';;; [[examples]]\n;;; http = { "u" = { code = 1 } }\n' + BODY,
        4,
        "http['u'] must be a body string",
    ),
    (HEAD + ';;; [[examples]]\n;;; ai = { "u" = [1] }\n' + BODY, 4, "ai['u'] must be a string"),
    (HEAD + ";;; [[examples]]\n;;; files = 3\n" + BODY, 4, "files must be a table of strings"),
    (
        HEAD + ";;; [examples]\n;;; args = []\n" + BODY,
        3,
        "examples must be written as [[examples]] tables",
    ),
    (HEAD, 3, "empty body"),
    (HEAD + "\n\n   \n", 3, "empty body"),
    (HEAD + "\n;; only a comment\n", 4, "empty body"),
]


@pytest.mark.parametrize(("text", "line", "fragment"), ERRORS)
def test_validation_errors_name_file_and_line(text: str, line: int, fragment: str) -> None:
    with pytest.raises(CatalogError) as info:
        parse_program(text.encode(), Path("cat/p.wat"))
    message = str(info.value)
    assert message.startswith(f"cat/p.wat:{line}: "), message
    assert fragment in message
    assert "\n" not in message


def test_not_utf8_names_the_line() -> None:
    data = (HEAD + "(i32.const 0)\n").encode() + b";; caf\xe9\n"
    with pytest.raises(CatalogError, match=r"^p.wat:4: file is not valid UTF-8"):
        parse_program(data, Path("p.wat"))


def test_toml_error_at_end_of_document_points_at_last_front_matter_line() -> None:
    text = ';;; name = "p"\n;;; description = """d\n;;; more\n(i32.const 0)\n'
    with pytest.raises(
        CatalogError, match=r"^p.wat:3: malformed front matter: Unterminated string"
    ):
        parse_program(text.encode(), Path("p.wat"))


def test_multiline_strings_do_not_confuse_line_lookup() -> None:
    text = (
        ';;; name = "p"\n;;; description = """\n;;; bogus = 1\n;;; """\n'
        ';;; [[args]]\n;;; name = "x"\n;;; description = "y"\n;;; bogus = 2\n(i32.const 0)\n'
    )
    with pytest.raises(CatalogError, match=r"^p.wat:8: unknown key 'bogus'"):
        parse_program(text.encode(), Path("p.wat"))


# ---- examples -----------------------------------------------------------------------------

EXAMPLES = """\
;;; name = "fetch"
;;; description = "d"
;;; [[args]]
;;; name = "url"
;;; description = "u"
;;; [[args]]
;;; name = "n"
;;; description = "count"
;;; default = "3"
;;;
;;; [[examples]]
;;; args = ["https://x/y"]
;;; http = { "https://x/y" = "body", "https://x/z" = { status = 404, body = "nope" } }
;;; ai = { "Summarize this." = "short" }
;;; files = { "a.txt" = "content" }
;;; kv = { k = "v", n = 5 }
;;; results = ["body", "short"]
;;; fs_after = { "out.txt" = "x" }
;;; kv_after = { k = "w" }
;;;
;;; [[examples]]
;;; args = ["https://x/q", 7]
;;; status = 6
(argv 0 $url)
(call $http.get (local.get $url)) (drop) (drop)
(call $ai.assist (local.get $url) "x" (i32.const 0)) (drop) (drop)
(i32.const 0)
"""


def test_examples_are_parsed() -> None:
    p = parse_program(EXAMPLES.encode(), Path("fetch.wat"))
    first, second = p.examples
    assert first == Example(
        args=("https://x/y",),
        results=("body", "short"),
        status=None,
        http={"https://x/y": CannedResponse("body"), "https://x/z": CannedResponse("nope", 404)},
        ai={"Summarize this.": "short"},
        files={"a.txt": "content"},
        kv={"k": "v", "n": "5"},
        fs_after={"out.txt": "x"},
        kv_after={"k": "w"},
        line=11,
    )
    assert second.args == ("https://x/q", "7")
    assert second.status == 6 and second.results is None and second.line == 21
    assert second.fs_after is None and second.http == {}
    assert p.capabilities == ("ai", "http")


def test_example_with_too_few_args() -> None:
    text = EXAMPLES.replace('args = ["https://x/q", 7]', "args = []")
    with pytest.raises(
        CatalogError, match=r"^f.wat:22: example gives 0 arguments; the program takes 1 to 2"
    ):
        parse_program(text.encode(), Path("f.wat"))


# ---- capabilities scan --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("(call $str.len (local.get $s))", ("str",)),
        ('(call $kv.get "k") (call  $fs.read "p")\n(call $kv.set)', ("fs", "kv")),
        (';; (call $http.get x)\n"(call $ai.assist)"\n(; (call $json.get) ;)(i32.const 0)', ()),
        ('"""raw (call $ai.assist) text"""\n(call $debug.log (i32.const 0))', ("debug",)),
        ('"a \\" (call $x.y)" (call $arr.new)', ("arr",)),
        ("(return_call $str.upper (local.get 0))", ("str",)),
        # the short forms, in folded and flat code; WAT's own dotted instructions are not calls
        ("(answer (http.get (arg 0)))", ("http",)),
        ('(resv ($kv.get "k"))\nlocal.get 0\ncall $fs.read\ndrop', ("fs", "kv")),
        ("(i32.add (local.get $a) (i32.const 1)) (memory.size)", ()),
        ("(; (ai.assist x) ;) ;; ($http.get y)\n(i32.const 0)", ()),
    ],
)
def test_body_capabilities(body: str, expected: tuple[str, ...]) -> None:
    assert body_capabilities(body) == expected


# ---- defaults -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "expected"),
    [(["t"], ["t", "2"]), (["t", "5"], ["t", "5"])],
)
def test_apply_defaults(args: list[str], expected: list[str]) -> None:
    p = parse_program(GOOD.encode(), Path("echo.wat"))
    assert apply_defaults(p, args) == expected


@pytest.mark.parametrize(
    ("args", "fragment"),
    [([], "echo takes 1 to 2 argument(s), got 0"), (["a", "b", "c"], "got 3")],
)
def test_apply_defaults_usage_errors(args: list[str], fragment: str) -> None:
    p = parse_program(GOOD.encode(), Path("echo.wat"))
    with pytest.raises(CatalogError) as info:
        apply_defaults(p, args)
    assert fragment in str(info.value)
    assert 'usage: echo(text, times="2")' in str(info.value)


# ---- the catalog ----------------------------------------------------------------------------


def test_override_order_and_record(tmp_path: Path) -> None:
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    write(a, "one.wat", "one", "from a")
    write(a, "two.wat", "two", "from a")
    write(b, "x.wat", "two", "from b")
    write(c, "y.wat", "two", "from c")
    catalog, errors = Catalog.load([a, b, c])
    assert errors == []
    assert catalog.names() == ["one", "two"]
    assert catalog.get("two") is not None and catalog.get("two").description == "from c"  # type: ignore[union-attr]
    assert [(o.name, o.replaced.parent.name, o.by.parent.name) for o in catalog.overrides] == [
        ("two", "a", "b"),
        ("two", "b", "c"),
    ]
    assert [p.name for p in catalog] == ["one", "two"]
    assert len(catalog) == 2 and "one" in catalog and "three" not in catalog
    assert catalog.get("three") is None


def test_bad_file_does_not_stop_the_rest(tmp_path: Path) -> None:
    write(tmp_path, "a.wat", "alpha")
    (tmp_path / "b.wat").write_text(';;; name = "beta"\n;;; description = \n(i32.const 0)\n')
    write(tmp_path, "c.wat", "gamma")
    (tmp_path / "notes.txt").write_text("not a program")
    catalog, errors = Catalog.load([tmp_path])
    assert catalog.names() == ["alpha", "gamma"]
    assert [str(e) for e in errors] == [
        f"{tmp_path / 'b.wat'}:2: malformed front matter: Invalid value"
    ]


def test_oversized_file_is_refused_from_its_stat(tmp_path: Path) -> None:
    write(tmp_path, "a.wat", "alpha")
    big = write(tmp_path, "big.wat", "big")
    with big.open("r+b") as f:
        f.truncate(100_000_000)  # sparse: 100 MB by stat, nothing on disk
    catalog, errors = Catalog.load([tmp_path])
    assert catalog.names() == ["alpha"]
    assert [str(e) for e in errors] == [
        f"{big}:1: file is 100000000 bytes; a catalog file may have at most {MAX_FILE_BYTES}"
    ]
    with pytest.raises(CatalogError, match="file is 100000000 bytes"):
        load_file(big)
    at_cap = write(tmp_path, "cap.wat", "cap")
    with at_cap.open("ab") as f:
        f.write(b" " * (MAX_FILE_BYTES - at_cap.stat().st_size))
    assert load_file(at_cap).name == "cap"


def test_parse_program_refuses_oversized_bytes() -> None:
    data = b';;; name = "big"\n;;; description = "d"\n(i32.const 0)\n' + b" " * MAX_FILE_BYTES
    expected = rf"^big.wat:1: file is {len(data)} bytes; .* at most {MAX_FILE_BYTES}$"
    with pytest.raises(CatalogError, match=expected):
        parse_program(data, Path("big.wat"))


def test_fifo_and_directory_are_refused_without_blocking(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe.wat")
    (tmp_path / "dir.wat").mkdir()
    write(tmp_path, "a.wat", "alpha")
    catalog, errors = Catalog.load([tmp_path])
    assert catalog.names() == ["alpha"]
    assert sorted(str(e) for e in errors) == [
        f"{tmp_path / name}:1: not a regular file" for name in ("dir.wat", "pipe.wat")
    ]


DEEP = 100_000


@pytest.mark.parametrize(
    "value",
    [
        "[" * DEEP + "]" * DEEP,
        "{ a = " * DEEP + "1" + " }" * DEEP,
        "[" * DEEP,
        "[{ a = " * (DEEP // 2),
    ],
)
def test_deep_front_matter_is_a_catalog_error(value: str) -> None:
    text = f';;; name = "deep"\n;;; description = "d"\n;;; x = {value}\n(i32.const 0)\n'
    with pytest.raises(CatalogError) as info:
        parse(text)
    assert str(info.value) == (
        f"p.wat:3: malformed front matter: nested deeper than {MAX_FRONT_MATTER_DEPTH} levels (line 3)"
    )


def test_front_matter_depth_ignores_strings_and_comments() -> None:
    deep = "[" * DEEP
    text = (
        f';;; name = "ok"\n;;; description = "{deep}" # {deep}\n'
        f';;; [[examples]]\n;;; results = [\'{deep}\', """\n;;; {deep}"""]\n(i32.const 0)\n'
    )
    program = parse(text)
    assert program.description == deep  # type: ignore[attr-defined]
    nested = "[" * MAX_FRONT_MATTER_DEPTH + "]" * MAX_FRONT_MATTER_DEPTH
    with pytest.raises(CatalogError, match="unknown key 'x'"):  # parsed: past the depth check
        parse(f';;; name = "ok"\n;;; description = "d"\n;;; x = {nested}\n(i32.const 0)\n')


def test_duplicate_name_within_one_dir_is_an_error_for_the_second(tmp_path: Path) -> None:
    write(tmp_path, "a.wat", "same", "first")
    second = tmp_path / "b.wat"
    second.write_text(';;; description = "second"\n;;; name = "same"\n(i32.const 0)\n')
    catalog, errors = Catalog.load([tmp_path])
    assert catalog.get("same").description == "first"  # type: ignore[union-attr]
    assert len(errors) == 1
    assert str(errors[0]).startswith(
        f"{second}:2: duplicate program name 'same' (already defined in "
    )


def test_missing_directory_is_reported(tmp_path: Path) -> None:
    write(tmp_path / "ok", "a.wat", "alpha")
    catalog, errors = Catalog.load([tmp_path / "missing", tmp_path / "ok"])
    assert catalog.names() == ["alpha"]
    assert [str(e) for e in errors] == [
        f"{tmp_path / 'missing'}:1: catalog directory does not exist"
    ]


def test_catalog_dirs_order(tmp_path: Path) -> None:
    extra = tmp_path / "extra"
    assert catalog_dirs(tmp_path, [extra]) == [shipped_dir(), extra]
    (tmp_path / "catalog").mkdir()
    assert catalog_dirs(tmp_path, [extra]) == [shipped_dir(), tmp_path / "catalog", extra]
    assert Catalog.shipped_dir() == shipped_dir()
    assert (shipped_dir() / "__init__.py").is_file()


def test_shipped_catalog_loads_cleanly() -> None:
    catalog, errors = Catalog.load([shipped_dir()])
    assert errors == []
    for program in catalog:
        assert program.examples, f"{program.path} has no [[examples]]"


# ---- writing --------------------------------------------------------------------------------


def test_render_front_matter_round_trips() -> None:
    args = [
        ArgSpec("url", "string", 'a "quoted" URL\\path', None),
        ArgSpec("n", "int", "tab\there\nnewline", "3"),
    ]
    examples = [
        Example(
            args=("https://h/", "4"),
            results=("ok",),
            http={
                "https://h/": CannedResponse("body"),
                "https://h/404": CannedResponse("gone", 404),
            },
            ai={'Say "hi"': "hi"},
            files={"a.txt": "x\ny"},
            kv={"k": "v"},
            fs_after={"b.txt": "z"},
            kv_after={},
        ),
        Example(args=("u",), status=6),
    ]
    text = (
        render_front_matter("my_prog", "Does a thing — ünïcode", args, examples) + "(i32.const 0)\n"
    )
    p = parse_program(text.encode(), Path("r.wat"))
    assert p.name == "my_prog" and p.description == "Does a thing — ünïcode"
    assert p.args == tuple(args)
    assert tuple(e.__class__(**{**e.__dict__, "line": 0}) for e in p.examples) == tuple(examples)
    assert all(line.startswith(";;;") for line in text.splitlines()[:-1])


def test_scaffold_parses_and_validates_name() -> None:
    p = parse_program(scaffold("shout").encode(), Path("shout.wat"))
    assert p.name == "shout" and p.capabilities == ("str",)
    assert p.examples[0].args == ("hello",) and p.examples[0].results == ("HELLO",)
    with pytest.raises(CatalogError, match="must match"):
        scaffold("Bad Name")


# ---- the shipped programs run their own examples ------------------------------------------


def _shipped_examples() -> list[tuple[str, int]]:
    catalog, _ = Catalog.load([shipped_dir()])
    return [(p.name, i) for p in catalog for i in range(len(p.examples))]


def _run_example(program_name: str, index: int, root: Path) -> None:
    catalog, _ = Catalog.load([shipped_dir()])
    program = catalog.get(program_name)
    assert program is not None
    ex = program.examples[index]

    def assistant(
        instruction: str, text: str, *, single_line: bool, cancel: threading.Event | None = None
    ) -> str:
        if instruction not in ex.ai:
            raise ModelAPIError(f"no canned answer for {instruction!r}")
        return ex.ai[instruction]

    def handler(request: httpx.Request) -> httpx.Response:
        canned = ex.http.get(str(request.url))
        if canned is None:
            return httpx.Response(599, stream=httpx.ByteStream(b"no canned response"))
        return httpx.Response(canned.status, stream=httpx.ByteStream(canned.body.encode()))

    for name, content in ex.files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(content)
    kv = MemoryKv(dict(ex.kv))
    hosts = sorted({urlsplit(u).hostname or "" for u in ex.http}) or ["example.com"]
    functions = [
        *SysCapability().functions(),
        *StrCapability().functions(),
        *ArrCapability().functions(),
        *KvCapability(kv).functions(),
        *FsCapability(root).functions(),
        *JsonCapability().functions(),
        *DebugCapability().functions(),
        *MathCapability().functions(),
        *AiCapability(assistant).functions(),
        *HttpCapability(hosts, transport=httpx.MockTransport(handler)).functions(),
    ]
    result = Runtime(functions).run(
        program.body,
        apply_defaults(program, ex.args),
        granted=set(program.capabilities),
        line_offset=program.body_line - 1,
    )
    assert result.status == (ex.status if ex.status is not None else 0), result.debug
    if ex.results is not None:
        assert result.results == list(ex.results), result.debug
    for name, content in (ex.fs_after or {}).items():
        assert (root / name).read_text() == content
    for key, value in (ex.kv_after or {}).items():
        assert kv.get(key) == value


@pytest.mark.parametrize(("name", "index"), _shipped_examples())
def test_shipped_examples_pass(name: str, index: int, tmp_path: Path) -> None:
    _run_example(name, index, tmp_path)


def test_shipped_catalog_covers_every_capability() -> None:
    catalog, _ = Catalog.load([shipped_dir()])
    used = {ns for p in catalog for ns in p.capabilities}
    # sys is what the macros expand to; math is one call (math.eval), never a program's loop;
    # so is agent.run (granted only with --agents, and an example would need a child model)
    assert used >= set(standard_registry().names()) - {"sys", "math", "agent"}
    assert len(catalog) >= 22
