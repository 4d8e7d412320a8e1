"""Command line: ``python -m promptgrid.testing --rpm 300 --latency 0.2``.

Serves one fault server on 127.0.0.1 until SIGTERM or SIGINT, after printing exactly one line,
``READY <base_url>``, which :func:`~promptgrid.testing.spawn_fault_server` waits for. Flags that
are not given leave ``--config``'s (or the default) value alone, so a parent can pass everything
as JSON and a person can type the few flags they need.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal

from .core import _Core
from .server import close, listen

__all__ = ["main"]


def main(argv: list[str] | None = None) -> None:
    """Serve until SIGTERM/SIGINT, after printing ``READY <base_url>``."""
    args = vars(_parser().parse_args(argv))
    port, config = args.pop("port"), args.pop("config")
    if args.get("answers") is not None:
        args["answers"] = dict(args["answers"])
    config.update({k: v for k, v in args.items() if v is not None})
    core = _Core(**config)

    async def serve() -> None:
        runner, bound = await listen(core, port)
        stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError):  # no signal handlers on Windows loops
                asyncio.get_running_loop().add_signal_handler(sig, stop.set)
        print(f"READY http://127.0.0.1:{bound}/v1", flush=True)
        try:
            await stop.wait()
        finally:
            await close(core, runner)

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve())


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m promptgrid.testing",
        description="A local OpenAI-compatible fault server for tests and benchmarks.",
        epilog="example: python -m promptgrid.testing --rpm 300 --latency 0.2 --echo-key",
    )
    p.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (0: any free port)")
    p.add_argument("--config", type=json.loads, default={}, help="JSON object of settings")
    p.add_argument("--rpm", type=int, help="requests per minute per key (0: unlimited)")
    p.add_argument("--tpm", type=int, help="tokens per minute per key (0: unlimited)")
    p.add_argument("--latency", type=float, dest="latency_s", help="seconds before each answer")
    p.add_argument("--fault-rates", type=json.loads, dest="fault_rates", help='{"429": 0.1}')
    p.add_argument("--seed", type=int, help="seed of the fault draws")
    p.add_argument("--api-keys", type=lambda s: s.split(","), dest="api_keys", help="a,b,...")
    p.add_argument(
        "--retry-after", type=float, dest="retry_after_s", help="retry-after of injected 429s"
    )
    p.add_argument("--stall", type=float, dest="stall_s", help="seconds a stall holds a request")
    p.add_argument("--model-suffix", dest="model_suffix", help="appended to the answered model")
    p.add_argument(
        "--bad-retry-after", dest="bad_retry_after", help='retry_after_bad\'s header ("-5")'
    )
    p.add_argument(
        "--chunk-delay", type=float, dest="chunk_delay_s", help="seconds between stream events"
    )
    p.add_argument(
        "--huge-bytes", type=int, dest="huge_bytes", help="text bytes of huge and gzip_bomb"
    )
    p.add_argument(
        "--answer",
        type=lambda s: tuple(s.split("=", 1)),
        action="append",
        dest="answers",
        metavar="SUBSTRING=TEXT",
        help="answer requests whose last user message contains SUBSTRING with TEXT (repeatable)",
    )
    p.add_argument(
        "--echo-key",
        action="store_const",
        const=True,
        dest="echo_key",
        help="plant the caller's API key in every response",
    )
    return p


if __name__ == "__main__":
    main()
