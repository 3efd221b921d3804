"""WAT text as Watt reads it: one tokenizer (it knows comments and strings), the nesting of
parenthesised lists, string literals, and the readers that ask "what does this body call?"
(the link check, the catalog's capability lists and the hints all use them), and what
instructions do with their operands and results (which pop a call's value, which take an
immediate first), for the preprocessor.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from rt.errors import CompileError

MAX_DEPTH = 200  # nesting of parentheses; deeper is a CompileError, never a RecursionError
NAME_RE = re.compile(r"\$[A-Za-z_][\w.]*")


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
SURROGATE = re.compile("[\ud800-\udfff]")


def tokenize(source: str, *, lenient: bool = False) -> list[Token]:
    """Split WAT text into tokens, keeping every character (the output is lossless).

    Unterminated text (a block comment, a string, a raw string) is a CompileError; with
    ``lenient`` it is a token up to the end of the text (a "..." string: of its line), so
    that text which will not compile can still be read (what does it call?)."""
    tokens: list[Token] = []
    i, n = 0, len(source)
    while i < n:
        c = source[i]
        if c in "()":
            if source.startswith("(;", i):
                end = source.find(";)", i + 2)
                if end < 0 and not lenient:
                    raise error_at(source, i, "unterminated block comment (; ... ;)")
                end = n - 2 if end < 0 else end
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
            if end < 0 and not lenient:
                raise error_at(source, i, 'unterminated raw string: """ without a closing """')
            end = n - 3 if end < 0 else end
            tokens.append(Token("raw", source[i : end + 3], i))
            i = end + 3
        elif c == '"':
            j = _string_end(source, i, lenient)
            tokens.append(Token("str", source[i:j], i))
            i = j
        else:
            m = _ATOM_END.search(source, i + 1)
            j = m.start() if m else n
            if c == ";":  # a lone ';' is not WAT; let the compiler name it
                j = i + 1
            tokens.append(Token("atom", source[i:j], i))
            i = j
    return tokens


def _string_end(source: str, start: int, lenient: bool) -> int:
    """The index just past the "..." literal at ``start`` (lenient: or its line's end)."""
    j, n = start + 1, len(source)
    while j < n and source[j] != '"':
        if source[j] == "\n":
            if lenient:
                return j
            raise error_at(
                source, start, 'unterminated string: a "..." literal must close on its line'
            )
        j += 2 if source[j] == "\\" else 1
    if j >= n:
        if lenient:
            return n
        raise error_at(source, start, 'unterminated string: missing closing "')
    return j + 1


def parse(source: str) -> list[Token | Node]:
    """Nest tokens into lists; unbalanced parentheses are errors with positions."""
    root: list[Token | Node] = []
    stack: list[Node] = []
    for tok in tokenize(source):
        if tok.kind == "(":
            if len(stack) >= MAX_DEPTH:
                raise error_at(
                    source, tok.pos, f"nesting deeper than {MAX_DEPTH} levels of parentheses"
                )
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


def node_words(node: Node) -> list[Token | Node]:
    """A list's children other than blanks and comments."""
    return [c for c in node.children if isinstance(c, Node) or c.kind not in ("ws", "comment")]


def node_head(node: Node) -> str:
    """The first word of a list, when it is an atom (``local.get``, ``$str.upper``), else ""."""
    words = node_words(node)
    return words[0].text if words and isinstance(words[0], Token) else ""


def node_text(it: Token | Node) -> str:
    """The source text of a token or a whole list."""
    if isinstance(it, Token):
        return it.text
    return "(" + "".join(node_text(c) for c in it.children) + ")"


def next_word(items: list[Token | Node], start: int) -> Token | Node | None:
    for it in items[start:]:
        if isinstance(it, Node) or it.kind not in ("ws", "comment"):
            return it
    return None


def node_qual(node: Node) -> str:
    """The host function a node names in any spelling (``call $a.b``, ``$a.b``, ``a.b``)."""
    words = node_words(node)
    head = node_head(node)
    if head == "call":
        return words[1].text[1:] if len(words) > 1 and isinstance(words[1], Token) else ""
    return head[1:] if head.startswith("$") else head


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
                raise error_at(
                    source, token.pos + 1 + i, f"bad unicode escape \\{m.group(0)}"
                ) from exc
            i += 1 + len(m.group(0))
        else:
            raise error_at(source, token.pos + 1 + i, f"unknown escape \\{nxt} in string")
    return bytes(out)


# WAT's own dotted instruction families: any other ``(ns.name`` head is a host call.
WAT_FAMILIES = frozenset(
    {
        "i32",
        "i64",
        "f32",
        "f64",
        "v128",
        "local",
        "global",
        "memory",
        "table",
        "ref",
        "elem",
        "data",
    }
)


def called_functions(source: str) -> list[str]:
    """The host functions a body calls, in every spelling (``(call $a.b``, ``($a.b``,
    ``(a.b``, ``return_call``, flat ``call $a.b``), in order, read with the tokenizer: a call
    inside a comment or a string literal is not a call. Text that will not compile (an
    unterminated string or comment) is read leniently: what follows it is not code."""
    words = [t for t in tokenize(source, lenient=True) if t.kind not in ("ws", "comment")]
    found: list[str] = []
    for i, tok in enumerate(words):
        if tok.kind != "atom":
            continue
        nxt = words[i + 1] if i + 1 < len(words) else None
        after_paren = i > 0 and words[i - 1].kind == "("
        if tok.text in ("call", "return_call") and nxt is not None and nxt.text.startswith("$"):
            qual = nxt.text[1:]
        elif after_paren and tok.text.startswith("$"):
            qual = tok.text[1:]
        elif after_paren and tok.text.partition(".")[0] not in WAT_FAMILIES:
            qual = tok.text
        else:
            continue
        ns, dot, name = qual.partition(".")
        if dot and NAME_RE.fullmatch("$" + qual) and ns and name:
            found.append(qual)
    return found


def list_heads(source: str) -> list[str]:
    """The first word of every parenthesised list, in order (``(call $a.b x)`` -> "call",
    ``($x)`` -> "$x"), read leniently with the tokenizer: comments and strings hold none."""
    tokens = [t for t in tokenize(source, lenient=True) if t.kind not in ("ws", "comment")]
    return [
        b.text
        for a, b in zip(tokens, tokens[1:], strict=False)
        if a.kind == "(" and b.kind == "atom"
    ]


def module_imports(source: str) -> list[tuple[str, str, int]]:
    """The ``(import "ns" "name" ...)`` declarations of a whole module as (ns, name, offset),
    read leniently with the tokenizer: a commented-out import is not an import."""
    tokens = [t for t in tokenize(source, lenient=True) if t.kind not in ("ws", "comment")]
    found: list[tuple[str, str, int]] = []
    for i in range(len(tokens) - 3):
        paren, word, ns, name = tokens[i : i + 4]
        if paren.kind == "(" and word.text == "import" and ns.kind == name.kind == "str":
            found.append((ns.text[1:-1], name.text[1:-1], paren.pos))
    return found


# ---- what a body reads ----------------------------------------------------------------------


def body_capabilities(body: str) -> tuple[str, ...]:
    """Namespaces of the host functions a body calls, in any spelling, sorted; read with the
    WAT tokenizer (``called_functions``), the same reader the link check
    uses, so a call in a comment or a string never counts."""
    return tuple(sorted({q.partition(".")[0] for q in called_functions(body)}))


_INT_RE = re.compile(r"[0-9]+")


def arguments_read(body: str) -> int | None:
    """How many arguments a body reads: one past the highest constant index of its
    ``(argv N ...)``, ``(arg N)`` and ``sys.argv N`` reads (0 when it reads none), or None
    when it cannot be told (``sys.argc``, a computed index, the flat form). Read with the
    WAT tokenizer, so a read in a comment or a string never counts."""
    words = [t for t in tokenize(body, lenient=True) if t.kind not in ("ws", "comment")]
    count = 0
    for i, tok in enumerate(words):
        if tok.kind != "atom":
            continue
        name = tok.text.removeprefix("$")
        after_paren = i > 0 and words[i - 1].kind == "("
        if name.endswith(".argc") and name.partition(".")[0] == "sys":
            return None
        if name == "sys.argv" or (after_paren and tok.text in ("argv", "arg")):
            index = _constant(words[i + 1 : i + 4])
            if index is None:
                return None
            count = max(count, index + 1)
    return count


def _constant(tokens: Sequence[Token]) -> int | None:
    """The int of ``N`` or ``(i32.const N)`` at the start of ``tokens``, else None."""
    texts = [t.text for t in tokens]
    if texts[:1] and _INT_RE.fullmatch(texts[0]):
        return int(texts[0])
    if texts[:2] == ["(", "i32.const"] and len(texts) > 2 and _INT_RE.fullmatch(texts[2]):
        return int(texts[2])
    return None


def has_code(body: str) -> bool:
    """Whether the body holds anything but blanks, comments and string literals."""
    return any(t.kind in ("(", ")", "atom") for t in tokenize(body, lenient=True))


# ---- what instructions do with operands and results (read by the preprocessor) ----------

# Instructions that pop one value and push nothing: a following one consumes a call's result.
CONSUMERS = frozenset({"local.set", "drop", "global.set"})
# Instructions whose first atom is an immediate (a name or index); later atoms are operands.
FIRST_IMMEDIATE = frozenset({"local.set", "local.tee", "global.set"})
OPERAND_ONLY = frozenset({"return", "drop", "select"})


def takes_operand_atoms(head: str) -> tuple[bool, bool]:
    """Whether bare ``$x`` and bare integers among ``head``'s operands are rewritten."""
    if head in FIRST_IMMEDIATE or head in OPERAND_ONLY:
        return True, True
    if head.startswith(("i32.", "i64.")) and not head.endswith(".const"):
        memory = ".load" in head or ".store" in head
        return True, not memory
    return False, False


def operand_fix(qual: str, names: Sequence[str], given: Sequence[Node | Token]) -> str:
    """The call written with as many operands as it takes: the first ones given when there
    are too many (a small model repeats a call that is refused without one), else its
    parameters' names."""
    if len(given) > len(names):
        shown = " ".join(" ".join(node_text(c).split()) for c in given[: len(names)])
    else:
        shown = " ".join(names)
    fix = f"({qual} {shown})" if shown else f"({qual})"
    return f": write {fix}" if len(fix) <= 160 else ""


def consumers(items: list[Token | Node], start: int) -> int:
    """How many of the next statements pop one value each (``(local.set $x)``, ``drop``): at most 2."""
    count, i = 0, start
    while count < 2 and i < len(items):
        it = items[i]
        i += 1
        if isinstance(it, Token):
            if it.kind in ("ws", "comment"):
                continue
            if it.kind == "atom" and it.text in CONSUMERS:
                count += 1
                if it.text != "drop":
                    nxt = next_word(items, i)
                    if nxt is not None:
                        i = items.index(nxt) + 1
                continue
            break
        words = node_words(it)
        if node_head(it) in CONSUMERS and len(words) <= (1 if node_head(it) == "drop" else 2):
            count += 1
            continue
        break
    return count
