"""The shared task list for measuring the agent against a real model.

Used by ``bench/eval_real_model.py`` (figures for any endpoint) and by the opt-in
``tests/test_e2e_real_model.py``. Each ``Task`` has a prompt, the grants it needs (a
temporary fs jail, the fixture http server), fixture setup (files in the jail, kv values
seeded before the run) and a checker of the final answer (and, where the task writes
something, of the state the run left behind).

Prompts may contain ``{base}``: the fixture server's ``http://127.0.0.1:PORT`` URL, and
``{root}``: the absolute path of the task's fs jail (a person names files by where they are).

Every task has a ``kind``, one of KINDS (arithmetic, strings, files, http, json, multi-step;
the finer ``category`` maps onto it: fs is files, kv is multi-step, catalog is strings), and
about a third are ``held_out``: kept out of prompt and hint tuning, so that their success
rate shows whether a change generalises (``eval_real_model.py --tuning`` / ``--held-out``).
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
    category: str  # arithmetic, strings, json, kv, fs, http, catalog, multi-step (see ``kind``)
    prompt: str
    check: Checker
    fs: bool = False  # grant a temporary jail (--fs-root)
    http: bool = False  # grant the fixture server (--allow-domain 127.0.0.1:PORT)
    files: Mapping[str, str] = field(default_factory=dict)  # jail contents before the run
    kv: Mapping[str, str] = field(default_factory=dict)  # kv values seeded before the run
    held_out: bool = False  # not to be looked at while tuning prompts and hints

    @property
    def kind(self) -> str:
        """One of KINDS: the six kinds the suite is balanced over."""
        return KIND_OF_CATEGORY.get(self.category, self.category)

    def render(self, base_url: str, root: str | Path = "") -> str:
        """The prompt with ``{base}`` (fixture server URL) and ``{root}`` (jail path) filled in."""
        return self.prompt.replace("{base}", base_url).replace("{root}", str(root))


KINDS = ("arithmetic", "strings", "files", "http", "json", "multi-step")
KIND_OF_CATEGORY = {"fs": "files", "kv": "multi-step", "catalog": "strings"}


def _norm(text: str) -> str:
    return " ".join(text.lower().split())


def says(*needles: str) -> Checker:
    """The answer contains every needle (case- and whitespace-insensitive)."""
    return lambda o: all(_norm(n) in _norm(o.answer) for n in needles)


def says_number(n: int | str) -> Checker:
    """The answer contains ``n`` as a whole number (so 42 does not match 142 or 4.2)."""
    pattern = re.compile(rf"(?<![\d.]){re.escape(str(n))}(?![\d]|\.\d)")
    return lambda o: pattern.search(o.answer.replace(",", "")) is not None


def says_exactly(needle: str) -> Checker:
    """The answer contains ``needle`` as is (case matters), not inside a longer word."""
    pattern = re.compile(rf"(?<!\w){re.escape(needle)}(?!\w)")
    return lambda o: pattern.search(" ".join(o.answer.split())) is not None


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


def file_lines(path: str, lines: list[str]) -> Checker:
    """The file's non-blank lines, stripped, are ``lines`` (a trailing newline or not)."""

    def check(o: Outcome) -> bool:
        if o.jail is None or not (o.jail / path).is_file():
            return False
        text = (o.jail / path).read_text(encoding="utf-8")
        return [ln.strip() for ln in text.splitlines() if ln.strip()] == lines

    return check


def file_says(path: str, *needles: str) -> Checker:
    """The file exists and contains every needle (case- and whitespace-insensitive)."""

    def check(o: Outcome) -> bool:
        if o.jail is None or not (o.jail / path).is_file():
            return False
        text = _norm((o.jail / path).read_text(encoding="utf-8"))
        return all(_norm(n) in text for n in needles)

    return check


def kv_is(key: str, value: str) -> Checker:
    return lambda o: o.kv.get(key, "").strip() == value


NOTES = "buy milk\ncall Bob\nfix the bike\n"

TASKS: tuple[Task, ...] = (
    # ---- arithmetic: i64 and loops --------------------------------------------------------------
    Task(
        "arith_mul_add",
        "arithmetic",
        "Compute 48271 * 3 + 17 with a WAT program and tell me the result.",
        says_number(144830),
    ),
    Task("arith_pow_2_40", "arithmetic", "What is 2 to the power of 40?", says_number(2**40)),
    Task(
        "arith_factorial_25",
        "arithmetic",
        "What is 25 factorial? I need the exact number, every digit.",
        says_number(15511210043330985984000000),
    ),
    Task(
        "arith_sum_1_100",
        "arithmetic",
        "Add up all the whole numbers from 1 to 100 and tell me the total.",
        says_number(5050),
    ),
    Task(
        "arith_ms_in_year",
        "arithmetic",
        "How many milliseconds are there in 365 days?",
        says_number(31536000000),
        held_out=True,
    ),
    Task(
        "arith_sum_squares",
        "arithmetic",
        "What do the squares of the numbers 1 through 20 add up to?",
        says_number(2870),
        held_out=True,
    ),
    # ---- strings ------------------------------------------------------------------------------------
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
        "catalog_contains",
        "catalog",
        "Use the catalog program `contains` to tell me whether 'the quick brown fox' contains 'brown'.",
        says_yes,
    ),
    Task(
        "str_upper",
        "strings",
        "Turn 'please ship it today' into upper case.",
        says_exactly("PLEASE SHIP IT TODAY"),
    ),
    Task(
        "str_count_vowels",
        "strings",
        "How many vowels (a, e, i, o, u) are there in 'programming language'?",
        says_number(7),
        held_out=True,
    ),
    Task(
        "str_count_substring",
        "strings",
        "How many times does 'an' occur in 'banana bandana'?",
        says_number(4),
        held_out=True,
    ),
    # ---- files (the fs jail; {root} is its absolute path) -------------------------------------------
    Task(
        "fs_count_lines",
        "fs",
        "How many lines does the file notes.txt have?",
        says_number(3),
        fs=True,
        files={"notes.txt": NOTES},
    ),
    Task(
        "fs_write",
        "fs",
        "Create a file named greeting.txt containing exactly: hello from watt",
        file_is("greeting.txt", "hello from watt"),
        fs=True,
    ),
    Task(
        "fs_read_abs",
        "fs",
        "Read {root}/notes.txt and tell me what its second line says.",
        both(says("call bob"), lambda o: "buy milk" not in _norm(o.answer)),
        fs=True,
        files={"notes.txt": NOTES},
    ),
    Task(
        "fs_append_abs",
        "fs",
        "Add 'eggs' as a new line at the end of my shopping list, {root}/shopping.txt.",
        file_lines("shopping.txt", ["milk", "bread", "eggs"]),
        fs=True,
        files={"shopping.txt": "milk\nbread\n"},
    ),
    Task(
        "fs_write_abs",
        "fs",
        "Save the note 'meeting moved to 3pm' to {root}/memo.txt.",
        file_is("memo.txt", "meeting moved to 3pm"),
        fs=True,
        held_out=True,
    ),
    Task(
        "fs_count_words_abs",
        "fs",
        "How many words are in {root}/report.txt?",
        says_number(11),
        fs=True,
        files={"report.txt": "Sales grew in March and April\nbut fell sharply in May.\n"},
        held_out=True,
    ),
    Task(
        "fs_copy",
        "fs",
        "Make a copy of draft.txt named final.txt.",
        both(
            file_is("final.txt", "Dear team,\nthe launch is on Friday."),
            file_is("draft.txt", "Dear team,\nthe launch is on Friday."),
        ),
        fs=True,
        files={"draft.txt": "Dear team,\nthe launch is on Friday.\n"},
        held_out=True,
    ),
    # ---- http (the fixture server on 127.0.0.1) ------------------------------------------------------
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
        "http_quote_author",
        "http",
        "Who is the quote at {base}/quote.txt attributed to?",
        says("marta quill"),
        http=True,
    ),
    Task(
        "http_users_count",
        "http",
        "How many users are listed at {base}/users.json?",
        says_number(5),
        http=True,
        held_out=True,
    ),
    Task(
        "http_post_order",
        "http",
        'Place an order by POSTing the JSON {"item": "lamp", "qty": 2} to {base}/orders, '
        "and tell me the order number it gives back.",
        says_number(5521),
        http=True,
        held_out=True,
    ),
    # ---- json -----------------------------------------------------------------------------------------
    Task(
        "json_second_name",
        "json",
        'What is the name of the second item in this JSON: {"items": [{"name": "pen"}, {"name": "ink"}]} ?',
        both(says("ink"), lambda o: "pen" not in _norm(o.answer)),
    ),
    Task(
        "json_email",
        "json",
        'What is the email address in this record? {"name": "Ana Reis", "email": "ana.reis@example.org", "age": 31}',
        says("ana.reis@example.org"),
    ),
    Task(
        "json_nested_city",
        "json",
        "Which city is this order shipping to? "
        '{"order": {"id": 88, "ship_to": {"name": "R. Costa", '
        '"address": {"street": "Rua Augusta 12", "city": "Porto"}}}}',
        says("porto"),
    ),
    Task(
        "json_tag_count",
        "json",
        'How many tags does this post have? {"title": "Spring", "tags": ["garden", "seeds", "compost", "tools", "rain", "bees"]}',
        says_number(6),
        held_out=True,
    ),
    Task(
        "json_sum_prices",
        "json",
        "What is the total price of this cart? "
        '{"items": [{"name": "tea", "price": 4}, {"name": "mug", "price": 12}, {"name": "honey", "price": 7}]}',
        says_number(23),
        held_out=True,
    ),
    # ---- multi-step: fetch, extract, transform; read then count; kv -----------------------------
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
    Task(
        "multi_fetch_sky_upper",
        "multi-step",
        "Look up the sky condition in {base}/weather.json and give it to me in capital letters.",
        says_exactly("SNOW"),
        http=True,
    ),
    Task(
        "multi_fetch_save",
        "multi-step",
        "Download {base}/motd.txt and save its text to a file named motd.txt.",
        file_says("motd.txt", "the kettle is on"),
        fs=True,
        http=True,
    ),
    Task(
        "multi_fetch_count_words",
        "multi-step",
        "How many words are in the message at {base}/motd.txt?",
        says_number(8),
        http=True,
        held_out=True,
    ),
    Task(
        "multi_file_count_matching",
        "multi-step",
        "How many of the lines in {root}/todo.txt start with 'urgent'?",
        says_number(3),
        fs=True,
        files={
            "todo.txt": "urgent: pay rent\nwater the plants\nurgent: renew passport\ncall the plumber\n"
            "book the dentist\nurgent: send the tax form\nclean the gutters\n"
        },
        held_out=True,
    ),
    Task(
        "multi_config_to_kv",
        "multi-step",
        "Read config.json and store its port number in the key-value store under the key 'port'.",
        kv_is("port", "8080"),
        fs=True,
        files={
            "config.json": json.dumps({"name": "shop", "port": 8080, "debug": False}, indent=2)
            + "\n"
        },
        held_out=True,
    ),
)

# ---- the fixture http server -------------------------------------------------------------------
PAGES: dict[str, tuple[str, str]] = {
    "/motd.txt": ("text/plain; charset=utf-8", "Message of the day: the kettle is on.\n"),
    "/weather.json": (
        "application/json",
        json.dumps({"city": "Oslo", "current": {"temp_c": -3.5, "sky": "snow"}}),
    ),
    "/quote.txt": (
        "text/plain; charset=utf-8",
        '"Ship small, ship often, and write down why." -- Marta Quill, release notes, 2019\n',
    ),
    "/users.json": (
        "application/json",
        json.dumps(
            {
                "users": [
                    {"name": "ana", "role": "admin"},
                    {"name": "ben", "role": "dev"},
                    {"name": "chloe", "role": "dev"},
                    {"name": "dara", "role": "ops"},
                    {"name": "eli", "role": "support"},
                ],
                "page": 1,
                "pages": 1,
            }
        ),
    ),
}
ORDER = {"order": 5521, "status": "accepted"}


def _order_reply(body: bytes) -> tuple[int, str]:
    """POST /orders: accepts a JSON object naming an item; 400 (saying why) otherwise."""
    try:
        doc = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        return 400, json.dumps({"error": f"the body is not JSON: {exc}"})
    if not isinstance(doc, dict) or not isinstance(doc.get("item"), str):
        return 400, json.dumps({"error": 'expected a JSON object with an "item" field'})
    return 201, json.dumps({**ORDER, "item": doc["item"], "qty": doc.get("qty", 1)})


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        page = PAGES.get(self.path.split("?")[0])
        status, ctype, body = (200, *page) if page else (404, "text/plain", "not found")
        self._send(status, ctype, body)

    def do_POST(self) -> None:  # noqa: N802
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length > 0 else b""
        if self.path.split("?")[0] != "/orders":
            self._send(404, "text/plain", "not found")
            return
        status, reply = _order_reply(body)
        self._send(status, "application/json", reply)

    def _send(self, status: int, ctype: str, body: str) -> None:
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
