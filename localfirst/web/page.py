"""The conversation page: a transcript as a person reads a chat, as one HTML document.

Every text from the database is escaped; prompts, answers and reasoning are
rendered as Markdown with raw HTML off, and only http(s), mailto and relative
links survive. The page carries a Content-Security-Policy that allows no
script at all, so even a rendering mistake cannot run one.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from html import escape
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..records import Part, Response

__all__ = ["render_conversation", "CSP", "INLINE_IMAGE_TYPES", "MAX_INLINE_IMAGE"]

CSP = "default-src 'none'; img-src 'self' data:; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'"
INLINE_IMAGE_TYPES = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp"})
MAX_INLINE_IMAGE = 4 * 1024 * 1024

_STYLE = """
body{font-family:system-ui,sans-serif;max-width:52rem;margin:0 auto;padding:1rem 1.5rem;color:#1d1d1f;
background:#fafafa;line-height:1.5}
header p{color:#555;margin:.2rem 0}
.turn{margin:1.5rem 0;padding-top:.5rem;border-top:1px solid #ddd}
.meta{font-size:.8rem;color:#666}
.bubble{border-radius:.6rem;padding:.4rem 1rem;margin:.5rem 0}
.user{background:#e8f0fe}.assistant{background:#fff;border:1px solid #e0e0e0}
.system{background:#fff8e1;border:1px dashed #e0c070}
.tool{background:#f1f8e9;font-size:.9rem}
.role{font-weight:600;font-size:.8rem;text-transform:uppercase;color:#444}
pre{background:#f4f4f4;padding:.5rem;overflow-x:auto;white-space:pre-wrap;word-break:break-word}
code{background:#f4f4f4}
img{max-width:100%;border:1px solid #ddd}
details{margin:.4rem 0}summary{cursor:pointer;color:#555}
"""


def _markdown() -> Callable[[str], str]:
    try:
        from markdown_it import MarkdownIt
    except ImportError as exc:  # Datasette given localfirst without the web extra
        from ..errors import MissingExtra

        raise MissingExtra("the conversation page needs the web extra: pip install 'localfirst[web]'") from exc

    md = MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False}).enable("table")
    return md.render


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, indent=2)


class _Renderer:
    def __init__(self, *, base: str, attachment: Callable[[str], bytes | None]) -> None:
        self.md = _markdown()
        self.base = base
        self.attachment = attachment

    def text(self, value: str | None) -> str:
        return self.md(value or "")

    def part(self, p: Part) -> str:
        if p.type == "reasoning":
            return f"<details><summary>Reasoning</summary>{self.text(p.text)}</details>"
        if p.type == "tool_call":
            return (f'<div class="bubble tool"><span class="role">Tool call</span> <code>{escape(p.tool_name or "")}'
                    f'</code> <span class="meta">{escape(p.tool_call_id or "")}</span>'
                    f"<pre>{escape(_json(p.arguments))}</pre></div>")
        if p.type == "tool_result":
            error = f"<p><strong>Error:</strong> {escape(p.error)}</p>" if p.error else ""
            return (f'<div class="bubble tool"><span class="role">Tool result</span> <code>'
                    f'{escape(p.tool_name or "")}</code> <span class="meta">{escape(p.tool_call_id or "")}</span>'
                    f"<pre>{escape(p.text or '')}</pre>{error}</div>")
        if p.type == "attachment" and p.attachment is not None:
            return self.attachment_html(p)
        return self.text(p.text)

    def attachment_html(self, p: Part) -> str:
        a = p.attachment
        assert a is not None
        label = escape(a.path or a.url or a.id[:12])
        link = f"{escape(self.base)}/attachments/{escape(a.id)}.blob?_blob_column=content"
        out = f'<p class="meta">Attachment {label} ({escape(a.mime_type or "unknown type")}, {a.size} bytes)'
        content = None
        if a.mime_type in INLINE_IMAGE_TYPES and 0 < a.size <= MAX_INLINE_IMAGE:
            content = self.attachment(a.id)
        if content is not None or a.size:
            out += f' <a href="{link}" download>download</a>'
        out += "</p>"
        if content is not None:
            data = base64.b64encode(content).decode()
            out += f'<img alt="{label}" src="data:{escape(a.mime_type or "")};base64,{data}">'
        return out

    def turn(self, r: Response, shown_system: str | None) -> str:
        out = [f'<section class="turn" id="{escape(r.id or "")}">']
        usage = []
        if r.input_tokens is not None or r.output_tokens is not None:
            usage.append(f"{r.input_tokens or 0} in / {r.output_tokens or 0} out tokens")
        if r.duration_ms is not None:
            usage.append(f"{r.duration_ms} ms")
        model = r.model + (f" ({r.resolved_model})" if r.resolved_model and r.resolved_model != r.model else "")
        out.append(f'<p class="meta">{escape(r.datetime_utc or "")} · {escape(model)}'
                   + (" · simulated" if r.simulated else "") + "".join(f" · {escape(u)}" for u in usage)
                   + f' · <a href="{escape(self.base)}/responses/{escape(r.id or "")}">row</a></p>')
        if r.system and r.system != shown_system:
            out.append(f'<div class="bubble system"><span class="role">System</span>{self.text(r.system)}</div>')
        sent = [p for p in r.parts if p.role == "user"]
        out.append('<div class="bubble user"><span class="role">Prompt</span>'
                   + self.text(r.prompt) + "".join(self.part(p) for p in sent) + "</div>")
        back = [p for p in r.parts if p.role == "assistant"]
        if back:
            body = "".join(self.part(p) for p in back)
        else:
            body = (f"<details><summary>Reasoning</summary>{self.text(r.reasoning)}</details>"
                    if r.reasoning else "") + self.text(r.response)
        out.append(f'<div class="bubble assistant"><span class="role">Answer</span>{body}</div></section>')
        return "".join(out)


def render_conversation(cid: str, name: str | None, responses: list[Response], *, base: str,
                        attachment: Callable[[str], bytes | None]) -> str:
    """The HTML of one conversation; ``attachment(id)`` gives an image's bytes to show inline.

    ``base`` is the address of the database's page in Datasette (``/logs``);
    the row, table and attachment links start from it.
    """
    renderer = _Renderer(base=base, attachment=attachment)
    title = escape(name or "Conversation")
    tokens_in = sum(r.input_tokens or 0 for r in responses)
    tokens_out = sum(r.output_tokens or 0 for r in responses)
    models = ", ".join(escape(m) for m in dict.fromkeys(r.model for r in responses))
    body = []
    shown: str | None = None
    for r in responses:
        body.append(renderer.turn(r, shown))
        shown = r.system or shown
    return (
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{title}</title>'
        f'<meta name="viewport" content="width=device-width, initial-scale=1"><style>{_STYLE}</style></head>'
        f"<body><header><h1>{title}</h1>"
        f'<p>Conversation <code>{escape(cid)}</code> · {len(responses)} turns · {models}</p>'
        f"<p>{tokens_in} input and {tokens_out} output tokens · "
        f'<a href="{escape(base)}/conversations/{escape(cid)}">row</a> · '
        f'<a href="{escape(base)}/exchanges?conversation_id={escape(cid)}">exchanges</a></p></header>'
        f"<main>{''.join(body)}</main></body></html>"
    )
