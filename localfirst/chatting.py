"""``localfirst chat``: an interactive loop that logs every turn into one conversation.

The loop reads lines and writes text through the callables it is given, so it
prints nothing itself: the CLI hands it ``input()`` and stdout, the tests a
list of lines. ``exit`` or ``quit`` (or the end of input) ends it; ``!multi``
starts a multi-line prompt that ``!end`` sends, as in llm's chat.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .errors import LocalFirstError
from .inputs import Fragment
from .records import Attachment, Response
from .store import Store

__all__ = ["ChatSession", "chat_loop", "EXIT_WORDS"]

EXIT_WORDS = ("exit", "quit")


@dataclass
class ChatSession:
    """One chat: the model, and the conversation every turn goes into."""

    open_store: Callable[[], Store]
    model: str | None = None
    system: str | None = None
    options: dict[str, Any] = field(default_factory=dict)
    continue_latest: bool = False
    cid: str | None = None
    key: str | None = None
    stream: bool = True
    turns: list[Response] = field(default_factory=list)
    # -a/--at, -f and --sf given to `chat`: sent with the first turn only, as
    # llm's chat sends its -f fragments. Kept until a turn succeeds, so a
    # first turn that fails does not lose them.
    attachments: list[Attachment] = field(default_factory=list)
    fragments: list[Fragment] = field(default_factory=list)
    system_fragments: list[Fragment] = field(default_factory=list)

    def start(self) -> str:
        """Check the model and the conversation before the first line is read; returns the model's name."""
        from .models import default_model_name, get_model
        from .prompting import logging_enabled

        if self.continue_latest or self.cid is not None:
            store = self.open_store()
            self.cid = store.pick_conversation(continue_latest=self.continue_latest, cid=self.cid)
            self.continue_latest = False
            if self.model is None and self.cid is not None:
                self.model = store.conversation_model(self.cid)
        self.model = self.model or default_model_name()
        chosen = get_model(self.model)
        if not logging_enabled():
            # Nothing is logged, so the turns are kept here.
            if self.cid is not None:
                self.turns = self.open_store().history(self.cid)
            self.cid = None
        return chosen.name

    def send(self, prompt: str, on_text: Callable[[str], None]) -> Response:
        """One turn; the first starts the conversation (unless continuing one) and the rest join it."""
        from .prompting import run_prompt

        # llm sends the system prompt with the first turn only.
        system = self.system if not self.turns else None
        response = run_prompt(
            self.open_store, prompt, model=self.model, system=system, options=self.options,
            cid=self.cid, on_text=on_text, stream=self.stream, key=self.key,
            earlier=self.turns if self.cid is None else None,
            attachments=self.attachments, fragments=self.fragments, system_fragments=self.system_fragments,
        )
        self.attachments, self.fragments, self.system_fragments = [], [], []
        if response.id is not None and response.conversation_id is not None:
            self.cid = response.conversation_id
        self.turns.append(response)
        return response


def chat_loop(
    session: ChatSession,
    *,
    read_line: Callable[[str], str],
    write: Callable[[str], None],
    keep_going: bool = False,
) -> int:
    """Read prompts until ``exit``/``quit``, the end of input or Ctrl-C; returns how many turns were sent.

    ``read_line(prompt)`` returns one line without its newline and raises
    EOFError at the end of input. ``keep_going``: a failed turn prints its
    error and the chat goes on (at a terminal); otherwise the error ends it.
    """
    name = session.start()
    write(f"Chatting with {name}\nType 'exit' or 'quit' to exit\n"
          "Type '!multi' to enter multiple lines, then '!end' to finish\n")
    sent = 0
    while True:
        try:
            line = read_line("> ")
            if line.strip() == "!multi":
                lines = []
                while (more := read_line("")).strip() != "!end":
                    lines.append(more)
                line = "\n".join(lines)
        except (EOFError, KeyboardInterrupt):
            write("\n")
            return sent
        if line.strip() in EXIT_WORDS:
            return sent
        if not line.strip():
            continue
        try:
            response = session.send(line, write)
        except LocalFirstError as exc:
            if not keep_going:
                raise
            write(f"\nError: {' '.join(str(exc).split())}\n")
            continue
        write("\n")
        if (response.extras or {}).get("localfirst:interrupted"):
            write("(interrupted; logged what arrived)\n")
        sent += 1
