"""Catalog programs: ``.wat`` files with TOML front matter, loaded from ordered directories.

A catalog program's leading ``;;;`` lines are TOML front matter (each line loses ``;;;``
and one following space); the rest of the file is the WAT-plus body::

    ;;; name = "http_get"
    ;;; description = "Fetch a URL with GET and return the body"
    ;;; [[args]]
    ;;; name = "url"
    ;;; description = "absolute http(s) URL"
    ;;; [[examples]]
    ;;; args = ["https://example.com/"]
    ;;; http = { "https://example.com/" = "hello" }
    ;;; results = ["hello"]
    (argv 0 $url)
    ...

Front-matter keys: ``name`` and ``description`` (required), ``[[args]]`` (``name``,
``description`` required; ``type_hint`` default ``"string"``; ``default`` optional, a string
or number) and ``[[examples]]`` (see ``Example``). Unknown keys are errors so typos surface.
Every problem is a ``CatalogError("<path>:<line>: <what>")``; ``Catalog.load`` reports bad
files and loads the rest. Limits: a file over ``MAX_FILE_BYTES`` (1 MiB) is refused from its
stat before it is read, and front matter nested deeper than ``MAX_FRONT_MATTER_DEPTH`` (32)
before it is parsed. Directories load in order and later ones override earlier ones
by program name (recorded in ``Catalog.overrides``).
"""

from __future__ import annotations

import functools
import hashlib
import importlib.resources
import os
import re
import stat
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rt.errors import CatalogError
from rt.nesting import TooDeep, check_depth
from rt.wattext import body_capabilities, has_code

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

MAX_FILE_BYTES = 1024 * 1024
"""A larger catalog file is refused from its stat, before it is read (SECURITY.md rule 16)."""
MAX_FRONT_MATTER_DEPTH = 32
"""Front matter nesting arrays/tables deeper than this is refused before TOML parsing (rule 15)."""
NAME_RE = re.compile(r"[a-z][a-z0-9_]{0,63}")
_SEPARATORS_RE = re.compile(r"[.\- ]")
ARG_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
TOP_KEYS = ("name", "description", "args", "examples")
ARG_KEYS = ("name", "type_hint", "description", "default")
EXAMPLE_KEYS = ("args", "results", "status", "http", "ai", "files", "kv", "fs_after", "kv_after")
_TOML_POS_RE = re.compile(r"\s*\(at (?:line (\d+), column \d+|end of document)\)\s*$")


@dataclass(frozen=True)
class ArgSpec:
    name: str
    type_hint: str
    description: str
    default: str | None = None


@dataclass(frozen=True)
class CannedResponse:
    """A canned http response for an example: ``"body"`` or ``{status = 404, body = "..."}``."""

    body: str
    status: int = 200


@dataclass(frozen=True)
class Example:
    """One ``[[examples]]`` entry. ``results``/``status`` are None when not asserted
    (a test then expects status 0). ``line`` is the file line of its ``[[examples]]``."""

    args: tuple[str, ...] = ()
    results: tuple[str, ...] | None = None
    status: int | None = None
    http: Mapping[str, CannedResponse] = field(default_factory=dict, hash=False)
    ai: Mapping[str, str] = field(default_factory=dict, hash=False)
    files: Mapping[str, str] = field(default_factory=dict, hash=False)
    kv: Mapping[str, str] = field(default_factory=dict, hash=False)
    fs_after: Mapping[str, str] | None = field(default=None, hash=False)
    kv_after: Mapping[str, str] | None = field(default=None, hash=False)
    line: int = 0


@dataclass(frozen=True)
class Program:
    name: str
    description: str
    args: tuple[ArgSpec, ...]
    body: str
    path: Path
    body_line: int
    examples: tuple[Example, ...]
    capabilities: tuple[str, ...]
    source_hash: str

    @property
    def required(self) -> int:
        """How many leading arguments have no default."""
        return sum(1 for a in self.args if a.default is None)

    def usage(self) -> str:
        """``name(url, count="3")``: the one-line signature shown to users and the model."""
        parts = [
            a.name if a.default is None else f"{a.name}={toml_str(a.default)}" for a in self.args
        ]
        return f"{self.name}({', '.join(parts)})"


@dataclass(frozen=True)
class Override:
    name: str
    replaced: Path
    by: Path


# ---- parsing -----------------------------------------------------------------------------


def split_front_matter(text: str) -> tuple[list[str], int, str]:
    """(front-matter lines without ``;;;``, 1-based body line, body text)."""
    lines = text.split("\n")
    front: list[str] = []
    for line in lines:
        if not line.startswith(";;;"):
            break
        rest = line[3:].rstrip("\r")
        front.append(rest[1:] if rest.startswith(" ") else rest)
    idx = len(front)
    while idx < len(lines) and not lines[idx].strip():
        idx += 1
    body = "\n".join(line.rstrip("\r") for line in lines[idx:]).rstrip()
    return front, (idx if body else len(front)) + 1, body


def _key_lines(front: list[str]) -> dict[tuple[Any, ...], int]:
    """File lines of front-matter keys: ("name",), ("args", 0), ("args", 0, "default"), ..."""
    where: dict[tuple[Any, ...], int] = {}
    counts: dict[str, int] = {}
    current: tuple[Any, ...] = ()
    in_multiline = False
    for lineno, raw in enumerate(front, start=1):
        odd_quotes = (raw.count('"""') + raw.count("'''")) % 2 == 1
        line = raw.strip()
        if in_multiline:
            in_multiline = not odd_quotes
            continue
        in_multiline = odd_quotes
        if m := re.match(r"\[\[\s*([A-Za-z0-9_-]+)\s*\]\]", line):
            n = counts[m.group(1)] = counts.get(m.group(1), -1) + 1
            current = (m.group(1), n)
        elif m := re.match(r"\[\s*([A-Za-z0-9_.-]+)\s*\]", line):
            current = tuple(m.group(1).split("."))
        elif m := re.match(r"""(?:"([^"]*)"|'([^']*)'|([A-Za-z0-9_-]+))\s*[.=]""", line):
            where.setdefault(current + (m.group(1) or m.group(2) or m.group(3),), lineno)
        where.setdefault(current, lineno)
    return where


class _Checker:
    """Raises ``CatalogError`` at the right line for one file's front matter."""

    def __init__(self, path: Path, front: list[str]) -> None:
        self.path = path
        self.lines = _key_lines(front)

    def line(self, *key: Any) -> int:
        while key:
            if key in self.lines:
                return self.lines[key]
            key = key[:-1]
        return 1

    def fail(self, what: str, *key: Any) -> CatalogError:
        return CatalogError(f"{self.path}:{self.line(*key)}: {what}")

    def text(self, table: Mapping[str, Any], key: str, where: tuple[Any, ...]) -> str | None:
        """An optional string value."""
        value = table.get(key)
        if value is not None and not isinstance(value, str):
            raise self.fail(f"{key!r} must be a string", *where, key)
        return value

    def required(self, table: Mapping[str, Any], key: str, where: tuple[Any, ...]) -> str:
        """A required, non-blank string value."""
        value = self.text(table, key, where)
        if value is None:
            label = f"{where[0]}[{where[1]}]" if where else "front matter"
            raise self.fail(f"{label} is missing {key!r}", *where)
        if not value.strip():
            raise self.fail(f"{key!r} must not be empty", *where, key)
        return value

    def unknown(
        self, table: Mapping[str, Any], allowed: Sequence[str], where: tuple[Any, ...]
    ) -> None:
        for key in table:
            if key not in allowed:
                raise self.fail(
                    f"unknown key {key!r} (expected one of: {', '.join(allowed)})", *where, key
                )

    def strings(self, value: Any, what: str, *key: Any) -> dict[str, str]:
        if not isinstance(value, dict):
            raise self.fail(f"{what} must be a table of strings", *key)
        out: dict[str, str] = {}
        for k, v in value.items():
            text = _scalar(v)
            if text is None:
                raise self.fail(f"{what}[{k!r}] must be a string", *key)
            out[k] = text
        return out


def _scalar(value: Any) -> str | None:
    if isinstance(value, str):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    return None


def _parse_args(ck: _Checker, raw: Any) -> tuple[ArgSpec, ...]:
    if not isinstance(raw, list) or not all(isinstance(a, dict) for a in raw):
        raise ck.fail("args must be written as [[args]] tables", "args")
    specs: list[ArgSpec] = []
    seen_default: str | None = None
    for i, table in enumerate(raw):
        where = ("args", i)
        ck.unknown(table, ARG_KEYS, where)
        name = ck.required(table, "name", where)
        description = ck.required(table, "description", where)
        type_hint = ck.text(table, "type_hint", where) or "string"
        if not ARG_NAME_RE.fullmatch(name):
            raise ck.fail(f"argument name {name!r} is not an identifier", *where, "name")
        if any(s.name == name for s in specs):
            raise ck.fail(f"duplicate argument name {name!r}", *where, "name")
        default = None
        if "default" in table:
            default = _scalar(table["default"])
            if default is None:
                raise ck.fail(
                    f"default of {name!r} must be a string or a number", *where, "default"
                )
            seen_default = name
        elif seen_default is not None:
            raise ck.fail(
                f"required argument {name!r} follows {seen_default!r}, which has a default",
                *where,
                "name",
            )
        specs.append(ArgSpec(name, type_hint, description, default))
    return tuple(specs)


def _parse_http(ck: _Checker, raw: Any, where: tuple[Any, ...]) -> dict[str, CannedResponse]:
    if not isinstance(raw, dict):
        raise ck.fail("http must be a table of URL = body", *where)
    out: dict[str, CannedResponse] = {}
    for url, value in raw.items():
        if isinstance(value, str):
            out[url] = CannedResponse(value)
            continue
        if not isinstance(value, dict) or set(value) - {"status", "body"}:
            raise ck.fail(
                f'http[{url!r}] must be a body string or {{status = N, body = "..."}}', *where
            )
        status, body = value.get("status", 200), value.get("body", "")
        if not isinstance(status, int) or isinstance(status, bool) or not isinstance(body, str):
            raise ck.fail(f"http[{url!r}] needs an integer status and a string body", *where)
        out[url] = CannedResponse(body, status)
    return out


def _parse_example(
    ck: _Checker, table: Mapping[str, Any], i: int, args: tuple[ArgSpec, ...]
) -> Example:
    where = ("examples", i)
    ck.unknown(table, EXAMPLE_KEYS, where)
    raw_args = table.get("args", [])
    ex_args = [_scalar(a) for a in raw_args] if isinstance(raw_args, list) else [None]
    if any(a is None for a in ex_args):
        raise ck.fail("example args must be a list of strings", *where, "args")
    if not sum(1 for a in args if a.default is None) <= len(ex_args) <= len(args):
        raise ck.fail(
            f"example gives {len(ex_args)} arguments; the program takes {_arity(args)}",
            *where,
            "args",
        )
    results = table.get("results")
    if results is not None and not (
        isinstance(results, list) and all(isinstance(r, str) for r in results)
    ):
        raise ck.fail("example results must be a list of strings", *where, "results")
    status = table.get("status")
    if status is not None and (not isinstance(status, int) or isinstance(status, bool)):
        raise ck.fail("example status must be an integer", *where, "status")

    def table_of(key: str) -> dict[str, str] | None:
        if key not in table:
            return None
        return ck.strings(table[key], key, *where, key)

    return Example(
        args=tuple(a for a in ex_args if a is not None),
        results=tuple(results) if results is not None else None,
        status=status,
        http=_parse_http(ck, table["http"], (*where, "http")) if "http" in table else {},
        ai=table_of("ai") or {},
        files=table_of("files") or {},
        kv=table_of("kv") or {},
        fs_after=table_of("fs_after"),
        kv_after=table_of("kv_after"),
        line=ck.line(*where),
    )


def _arity(args: Sequence[ArgSpec]) -> str:
    required = sum(1 for a in args if a.default is None)
    return f"{required}" if required == len(args) else f"{required} to {len(args)}"


def parse_program(data: bytes, path: Path) -> Program:
    """Parse one catalog file's bytes; raises ``CatalogError("<path>:<line>: ...")``."""
    if len(data) > MAX_FILE_BYTES:  # read by a caller that did not stat first
        raise CatalogError(_too_large(path, len(data)))
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise CatalogError(f"{path}:{line}: file is not valid UTF-8 (byte {exc.start})") from exc
    text = text.removeprefix("\ufeff")
    front, body_line, body = split_front_matter(text)
    if not front:
        raise CatalogError(
            f"{path}:1: no front matter: a catalog program starts with ';;; name = \"...\"' lines"
        )
    toml = "\n".join(front)
    try:
        check_depth(toml, MAX_FRONT_MATTER_DEPTH, syntax="toml")  # tomllib recurses per level
    except TooDeep as exc:
        raise CatalogError(f"{path}:{exc.line}: malformed front matter: {exc}") from None
    try:
        meta = tomllib.loads(toml)
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
        m = _TOML_POS_RE.search(message)
        line = getattr(exc, "lineno", None) or (int(m.group(1)) if m and m.group(1) else len(front))
        what = _TOML_POS_RE.sub("", message) if m else message
        raise CatalogError(f"{path}:{line}: malformed front matter: {what}") from exc
    ck = _Checker(path, front)
    ck.unknown(meta, TOP_KEYS, ())
    name = ck.required(meta, "name", ())
    description = ck.required(meta, "description", ())
    if not NAME_RE.fullmatch(name):
        raise ck.fail(f"program name {name!r} must match [a-z][a-z0-9_]{{0,63}}", "name")
    args = _parse_args(ck, meta.get("args", []))
    raw_examples = meta.get("examples", [])
    if not isinstance(raw_examples, list) or not all(isinstance(e, dict) for e in raw_examples):
        raise ck.fail("examples must be written as [[examples]] tables", "examples")
    examples = tuple(_parse_example(ck, e, i, args) for i, e in enumerate(raw_examples))
    if not has_code(body):
        raise CatalogError(
            f"{path}:{body_line}: empty body: write WAT-plus after the ';;;' front matter"
        )
    return Program(
        name=name,
        description=description,
        args=args,
        body=body,
        path=path,
        body_line=body_line,
        examples=examples,
        capabilities=body_capabilities(body),
        source_hash=hashlib.sha256(data).hexdigest(),
    )


def read_catalog_file(path: Path) -> bytes:
    """The bytes of one catalog file, refused from its stat before reading (rule 16):
    ``CatalogError`` if it is not a regular file or is larger than ``MAX_FILE_BYTES``."""
    try:
        # O_NONBLOCK: a FIFO named *.wat is refused below instead of blocking the open
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                raise CatalogError(f"{path}:1: not a regular file")
            if st.st_size > MAX_FILE_BYTES:
                raise CatalogError(_too_large(path, st.st_size))
            with os.fdopen(fd, "rb", closefd=False) as f:
                data = f.read(MAX_FILE_BYTES + 1)  # bounded even if the file grew meanwhile
        finally:
            os.close(fd)
    except OSError as exc:
        raise CatalogError(f"{path}:1: cannot read: {exc.strerror or exc}") from exc
    if len(data) > MAX_FILE_BYTES:
        raise CatalogError(_too_large(path, len(data)))
    return data


def _too_large(path: Path, size: int) -> str:
    return f"{path}:1: file is {size} bytes; a catalog file may have at most {MAX_FILE_BYTES}"


def load_file(path: Path) -> Program:
    return _parsed(read_catalog_file(path), path)


@functools.lru_cache(maxsize=1024)
def _parsed(data: bytes, path: Path) -> Program:
    """``parse_program`` memoized on the file's bytes and path: loading the catalog again
    (``watt serve`` per request, the REPL after ``/save``) re-parses only what changed."""
    return parse_program(data, path)


@dataclass(frozen=True)
class Source:
    """A program to run (``watt run``): a catalog program, or a ``.wat`` file whose front
    matter is optional (``program`` is None without it)."""

    body: str
    line_offset: int  # lines before the body in its file: errors name the file's lines
    program: Program | None
    where: str  # the file, for messages


def load_source(name_or_path: str, dirs: Sequence[Path]) -> Source:
    """A ``.wat`` file (or any existing path), else the catalog program of that name in
    ``dirs``; the file is read through ``read_catalog_file`` (refused from its stat)."""
    path = Path(name_or_path)
    if path.suffix == ".wat" or path.exists():
        data = read_catalog_file(path)
        front, body_line, body = split_front_matter(data.decode("utf-8", errors="replace"))
        if front:
            program = parse_program(data, path)
            return Source(program.body, program.body_line - 1, program, str(path))
        return Source(body, body_line - 1, None, name_or_path)
    catalog, _errors = Catalog.load(dirs)
    found = catalog.get(name_or_path)
    if found is None:
        raise catalog.not_found(name_or_path, what="catalog program or file")
    return Source(found.body, found.body_line - 1, found, str(found.path))


def apply_defaults(program: Program, args: Sequence[str]) -> list[str]:
    """The full argument list: omitted trailing arguments take their defaults."""
    given = list(args)
    if len(given) > len(program.args) or len(given) < program.required:
        raise CatalogError(
            f"{program.name} takes {_arity(program.args)} argument(s), got {len(given)}; "
            f"usage: {program.usage()}"
        )
    return given + [a.default or "" for a in program.args[len(given) :]]


# ---- the catalog ---------------------------------------------------------------------------


def shipped_dir() -> Path:
    """The directory of the installed ``catalog`` package (the shipped programs)."""
    return Path(str(importlib.resources.files("catalog")))


def catalog_dirs(home: Path | None, extra: Sequence[Path] = ()) -> list[Path]:
    """Load order: shipped programs, ``$WATT_HOME/catalog`` if it exists, then ``extra``."""
    dirs = [shipped_dir()]
    if home is not None and (home / "catalog").is_dir():
        dirs.append(home / "catalog")
    return dirs + list(extra)


class Catalog:
    """Programs by name; built by ``Catalog.load``."""

    shipped_dir = staticmethod(shipped_dir)

    def __init__(
        self,
        programs: Mapping[str, Program] | None = None,
        overrides: Sequence[Override] = (),
        failed: Mapping[str, CatalogError] | None = None,
    ) -> None:
        self._programs = dict(programs or {})
        self.overrides = tuple(overrides)
        self.failed = dict(failed or {})
        """The load error of each ``*.wat`` file that did not load, by its file name's stem."""

    @classmethod
    def load(cls, dirs: Sequence[Path]) -> tuple[Catalog, list[CatalogError]]:
        """Load every ``*.wat`` of each directory in order; bad files are reported and skipped."""
        programs: dict[str, Program] = {}
        overrides: list[Override] = []
        errors: list[CatalogError] = []
        failed: dict[str, CatalogError] = {}
        for directory in dirs:
            if not directory.is_dir():
                what = "is not a directory" if directory.exists() else "does not exist"
                errors.append(CatalogError(f"{directory}:1: catalog directory {what}"))
                continue
            here: dict[str, Program] = {}
            for path in sorted(directory.glob("*.wat")):
                try:
                    program = load_file(path)
                except CatalogError as exc:
                    errors.append(exc)
                    failed[path.stem.lower()] = exc
                    continue
                if program.name in here:
                    line = _name_line(path) or 1
                    errors.append(
                        CatalogError(
                            f"{path}:{line}: duplicate program name {program.name!r} "
                            f"(already defined in {here[program.name].path})"
                        )
                    )
                    continue
                here[program.name] = program
            for name, program in here.items():
                if name in programs:
                    overrides.append(Override(name, programs[name].path, program.path))
                programs[name] = program
        return cls(programs, overrides, failed), errors

    def get(self, name: str) -> Program | None:
        """The program called ``name``, forgiving case and ``.``/``-``/space for ``_``
        (models write ``Http.Get``); names are ``[a-z0-9_]`` so this is unambiguous."""
        program = self._programs.get(name)
        if program is None:
            program = self._programs.get(_SEPARATORS_RE.sub("_", name.strip().lower()))
        return program

    def names(self) -> list[str]:
        return sorted(self._programs)

    def not_found(self, name: str, *, what: str = "catalog program") -> CatalogError:
        """The error for a ``name`` that ``get`` does not find: its file's load error when a
        file of that name failed to load, else the list of the programs there are."""
        key = _SEPARATORS_RE.sub("_", name.strip().lower())
        error = self.failed.get(name.strip().lower()) or self.failed.get(key)
        if error is not None:
            return CatalogError(f"catalog program {name!r} failed to load: {error.one_line()}")
        names = ", ".join(self.names()) or "(the catalog is empty)"
        return CatalogError(f"no {what} named {name!r}; programs: {names}")

    def __iter__(self) -> Iterator[Program]:
        return (self._programs[n] for n in self.names())

    def __len__(self) -> int:
        return len(self._programs)

    def __contains__(self, name: object) -> bool:
        return name in self._programs


def _name_line(path: Path) -> int | None:
    try:
        text = read_catalog_file(path).decode("utf-8")
    except (CatalogError, UnicodeDecodeError):
        return None
    return _key_lines(split_front_matter(text)[0]).get(("name",))


def toml_str(value: str) -> str:
    """``value`` as a TOML basic string (front matter; ``Program.usage`` shows defaults so)."""
    out = ['"']
    for ch in value:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)
