"""localfirst: your LLM conversations in a local SQLite file, on every machine.

The public names are imported on first use (PEP 562): llm imports this
package on every ``llm`` command when the plugin is installed
(``localfirst.llm_plugin``), and importing the store there would cost that
start-up tens of milliseconds for nothing.
"""

from __future__ import annotations

import importlib

TYPE_CHECKING = False  # typing is not imported at run time: it costs start-up (docs/performance.md)
if TYPE_CHECKING:
    from typing import Any

    from .errors import LocalFirstError
    from .records import Attachment, Part, Response
    from .store import Conversation, Store

__all__ = ["Attachment", "Conversation", "LocalFirstError", "Part", "Response", "Store", "__version__"]

__version__ = "0.1.0"

_HOMES = {
    "LocalFirstError": ".errors", "Attachment": ".records", "Part": ".records", "Response": ".records",
    "Conversation": ".store", "Store": ".store",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(home, __name__), name)
    globals()[name] = value
    return value
