"""Templates as llm's YAML files: import a directory, export one, edit in $EDITOR.

A file holds the keys ``prompt``, ``system``, ``model``, ``defaults`` and
``options``; any other key is kept in the version's extras as ``yaml:<key>``
and reported. The text of an imported or edited file is kept with its version
(``localfirst:yaml_source``), so exporting an unchanged template writes the
very bytes that came in, comments and all. PyYAML is imported only here.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import BadInput, ConfigError
from .store import Store
from .templates import TemplateVersion, check_name, get_template, list_templates, put_version

__all__ = ["parse_template_yaml", "dump_template_yaml", "import_templates", "export_templates",
           "edit_template", "ImportResult", "KNOWN_KEYS", "RUN_KEYS"]

KNOWN_KEYS = ("model", "system", "prompt", "defaults", "options")
# llm's keys that localfirst keeps as extras (yaml:<key>) and acts on when the
# template runs: the fragments are read and sent, the schema asked for.
RUN_KEYS = ("fragments", "system_fragments", "schema_object")
SOURCE = "localfirst:yaml_source"
FILE = "localfirst:yaml_file"
NS = "yaml:"


def _plain(value: Any) -> Any:
    # YAML can hold dates and other values JSON cannot; keep them as text.
    return json.loads(json.dumps(value, default=str))


def parse_template_yaml(text: str, *, where: str) -> tuple[dict[str, Any], list[str]]:
    """Fields of a template from a YAML document, and the unknown keys it had."""
    import yaml

    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or type(exc).__name__
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        raise BadInput(f"{where} is not valid YAML: {problem}{at}") from None
    if isinstance(data, str):
        data = {"prompt": data}  # llm reads a file that is one string as the prompt
    if not isinstance(data, dict):
        raise BadInput(f"{where} must be a YAML mapping with keys such as prompt, system, model")
    fields: dict[str, Any] = {}
    extras: dict[str, Any] = {}
    unknown: list[str] = []
    for key, value in data.items():
        if not isinstance(key, str):
            raise BadInput(f"{where}: key {key!r} is not a string")
        if key in ("prompt", "system", "model"):
            if value is not None and not isinstance(value, str):
                raise BadInput(f"{where}: {key} must be a string")
            fields[key] = value
        elif key in ("defaults", "options"):
            if value is not None and not isinstance(value, dict):
                raise BadInput(f"{where}: {key} must be a mapping")
            fields[key] = _plain(value) if value else None
        elif key in RUN_KEYS:
            if key == "schema_object" and value is not None and not isinstance(value, dict):
                raise BadInput(f"{where}: schema_object must be a mapping")
            if key != "schema_object" and value is not None and (
                    not isinstance(value, list) or not all(isinstance(v, str) for v in value)):
                raise BadInput(f"{where}: {key} must be a list of paths or URLs")
            extras[NS + key] = _plain(value)
        else:
            unknown.append(key)
            extras[NS + key] = _plain(value)
    fields["extras"] = extras
    return fields, unknown


class _Dumper:
    """A SafeDumper that writes multi-line strings as literal blocks."""

    @staticmethod
    def make() -> Any:
        import yaml

        class Dumper(yaml.SafeDumper):
            pass

        def text(dumper: Any, value: str) -> Any:
            style = "|" if "\n" in value else None
            return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)

        Dumper.add_representer(str, text)
        return Dumper


def dump_template_yaml(version: TemplateVersion, *, use_source: bool = True) -> str:
    """The YAML file of ``version``: its original text when it has one."""
    extras = version.extras or {}
    if use_source and isinstance(extras.get(SOURCE), str):
        return str(extras[SOURCE])
    import yaml

    doc: dict[str, Any] = {}
    for key in KNOWN_KEYS:
        value = getattr(version, key)
        if value:
            doc[key] = value
    for key, value in extras.items():
        if key.startswith(NS):
            doc[key[len(NS):]] = value
    return str(yaml.dump(doc, Dumper=_Dumper.make(), sort_keys=False, allow_unicode=True, width=1000))


@dataclass
class ImportResult:
    added: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    unknown_keys: dict[str, list[str]] = field(default_factory=dict)


def import_templates(store: Store, directory: Path, *, strict: bool = False) -> ImportResult:
    """Import every ``*.yaml``/``*.yml`` file in ``directory``, all or nothing.

    A file becomes the template named after it; a template that exists gets
    a new version when the file differs. Unknown keys are kept and reported;
    with ``strict`` they are an error.
    """
    if not directory.is_dir():
        raise BadInput(f"{directory} is not a directory")
    files = sorted(p for p in directory.iterdir() if p.suffix in (".yaml", ".yml") and p.is_file())
    if not files:
        raise BadInput(f"no template files (*.yaml, *.yml) in {directory}")
    parsed: dict[str, tuple[Path, dict[str, Any], str]] = {}
    result = ImportResult()
    for path in files:
        name = path.stem
        try:
            check_name(name)
        except BadInput as exc:
            raise BadInput(f"{path}: {exc}") from None
        if name in parsed:
            raise BadInput(f"{parsed[name][0].name} and {path.name} would both be template {name!r}")
        try:
            text = path.read_text("utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise BadInput(f"cannot read {path}: {getattr(exc, 'strerror', None) or exc}") from None
        fields, unknown = parse_template_yaml(text, where=str(path))
        if unknown:
            result.unknown_keys[name] = unknown
        parsed[name] = (path, fields, text)
    if strict and result.unknown_keys:
        name, keys = next(iter(result.unknown_keys.items()))
        raise BadInput(f"{parsed[name][0]}: unknown keys {', '.join(keys)} (without --strict they are kept)")
    with store.write() as conn:
        for name, (path, fields, text) in parsed.items():
            fields["extras"] = {**fields["extras"], SOURCE: text, FILE: path.name}
            existed = conn.execute("SELECT 1 FROM templates WHERE name = ?", [name]).fetchone() is not None
            version = put_version(conn, name, create=True, **fields)
            (result.unchanged if version is None else result.changed if existed else result.added).append(name)
    return result


def export_templates(store: Store, directory: Path) -> list[Path]:
    """Write the current version of every personal template to ``directory``; returns the files written."""
    if directory.exists() and not directory.is_dir():
        raise BadInput(f"{directory} is not a directory")
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for version in list_templates(store, teams=False):
        filename = (version.extras or {}).get(FILE) or f"{version.name}.yaml"
        target = directory / Path(str(filename)).name
        try:
            target.write_text(dump_template_yaml(version), "utf-8")
        except OSError as exc:
            raise BadInput(f"cannot write {target}: {exc.strerror}") from exc
        written.append(target)
    return written


def _editor() -> list[str]:
    command = os.environ.get("VISUAL") or os.environ.get("EDITOR")
    if not command:
        raise ConfigError("set $EDITOR (or $VISUAL) to the editor to use, e.g. export EDITOR=nano")
    return shlex.split(command)


def edit_template(store: Store, name: str) -> TemplateVersion | None:
    """Open the current version in ``$EDITOR``; save what comes back as a new version.

    Returns None when nothing changed. An editor that fails, or YAML that is
    not valid, changes nothing.
    """
    current = get_template(store, name)
    editor = _editor()
    text = dump_template_yaml(current)
    with tempfile.TemporaryDirectory(prefix="localfirst-") as tmp:
        path = Path(tmp) / f"{current.name}.yaml"
        path.write_text(text, "utf-8")
        try:
            code = subprocess.call([*editor, str(path)])
        except OSError as exc:
            raise ConfigError(f"cannot run the editor {editor[0]!r}: {exc.strerror}") from None
        if code != 0:
            raise BadInput(f"the editor exited with status {code}; template {name!r} is unchanged")
        edited = path.read_text("utf-8")
    if edited == text:
        return None
    fields, _unknown = parse_template_yaml(edited, where=f"the edited template {name!r}")
    extras = {**fields["extras"], SOURCE: edited}
    if (current.extras or {}).get(FILE):
        extras[FILE] = current.extras[FILE]  # type: ignore[index]
    fields["extras"] = extras
    with store.write() as conn:
        return put_version(conn, name, **fields)
