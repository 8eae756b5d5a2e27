"""Append-only, named schema migrations.

An applied migration is never edited: change the schema by appending a new
function. ``tests/test_schema.py`` pins the schema of a fresh database against
``docs/schema.md`` and upgrades the oldest schema to the newest.

Every table that syncs has a globally unique key (a ULID, a content hash, or a
ULID plus an ordinal); no synced row is identified by an integer rowid.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

from . import ids

TYPE_CHECKING = False  # typing is not imported at run time: it costs start-up (docs/performance.md)
if TYPE_CHECKING:
    from typing import Any

    from sqlite_utils import Database

__all__ = ["MIGRATION_SET", "names", "apply"]

MIGRATION_SET = "localfirst"

# (name, function) in the order they apply. Kept as a plain list so that
# opening an up-to-date database does not import sqlite-utils (~70 ms).
_MIGRATIONS: list[tuple[str, Callable[[Any], None]]] = []


def migration(name: str) -> Callable[[Callable[[Any], None]], Callable[[Any], None]]:
    def register(fn: Callable[[Any], None]) -> Callable[[Any], None]:
        assert all(n != name for n, _ in _MIGRATIONS), name
        _MIGRATIONS.append((name, fn))
        return fn

    return register


def names() -> list[str]:
    """Names of every migration this version knows, oldest first."""
    return [name for name, _ in _MIGRATIONS]


def apply(conn: sqlite3.Connection, *, stop_before: str | None = None) -> None:
    """Apply the pending migrations through sqlite-utils ``Migrations``.

    The caller holds the write lock (``BEGIN IMMEDIATE``); each migration
    runs in a savepoint inside it.
    """
    from sqlite_utils import Database
    from sqlite_utils.migrations import Migrations

    migrations = Migrations(MIGRATION_SET)
    for name, fn in _MIGRATIONS:
        migrations(name=name)(fn)
    db = Database(conn, recursive_triggers=False, execute_plugins=False)
    migrations.apply(db, stop_before=stop_before)


@migration("m001_initial")
def m001_initial(db: Database) -> None:
    db.executescript(
        """
        CREATE TABLE meta (
            key TEXT PRIMARY KEY,
            value TEXT NOT NULL
        );

        CREATE TABLE conversations (
            id TEXT PRIMARY KEY,
            name TEXT,
            model TEXT,
            created_utc TEXT NOT NULL,
            name_hlc TEXT NOT NULL DEFAULT ''
        );

        -- rowid is declared so that it stays stable across VACUUM: the
        -- full-text index points at it. It is local and never synced; the
        -- identity of a response is its ULID.
        CREATE TABLE responses (
            rowid INTEGER PRIMARY KEY,
            id TEXT NOT NULL UNIQUE,
            conversation_id TEXT NOT NULL REFERENCES conversations(id),
            model TEXT NOT NULL,
            resolved_model TEXT,
            prompt TEXT,
            system TEXT,
            prompt_json TEXT,
            options_json TEXT,
            response TEXT,
            response_json TEXT,
            reasoning TEXT,
            input_tokens INTEGER,
            output_tokens INTEGER,
            token_details TEXT,
            duration_ms INTEGER,
            datetime_utc TEXT NOT NULL,
            finish_reason TEXT,
            simulated INTEGER NOT NULL DEFAULT 0,
            extras TEXT
        );
        CREATE INDEX responses_datetime ON responses(datetime_utc, id);
        CREATE INDEX responses_conversation ON responses(conversation_id, datetime_utc, id);

        CREATE TABLE attachments (
            id TEXT PRIMARY KEY,
            mime_type TEXT,
            size INTEGER NOT NULL,
            content BLOB,
            path TEXT,
            url TEXT
        );

        CREATE TABLE parts (
            response_id TEXT NOT NULL REFERENCES responses(id),
            ordinal INTEGER NOT NULL,
            role TEXT NOT NULL,
            type TEXT NOT NULL,
            text TEXT,
            tool_call_id TEXT,
            tool_name TEXT,
            arguments_json TEXT,
            error TEXT,
            attachment_id TEXT REFERENCES attachments(id),
            extras TEXT,
            PRIMARY KEY (response_id, ordinal)
        ) WITHOUT ROWID;
        CREATE INDEX parts_attachment ON parts(attachment_id)
            WHERE attachment_id IS NOT NULL;

        CREATE TABLE tombstones (
            tbl TEXT NOT NULL,
            key TEXT NOT NULL,
            hlc TEXT NOT NULL,
            PRIMARY KEY (tbl, key)
        ) WITHOUT ROWID;

        CREATE VIRTUAL TABLE responses_fts USING fts5(
            prompt, response,
            content = 'responses', content_rowid = 'rowid',
            tokenize = 'unicode61 remove_diacritics 2'
        );
        CREATE TRIGGER responses_fts_insert AFTER INSERT ON responses BEGIN
            INSERT INTO responses_fts (rowid, prompt, response)
            VALUES (new.rowid, new.prompt, new.response);
        END;
        CREATE TRIGGER responses_fts_delete AFTER DELETE ON responses BEGIN
            INSERT INTO responses_fts (responses_fts, rowid, prompt, response)
            VALUES ('delete', old.rowid, old.prompt, old.response);
        END;
        CREATE TRIGGER responses_fts_update AFTER UPDATE OF prompt, response
        ON responses BEGIN
            INSERT INTO responses_fts (responses_fts, rowid, prompt, response)
            VALUES ('delete', old.rowid, old.prompt, old.response);
            INSERT INTO responses_fts (rowid, prompt, response)
            VALUES (new.rowid, new.prompt, new.response);
        END;
        """
    )
    # The host id is made once, with the store; a copied database file keeps
    # it, which is how sync notices two machines pushing as one.
    db.execute(
        "INSERT INTO meta (key, value) VALUES ('host_id', ?)", [ids.new_id()]
    )


@migration("m010_templates")
def m010_templates(db: Database) -> None:
    # A template is an immutable (id, name) row plus immutable versions; the
    # current version is the one with the newest HLC. No row is ever updated,
    # so two machines editing the same template merge by "insert if absent".
    # Two machines may each create a template of the same name (two ids): the
    # name then resolves to the newest version among all of them.
    db.executescript(
        """
        CREATE TABLE templates (
            id TEXT PRIMARY KEY,
            name TEXT NOT NULL,
            created_utc TEXT NOT NULL
        );
        CREATE INDEX templates_name ON templates(name);

        CREATE TABLE template_versions (
            id TEXT PRIMARY KEY,
            template_id TEXT NOT NULL REFERENCES templates(id),
            hlc TEXT NOT NULL,
            prompt TEXT,
            system TEXT,
            model TEXT,
            options_json TEXT,
            defaults_json TEXT,
            extras TEXT,
            created_utc TEXT NOT NULL
        );
        CREATE INDEX template_versions_template ON template_versions(template_id, hlc);
        """
    )


# -- sync (m020_*) ----------------------------------------------------------


def _m020_capture(table: str, key_sql: str, *, on: str = "INSERT", name: str = "insert") -> str:
    """A trigger that queues the key of a written row for every remote.

    Applied migrations call it: never change what it returns. A later
    migration that syncs a new table (see sync/tables.py) calls it too.

    It does nothing while a guard row exists (sync applying remote changes,
    or ``localfirst merge``), so rows that came from elsewhere are not pushed
    back as ours. INSERT OR REPLACE gives a re-queued key a new id, so a
    changeset built before the write does not clear it.
    """
    return f"""
        CREATE TRIGGER sync_capture_{table}_{name} AFTER {on} ON {table}
        WHEN NOT EXISTS (SELECT 1 FROM sync_guard)
        BEGIN
            INSERT OR REPLACE INTO sync_outbox (remote, tbl, key)
            SELECT name, '{table}', {key_sql} FROM sync_remotes;
        END;
    """


@migration("m020_sync")
def m020_sync(db: Database) -> None:
    """Remotes, the outbox of local writes, and what was pushed and applied."""
    db.executescript(
        """
        CREATE TABLE sync_remotes (
            name TEXT PRIMARY KEY,
            url TEXT NOT NULL,
            endpoint_url TEXT,
            region TEXT,
            profile TEXT,
            store_id TEXT,
            added_utc TEXT NOT NULL
        );
        -- Keys of rows written here and not yet pushed, per remote. The key
        -- is the row's key column, or a JSON array for a composite key.
        CREATE TABLE sync_outbox (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            remote TEXT NOT NULL,
            tbl TEXT NOT NULL,
            key TEXT NOT NULL,
            UNIQUE (remote, tbl, key)
        );
        -- Per remote and host: the last changeset pushed (our host) or applied
        -- (every other host), and the ETag of that host's head when last seen.
        CREATE TABLE sync_chain (
            remote TEXT NOT NULL,
            host TEXT NOT NULL,
            seq INTEGER NOT NULL,
            sha256 TEXT NOT NULL,
            head_seq INTEGER NOT NULL DEFAULT 0,
            head_etag TEXT,
            PRIMARY KEY (remote, host)
        ) WITHOUT ROWID;
        -- A changeset built but not yet known to be on the remote: its exact
        -- bytes, so that a retried push uploads the same object.
        CREATE TABLE sync_pending (
            remote TEXT PRIMARY KEY,
            host TEXT NOT NULL,
            seq INTEGER NOT NULL,
            sha256 TEXT NOT NULL,
            outbox_max INTEGER NOT NULL,
            rows INTEGER NOT NULL,
            body BLOB NOT NULL
        );
        -- While a row exists here, capture triggers do nothing. Written and
        -- removed inside one transaction, so no other connection sees it.
        CREATE TABLE sync_guard (reason TEXT PRIMARY KEY);
        """
        + _m020_capture("conversations", "new.id")
        + _m020_capture("conversations", "new.id", on="UPDATE OF name, name_hlc", name="update")
        + _m020_capture("attachments", "new.id")
        + _m020_capture("responses", "new.id")
        + _m020_capture("parts", "json_array(new.response_id, new.ordinal)")
        + _m020_capture("tombstones", "json_array(new.tbl, new.key)")
        + _m020_capture("tombstones", "json_array(new.tbl, new.key)", on="UPDATE OF hlc", name="update")
        + _m020_capture("templates", "new.id")
        + _m020_capture("template_versions", "new.id")
    )


@migration("m030_conflicts")
def m030_conflicts(db: Database) -> None:
    """Keys that arrived with other content than the one here (never synced).

    ``kept`` and ``other`` are canonical hashes of the two contents; every
    machine keeps the smaller one, so they all end the same.
    """
    db.executescript(
        """
        CREATE TABLE sync_conflicts (
            tbl TEXT NOT NULL,
            key TEXT NOT NULL,
            kept TEXT NOT NULL,
            other TEXT NOT NULL,
            source TEXT NOT NULL,
            seen_utc TEXT NOT NULL,
            PRIMARY KEY (tbl, key, other)
        ) WITHOUT ROWID;
        """
    )


@migration("m035_remote_keys")
def m035_remote_keys(db: Database) -> None:
    """Whether a remote is encrypted, and what it carries.

    ``cipher`` names the cipher of an encrypted remote (NULL: plain); its keys
    are never here, only in the key file of this machine. ``scope`` is
    ``all`` (a person's whole history) or ``templates`` (a team's library).
    """
    db.executescript(
        """
        ALTER TABLE sync_remotes ADD COLUMN cipher TEXT;
        ALTER TABLE sync_remotes ADD COLUMN scope TEXT NOT NULL DEFAULT 'all';
        """
    )


# -- the file as the ecosystem expects it (m040_*) --------------------------

_M040_RESPONSES = """
        -- id is the primary key, so that Datasette and foreign keys link rows by
        -- it. rowid is an ordinary column that the full-text index points at:
        -- a declared column keeps its values across VACUUM (an implicit rowid
        -- may be renumbered), and it shadows the implicit one, so every tool
        -- that joins the index ON responses.rowid (sqlite-utils, Datasette)
        -- reaches it. It is local and never synced; responses_rowid fills it
        -- for a row written without one.
        CREATE TABLE responses (
            id TEXT PRIMARY KEY,
            conversation_id TEXT NOT NULL REFERENCES conversations(id),
            model TEXT NOT NULL,
            resolved_model TEXT,
            prompt TEXT,
            system TEXT,
            prompt_json TEXT,
            options_json TEXT,
            response TEXT,
            response_json TEXT,
            reasoning TEXT,
            input_tokens INTEGER,
            output_tokens INTEGER,
            token_details TEXT,
            duration_ms INTEGER,
            datetime_utc TEXT NOT NULL,
            finish_reason TEXT,
            simulated INTEGER NOT NULL DEFAULT 0,
            extras TEXT,
            rowid INTEGER UNIQUE
        );
        CREATE INDEX responses_datetime ON responses(datetime_utc, id);
        CREATE INDEX responses_conversation ON responses(conversation_id, datetime_utc, id);
"""

_M040_COLUMNS = (
    "id, conversation_id, model, resolved_model, prompt, system, prompt_json, options_json, response, "
    "response_json, reasoning, input_tokens, output_tokens, token_details, duration_ms, datetime_utc, "
    "finish_reason, simulated, extras, rowid"
)

# sqlite-utils and Datasette find a table's full-text index by the forms
# content="responses" and content=[responses] (llm's database uses them).
_M040_FTS = """
        CREATE VIRTUAL TABLE responses_fts USING fts5(
            prompt, response,
            content="responses", content_rowid="rowid",
            tokenize="unicode61 remove_diacritics 2"
        );
"""

_M040_TRIGGERS = """
        CREATE TRIGGER responses_rowid AFTER INSERT ON responses
        WHEN new.rowid IS NULL
        BEGIN
            UPDATE responses SET rowid = (SELECT coalesce(max(rowid), 0) + 1 FROM responses)
            WHERE id = new.id;
        END;
        CREATE TRIGGER responses_fts_insert AFTER INSERT ON responses
        WHEN new.rowid IS NOT NULL
        BEGIN
            INSERT INTO responses_fts (rowid, prompt, response)
            VALUES (new.rowid, new.prompt, new.response);
        END;
        CREATE TRIGGER responses_fts_delete AFTER DELETE ON responses
        WHEN old.rowid IS NOT NULL
        BEGIN
            INSERT INTO responses_fts (responses_fts, rowid, prompt, response)
            VALUES ('delete', old.rowid, old.prompt, old.response);
        END;
        CREATE TRIGGER responses_fts_update AFTER UPDATE OF rowid, prompt, response
        ON responses BEGIN
            INSERT INTO responses_fts (responses_fts, rowid, prompt, response)
            SELECT 'delete', old.rowid, old.prompt, old.response WHERE old.rowid IS NOT NULL;
            INSERT INTO responses_fts (rowid, prompt, response)
            SELECT new.rowid, new.prompt, new.response WHERE new.rowid IS NOT NULL;
        END;
"""

# Views for people browsing the file (Datasette, sqlite-utils); no synced
# table has these names, so sync's refusal of views under synced names stands.
_M040_VIEWS = """
        CREATE VIEW exchanges AS
        SELECT r.id, r.conversation_id, c.name AS conversation_name, r.datetime_utc, r.model,
               r.system, r.prompt, r.response, r.reasoning, r.input_tokens, r.output_tokens,
               r.duration_ms, r.simulated
        FROM responses r LEFT JOIN conversations c ON c.id = r.conversation_id;
        CREATE VIEW conversation_summaries AS
        SELECT c.id, c.name, count(r.id) AS responses,
               sum(r.input_tokens) AS input_tokens, sum(r.output_tokens) AS output_tokens,
               min(r.datetime_utc) AS first_utc, max(r.datetime_utc) AS last_utc,
               group_concat(DISTINCT r.model) AS models
        FROM conversations c JOIN responses r ON r.conversation_id = c.id
        GROUP BY c.id;
"""


@migration("m040_ecosystem")
def m040_ecosystem(db: Database) -> None:
    """Key responses by id, declare the full-text index as the ecosystem expects, add views.

    The table is rebuilt in place with every value and every rowid kept.
    The old table is renamed with ``legacy_alter_table`` on, so that the
    references to ``responses`` in ``parts`` are left as they are.
    """
    db.executescript(
        """
        DROP TRIGGER responses_fts_insert;
        DROP TRIGGER responses_fts_delete;
        DROP TRIGGER responses_fts_update;
        DROP TABLE responses_fts;
        DROP TRIGGER sync_capture_responses_insert;
        DROP INDEX responses_datetime;
        DROP INDEX responses_conversation;
        """
    )
    legacy = db.execute("PRAGMA legacy_alter_table").fetchone()[0]
    db.execute("PRAGMA legacy_alter_table = ON")
    try:
        db.execute("ALTER TABLE responses RENAME TO _m040_responses")
    finally:
        db.execute(f"PRAGMA legacy_alter_table = {int(legacy)}")
    db.executescript(_M040_RESPONSES)
    db.execute(f"INSERT INTO responses ({_M040_COLUMNS}) SELECT {_M040_COLUMNS} FROM _m040_responses")
    db.execute("DROP TABLE _m040_responses")
    db.executescript(_M040_FTS)
    db.execute("INSERT INTO responses_fts (responses_fts) VALUES ('rebuild')")
    db.executescript(_M040_TRIGGERS + _m020_capture("responses", "new.id") + _M040_VIEWS)
@migration("m050_outbox")
def m050_outbox(db: Database) -> None:
    """One queued row per changed key, whatever the number of remotes.

    ``sync_changes`` holds each key written here once, under an id that
    grows with every write; ``sync_outbox`` now holds one row per remote,
    the id it has pushed up to. Changes every remote has pushed are deleted.
    ``sync_seed`` holds what a newly added remote must receive of the
    history, until it is pushed. A remote that had keys queued starts again
    from the first change kept (a key sent twice is applied once); a
    changeset built but not yet sent is still sent as it was.
    """
    from .registry import capture_sql, present

    conn = db.conn
    triggers = [r[0] for r in conn.execute(
        "SELECT name FROM sqlite_master WHERE type = 'trigger' AND name LIKE 'sync_capture_%'")]
    # The synced tables this database has now (a later migration adds more, with their triggers).
    tables = present(conn)
    for name in triggers:
        conn.execute(f"DROP TRIGGER {name}")
    db.executescript(
        """
        CREATE TABLE sync_changes (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            tbl TEXT NOT NULL,
            key TEXT NOT NULL,
            UNIQUE (tbl, key)
        );
        INSERT INTO sync_changes (tbl, key)
            SELECT tbl, key FROM sync_outbox GROUP BY tbl, key ORDER BY min(id);
        CREATE TABLE sync_seed (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            remote TEXT NOT NULL,
            tbl TEXT NOT NULL,
            key TEXT NOT NULL
        );
        CREATE TABLE sync_outbox_new (
            remote TEXT PRIMARY KEY,
            pushed INTEGER NOT NULL DEFAULT 0
        );
        INSERT INTO sync_outbox_new (remote, pushed)
            SELECT r.name, CASE WHEN EXISTS (SELECT 1 FROM sync_outbox o WHERE o.remote = r.name) THEN 0
                                ELSE (SELECT coalesce(max(id), 0) FROM sync_changes) END
            FROM sync_remotes r;
        DROP TABLE sync_outbox;
        ALTER TABLE sync_outbox_new RENAME TO sync_outbox;
        UPDATE sync_pending SET outbox_max = 0;
        ALTER TABLE sync_pending ADD COLUMN seed_max INTEGER;
        """
        + "".join(capture_sql(t) for t in [*tables, None])
    )


@migration("m060_team")
def m060_team(db: Database) -> None:
    """Team libraries: templates of a team, movable labels, and what a member knows of a team.

    ``templates.team`` is the store id of the team remote a template belongs
    to (NULL: a personal template); it travels with the row, so every member
    files it under the same team. ``tombstones.team`` says the same of a
    deleted template, so the tombstone goes to that team only.
    ``template_labels`` points a label (``production``, ``staging``) at a
    version: last writer wins by HLC. ``sync_remotes.owner`` is the pinned
    fingerprint of a team's owner key, ``writer`` this machine's public
    writer key for it (the private key is in its key file), and
    ``read_only`` whether this machine only reads it. ``sync_teams`` keeps the newest writer list seen (signed,
    checked), and ``sync_signers`` which key signed each host's changesets.
    """
    from .registry import BY_NAME, capture_sql

    db.executescript(
        """
        ALTER TABLE templates ADD COLUMN team TEXT;
        CREATE INDEX templates_team_name ON templates(team, name);
        ALTER TABLE tombstones ADD COLUMN team TEXT;
        CREATE TABLE template_labels (
            template_id TEXT NOT NULL REFERENCES templates(id),
            label TEXT NOT NULL,
            version_id TEXT NOT NULL,
            hlc TEXT NOT NULL,
            PRIMARY KEY (template_id, label)
        ) WITHOUT ROWID;
        ALTER TABLE sync_remotes ADD COLUMN owner TEXT;
        ALTER TABLE sync_remotes ADD COLUMN writer TEXT;
        ALTER TABLE sync_remotes ADD COLUMN read_only INTEGER NOT NULL DEFAULT 0;
        CREATE TABLE sync_teams (
            remote TEXT PRIMARY KEY,
            version INTEGER NOT NULL,
            writers TEXT NOT NULL,
            etag TEXT
        );
        CREATE TABLE sync_signers (
            remote TEXT NOT NULL,
            host TEXT NOT NULL,
            signer TEXT NOT NULL,
            PRIMARY KEY (remote, host, signer)
        ) WITHOUT ROWID;
        """
        + capture_sql(BY_NAME["template_labels"])
    )


# -- parts as an ordinary table (m070_*) ------------------------------------

_M070_PARTS = """
        -- An ordinary (rowid) table: a WITHOUT ROWID table keeps each row in
        -- its key's b-tree, where a row of more than about 1,000 bytes (on
        -- 4 KiB pages) spills the rest into an overflow page of its own, so a
        -- part of 1.1 kB of prose took a whole 4 KiB page more: the file was
        -- 3-4x the text. Here a row of up to ~4,000 bytes stays on its page.
        CREATE TABLE parts (
            response_id TEXT NOT NULL REFERENCES responses(id),
            ordinal INTEGER NOT NULL,
            role TEXT NOT NULL,
            type TEXT NOT NULL,
            text TEXT,
            tool_call_id TEXT,
            tool_name TEXT,
            arguments_json TEXT,
            error TEXT,
            attachment_id TEXT REFERENCES attachments(id),
            extras TEXT,
            PRIMARY KEY (response_id, ordinal)
        );
        CREATE INDEX parts_attachment ON parts(attachment_id)
            WHERE attachment_id IS NOT NULL;
"""

_M070_COLUMNS = ("response_id, ordinal, role, type, text, tool_call_id, tool_name, arguments_json, error, "
                 "attachment_id, extras")


@migration("m070_parts")
def m070_parts(db: Database) -> None:
    """Store parts in an ordinary table, so that a part of prose costs its size and not a page more.

    Every row is kept, written in key order; the index and the capture
    trigger are made again as they were.
    """
    from .registry import BY_NAME, capture_sql

    conn = db.conn
    triggers = [r[0] for r in conn.execute(
        "SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'parts'")]
    for name in triggers:
        conn.execute(f"DROP TRIGGER {name}")
    conn.execute("DROP INDEX parts_attachment")
    # As in m040: whatever else names parts keeps naming the new table.
    legacy = conn.execute("PRAGMA legacy_alter_table").fetchone()[0]
    conn.execute("PRAGMA legacy_alter_table = ON")
    try:
        conn.execute("ALTER TABLE parts RENAME TO _m070_parts")
    finally:
        conn.execute(f"PRAGMA legacy_alter_table = {int(legacy)}")
    db.executescript(_M070_PARTS)
    conn.execute(f"INSERT INTO parts ({_M070_COLUMNS}) SELECT {_M070_COLUMNS} FROM _m070_parts "
                 "ORDER BY response_id, ordinal")
    conn.execute("DROP TABLE _m070_parts")
    db.executescript(capture_sql(BY_NAME["parts"]))
