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

A template of a team library (``TEAM/NAME``) is the same rows with
``templates.team`` set to the team remote's store id; it syncs with that
team's remote only. A reference may pin what runs: ``NAME@LABEL`` follows a
label (``template_labels``: last writer wins, like any edit), and
``NAME@VERSION_ID`` one version. A machine that joined a team read-only,
or whose writer key the team's owner has not listed, cannot change the
team's templates.
"""

from __future__ import annotations

import json
import re
import string
from dataclasses import dataclass, field
from typing import Any

from . import hlc, ids
from .errors import BadInput, NotFound, ReadOnly
from .records import check_extras
from .registry import bury
from .store import Store
from .timeutil import now_utc

__all__ = [
    "TemplateVersion", "Filled", "Ref", "parse_ref", "add_template", "add_version", "get_template",
    "list_templates", "template_history", "remove_template", "fill_template", "check_name", "put_version",
    "apply_template", "label_template", "publish_template", "copy_template",
]

_NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,99}$")
_TEAM_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,39}$")  # a remote's name
_COLUMNS = ("v.id", "v.template_id", "t.name", "v.hlc", "v.prompt", "v.system", "v.model",
            "v.options_json", "v.defaults_json", "v.extras", "v.created_utc", "t.team", "r.name AS team_name")
_FROM = (
    "FROM template_versions v JOIN templates t ON t.id = v.template_id "
    "LEFT JOIN sync_remotes r ON r.store_id = t.team AND r.scope = 'templates' "
    "WHERE t.id NOT IN (SELECT key FROM tombstones WHERE tbl = 'templates')"
)
_SELECT = f"SELECT {', '.join(_COLUMNS)} {_FROM}"
_NEWEST = " ORDER BY v.hlc DESC, v.id DESC"


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
    #: a team's template: the team remote's store id, and the team's name on this machine
    team_id: str | None = None
    team: str | None = None
    #: the labels pointing at this version (filled in by :func:`template_history`)
    labels: list[str] = field(default_factory=list)
    #: a team's template this machine may not change (joined read-only, or not a listed writer)
    read_only: bool = False

    @property
    def full_name(self) -> str:
        """``TEAM/NAME`` for a team's template, ``NAME`` for a personal one."""
        return f"{self.team}/{self.name}" if self.team else self.name

    def content(self) -> tuple[Any, ...]:
        """What a version says; two versions with equal content are the same template."""
        return (self.prompt, self.system, self.model, self.options or None, self.defaults or None,
                self.extras or None)

    def fields(self) -> dict[str, Any]:
        """What a version says, as keyword arguments of :func:`put_version`."""
        return {"prompt": self.prompt, "system": self.system, "model": self.model, "options": self.options,
                "defaults": self.defaults, "extras": self.extras}

    def variables(self) -> list[str]:
        """``$names`` used in the prompt and the system prompt, in order of first use."""
        seen: dict[str, None] = {}
        for text in (self.system, self.prompt):
            for name in string.Template(text or "").get_identifiers():
                seen.setdefault(name, None)
        return list(seen)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.full_name, "template_id": self.template_id, "version_id": self.id, "hlc": self.hlc,
            "created_utc": self.created_utc, "prompt": self.prompt, "system": self.system,
            "model": self.model, "options": self.options, "defaults": self.defaults,
            "variables": self.variables(), "extras": self.extras, "team": self.team, "team_id": self.team_id,
            "labels": self.labels, "read_only": self.read_only,
        }


def check_name(name: str) -> str:
    if not _NAME_RE.match(name):
        raise BadInput(f"template name {name!r} may use letters, digits and . _ - (and works as a file name)")
    return name


@dataclass(frozen=True)
class Ref:
    """What ``-t`` names: ``[TEAM/]NAME[@LABEL or @VERSION_ID]``."""

    team: str | None
    name: str
    at: str | None = None

    @property
    def base(self) -> str:
        return (f"{self.team}/" if self.team else "") + self.name

    def __str__(self) -> str:
        return self.base + (f"@{self.at}" if self.at else "")


def parse_ref(text: str) -> Ref:
    """``[TEAM/]NAME[@LABEL|@VERSION_ID]``, checked."""
    base, sep, at = text.strip().partition("@")
    if sep and not at:
        raise BadInput(f"{text!r}: give a label or a version id after @ (see `localfirst templates history`)")
    team: str | None = None
    name = base
    if "/" in base:
        team, _, name = base.partition("/")
        if not _TEAM_RE.match(team) or "/" in name:
            raise BadInput(f"{text!r} is not a template name: use NAME or TEAM/NAME, where NAME may use letters, "
                           "digits and . _ - (and works as a file name) and TEAM is a team joined here")
    check_name(name)
    return Ref(team, name, at or None)


@dataclass(frozen=True)
class _Scope:
    """Personal templates (``team`` None), or one team's, as this machine knows the team."""

    team: str | None = None
    team_id: str | None = None
    read_only: bool = False
    writer: str | None = None


def _scope(conn: Any, team: str | None) -> _Scope:
    if team is None:
        return _Scope()
    row = conn.execute("SELECT store_id, read_only, writer FROM sync_remotes WHERE name = ? AND scope = 'templates'",
                       [team]).fetchone()
    if row is None or not row[0]:
        raise NotFound(f"no team named {team!r} on this machine: join it with "
                       f"`localfirst team join {team} URL --trust FINGERPRINT` (see `localfirst remote list`)")
    return _Scope(team, str(row[0]), bool(row[1]), row[2])


def _writable(conn: Any, scope: _Scope) -> None:
    """Refuse to change a team's templates from a reader, or from a writer the owner has not listed."""
    if scope.team is None:
        return
    if scope.read_only:
        raise ReadOnly(f"this machine joined team {scope.team!r} read-only: its templates can be run and copied "
                       f"(`localfirst templates copy {scope.team}/NAME NEW`), not changed; nothing was written")
    listed = scope.writer is not None and conn.execute(
        "SELECT 1 FROM sync_teams t, json_each(t.writers, '$.writers') w WHERE t.remote = ? AND w.value = ?",
        [scope.team, scope.writer]).fetchone() is not None
    if not listed:
        raise ReadOnly(
            f"this machine is not on the writer list of team {scope.team!r} (yet): give its owner the key "
            f"`localfirst team whoami {scope.team}` prints; once they have run `localfirst team writers "
            f"{scope.team} add KEY`, sync and try again. Nothing was written")


def _dumps(value: Any) -> str | None:
    return json.dumps(value, ensure_ascii=False, sort_keys=True) if value else None


def _row(row: tuple[Any, ...]) -> TemplateVersion:
    (vid, tid, name, stamp, prompt, system, model, options, defaults, extras, created, team_id, team) = row[:13]
    return TemplateVersion(
        vid, tid, name, stamp, prompt, system, model,
        json.loads(options) if options else None, json.loads(defaults) if defaults else None,
        json.loads(extras) if extras else None, created, team_id, team,
    )


def _versions(conn: Any, name: str, scope: _Scope, *, limit: int | None = None) -> list[TemplateVersion]:
    """The versions of ``name`` in ``scope`` (of every copy made under that name), newest first."""
    sql = _SELECT + " AND t.name = ? AND t.team IS ?" + _NEWEST + (f" LIMIT {int(limit)}" if limit else "")
    return [_row(r) for r in conn.execute(sql, [name, scope.team_id])]


def _current(conn: Any, name: str, scope: _Scope | None = None) -> TemplateVersion | None:
    found = _versions(conn, name, scope or _Scope(), limit=1)
    return found[0] if found else None


def _labels(conn: Any, template_ids: list[str]) -> list[tuple[str, str]]:
    """(label, version id) of these templates' labels; for a label two copies share, the newest move."""
    rows = conn.execute(
        "SELECT label, version_id FROM template_labels WHERE template_id IN (SELECT value FROM json_each(?)) "
        "ORDER BY hlc DESC, template_id DESC", [json.dumps(template_ids)]).fetchall()
    seen: dict[str, str] = {}
    for label, version_id in rows:
        seen.setdefault(label, version_id)
    return sorted(seen.items())


def get_template(store: Store, ref: str | Ref) -> TemplateVersion:
    """The version ``ref`` names: ``NAME`` or ``TEAM/NAME``; current, or ``@LABEL``, or ``@VERSION_ID``."""
    ref = parse_ref(ref) if isinstance(ref, str) else ref
    conn = store.conn
    scope = _scope(conn, ref.team)
    if ref.at is None:
        found = _current(conn, ref.name, scope)
        if found is None:
            raise NotFound(f"no template named {ref.base!r}; see `localfirst templates list`")
        return found
    versions = _versions(conn, ref.name, scope)
    if not versions:
        raise NotFound(f"no template named {ref.base!r}; see `localfirst templates list`")
    return _pick(conn, ref, versions)


def _pick(conn: Any, ref: Ref, versions: list[TemplateVersion]) -> TemplateVersion:
    """The version ``ref.at`` names among ``versions``: a label first, then a version id (or 8+ of its start)."""
    assert ref.at is not None
    by_id = {v.id: v for v in versions}
    labels = _labels(conn, sorted({v.template_id for v in versions}))
    for label, version_id in labels:
        if label == ref.at:
            if version_id not in by_id:
                raise NotFound(f"label {ref.at!r} of {ref.base} points at version {version_id}, which this "
                               "machine does not have (yet): sync, or name a version")
            return by_id[version_id]
    wanted = ref.at.lower()
    if len(wanted) >= 8:
        matches = [v for v in versions if v.id.startswith(wanted)]
        if len(matches) == 1:
            return matches[0]
        if matches:
            raise BadInput(f"{ref.at!r} is the start of {len(matches)} versions of {ref.base}: give more of the id")
    known = ", ".join(label for label, _ in labels) or "none"
    raise NotFound(f"{ref.base} has no label or version {ref.at!r} (its labels: {known}); "
                   f"see `localfirst templates history {ref.base}`")


def _check_fields(options: Any, defaults: Any, extras: Any) -> None:
    for what, value in (("options", options), ("defaults", defaults)):
        if value is not None and not isinstance(value, dict):
            raise BadInput(f"template {what} must be a mapping of names to values")
    check_extras(extras, "template extras")


def _new_template(conn: Any, name: str, scope: _Scope) -> str:
    template_id = ids.new_id()
    conn.execute("INSERT INTO templates (id, name, created_utc, team) VALUES (?, ?, ?, ?)",
                 [template_id, name, now_utc(), scope.team_id])
    return template_id


def _insert_version(conn: Any, template_id: str, name: str, scope: _Scope, **fields: Any) -> TemplateVersion:
    version = TemplateVersion(ids.new_id(), template_id, name, hlc.tick(conn), created_utc=now_utc(),
                              team_id=scope.team_id, team=scope.team, **fields)
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
    """Create a new template (``NAME`` or ``TEAM/NAME``); refuses a name that is taken (use :func:`add_version`)."""
    ref = _plain(name)
    if not (prompt or system):
        raise BadInput("a template needs --prompt or --system")
    _check_fields(options, defaults, extras)
    with store.write() as conn:
        scope = _scope(conn, ref.team)
        _writable(conn, scope)
        if _current(conn, ref.name, scope) is not None:
            raise BadInput(f"a template named {ref.base!r} exists; change it with `localfirst templates edit "
                           f"{ref.base}`")
        template_id = _new_template(conn, ref.name, scope)
        return _insert_version(conn, template_id, ref.name, scope, prompt=prompt, system=system, model=model,
                               options=options or None, defaults=defaults or None, extras=extras or None)


def _plain(name: str) -> Ref:
    """``NAME`` or ``TEAM/NAME`` with no ``@``: what a change names."""
    ref = parse_ref(name)
    if ref.at is not None:
        raise BadInput(f"{name!r}: a change is made to a template, not to one of its versions; drop @{ref.at}")
    return ref


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
    ref = _plain(name)
    scope = _scope(conn, ref.team)
    fields = {k: fields.get(k) or None for k in ("prompt", "system", "model", "options", "defaults", "extras")}
    _check_fields(fields["options"], fields["defaults"], fields["extras"])
    _writable(conn, scope)
    current = _current(conn, ref.name, scope)
    if current is None:
        if not create:
            raise NotFound(f"no template named {ref.base!r}")
        template_id = _new_template(conn, ref.name, scope)
    else:
        candidate = TemplateVersion("", current.template_id, ref.name, "", **fields)
        if candidate.content() == current.content():
            return None
        template_id = current.template_id
    return _insert_version(conn, template_id, ref.name, scope, **fields)


def list_templates(store: Store, *, teams: bool = True) -> list[TemplateVersion]:
    """The current version of every template: personal ones by name, then each team's (``teams``)."""
    where = " AND (t.team IS NULL OR r.name IS NOT NULL)" if teams else " AND t.team IS NULL"
    rows = store.conn.execute(
        f"SELECT * FROM (SELECT {', '.join(_COLUMNS)}, row_number() OVER (PARTITION BY t.team, t.name "
        f"ORDER BY v.hlc DESC, v.id DESC) AS rank {_FROM}{where}) WHERE rank = 1 "
        "ORDER BY team_name IS NOT NULL, team_name, name"
    ).fetchall()
    found = [_row(r) for r in rows]
    fixed: dict[str, bool] = {}
    for version in found:
        if version.team is not None:
            if version.team not in fixed:
                try:
                    _writable(store.conn, _scope(store.conn, version.team))
                    fixed[version.team] = False
                except ReadOnly:
                    fixed[version.team] = True
            version.read_only = fixed[version.team]
    return found


def template_history(store: Store, name: str) -> list[TemplateVersion]:
    """Every version of ``name`` (of every copy made under that name), newest first, with its labels."""
    ref = _plain(name)
    conn = store.conn
    versions = _versions(conn, ref.name, _scope(conn, ref.team))
    if not versions:
        raise NotFound(f"no template named {ref.base!r}")
    by_id = {v.id: v for v in versions}
    for label, version_id in _labels(conn, sorted({v.template_id for v in versions})):
        if version_id in by_id:
            by_id[version_id].labels.append(label)
    return versions


def remove_template(store: Store, name: str) -> int:
    """Delete ``name`` and every version; returns how many versions went."""
    ref = _plain(name)
    with store.write() as conn:
        scope = _scope(conn, ref.team)
        _writable(conn, scope)
        tids = [r[0] for r in conn.execute("SELECT id FROM templates WHERE name = ? AND team IS ?",
                                           [ref.name, scope.team_id])]
        if not tids:
            raise NotFound(f"no template named {ref.base!r}")
        stamp = hlc.tick(conn)
        gone = conn.execute(
            "SELECT count(*) FROM template_versions WHERE template_id IN (SELECT value FROM json_each(?))",
            [json.dumps(tids)]).fetchone()[0]
        bury(conn, [("templates", tid, stamp) for tid in tids])
        # The tombstone goes where the template went: to its team's remote only.
        conn.execute("UPDATE tombstones SET team = ? WHERE tbl = 'templates' AND key IN "
                     "(SELECT value FROM json_each(?))", [scope.team_id, json.dumps(tids)])
    return int(gone)


def label_template(store: Store, name: str, label: str, version: str | None = None) -> TemplateVersion:
    """Point ``label`` of ``name`` at ``version`` (a version id or its start; default: the current one)."""
    ref = _plain(name)
    check_name(label)
    with store.write() as conn:
        scope = _scope(conn, ref.team)
        _writable(conn, scope)
        versions = _versions(conn, ref.name, scope)
        if not versions:
            raise NotFound(f"no template named {ref.base!r}")
        if version is None:
            target = versions[0]
        else:
            wanted = version.strip().lower()
            matches = [v for v in versions if v.id == wanted or (len(wanted) >= 8 and v.id.startswith(wanted))]
            if len(matches) != 1:
                raise (BadInput if matches else NotFound)(
                    f"{ref.base} has {'several versions starting with' if matches else 'no version'} {version!r}; "
                    f"see `localfirst templates history {ref.base}`")
            target = matches[0]
        # A label belongs to one template id; two copies under one name share it.
        for template_id in sorted({v.template_id for v in versions}):
            conn.execute(
                "INSERT INTO template_labels (template_id, label, version_id, hlc) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (template_id, label) DO UPDATE SET version_id = excluded.version_id, hlc = excluded.hlc",
                [template_id, label, target.id, hlc.tick(conn)])
        target.labels.append(label)
        return target


def publish_template(store: Store, name: str, team: str) -> TemplateVersion | None:
    """Copy personal template ``name`` (its current version, or ``@VERSION``) into ``team`` as ``TEAM/NAME``.

    A new version of the team's template when it exists there; None when it
    already says the same.
    """
    ref = parse_ref(name)
    if ref.team is not None:
        raise BadInput(f"{name!r} is already a team's template; publish a personal one (see `localfirst templates "
                       "list`), or copy it first with `localfirst templates copy`")
    source = get_template(store, ref)
    with store.write() as conn:
        return put_version(conn, f"{team}/{ref.name}", create=True, **source.fields())


def copy_template(store: Store, name: str, new: str) -> TemplateVersion:
    """A personal template ``new`` holding what ``name`` (any template, label or version) says."""
    source = get_template(store, name)
    target = _plain(new)
    if target.team is not None:
        raise BadInput(f"{new!r}: a copy is personal; to put a template into a team use `localfirst templates "
                       "publish NAME TEAM`")
    with store.write() as conn:
        if _current(conn, target.name) is not None:
            raise BadInput(f"a template named {target.name!r} exists; pick another name, or remove it first")
        version = put_version(conn, target.name, create=True, **source.fields())
    assert version is not None
    return version


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
        raise BadInput(f"template {version.full_name!r} has no variable ${unknown[0]} (its variables: {listed})")
    values: dict[str, Any] = {**(version.defaults or {}), **params}
    if input is not None:
        values["input"] = input
    missing = [n for n in names if n not in values]
    if missing:
        if missing[0] == "input":
            raise BadInput(f"template {version.full_name!r} uses $input: give the input as an argument or on stdin")
        raise BadInput(f"template {version.full_name!r} needs a value for ${missing[0]}: add -p {missing[0]} VALUE")
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
    # What the response records: the exact version that made it, and the team it came from.
    recorded = {"localfirst:template": version.full_name, "localfirst:template_version": version.id}
    if version.team_id:
        recorded["localfirst:template_team"] = version.team_id
    return Filled(prompt, system, version.model, dict(version.options or {}), recorded,
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
    """The version ``name`` names (``[TEAM/]NAME[@LABEL|@VERSION_ID]``), filled in (see :func:`fill_template`).

    ``model``, ``system`` and ``options`` given on the command line win over
    the template's (options key by key).
    """
    filled = fill_template(get_template(store, name), input=input, params=params)
    filled.model = model or filled.model
    filled.system = system if system is not None else filled.system
    filled.options = {**filled.options, **(options or {})}
    return filled
