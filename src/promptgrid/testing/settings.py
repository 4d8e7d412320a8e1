"""The fault server's settings: their names, defaults and validation, in one place.

Settings arrive three ways — :class:`~promptgrid.testing.FaultServer` keywords, JSON over
``POST /_pg/config`` and command-line flags — so they are checked and normalised here, once,
whatever the route (JSON has no sets, the command line gives strings).
"""

from __future__ import annotations

from typing import Any

from .answers import check_fault

#: Every setting and its default (see :class:`~promptgrid.testing.FaultServer` for meanings).
DEFAULTS: dict[str, Any] = dict(
    rpm=None, tpm=None, latency_s=0.0, fault_rates={}, seed=0, api_keys=None,
    retry_after_s=1.0, stall_s=30.0, model_suffix="", bad_retry_after="-5", echo_key=False,
    chunk_delay_s=0.0, bad_usage="n/a",
    answers={}, batch_complete_after=None, usage={}, huge_bytes=48 * 1024 * 1024,
)  # fmt: skip


def validate(changes: dict[str, Any]) -> dict[str, Any]:
    """``changes`` normalised: ``TypeError`` for an unknown name, ``ValueError`` for a bad value."""
    unknown = set(changes) - DEFAULTS.keys()
    if unknown:
        raise TypeError(f"unknown FaultServer settings: {sorted(unknown)}")
    changes = dict(changes)
    if "fault_rates" in changes:
        rates = {
            k if k == "5xx" else check_fault(k): float(v)
            for k, v in (changes["fault_rates"] or {}).items()
        }
        if any(not 0 <= v <= 1 for v in rates.values()) or sum(rates.values()) > 1 + 1e-9:
            raise ValueError(f"fault_rates must be in [0, 1] and sum to <= 1: {rates}")
        changes["fault_rates"] = rates
    for k in ("rpm", "tpm"):
        if k in changes:
            changes[k] = int(changes[k]) if changes[k] else None  # 0 and None: unlimited
    if changes.get("api_keys") is not None:
        changes["api_keys"] = frozenset(changes["api_keys"])
    if "bad_retry_after" in changes:
        changes["bad_retry_after"] = str(changes["bad_retry_after"])
    if "echo_key" in changes:
        changes["echo_key"] = bool(changes["echo_key"])
    if changes.get("batch_complete_after") is not None:
        polls = int(changes["batch_complete_after"])
        if polls < 1:
            raise ValueError(f"batch_complete_after must be at least 1: {polls}")
        changes["batch_complete_after"] = polls
    if "bad_usage" in changes and changes["bad_usage"] is None:
        raise ValueError("bad_usage must be a JSON value other than null (the real usage)")
    if "answers" in changes:
        answers = changes["answers"] or {}
        if not isinstance(answers, dict) or not all(
            isinstance(k, str) and k and isinstance(v, str) for k, v in answers.items()
        ):
            raise ValueError(f"answers must map non-empty substrings to texts: {answers!r}")
        changes["answers"] = dict(answers)
    if "huge_bytes" in changes:
        size = int(changes["huge_bytes"])
        if size < 0:
            raise ValueError(f"huge_bytes must be 0 or more: {size}")
        changes["huge_bytes"] = size
    if "usage" in changes:
        usage = changes["usage"] or {}
        if not isinstance(usage, dict) or not all(isinstance(k, str) for k in usage):
            raise ValueError(f"usage must map usage fields to values: {usage!r}")
        changes["usage"] = dict(usage)
    return changes
