"""Session storage: sessions in SQLite (``sessions``), their schema and migrations
(``schema``), and the per-session lock (``lock``)."""
