"""promptgrid: turn a prompt-experiment file into a finished, comparable table.

    import promptgrid
    df = promptgrid.run("experiments/animal_names.yaml", provider="echo")

Names are imported on first use, so ``import promptgrid`` (and the CLI) starts fast. No public
name is also the name of a submodule.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

__version__ = "0.1.0"

_EXPORTS = {
    "Experiment": "api",
    "Plan": "planning",
    "arun": "api",
    "batch_status": "api",
    "cancel_batches": "api",
    "collect": "api",
    "Contrast": "analysis",
    "Decision": "analysis",
    "compare": "analysis",
    "contrast": "analysis",
    "decide": "analysis",
    "load": "api",
    "merge": "api",
    "Merged": "shards",
    "plan": "api",
    "Replay": "race.replay",
    "replay": "api",
    "report": "api",
    "retry": "api",
    "run": "api",
    "score": "api",
    "summary": "analysis",
    "varying": "analysis",
    "AuthenticationFailed": "errors",
    "BadRequest": "errors",
    "ConnectionFailed": "errors",
    "ExitCode": "errors",
    "FatalError": "errors",
    "MalformedResponse": "errors",
    "PromptgridError": "errors",
    "ProviderError": "errors",
    "QuotaExceeded": "errors",
    "RateLimited": "errors",
    "RequestTimeout": "errors",
    "RetryableError": "errors",
    "RunOwned": "errors",
    "RunStopper": "errors",
    "ServerError": "errors",
    "SpecError": "errors",
    "StoreError": "errors",
    "UsageError": "errors",
}

__all__ = sorted(_EXPORTS)

if TYPE_CHECKING:
    from .analysis import Contrast, Decision, compare, contrast, decide, summary, varying
    from .api import (
        Experiment,
        arun,
        batch_status,
        cancel_batches,
        collect,
        load,
        merge,
        plan,
        replay,
        report,
        retry,
        run,
        score,
    )
    from .errors import (
        AuthenticationFailed,
        BadRequest,
        ConnectionFailed,
        ExitCode,
        FatalError,
        MalformedResponse,
        PromptgridError,
        ProviderError,
        QuotaExceeded,
        RateLimited,
        RequestTimeout,
        RetryableError,
        RunOwned,
        RunStopper,
        ServerError,
        SpecError,
        StoreError,
        UsageError,
    )  # fmt: skip
    from .planning import Plan
    from .race.replay import Replay
    from .shards import Merged


def __getattr__(name: str) -> object:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'promptgrid' has no attribute {name!r}")
    from importlib import import_module

    value = getattr(import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*__all__, "__version__"})
