"""The shared task list for measuring the agent against a real model.

Used by ``bench/eval_real_model.py`` (figures for any endpoint) and by the opt-in
``tests/test_e2e_real_model.py``. Each ``Task`` has a prompt, the grants it needs (a
temporary fs jail, the fixture http server), fixture setup (files in the jail, kv values
seeded before the run) and a checker of the final answer (and, where the task writes
something, of the state the run left behind).

Prompts may contain ``{base}``: the fixture server's ``http://127.0.0.1:PORT`` URL.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


@dataclass(frozen=True)
class Outcome:
    """What a checker sees: the final answer and the state the run left behind."""

    answer: str
    jail: Path | None = None
    kv: Mapping[str, str] = field(default_factory=dict)


Checker = Callable[[Outcome], bool]


@dataclass(frozen=True)
class Task:
    name: str
    category: str  # arithmetic, strings, json, kv, fs, http, catalog, multi-step
    prompt: str
    check: Checker
    fs: bool = False  # grant a temporary jail (--fs-root)
    http: bool = False  # grant the fixture server (--allow-domain 127.0.0.1:PORT)
    files: Mapping[str, str] = field(default_factory=dict)  # jail contents before the run
    kv: Mapping[str, str] = field(default_factory=dict)  # kv values seeded before the run

    def render(self, base_url: str) -> str:
        return self.prompt.replace("{base}", base_url)


def _norm(text: str) -> str:
    return " ".join(text.lower().split())


def says(*needles: str) -> Checker:
    """The answer contains every needle (case- and whitespace-insensitive)."""
    return lambda o: all(_norm(n) in _norm(o.answer) for n in needles)


def says_number(n: int | str) -> Checker:
    """The answer contains ``n`` as a whole number (so 42 does not match 142 or 4.2)."""
    pattern = re.compile(rf"(?<![\d.]){re.escape(str(n))}(?![\d]|\.\d)")
    return lambda o: pattern.search(o.answer.replace(",", "")) is not None


def says_yes(o: Outcome) -> bool:
    words = set(re.findall(r"[a-z]+", o.answer.lower()))
    return bool(words & {"true", "yes"}) and not words & {"false", "not", "no"}


def both(a: Checker, b: Checker) -> Checker:
    return lambda o: a(o) and b(o)


def file_is(path: str, content: str) -> Checker:
    def check(o: Outcome) -> bool:
        if o.jail is None or not (o.jail / path).is_file():
            return False
        return (o.jail / path).read_text(encoding="utf-8").strip() == content.strip()

    return check


def kv_is(key: str, value: str) -> Checker:
    return lambda o: o.kv.get(key, "").strip() == value


TASKS: tuple[Task, ...] = (
    Task(
        "arith_mul_add",
        "arithmetic",
        "Compute 48271 * 3 + 17 with a WAT program and tell me the result.",
        says_number(144830),
    ),
    Task(
        "str_reverse",
        "strings",
        "Reverse the text 'stressed dog' character by character.",
        says("god desserts"),
    ),
    Task(
        "str_word_count",
        "strings",
        "How many words are in this sentence: 'the quick brown fox jumps over the lazy dog'?",
        says_number(9),
    ),
    Task(
        "str_replace",
        "strings",
        "In the text 'cat sat on the cat mat', replace every 'cat' with 'dog'. Give the new text.",
        says("dog sat on the dog mat"),
    ),
    Task(
        "json_second_name",
        "json",
        'What is the name of the second item in this JSON: {"items": [{"name": "pen"}, {"name": "ink"}]} ?',
        both(says("ink"), lambda o: "pen" not in _norm(o.answer)),
    ),
    Task(
        "kv_read",
        "kv",
        "What value is stored under the key 'city' in the key-value store?",
        says("Lisbon"),
        kv={"city": "Lisbon"},
    ),
    Task(
        "kv_store_color",
        "kv",
        "Store the value 'blue' under the key 'color' in the key-value store, then confirm.",
        kv_is("color", "blue"),
    ),
    Task(
        "fs_count_lines",
        "fs",
        "How many lines does the file notes.txt have?",
        says_number(3),
        fs=True,
        files={"notes.txt": "buy milk\ncall Bob\nfix the bike\n"},
    ),
    Task(
        "fs_write",
        "fs",
        "Create a file named greeting.txt containing exactly: hello from watt",
        file_is("greeting.txt", "hello from watt"),
        fs=True,
    ),
    Task(
        "http_text",
        "http",
        "Fetch {base}/motd.txt and tell me the message it contains.",
        says("the kettle is on"),
        http=True,
    ),
    Task(
        "http_json_field",
        "http",
        "What is the value of the field current.temp_c in the JSON at {base}/weather.json ?",
        says_number("-3.5"),
        http=True,
    ),
    Task(
        "catalog_contains",
        "catalog",
        "Use the catalog program `contains` to tell me whether 'the quick brown fox' contains 'brown'.",
        says_yes,
    ),
    Task(
        "multi_read_upper",
        "multi-step",
        "Read the file name.txt and give me its contents in upper case.",
        lambda o: "ADA LOVELACE" in o.answer,
        fs=True,
        files={"name.txt": "Ada Lovelace\n"},
    ),
    Task(
        "multi_kv_incr_twice",
        "multi-step",
        "The key 'visits' holds a counter. Add 1 to it, then add 1 again, and tell me its final value.",
        both(says_number(42), kv_is("visits", "42")),
        kv={"visits": "40"},
    ),
)

# ---- the fixture http server -------------------------------------------------------------------
PAGES: dict[str, tuple[str, str]] = {
    "/motd.txt": ("text/plain; charset=utf-8", "Message of the day: the kettle is on.\n"),
    "/weather.json": (
        "application/json",
        json.dumps({"city": "Oslo", "current": {"temp_c": -3.5, "sky": "snow"}}),
    ),
}


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        page = PAGES.get(self.path.split("?")[0])
        status, ctype, body = (200, *page) if page else (404, "text/plain", "not found")
        data = body.encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        return None


@contextmanager
def fixture_server() -> Iterator[str]:
    """Serve PAGES on 127.0.0.1 (a free port) in a thread; yields ``http://127.0.0.1:PORT``."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def write_files(jail: Path, files: Mapping[str, str]) -> None:
    for rel, content in files.items():
        path = jail / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content, encoding="utf-8")
