"""Prompt messages, compiled once and rendered per cell: roles, content parts, images, tool calls.

A message renders to exactly what Chat Completions takes: ``{"role": ..., "content": ...}`` —
content a string, or a list of parts (``{"type": "text", "text": ...}``, ``{"type":
"image_url", "image_url": {"url": ..., "detail": ...}}``) — plus ``tool_calls`` on an assistant
message and ``tool_call_id`` on a ``tool`` message. (The Responses API gets the same messages,
converted by its provider.) A plain message renders to ``{"role", "content"}`` only, so its
request hash is the one earlier versions computed.

Templates: the content string, each text part, an image URL and an image path are Jinja2
templates, and so is every string of a tool call in the history (its id, the function's name,
each value of its arguments; ``tool_call_id``): ``arguments: {city: "{{ city }}"}`` is sent
as ``{"city": "Paris"}``, the value JSON-escaped. Arguments written as JSON text are a
template of that JSON's values when the text is JSON (``'{"city": "{{ city }}"}'``), else a
template of the text. A string without ``{{``, ``{%`` or ``{#`` is sent exactly as written,
so a message without templates keeps its request hash.

Images: an ``image_file`` part reads a local file (relative to the experiment file) into a
``data:`` URL, so the image itself is part of the request and of its hash. A path may come from
a dataset, so where it leads is checked (:class:`ImageFolders`): symlinks followed, the file
must lie in the experiment's folder or in a folder ``files: {allow: [...]}`` names. Its bytes
must be a PNG, JPEG, GIF or WebP image (by their first bytes, which also give the media type
sent; the extension does not matter) of at most ``MAX_IMAGE_BYTES``. A literal path is checked
when the experiment is validated; a path from a var or a case column when its cell is rendered
(an error naming the cell, as for any template). Files are cached by path, size and
modification time, so a dataset that shows one image to many prompts reads it once.
"""

from __future__ import annotations

import base64
import functools
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .schema import ImageFilePart, ImageUrlPart, Message, TextPart
from .templates import RenderError, Template, compile_template

__all__ = ["MAX_IMAGE_BYTES", "ImageFolders", "MessageTemplate", "Part", "check_image",
           "media_type"]  # fmt: skip

#: The largest image file sent (OpenAI's limit per image: 20 MB).
MAX_IMAGE_BYTES = 20 * 1024 * 1024
#: The image types sent, by the bytes a file starts with (WebP: ``RIFF`` .... ``WEBP``).
_MAGIC = ((b"\x89PNG\r\n\x1a\n", "image/png"), (b"\xff\xd8\xff", "image/jpeg"),
          (b"GIF87a", "image/gif"), (b"GIF89a", "image/gif"))  # fmt: skip
_KINDS = "a PNG, JPEG, GIF or WebP image"


class ImageError(ValueError):
    """An image file that cannot be sent: outside the allowed folders, missing, too large, or
    not an image of a supported type."""


def media_type(head: bytes) -> str | None:
    """The media type of an image whose file starts with ``head`` (12 bytes are enough), or
    ``None`` if it is not a PNG, JPEG, GIF or WebP image."""
    for magic, media in _MAGIC:
        if head.startswith(magic):
            return media
    return "image/webp" if head[:4] == b"RIFF" and head[8:12] == b"WEBP" else None


@dataclass(frozen=True)
class ImageFolders:
    """Where image files may be read from: relative paths start at ``base`` (the experiment's
    folder), and a file, symlinks followed, must lie under one of ``roots`` (``base`` and the
    folders of ``files: {allow: [...]}``, resolved)."""

    base: Path
    roots: tuple[Path, ...]

    @classmethod
    def of(cls, base: Path, allowed: Sequence[Path] = ()) -> ImageFolders:
        """``base`` and the ``allowed`` folders (relative ones are relative to ``base``)."""
        return cls(base, tuple(dict.fromkeys((base / p).resolve() for p in (Path(), *allowed))))

    def locate(self, text: str) -> Path:
        """The file ``text`` names, symlinks resolved; :class:`ImageError` if it lies outside
        every root (``../``, an absolute path, a symlink pointing out)."""
        try:
            path = (self.base / text).resolve()
        except (OSError, RuntimeError, ValueError) as exc:  # a symlink loop, a NUL in the path
            raise ImageError(f"image file {text!r} cannot be looked up: {exc}") from None
        if any(path.is_relative_to(root) for root in self.roots):
            return path
        raise ImageError(
            f"image file {text!r} is outside the experiment's folder (it is {path}): images "
            "are read only from that folder and from the folders under files: {allow: [...]}"
        )


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
class AsJson:
    """Arguments rendered from templates, then sent as JSON text."""

    value: Any


@dataclass(frozen=True)
class MessageTemplate:
    """A compiled message: its role, content (a template, parts, or none) and its other
    fields (``tool_calls``, ``tool_call_id``: plain values, with a :class:`Template` for each
    string that is one)."""

    role: str
    content: Template | tuple[Part, ...] | None
    fixed: Mapping[str, Any]
    variables: frozenset[str]

    def where_used(self, variable: str) -> tuple[Any, ...]:
        """The key path under the message of the first template that uses ``variable``
        (``("content",)`` for the content)."""
        content = self.content
        parts = content if isinstance(content, tuple) else (Part("text", content),) if (
            content is not None) else ()  # fmt: skip
        if any(variable in p.template.variables for p in parts):
            return ("content",)
        found = _where(self.fixed, variable, ())
        return found if found is not None else ("content",)

    def render(self, context: Mapping[str, Any], folders: ImageFolders) -> dict[str, Any]:
        """The message for one cell (image files read from ``folders``). Raises
        :class:`RenderError` (with ``where``, the key path under the message, for a part)
        whatever fails."""
        content = self.content
        if isinstance(content, Template):
            out: dict[str, Any] = {"role": self.role, "content": content.render(context)}
        elif content is None:
            out = {"role": self.role, "content": None}
        else:
            out = {"role": self.role, "content": [_render_part(p, i, context, folders)
                                                  for i, p in enumerate(content)]}  # fmt: skip
        if self.fixed:
            out.update(_render_value(self.fixed, context, ()))
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
                    "arguments": _arguments(call.function.arguments),
                },
            }
            for call in message.tool_calls
        ]
    if message.tool_call_id is not None:
        fixed["tool_call_id"] = message.tool_call_id
    fixed = _compile_value(fixed, (), errors)
    if errors:
        return None, errors
    variables: frozenset[str] = _variables(fixed)
    if isinstance(content, Template):
        variables |= content.variables
    elif content is not None:
        variables = variables.union(*(p.template.variables for p in content))
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


def check_image(text: str, folders: ImageFolders) -> str | None:
    """Why the image file ``text`` names cannot be sent, or ``None`` if it can."""
    try:
        _checked(text, folders)
    except ImageError as exc:
        return str(exc)
    return None


def _checked(text: str, folders: ImageFolders) -> tuple[Path, os.stat_result]:
    """The image file ``text`` names and its stat, once it is known to be sendable."""
    try:
        path = folders.locate(text)
        stat = path.stat()
        if not path.is_file():
            raise ImageError(f"not a file: {path}")
        with path.open("rb") as file:
            head = file.read(12)
    except FileNotFoundError:
        raise ImageError(f"image file not found: {folders.base / text}") from None
    except OSError as exc:
        raise ImageError(f"cannot read image file {text}: {exc.strerror or exc}") from None
    if stat.st_size > MAX_IMAGE_BYTES:
        raise ImageError(
            f"image file {path} has {stat.st_size:,} bytes; at most {MAX_IMAGE_BYTES:,} are sent"
        )
    if media_type(head) is None:
        raise ImageError(f"image file {text!r} is not {_KINDS} (by its first bytes)")
    return path, stat


# ------------------------------------------------------------------ fields of tool calls

_DELIMITERS = ("{{", "{%", "{#")


def _is_template(text: str) -> bool:
    return any(d in text for d in _DELIMITERS)


def _arguments(raw: str | dict[str, Any]) -> Any:
    """A tool call's arguments as written: JSON text stays text unless it holds templates
    (then its JSON values are the templates, or the whole text when it is not JSON)."""
    if not isinstance(raw, str):
        return AsJson(raw)
    if not _is_template(raw):
        return raw
    try:
        parsed = json.loads(raw)
    except (ValueError, RecursionError):
        return raw
    return AsJson(parsed) if isinstance(parsed, (dict, list)) else raw


def _compile_value(value: Any, path: tuple[Any, ...], errors: list[Any]) -> Any:
    """``value`` with each string that holds a template compiled (syntax errors to
    ``errors`` with their key path)."""
    if isinstance(value, AsJson):
        inner = _compile_value(value.value, path, errors)
        # without a template, the JSON text is made once (and is what it always was)
        return AsJson(inner) if _has_template(inner) else json.dumps(inner, ensure_ascii=False)
    if isinstance(value, dict):
        return {k: _compile_value(v, (*path, k), errors) for k, v in value.items()}
    if isinstance(value, list):
        return [_compile_value(v, (*path, i), errors) for i, v in enumerate(value)]
    if isinstance(value, str) and _is_template(value):
        template, error = compile_template(value)
        if error is not None:
            errors.append((path, error))
        return template
    return value


def _render_value(value: Any, context: Mapping[str, Any], path: tuple[Any, ...]) -> Any:
    if isinstance(value, Template):
        try:
            return value.render(context)
        except RenderError as exc:
            raise RenderError(exc.message, exc.lineno, path) from None
    if isinstance(value, AsJson):
        return json.dumps(_render_value(value.value, context, path), ensure_ascii=False)
    if isinstance(value, dict):
        return {k: _render_value(v, context, (*path, k)) for k, v in value.items()}
    if isinstance(value, list):
        return [_render_value(v, context, (*path, i)) for i, v in enumerate(value)]
    return value


def _has_template(value: Any) -> bool:
    if isinstance(value, dict):
        return any(_has_template(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_template(v) for v in value)
    return isinstance(value, (Template, AsJson))


def _variables(value: Any) -> frozenset[str]:
    if isinstance(value, Template):
        return value.variables
    if isinstance(value, AsJson):
        return _variables(value.value)
    items = value.values() if isinstance(value, dict) else value if isinstance(value, list) else ()
    return frozenset().union(*(_variables(v) for v in items))


def _where(value: Any, variable: str, path: tuple[Any, ...]) -> tuple[Any, ...] | None:
    if isinstance(value, Template):
        return path if variable in value.variables else None
    if isinstance(value, AsJson):
        return _where(value.value, variable, path)
    if isinstance(value, list):
        value = dict(enumerate(value))
    for key, item in value.items() if isinstance(value, dict) else ():
        found = _where(item, variable, (*path, key))
        if found is not None:
            return found
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
    part: Part, index: int, context: Mapping[str, Any], folders: ImageFolders
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
            value = _data_url(value, folders)
        except ImageError as exc:
            raise RenderError(str(exc), None, where) from None
    image: dict[str, Any] = {"url": value}
    if part.detail is not None:
        image["detail"] = part.detail
    return {"type": "image_url", "image_url": image}


def _data_url(text: str, folders: ImageFolders) -> str:
    path, stat = _checked(text, folders)
    return _read_data_url(str(path), stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=8)
def _read_data_url(path: str, size: int, mtime_ns: int) -> str:
    """The file as a data URL; cached by path, size and modification time (at most 8 files,
    so at most 8 × 27 MB of base64 stay in memory). The bytes read are checked again: the
    file may have changed since it was looked at."""
    try:
        with open(path, "rb") as file:
            data = file.read(MAX_IMAGE_BYTES + 1)
    except OSError as exc:
        raise ImageError(f"cannot read image file {path}: {exc.strerror or exc}") from None
    media = media_type(data[:12])
    if media is None or len(data) > MAX_IMAGE_BYTES:
        raise ImageError(f"image file {path} changed while it was read: it is no longer sent")
    return f"data:{media};base64,{base64.b64encode(data).decode('ascii')}"
