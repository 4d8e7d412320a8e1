"""Answers too large to hold: the bodies of the fault server's ``"huge"``, ``"gzip_bomb"`` and
``"endless"`` faults.

Each is a good answer to its request — a chat completion or a Responses API response, whole or
streamed — whose text is ``x`` repeated: ``huge_bytes`` of it, or without end. It is made once
with a marker for a text (:data:`MARK`) and written in pieces of :data:`PIECE` bytes around it,
so the server never holds the answer, whatever its size. A stream repeats the event that
carries the marker, one piece of text each; later events (the whole text again) carry none.

``"gzip_bomb"`` sends the same bytes gzip-compressed (``Content-Encoding: gzip``): about a
kilobyte on the wire per MiB of answer. A full flush after each piece resets the compressor, so
every piece of filler compresses to the same bytes: it is compressed once and repeated (1 GB in
about a second, where compressing it all would take half a minute).
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterable, Iterator
from itertools import repeat

__all__ = ["MARK", "PIECE", "gzipped", "pieces"]

#: The text an answer is made with, replaced by the filler as it is written.
MARK = "PGFLOODMARK"
#: Bytes of filler per piece written.
PIECE = 1 << 20
_MARK = MARK.encode()
_FILLER = b"x" * PIECE
# A gzip member's header: magic, deflate, no flags, no time, no extra flags, unknown OS.
_GZIP_HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"


def pieces(made: bytes | Iterable[bytes], size: int | None) -> Iterator[bytes]:
    """The bytes of an answer made with :data:`MARK`, with ``size`` bytes of ``x`` in its place
    (``None``: without end). ``made`` is a whole body, or a stream's events in order."""
    events = [made] if isinstance(made, bytes) else list(made)
    at = next(i for i, event in enumerate(events) if _MARK in event)
    head, tail = events[at].split(_MARK, 1)
    yield b"".join(events[:at])
    if isinstance(made, bytes):  # one body: the filler goes inside its text
        yield head
        yield from _filler(size, PIECE)
        yield tail.replace(_MARK, b"")
    else:  # a stream: one event per piece of text
        template = head + _FILLER + tail
        for n in _filler(size, PIECE):
            yield template if n is _FILLER else head + n + tail
    for event in events[at + 1 :]:
        yield event.replace(_MARK, b"")


def _filler(size: int | None, piece: int) -> Iterator[bytes]:
    """``size`` bytes of ``x`` in pieces (the same object for every whole piece)."""
    if size is None:
        yield from repeat(_FILLER)
        return
    whole, rest = divmod(size, piece)
    yield from repeat(_FILLER, whole)
    if rest:
        yield _FILLER[:rest]


def gzipped(parts: Iterable[bytes]) -> Iterator[bytes]:
    """``parts`` as one gzip member, compressed as they come (see the module docstring)."""
    yield _GZIP_HEADER
    compressor = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    crc, size = 0, 0
    previous, out = None, b""
    for part in parts:
        crc, size = zlib.crc32(part, crc), size + len(part)
        if part is not previous:  # the same piece again compresses alike: send the same bytes
            out = compressor.compress(part) + compressor.flush(zlib.Z_FULL_FLUSH)
            previous = part
        yield out
    yield compressor.flush(zlib.Z_FINISH) + struct.pack("<II", crc, size & 0xFFFFFFFF)
