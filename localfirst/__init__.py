"""localfirst: your LLM conversations in a local SQLite file, on every machine."""

from .errors import LocalFirstError
from .records import Attachment, Part, Response
from .store import Conversation, Store

__all__ = ["Attachment", "Conversation", "LocalFirstError", "Part", "Response", "Store", "__version__"]

__version__ = "0.1.0"
