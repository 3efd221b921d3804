"""WAT-plus -> WAT: macros, string literals and local hoisting, as pure functions.

WAT-plus is a function body with four conveniences (DESIGN.md "Preprocessor"):

    (argv N $x)    declare $x, load argument N into it, return the error code on failure
    (check $err)   return $err from $run when it is non-zero
    (resv X)       append the string at X ($name, a literal or an expression) to the results
    "text"         (with \\n \\t \\" \\\\ escapes) and \"\"\"raw text\"\"\" become (i32.const PTR)

``(local $x i32)`` anywhere is hoisted and de-duplicated. Expansions never add or remove
newlines, so line N of the output is line N of the input (compile errors map back exactly).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from rt.errors import CompileError

DATA_BASE = 8  # first static-data offset; 0 stays an obviously bad pointer
ERR_LOCAL = "$__watt_err"


@dataclass(frozen=True)
class Token:
    kind: str  # "(" ")" "atom" "str" "raw" "comment" "ws"
    text: str
    pos: int


@dataclass
class Node:
    """A parenthesised list; children are Tokens (leaves) and Nodes."""

    open: Token
    children: list[Token | Node] = field(default_factory=list)


@dataclass(frozen=True)
class Preprocessed:
    body: str  # the WAT body, same line count as the input
    locals: tuple[str, ...]  # hoisted declarations, e.g. "(local $x i32)"
    data: bytes  # static data placed at DATA_BASE
    initial_top: int  # first free byte after static data (8-aligned)


def _pos(source: str, pos: int) -> tuple[int, int, str]:
    line = source.count("\n", 0, pos) + 1
    start = source.rfind("\n", 0, pos) + 1
    end = source.find("\n", pos)
    text = source[start : end if end >= 0 else len(source)]
    return line, pos - start + 1, text


def error_at(source: str, pos: int, message: str) -> CompileError:
    line, col, text = _pos(source, pos)
    return CompileError(message, line, col, text)


_ATOM_END = re.compile(r'[\s()";]')


def tokenize(source: str) -> list[Token]:
    """Split WAT text into tokens, keeping every character (the output is lossless)."""
    tokens: list[Token] = []
    i, n = 0, len(source)
    while i < n:
        c = source[i]
        if c in "()":
            if source.startswith("(;", i):
                end = source.find(";)", i + 2)
                if end < 0:
                    raise error_at(source, i, "unterminated block comment (; ... ;)")
                tokens.append(Token("comment", source[i : end + 2], i))
                i = end + 2
                continue
            tokens.append(Token(c, c, i))
            i += 1
        elif c.isspace():
            j = i
            while j < n and source[j].isspace():
                j += 1
            tokens.append(Token("ws", source[i:j], i))
            i = j
        elif source.startswith(";;", i):
            end = source.find("\n", i)
            end = n if end < 0 else end
            tokens.append(Token("comment", source[i:end], i))
            i = end
        elif source.startswith('"""', i):
            end = source.find('"""', i + 3)
            if end < 0:
                raise error_at(source, i, 'unterminated raw string: """ without a closing """')
            tokens.append(Token("raw", source[i : end + 3], i))
            i = end + 3
        elif c == '"':
            j = i + 1
            while j < n and source[j] != '"':
                if source[j] == "\n":
                    raise error_at(source, i, 'unterminated string: a "..." literal must close on its line')
                j += 2 if source[j] == "\\" else 1
            if j >= n:
                raise error_at(source, i, 'unterminated string: missing closing "')
            tokens.append(Token("str", source[i : j + 1], i))
            i = j + 1
        else:
            m = _ATOM_END.search(source, i + 1)
            j = m.start() if m else n
            if c == ";":  # a lone ';' is not WAT; let the compiler name it
                j = i + 1
            tokens.append(Token("atom", source[i:j], i))
            i = j
    return tokens


def parse(source: str) -> list[Token | Node]:
    """Nest tokens into lists; unbalanced parentheses are errors with positions."""
    root: list[Token | Node] = []
    stack: list[Node] = []
    for tok in tokenize(source):
        if tok.kind == "(":
            node = Node(tok)
            (stack[-1].children if stack else root).append(node)
            stack.append(node)
        elif tok.kind == ")":
            if not stack:
                raise error_at(source, tok.pos, "unbalanced parentheses: unexpected ')'")
            stack.pop()
        else:
            (stack[-1].children if stack else root).append(tok)
    if stack:
        raise error_at(source, stack[-1].open.pos, "unbalanced parentheses: '(' is never closed")
    return root


_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", '"': '"', "'": "'", "\\": "\\"}


def decode_string(token: Token, source: str) -> bytes:
    """The bytes a string literal stands for (raw strings drop one leading newline)."""
    if token.kind == "raw":
        text = token.text[3:-3]
        if text.startswith("\n"):
            text = text[1:]
        return text.encode("utf-8")
    body, out, i = token.text[1:-1], bytearray(), 0
    while i < len(body):
        c = body[i]
        if c != "\\":
            out += c.encode("utf-8")
            i += 1
            continue
        nxt = body[i + 1 : i + 2]
        if nxt in _ESCAPES:
            out += _ESCAPES[nxt].encode()
            i += 2
        elif re.fullmatch(r"[0-9a-fA-F]{2}", body[i + 1 : i + 3]):
            out.append(int(body[i + 1 : i + 3], 16))
            i += 3
        elif nxt == "u" and (m := re.match(r"u\{([0-9a-fA-F]{1,6})\}", body[i + 1 :])):
            try:
                out += chr(int(m.group(1), 16)).encode("utf-8")
            except (ValueError, UnicodeEncodeError) as exc:
                raise error_at(source, token.pos + 1 + i, f"bad unicode escape \\{m.group(0)}") from exc
            i += 1 + len(m.group(0))
        else:
            raise error_at(source, token.pos + 1 + i, f"unknown escape \\{nxt} in string")
    return bytes(out)


class _Expander:
    def __init__(self, source: str) -> None:
        self.source = source
        self.locals: dict[str, str] = {}  # name (or unique key) -> declaration
        self.data = bytearray()
        self.offsets: dict[bytes, int] = {}

    # -- static data ---------------------------------------------------------------------
    def intern(self, value: bytes) -> int:
        if value in self.offsets:
            return self.offsets[value]
        while len(self.data) % 4:
            self.data.append(0)
        offset = DATA_BASE + len(self.data)
        self.data += len(value).to_bytes(4, "little") + value
        self.offsets[value] = offset
        return offset

    def declare(self, name: str, wtype: str, pos: int) -> None:
        decl = f"(local {name} {wtype})"
        old = self.locals.get(name)
        if old is not None and old != decl:
            raise error_at(self.source, pos, f"local {name} declared twice with different types")
        self.locals[name] = decl

    # -- expansion -------------------------------------------------------------------------
    def expand(self, items: list[Token | Node]) -> str:
        return "".join(self.item(it) for it in items)

    def item(self, it: Token | Node) -> str:
        if isinstance(it, Node):
            return self.node(it)
        if it.kind in ("str", "raw"):
            offset = self.intern(decode_string(it, self.source))
            return f"(i32.const {offset})" + "\n" * it.text.count("\n")
        return it.text

    def node(self, node: Node) -> str:
        words = [c for c in node.children if isinstance(c, Node) or c.kind not in ("ws", "comment")]
        head = words[0].text if words and isinstance(words[0], Token) else ""
        newlines = "\n" * sum(self._text(c).count("\n") for c in node.children)
        if head == "local":
            return self.local(node, words[1:]) + newlines
        if head == "argv":
            return self.argv(node, words[1:]) + newlines
        if head == "check":
            return self.check(node, words[1:]) + newlines
        if head == "resv":
            return self.resv(node, words[1:])
        return "(" + self.expand(node.children) + ")"

    def _text(self, it: Token | Node) -> str:
        if isinstance(it, Token):
            return it.text
        return "(" + "".join(self._text(c) for c in it.children) + ")"

    def local(self, node: Node, args: list[Token | Node]) -> str:
        atoms = [a.text for a in args if isinstance(a, Token) and a.kind == "atom"]
        if len(atoms) != len(args) or not atoms:
            raise error_at(self.source, node.open.pos, "local expects (local $name type) or (local type ...)")
        if atoms[0].startswith("$"):
            if len(atoms) != 2:
                raise error_at(self.source, node.open.pos, "local expects (local $name type)")
            self.declare(atoms[0], atoms[1], node.open.pos)
        else:
            self.locals[f"#{len(self.locals)}"] = f"(local {' '.join(atoms)})"
        return ""

    def argv(self, node: Node, args: list[Token | Node]) -> str:
        ok = (
            len(args) == 2
            and all(isinstance(a, Token) and a.kind == "atom" for a in args)
            and re.fullmatch(r"\d+", args[0].text)  # type: ignore[union-attr]
            and args[1].text.startswith("$")  # type: ignore[union-attr]
        )
        if not ok:
            raise error_at(self.source, node.open.pos, "argv expects (argv <int> $name)")
        index, name = args[0].text, args[1].text  # type: ignore[union-attr]
        self.declare(name, "i32", node.open.pos)
        self.declare(ERR_LOCAL, "i32", node.open.pos)
        return (
            f"(call $sys.argv (i32.const {index})) (local.set {ERR_LOCAL}) (local.set {name}) "
            + _return_if(ERR_LOCAL)
        )

    def check(self, node: Node, args: list[Token | Node]) -> str:
        if len(args) != 1 or not isinstance(args[0], Token) or not args[0].text.startswith("$"):
            raise error_at(self.source, node.open.pos, "check expects (check $name)")
        return _return_if(args[0].text)

    def resv(self, node: Node, args: list[Token | Node]) -> str:
        if len(args) != 1 or (isinstance(args[0], Token) and args[0].kind == "atom" and not args[0].text.startswith("$")):
            raise error_at(self.source, node.open.pos, "resv expects (resv $name), (resv \"text\") or (resv (expr))")
        arg = args[0]
        if isinstance(arg, Token) and arg.kind == "atom":
            value = f"(local.get {arg.text})"
        else:
            value = self.item(arg)
        self.declare(ERR_LOCAL, "i32", node.open.pos)
        trailing = "\n" * sum(
            self._text(c).count("\n") for c in node.children if c is not arg
        )
        return f"(call $sys.resv {value}) (local.set {ERR_LOCAL}) " + _return_if(ERR_LOCAL) + trailing


def _return_if(name: str) -> str:
    return f"(if (local.get {name}) (then (return (local.get {name}))))"


def preprocess(source: str) -> Preprocessed:
    """Expand a WAT-plus body. Raises CompileError with line and column on bad input."""
    nul = source.find("\x00")
    if nul >= 0:
        raise error_at(source, nul, "source contains a NUL byte")
    if not source.strip():
        raise CompileError("empty program: the body needs at least (i32.const 0)")
    ex = _Expander(source)
    body = ex.expand(parse(source))
    top = DATA_BASE + len(ex.data)
    top = (top + 7) & ~7
    return Preprocessed(body, tuple(ex.locals.values()), bytes(ex.data), top)


def called_functions(source: str) -> list[tuple[str, int]]:
    """Every ``(call $a.b ...)`` target in a body with its offset: imports the body needs."""
    return [(m.group(1), m.start(1)) for m in re.finditer(r"\(\s*call\s+\$([A-Za-z_][\w]*\.[\w.]+)", source)]
