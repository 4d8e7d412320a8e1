"""Prompt messages, compiled once and rendered per cell: roles, content parts, images, tool calls.

A message renders to exactly what Chat Completions takes: ``{"role": ..., "content": ...}`` —
content a string, or a list of parts (``{"type": "text", "text": ...}``, ``{"type":
"image_url", "image_url": {"url": ..., "detail": ...}}``) — plus ``tool_calls`` on an assistant
message and ``tool_call_id`` on a ``tool`` message. (The Responses API gets the same messages,
converted by its provider.) A plain message renders to ``{"role", "content"}`` only, so its
request hash is the one earlier versions computed.

Templates: the content string, each text part, an image URL and an image path are Jinja2
templates; tool calls and their ids are sent as written.

Images: an ``image_file`` part reads a local file (relative to the experiment file) into a
``data:`` URL, so the image itself is part of the request and of its hash. A file must be a PNG,
JPEG, GIF or WebP (by its extension) of at most ``MAX_IMAGE_BYTES``. A literal path is checked
when the experiment is validated; a path from a var or a case column when its cell is rendered
(an error naming the cell, as for any template). Files are cached by path, size and
modification time, so a dataset that shows one image to many prompts reads it once.
"""

from __future__ import annotations

import base64
import functools
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .schema import ImageFilePart, ImageUrlPart, Message, TextPart
from .templates import RenderError, Template, compile_template

__all__ = ["IMAGE_TYPES", "MAX_IMAGE_BYTES", "MessageTemplate", "Part", "check_image"]

#: The largest image file sent (OpenAI's limit per image: 20 MB).
MAX_IMAGE_BYTES = 20 * 1024 * 1024
#: Image file extensions and their media types.
IMAGE_TYPES: Mapping[str, str] = {
    ".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".gif": "image/gif",
    ".webp": "image/webp",
}  # fmt: skip


class ImageError(ValueError):
    """An image file that cannot be sent: missing, too large, or of an unknown type."""


@dataclass(frozen=True)
class Part:
    """One content part: ``kind`` is ``text``, ``image_url`` or ``image_file``; ``template``
    renders its text, URL or path."""

    kind: str
    template: Template
    detail: str | None = None

    @property
    def field(self) -> str:
        """The key its template sits under (for error locations)."""
        return {"text": "text", "image_url": "image_url", "image_file": "path"}[self.kind]


@dataclass(frozen=True)
class MessageTemplate:
    """A compiled message: its role, content (a template, parts, or none) and the fields sent
    as written (``tool_calls``, ``tool_call_id``)."""

    role: str
    content: Template | tuple[Part, ...] | None
    fixed: Mapping[str, Any]
    variables: frozenset[str]

    def render(self, context: Mapping[str, Any], base_dir: Path) -> dict[str, Any]:
        """The message for one cell. Raises :class:`RenderError` (with ``where``, the key path
        under the message, for a part) whatever fails."""
        content = self.content
        if isinstance(content, Template):
            out: dict[str, Any] = {"role": self.role, "content": content.render(context)}
        elif content is None:
            out = {"role": self.role, "content": None}
        else:
            out = {"role": self.role, "content": [_render_part(p, i, context, base_dir)
                                                  for i, p in enumerate(content)]}  # fmt: skip
        if self.fixed:
            out.update(self.fixed)
        return out


def compile_message(
    message: Message,
) -> tuple[MessageTemplate | None, list[tuple[tuple[Any, ...], Exception]]]:
    """Compile one message of the file; the template syntax errors found, each with its key
    path under the message (``("content",)``, ``("content", 1, "text")``)."""
    errors: list[tuple[tuple[Any, ...], Exception]] = []
    content: Template | tuple[Part, ...] | None = None
    if isinstance(message.content, str):
        template, error = compile_template(message.content)
        if error is not None:
            errors.append((("content",), error))
        content = template
    elif message.content is not None:
        parts = []
        for i, raw in enumerate(message.content):
            kind, source, detail = _part_fields(raw)
            template, error = compile_template(source)
            part = Part(kind, template, detail)
            if error is not None:
                errors.append((("content", i, part.field), error))
            parts.append(part)
        content = tuple(parts)
    fixed: dict[str, Any] = {}
    if message.tool_calls:
        fixed["tool_calls"] = [
            {
                "id": call.id,
                "type": call.type,
                "function": {
                    "name": call.function.name,
                    "arguments": call.function.arguments
                    if isinstance(call.function.arguments, str)
                    else json.dumps(call.function.arguments, ensure_ascii=False),
                },
            }
            for call in message.tool_calls
        ]
    if message.tool_call_id is not None:
        fixed["tool_call_id"] = message.tool_call_id
    if errors:
        return None, errors
    variables: frozenset[str] = frozenset()
    if isinstance(content, Template):
        variables = content.variables
    elif content is not None:
        variables = frozenset().union(*(p.template.variables for p in content))
    return MessageTemplate(message.role, content, fixed, variables), []


def literal_images(message: MessageTemplate) -> list[tuple[int, str]]:
    """``(part index, path)`` of each image file whose path is written out (no template)."""
    if not isinstance(message.content, tuple):
        return []
    return [
        (i, p.template.source)
        for i, p in enumerate(message.content)
        if p.kind == "image_file" and not p.template.variables and "{" not in p.template.source
    ]


def check_image(path: Path) -> str | None:
    """Why the image file at ``path`` cannot be sent, or ``None`` if it can."""
    try:
        _media_type(path)
        size = path.stat().st_size
    except ImageError as exc:
        return str(exc)
    except FileNotFoundError:
        return f"image file not found: {path}"
    except OSError as exc:
        return f"cannot read image file {path}: {exc.strerror or exc}"
    if not path.is_file():
        return f"not a file: {path}"
    if size > MAX_IMAGE_BYTES:
        return f"image file {path} has {size:,} bytes; at most {MAX_IMAGE_BYTES:,} are sent"
    return None


# ------------------------------------------------------------------ rendering


def _part_fields(raw: TextPart | ImageUrlPart | ImageFilePart) -> tuple[str, str, str | None]:
    """(kind, template source, detail) of a content part of the file."""
    if isinstance(raw, TextPart):
        return "text", raw.text, None
    if isinstance(raw, ImageUrlPart):
        return "image_url", raw.image_url.url, raw.image_url.detail
    return "image_file", raw.path, raw.detail


def _render_part(
    part: Part, index: int, context: Mapping[str, Any], base_dir: Path
) -> dict[str, Any]:
    where = ("content", index, part.field)
    try:
        value = part.template.render(context)
    except RenderError as exc:
        raise RenderError(exc.message, exc.lineno, where) from None
    if part.kind == "text":
        return {"type": "text", "text": value}
    if part.kind == "image_file":
        try:
            value = _data_url(base_dir / value)
        except ImageError as exc:
            raise RenderError(str(exc), None, where) from None
    image: dict[str, Any] = {"url": value}
    if part.detail is not None:
        image["detail"] = part.detail
    return {"type": "image_url", "image_url": image}


def _media_type(path: Path) -> str:
    media = IMAGE_TYPES.get(path.suffix.lower())
    if media is None:
        kinds = ", ".join(sorted(IMAGE_TYPES))
        raise ImageError(f"{path.name}: not an image file this tool sends (use {kinds})")
    return media


def _data_url(path: Path) -> str:
    problem = check_image(path)
    if problem is not None:
        raise ImageError(problem)
    stat = path.stat()
    return _read_data_url(str(path.resolve()), stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=8)
def _read_data_url(path: str, size: int, mtime_ns: int) -> str:
    """The file as a data URL; cached by path, size and modification time (at most 8 files,
    so at most 8 × 27 MB of base64 stay in memory)."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise ImageError(f"cannot read image file {path}: {exc.strerror or exc}") from None
    encoded = base64.b64encode(data).decode("ascii")
    return f"data:{_media_type(Path(path))};base64,{encoded}"
