"""Bringing other tools' history into localfirst."""

from __future__ import annotations

from .llm import ImportReport, import_llm, import_llm_templates
from .llm_source import default_llm_dir, default_llm_path

__all__ = ["ImportReport", "import_llm", "import_llm_templates", "default_llm_dir", "default_llm_path"]
