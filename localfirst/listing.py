"""Text renderings of configured models and templates for the terminal. No I/O here."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .models.config import ModelConfig
from .templates import TemplateVersion

__all__ = ["models_table", "llm_models_text", "models_json", "templates_table", "template_history_text", "table"]


def table(rows: Sequence[tuple[str, ...]]) -> str:
    """Columns padded to their widest cell; the last column is not padded."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    return "\n".join(
        ("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(r[:-1])) + "  " + r[-1]).rstrip() for r in rows
    )


def models_table(models: list[ModelConfig], *, default: str, key_sources: dict[str, str]) -> str:
    rows = [("", "NAME", "MODEL", "KEY", "BASE URL")]
    rows.append(("*" if default == "echo" else "", "echo", "(built in, offline)", "", ""))
    for m in models:
        rows.append(("*" if default == m.name else "", m.name, m.model, key_sources.get(m.name, ""), m.base_url))
    return table(rows)


def _llm_name(model_id: str, taken: set[str]) -> str:
    """How ``-m`` names one of llm's models here: ``llm:ID`` where localfirst has a model of that name."""
    return "llm:" + model_id if model_id in taken else model_id


def llm_models_text(models: list[tuple[str, list[str]]], *, taken: set[str]) -> str:
    """llm's models, as ``-m`` names them here."""
    if not models:
        return ""
    rows = [("LLM MODEL", "ALIASES")]
    for model_id, aliases in models:
        rows.append((_llm_name(model_id, taken), ", ".join(aliases)))
    return table(rows)


def models_json(models: list[ModelConfig], llm_models: list[tuple[str, list[str]]], *,
                taken: set[str]) -> list[dict[str, Any]]:
    """Configured models (``"source": "localfirst"``), then llm's (``"source": "llm"``), as ``--json`` lists them.

    ``name`` is what ``-m`` takes; an llm model's ``model`` is llm's own id.
    """
    out: list[dict[str, Any]] = [{**m.to_json(), "source": "localfirst"} for m in models]
    out += [{"name": _llm_name(model_id, taken), "model": model_id, "aliases": aliases, "source": "llm"}
            for model_id, aliases in llm_models]
    return out


def _one_line(text: str | None, width: int = 60) -> str:
    line = " ".join((text or "").split())
    return line if len(line) <= width else line[: width - 1] + "…"


def templates_table(templates: list[TemplateVersion]) -> str:
    if not templates:
        return "No templates."
    rows = [("NAME", "FROM", "VARIABLES", "MODEL", "PROMPT")]
    for t in templates:
        where = "personal" if t.team is None else f"team {t.team}" + (" (read-only)" if t.read_only else "")
        rows.append((t.full_name, where, " ".join("$" + v for v in t.variables()), t.model or "",
                     _one_line(t.prompt or (f"(system) {t.system}" if t.system else ""))))
    return table(rows)


def template_history_text(versions: list[TemplateVersion]) -> str:
    copies = len({v.template_id for v in versions})
    rows = [("VERSION", "SAVED (UTC)", "LABELS", "MODEL", "PROMPT")]
    for v in versions:
        rows.append((v.id, v.created_utc[:19].replace("T", " "), ", ".join(sorted(v.labels)), v.model or "",
                     _one_line(v.prompt or v.system)))
    note = f"\n\n{copies} templates were created under this name on different machines; the newest version wins." \
        if copies > 1 else ""
    return table(rows) + note
