"""The prompt library: named templates kept in the database, with every version.

Rows are never updated, so templates merge between machines like responses
do. A ``templates`` row is an id (ULID) and a name; each edit adds an
immutable ``template_versions`` row stamped with an HLC, and a name's current
version is its newest by HLC. ``rm`` deletes the rows and writes a tombstone
per template id, so the template stays deleted on every machine.

Two machines that each create a template of the same name before syncing end
up with two ids under one name; nothing is lost. The name then resolves to
the newest version among all of them, ``history`` shows every version of
every copy, ``edit`` continues the copy whose version is current, and ``rm``
removes them all.
"""

from __future__ import annotations

import json
import re
import string
from dataclasses import dataclass, field
from typing import Any

from . import hlc, ids
from .errors import BadInput, NotFound
from .records import check_extras
from .registry import bury
from .store import Store
from .timeutil import now_utc

__all__ = [
    "TemplateVersion", "Filled", "add_template", "add_version", "get_template", "list_templates",
    "template_history", "remove_template", "fill_template", "check_name", "put_version",
    "apply_template",
]

_NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,99}$")
_COLUMNS = ("v.id", "v.template_id", "t.name", "v.hlc", "v.prompt", "v.system", "v.model",
            "v.options_json", "v.defaults_json", "v.extras", "v.created_utc")
_SELECT = (
    f"SELECT {', '.join(_COLUMNS)} FROM template_versions v JOIN templates t ON t.id = v.template_id "
    "WHERE t.id NOT IN (SELECT key FROM tombstones WHERE tbl = 'templates')"
)


@dataclass
class TemplateVersion:
    """One version of a template; the fields llm's template files have, plus extras."""

    id: str
    template_id: str
    name: str
    hlc: str
    prompt: str | None = None
    system: str | None = None
    model: str | None = None
    options: dict[str, Any] | None = None
    defaults: dict[str, Any] | None = None
    extras: dict[str, Any] | None = None
    created_utc: str = ""

    def content(self) -> tuple[Any, ...]:
        """What a version says; two versions with equal content are the same template."""
        return (self.prompt, self.system, self.model, self.options or None, self.defaults or None,
                self.extras or None)

    def variables(self) -> list[str]:
        """``$names`` used in the prompt and the system prompt, in order of first use."""
        seen: dict[str, None] = {}
        for text in (self.system, self.prompt):
            for name in string.Template(text or "").get_identifiers():
                seen.setdefault(name, None)
        return list(seen)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name, "template_id": self.template_id, "version_id": self.id, "hlc": self.hlc,
            "created_utc": self.created_utc, "prompt": self.prompt, "system": self.system,
            "model": self.model, "options": self.options, "defaults": self.defaults,
            "variables": self.variables(), "extras": self.extras,
        }


def check_name(name: str) -> str:
    if not _NAME_RE.match(name):
        raise BadInput(f"template name {name!r} may use letters, digits and . _ - (and works as a file name)")
    return name


def _dumps(value: Any) -> str | None:
    return json.dumps(value, ensure_ascii=False, sort_keys=True) if value else None


def _row(row: tuple[Any, ...]) -> TemplateVersion:
    (vid, tid, name, stamp, prompt, system, model, options, defaults, extras, created) = row
    return TemplateVersion(
        vid, tid, name, stamp, prompt, system, model,
        json.loads(options) if options else None, json.loads(defaults) if defaults else None,
        json.loads(extras) if extras else None, created,
    )


def _current(conn: Any, name: str) -> TemplateVersion | None:
    row = conn.execute(_SELECT + " AND t.name = ? ORDER BY v.hlc DESC, v.id DESC LIMIT 1", [name]).fetchone()
    return _row(row) if row else None


def get_template(store: Store, name: str) -> TemplateVersion:
    """The current version of the template called ``name``."""
    found = _current(store.conn, name)
    if found is None:
        raise NotFound(f"no template named {name!r}; see `localfirst templates list`")
    return found


def _check_fields(options: Any, defaults: Any, extras: Any) -> None:
    for what, value in (("options", options), ("defaults", defaults)):
        if value is not None and not isinstance(value, dict):
            raise BadInput(f"template {what} must be a mapping of names to values")
    check_extras(extras, "template extras")


def _insert_version(conn: Any, template_id: str, name: str, **fields: Any) -> TemplateVersion:
    version = TemplateVersion(ids.new_id(), template_id, name, hlc.tick(conn), created_utc=now_utc(), **fields)
    conn.execute(
        "INSERT INTO template_versions (id, template_id, hlc, prompt, system, model, options_json, "
        "defaults_json, extras, created_utc) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [version.id, template_id, version.hlc, version.prompt, version.system, version.model,
         _dumps(version.options), _dumps(version.defaults), _dumps(version.extras), version.created_utc],
    )
    return version


def add_template(
    store: Store,
    name: str,
    *,
    prompt: str | None = None,
    system: str | None = None,
    model: str | None = None,
    options: dict[str, Any] | None = None,
    defaults: dict[str, Any] | None = None,
    extras: dict[str, Any] | None = None,
) -> TemplateVersion:
    """Create a new template; refuses a name that is taken (use :func:`add_version`)."""
    check_name(name)
    if not (prompt or system):
        raise BadInput("a template needs --prompt or --system")
    _check_fields(options, defaults, extras)
    with store.write() as conn:
        if _current(conn, name) is not None:
            raise BadInput(f"a template named {name!r} exists; change it with `localfirst templates edit {name}`")
        template_id = ids.new_id()
        conn.execute("INSERT INTO templates (id, name, created_utc) VALUES (?, ?, ?)",
                     [template_id, name, now_utc()])
        return _insert_version(conn, template_id, name, prompt=prompt, system=system, model=model,
                               options=options or None, defaults=defaults or None, extras=extras or None)


def add_version(store: Store, name: str, *, create: bool = False, **fields: Any) -> TemplateVersion | None:
    """Record a new version of ``name``; None when it says what the current one says.

    ``fields`` are those of :class:`TemplateVersion` (prompt, system, model,
    options, defaults, extras). With ``create`` a missing template is created,
    otherwise it is an error.
    """
    with store.write() as conn:
        return put_version(conn, name, create=create, **fields)


def put_version(conn: Any, name: str, *, create: bool = False, **fields: Any) -> TemplateVersion | None:
    """:func:`add_version` inside a write transaction the caller holds."""
    check_name(name)
    fields = {k: fields.get(k) or None for k in ("prompt", "system", "model", "options", "defaults", "extras")}
    _check_fields(fields["options"], fields["defaults"], fields["extras"])
    current = _current(conn, name)
    if current is None:
        if not create:
            raise NotFound(f"no template named {name!r}")
        template_id = ids.new_id()
        conn.execute("INSERT INTO templates (id, name, created_utc) VALUES (?, ?, ?)",
                     [template_id, name, now_utc()])
    else:
        candidate = TemplateVersion("", current.template_id, name, "", **fields)
        if candidate.content() == current.content():
            return None
        template_id = current.template_id
    return _insert_version(conn, template_id, name, **fields)


def list_templates(store: Store) -> list[TemplateVersion]:
    """The current version of every template, by name."""
    rows = store.conn.execute(
        "SELECT * FROM (SELECT " + ", ".join(c.split(".")[1] for c in _COLUMNS) + ", row_number() OVER "
        "(PARTITION BY name ORDER BY hlc DESC, id DESC) AS rank FROM (" + _SELECT + ")) "
        "WHERE rank = 1 ORDER BY name"
    ).fetchall()
    return [_row(r[:-1]) for r in rows]


def template_history(store: Store, name: str) -> list[TemplateVersion]:
    """Every version of ``name`` (of every copy made under that name), newest first."""
    rows = store.conn.execute(_SELECT + " AND t.name = ? ORDER BY v.hlc DESC, v.id DESC", [name]).fetchall()
    if not rows:
        raise NotFound(f"no template named {name!r}")
    return [_row(r) for r in rows]


def remove_template(store: Store, name: str) -> int:
    """Delete ``name`` and every version; returns how many versions went."""
    with store.write() as conn:
        tids = [r[0] for r in conn.execute("SELECT id FROM templates WHERE name = ?", [name])]
        if not tids:
            raise NotFound(f"no template named {name!r}")
        stamp = hlc.tick(conn)
        gone = conn.execute(
            "SELECT count(*) FROM template_versions WHERE template_id IN "
            "(SELECT id FROM templates WHERE name = ?)", [name]).fetchone()[0]
        bury(conn, [("templates", tid, stamp) for tid in tids])
    return int(gone)


@dataclass
class Filled:
    """A template filled in, ready for :func:`localfirst.prompting.run_prompt`."""

    prompt: str | None
    system: str | None
    model: str | None
    options: dict[str, Any]
    extras: dict[str, Any]
    # From a template imported from llm: fragments to read and send, and a JSON schema.
    fragments: list[str] = field(default_factory=list)
    system_fragments: list[str] = field(default_factory=list)
    schema: dict[str, Any] | None = None


def fill_template(version: TemplateVersion, *, input: str | None, params: dict[str, str]) -> Filled:
    """Substitute ``$variables``: ``params``, then the template's defaults; ``$input`` is the input.

    A parameter the template does not use, or a variable with no value, is an
    error. Input given to a template whose prompt has no ``$input`` is added
    after the prompt.
    """
    names = version.variables()
    unknown = [p for p in params if p not in names]
    if unknown:
        listed = ", ".join(f"${n}" for n in names) or "none"
        raise BadInput(f"template {version.name!r} has no variable ${unknown[0]} (its variables: {listed})")
    values: dict[str, Any] = {**(version.defaults or {}), **params}
    if input is not None:
        values["input"] = input
    missing = [n for n in names if n not in values]
    if missing:
        if missing[0] == "input":
            raise BadInput(f"template {version.name!r} uses $input: give the input as an argument or on stdin")
        raise BadInput(f"template {version.name!r} needs a value for ${missing[0]}: add -p {missing[0]} VALUE")
    text = {k: str(v) for k, v in values.items()}
    # safe_substitute leaves a lone "$" (a price, "$5") as it is.
    prompt = string.Template(version.prompt).safe_substitute(text) if version.prompt else None
    system = string.Template(version.system).safe_substitute(text) if version.system else None
    if input is not None and "input" not in names:
        prompt = input if not prompt else f"{prompt}\n\n{input}"
    extras = version.extras or {}

    def texts(key: str) -> list[str]:
        value = extras.get("yaml:" + key)
        return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []

    schema = extras.get("yaml:schema_object")
    return Filled(prompt, system, version.model, dict(version.options or {}),
                  {"localfirst:template": version.name, "localfirst:template_version": version.id},
                  fragments=texts("fragments"), system_fragments=texts("system_fragments"),
                  schema=schema if isinstance(schema, dict) else None)


def apply_template(
    store: Store,
    name: str,
    *,
    input: str | None,
    params: dict[str, str],
    model: str | None = None,
    system: str | None = None,
    options: dict[str, Any] | None = None,
) -> Filled:
    """The current version of ``name``, filled in (see :func:`fill_template`).

    ``model``, ``system`` and ``options`` given on the command line win over
    the template's (options key by key).
    """
    filled = fill_template(get_template(store, name), input=input, params=params)
    filled.model = model or filled.model
    filled.system = system if system is not None else filled.system
    filled.options = {**filled.options, **(options or {})}
    return filled
