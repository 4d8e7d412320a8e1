"""A run's race option: the file's ``race:``, settings over it, or none at all.

``run``, ``arun`` and ``plan`` take ``race=``: ``None`` races as the file says (if it has a
``race:``), ``False`` runs the full grid, and a mapping gives settings over the file's
(``{"confidence": 0.99}``), or a whole ``race:`` for a file without one. The CLI's
``--race-score``, ``--race-confidence``, ... and ``--no-race`` are the same option.

A run records the option it was given. A resumed or retried run applies it again, so it races
as it started; giving another option then is refused: changing a race's settings halfway
would void its guarantee (the error bound holds for one set of settings, fixed in advance).
A new run with the new settings reuses every answer already stored (the cache).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from ..config import RunConfig
from ..errors import UsageError
from ..spec import Experiment

__all__ = ["RaceOption", "check_option", "raced", "refuse_batches", "same_option"]

#: ``None`` (the file's), ``False`` (none), or settings over the file's.
RaceOption = Mapping[str, Any] | bool | None
#: The settings a race takes (the file's ``race:`` keys).
KEYS = ("score", "factor", "confidence", "min_cases", "keep", "seed", "bounds")


def check_option(race: object) -> RaceOption:
    """``race`` as given to ``run``/``plan``, checked: None, False, or a mapping of known
    settings (the values are checked with the experiment)."""
    if race is None or race is False:
        return race
    if not isinstance(race, Mapping) or isinstance(race, bool):
        raise UsageError(f"race= takes a mapping of settings, False or None, not {race!r}")
    unknown = sorted(str(k) for k in race if k not in KEYS)
    if unknown:
        raise UsageError(f"race: unknown setting {', '.join(unknown)}; the settings are "
                         f"{', '.join(KEYS)}")  # fmt: skip
    return {str(k): v for k, v in race.items() if v is not None}


def raced(experiment: Experiment, race: RaceOption) -> Experiment:
    """``experiment`` with the settings ``race`` gives over its ``race:`` (itself when nothing
    changes). ``False`` leaves the ``race:`` in place, stored with the run for a replay: the
    run's configuration says not to race (:attr:`RunConfig.race`)."""
    if race is None or isinstance(race, bool):  # False keeps it: ``RunConfig.race`` is None
        return experiment
    current = experiment.to_dict().get("race")
    wanted = {**(current or {}), **dict(race)}
    if wanted == current:
        return experiment
    if "score" not in wanted:
        raise UsageError("which score decides the race? give race={'score': NAME} "
                         "(--race-score NAME): the experiment has no race:")  # fmt: skip
    return experiment.with_race(wanted)


def same_option(given: RaceOption, recorded: Any, run_id: str) -> RaceOption:
    """The option a resumed or retried run races with: the one it recorded; a different one
    given now is refused (see the module docstring)."""
    if given is not None and _canonical(given) != _canonical(recorded):
        was = "(not given)" if recorded is None else _shown(recorded)
        raise UsageError(
            f"run {run_id} was started with race {was}, not {_shown(given)}: a race keeps its "
            "settings to the end (changing them halfway voids its guarantee), so leave the "
            "race options out, or start a new run (answers already stored come from the cache)"
        )
    return recorded if isinstance(recorded, Mapping | bool) else None


def refuse_batches(config: RunConfig) -> None:
    """A race does not run in batch mode: :class:`UsageError` saying why and what to do."""
    if config.race is not None and config.batch_endpoints:
        raise UsageError(
            "race: and batch mode do not mix: a race waits for each round's scores before it "
            "chooses the next round's calls, and a batch answers within 24 h, so a race of "
            f"many rounds could take weeks ({', '.join(config.batch_endpoints)} in batch "
            "mode). Race online (--no-batch), or run the full grid as batches (--no-race)"
        )


def _canonical(option: Any) -> str:
    return json.dumps(option, sort_keys=True, default=str)


def _shown(option: Any) -> str:
    if option is False:
        return "off (--no-race)"
    return ", ".join(f"{k}={v}" for k, v in sorted(dict(option).items()))
