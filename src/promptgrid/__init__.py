"""promptgrid: turn a prompt-experiment file into a finished, comparable table.

    import promptgrid
    df = promptgrid.run("experiments/animal_names.yaml", provider="echo")

Names are imported on first use, so ``import promptgrid`` (and the CLI) starts fast.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    "Experiment": "spec",
    "Plan": "api",
    "arun": "api",
    "compare": "comparison",
    "load": "api",
    "plan": "api",
    "retry": "api",
    "run": "api",
    "summary": "comparison",
    "varying": "comparison",
    "AuthenticationFailed": "errors",
    "BadRequest": "errors",
    "ConnectionFailed": "errors",
    "FatalError": "errors",
    "MalformedResponse": "errors",
    "PromptgridError": "errors",
    "ProviderError": "errors",
    "QuotaExceeded": "errors",
    "RateLimited": "errors",
    "RequestTimeout": "errors",
    "RetryableError": "errors",
    "RunStopper": "errors",
    "ServerError": "errors",
    "SpecError": "errors",
    "StoreError": "errors",
    "UsageError": "errors",
}

__all__ = sorted(_EXPORTS)

if TYPE_CHECKING:
    from .api import Plan, arun, load, plan, retry, run
    from .comparison import compare, summary, varying
    from .errors import (
        AuthenticationFailed,
        BadRequest,
        ConnectionFailed,
        FatalError,
        MalformedResponse,
        PromptgridError,
        ProviderError,
        QuotaExceeded,
        RateLimited,
        RequestTimeout,
        RetryableError,
        RunStopper,
        ServerError,
        SpecError,
        StoreError,
        UsageError,
    )  # fmt: skip
    from .spec import Experiment


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'promptgrid' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
