"""Answers of bounded size: a response body is counted as it is read, after decompression, and
cut off past a limit — so memory stays bounded whatever a server sends.

A server decides how much it sends: a 200 MB body, a gzip body of 1 MB that inflates to 1 GB,
a stream that never ends. The SDK reads a whole body with ``aread()`` and a stream with
``aiter_bytes()``, both through the response's stream; httpx2 decodes gzip, deflate, brotli
and zstd on the way, in pieces of at most 1 MiB. :class:`BoundedResponses` is an httpx2
response hook (``event_hooks``, public API): before anything reads a response, it puts in its
place a stream that counts the bytes and raises :class:`~promptgrid.errors.ResponseTooLarge`
past the limit. An encoded body is read through httpx2's own decoding (a ``Response`` made of
the original's headers and stream), so the decoded bytes are counted; the response then no
longer says it is encoded, so it is not decoded twice. A body not encoded is counted as it
comes (its bytes are the body: no second ``Response`` per call). What is held at the cut is
what was read: the limit plus one piece.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable

import httpx2

from ..errors import ResponseTooLarge

__all__ = ["BoundedResponses"]


class BoundedResponses:
    """An httpx2 response hook that cuts every body off past ``limit`` decoded bytes, but the
    responses to requests ``exempt`` says are read otherwise (streamed to disk)."""

    def __init__(self, limit: int, exempt: Callable[[httpx2.Request], bool] | None = None) -> None:
        self.limit = limit
        self.exempt = exempt

    async def __call__(self, response: httpx2.Response) -> None:
        """Make ``response`` read through a bounded stream (called before its body is read)."""
        stream = response.stream
        if not isinstance(stream, httpx2.AsyncByteStream):
            return  # a sync client's: never promptgrid's
        if self.exempt is not None and self.exempt(response.request):
            return
        status = response.status_code
        if "content-encoding" not in response.headers:  # most answers: its bytes are the body
            response.stream = _Bounded(stream, self.limit, status)
            return
        decoding = httpx2.Response(
            status, headers=response.headers.raw, stream=stream, request=response.request
        )
        response.stream = _Bounded(decoding.aiter_bytes(), self.limit, status, decoding.aclose)
        for header in ("content-encoding", "content-length"):  # what the decoding made moot
            response.headers.pop(header, None)


class _Bounded(httpx2.AsyncByteStream):
    """The bytes of ``pieces``, until more than ``limit`` of them (``close``: what closes the
    source, else ``pieces.aclose``)."""

    def __init__(
        self,
        pieces: AsyncIterable[bytes],
        limit: int,
        status: int,
        close: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self._pieces = pieces
        self._limit = limit
        self._status = status
        self._close = close or getattr(pieces, "aclose", None)

    async def __aiter__(self) -> AsyncIterator[bytes]:
        seen = 0
        async for piece in self._pieces:
            seen += len(piece)
            if seen > self._limit:
                raise ResponseTooLarge(
                    f"the answer is larger than {self._limit:,} bytes (limits.max_response_bytes, "
                    "counted decompressed): cut off while it was read; raise the limit if "
                    "answers this large are expected",
                    http_status=self._status if self._status >= 400 else None,
                )
            yield piece

    async def aclose(self) -> None:
        if self._close is not None:
            await self._close()
