"""promptgrid: turn a prompt-experiment file into a finished, comparable table.

    import promptgrid
    df = promptgrid.run("experiments/animal_names.yaml", provider="echo")

Names are imported on first use, so ``import promptgrid`` (and the CLI) starts fast. No public
name is also the name of a submodule.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .version import __version__

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
    "Standings": "race.standings",
    "standings": "api",
    "summary": "analysis",
    "varying": "analysis",
    "AuthenticationFailed": "errors",
    "BadRequest": "errors",
    "BatchCancelled": "errors",
    "BatchExpired": "errors",
    "BatchFailed": "errors",
    "BatchMissing": "errors",
    "BatchUnanswered": "errors",
    "BatchUnknown": "errors",
    "BudgetExceeded": "errors",
    "ConnectionFailed": "errors",
    "ExitCode": "errors",
    "ExportFailed": "errors",
    "FatalError": "errors",
    "MalformedResponse": "errors",
    "Problem": "errors",
    "PromptgridError": "errors",
    "PromptgridWarning": "errors",
    "ProviderError": "errors",
    "QuotaExceeded": "errors",
    "RateLimited": "errors",
    "RequestTimeout": "errors",
    "ResponseTooLarge": "errors",
    "RetryableError": "errors",
    "RunOwned": "errors",
    "RunStopper": "errors",
    "ServerError": "errors",
    "SpecError": "errors",
    "StoreCorrupt": "errors",
    "StoreError": "errors",
    "StoreFull": "errors",
    "StoreLocked": "errors",
    "StoreReadOnly": "errors",
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
        standings,
    )
    from .errors import (
        AuthenticationFailed,
        BadRequest,
        BatchCancelled,
        BatchExpired,
        BatchFailed,
        BatchMissing,
        BatchUnanswered,
        BatchUnknown,
        BudgetExceeded,
        ConnectionFailed,
        ExitCode,
        ExportFailed,
        FatalError,
        MalformedResponse,
        Problem,
        PromptgridError,
        PromptgridWarning,
        ProviderError,
        QuotaExceeded,
        RateLimited,
        RequestTimeout,
        ResponseTooLarge,
        RetryableError,
        RunOwned,
        RunStopper,
        ServerError,
        SpecError,
        StoreCorrupt,
        StoreError,
        StoreFull,
        StoreLocked,
        StoreReadOnly,
        UsageError,
    )  # fmt: skip
    from .planning import Plan
    from .race.replay import Replay
    from .race.standings import Standings
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
