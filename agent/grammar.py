"""The reply grammar (DESIGN.md, "The reply grammar") as llama.cpp GBNF, for constrained decoding.

A local model sampled under ``REPLY_GBNF`` can only write replies the parser takes without any
fallback: optional ``<reasoning>...</reasoning>``, then exactly one canonical ToolCall::

    ToolCall::Wat(```wat
    <body>
    ```, "arg0", "arg1")
    ToolCall::Catalog("name", "arg0")
    ToolCall::Response(\"\"\"answer\"\"\")

and then nothing: once the call's ``)`` is written, the grammar admits only end-of-text.

Deliberate narrowings of what the parser accepts (each keeps the reply canonical):

- reasoning holds no ``<`` (so it cannot run past ``</reasoning>``);
- a Wat body holds no run of three backticks and is fenced ```` ```wat ```` ... ```` ``` ````
  on lines of their own;
- arguments are one-line double-quoted strings with the escapes ``\\" \\\\ \\n \\t \\r \\' \\/``;
- a catalog name is ``[A-Za-z0-9_.-]+``;
- a Response is triple-quoted, not empty, holds no ``\"\"\"``, does not start with ``\"``
  and has no ``\"`` right before a ``)``: the 1.5B model wrote ``\"\"\"\"4\"\"\"`` (a one-quote
  answer inside the triple quotes), then, with that ruled out, an empty answer.

Nothing bounds the length: the caller caps tokens (``LocalModel`` does by default).
Rule names use ``-`` (llama.cpp rejects ``_`` in rule names).
"""

from __future__ import annotations

GRAMMAR_ROOT = "root"

REPLY_GBNF = r'''
root          ::= reasoning? call
reasoning     ::= "<reasoning>" reason-char* "</reasoning>" "\n"?
reason-char   ::= [^<]
call          ::= wat-call | catalog-call | response-call

wat-call      ::= "ToolCall::Wat(```wat\n" body-char* "\n```" args ")"
body-char     ::= [^`] | "`" [^`] | "``" [^`]

catalog-call  ::= "ToolCall::Catalog(" name args ")"
name          ::= "\"" [A-Za-z0-9_.-]+ "\""

response-call ::= "ToolCall::Response(\"\"\"" answer-start answer-char* "\"\"\")"
answer-start  ::= [^"]
answer-char   ::= [^"] | "\"" [^")] | "\"\"" [^")]

args          ::= ("," " "? string)*
string        ::= "\"" string-char* "\""
string-char   ::= [^"\\\n] | "\\" ["\\nrt'/]
'''.strip() + "\n"


def reply_grammar() -> str:
    """The GBNF text of the reply grammar (root rule ``root``)."""
    return REPLY_GBNF
