"""The session database's schema and its migrations (see ``agent.store.sessions``)."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence

from agent.parser import Response, parse_reply
from rt.errors import SessionError

Migration = Callable[[sqlite3.Connection], None]

# --- schema -------------------------------------------------------------------------------

_SCHEMA_V1 = (
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value REAL NOT NULL)",
    "CREATE TABLE turns (id INTEGER PRIMARY KEY, task TEXT NOT NULL,"
    " started REAL NOT NULL, finished REAL)",
    "CREATE TABLE messages (seq INTEGER PRIMARY KEY,"
    " turn INTEGER NOT NULL REFERENCES turns(id) ON DELETE CASCADE,"
    " role TEXT NOT NULL, content TEXT NOT NULL)",
    "CREATE INDEX messages_turn ON messages(turn)",
    "CREATE TABLE steps (turn INTEGER NOT NULL REFERENCES turns(id) ON DELETE CASCADE,"
    " step INTEGER NOT NULL, action TEXT NOT NULL, reply TEXT NOT NULL, program TEXT,"
    " program_hash TEXT, args TEXT NOT NULL, observation TEXT NOT NULL, status INTEGER,"
    " fuel INTEGER, timings TEXT NOT NULL, prompt_tokens INTEGER, completion_tokens INTEGER,"
    " created REAL NOT NULL, PRIMARY KEY (turn, step))",
    "CREATE TABLE kv (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
)


def _schema_v1(conn: sqlite3.Connection) -> None:
    for statement in _SCHEMA_V1:
        conn.execute(statement)


def _kv_values_as_blobs(conn: sqlite3.Connection) -> None:
    """Schema 2: kv values are bytes (BLOB), so a value need not be UTF-8. Existing text
    values become their UTF-8 bytes, so they read back unchanged."""
    conn.execute("CREATE TABLE kv_v2 (key TEXT PRIMARY KEY, value BLOB NOT NULL)")
    for key, value in conn.execute("SELECT key, value FROM kv"):  # streamed, not fetched whole
        blob = value if isinstance(value, bytes) else str(value).encode("utf-8")
        conn.execute("INSERT INTO kv_v2 (key, value) VALUES (?, ?)", (key, blob))
    conn.execute("DROP TABLE kv")
    conn.execute("ALTER TABLE kv_v2 RENAME TO kv")


_JOURNAL = (
    # a turn's life: running until it ends answered, failed, stopped, interrupted or crashed
    "ALTER TABLE turns ADD COLUMN run TEXT",
    "ALTER TABLE turns ADD COLUMN state TEXT NOT NULL DEFAULT 'answered'",
    "ALTER TABLE turns ADD COLUMN pid INTEGER",
    "ALTER TABLE turns ADD COLUMN pid_start TEXT",
    "ALTER TABLE turns ADD COLUMN answer TEXT",
    "ALTER TABLE turns ADD COLUMN reply TEXT",  # what answered, as the history shows it
    "ALTER TABLE turns ADD COLUMN reason TEXT",
    "ALTER TABLE turns ADD COLUMN input_tokens INTEGER NOT NULL DEFAULT 0",
    "ALTER TABLE turns ADD COLUMN output_tokens INTEGER NOT NULL DEFAULT 0",
    "ALTER TABLE turns ADD COLUMN cost REAL",
    "ALTER TABLE turns ADD COLUMN parent_run TEXT",
    "CREATE UNIQUE INDEX turns_run ON turns(run)",
    "CREATE INDEX turns_state ON turns(state, id)",
    "ALTER TABLE steps ADD COLUMN cost REAL",
    # every event, in order, each row chained to the one before by its hash
    "CREATE TABLE events (seq INTEGER PRIMARY KEY, run TEXT NOT NULL, parent_run TEXT,"
    " turn INTEGER NOT NULL, step INTEGER NOT NULL, ts TEXT NOT NULL, kind TEXT NOT NULL,"
    " data TEXT NOT NULL, hash TEXT NOT NULL)",
    "CREATE INDEX events_turn ON events(turn, seq)",
    # large bodies (model replies, http responses, file contents), stored once by hash
    "CREATE TABLE blobs (hash TEXT PRIMARY KEY, data BLOB NOT NULL)",
)


def _journal(conn: sqlite3.Connection) -> None:
    """Schema 3: the journal (``agent.store.journal``). Turns saved by an older watt were
    saved whole, so they are answered (when a step answered) or stopped; they get a run id,
    and an answered one its reply (what the history shows) and its answer (what the log shows)."""
    for statement in _JOURNAL:
        conn.execute(statement)
    conn.execute(
        "UPDATE turns SET run = printf('legacy-%08d', id), state = CASE WHEN EXISTS"
        " (SELECT 1 FROM steps WHERE steps.turn = turns.id AND steps.action = 'response')"
        " THEN 'answered' ELSE 'stopped' END"
    )
    conn.execute(
        "UPDATE turns SET reply = (SELECT reply FROM steps WHERE steps.turn = turns.id"
        " AND steps.action = 'response' ORDER BY step DESC LIMIT 1) WHERE state = 'answered'"
    )
    for turn_id, reply in conn.execute(
        "SELECT id, reply FROM turns WHERE state = 'answered'"
    ).fetchall():
        action = parse_reply(str(reply))
        answer = action.text if isinstance(action, Response) else str(reply)
        conn.execute("UPDATE turns SET answer = ? WHERE id = ?", (answer, turn_id))


# MIGRATIONS[i] takes a database from schema version i to i + 1. Append, never edit.
MIGRATIONS: tuple[Migration, ...] = (_schema_v1, _kv_values_as_blobs, _journal)


def migrate(conn: sqlite3.Connection, migrations: Sequence[Migration], now: float) -> int:
    """Bring the database to ``len(migrations)`` in one transaction; return that version."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
        row = conn.execute("SELECT version FROM schema_version").fetchone()
        version = 0 if row is None else int(row[0])
        if row is None:
            conn.execute("INSERT INTO schema_version VALUES (0)")
        if version > len(migrations):
            raise SessionError(
                f"session schema version {version} is newer than this watt knows "
                f"({len(migrations)}); upgrade watt"
            )
        for step in migrations[version:]:
            step(conn)
        conn.execute("UPDATE schema_version SET version = ?", (len(migrations),))
        conn.execute("INSERT OR IGNORE INTO meta VALUES ('created', ?)", (now,))
        conn.execute("INSERT OR IGNORE INTO meta VALUES ('updated', ?)", (now,))
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.rollback()
        raise
    return len(migrations)
