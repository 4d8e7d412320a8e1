"""Scores: each declared check of an answer, computed from the stored answers.

- ``checks``  the deterministic kinds (equals, regex, json_schema, close_to, ...)
- ``custom``  ``python: module:function`` scorers and what they may return
- ``judge``   a judge's request (rubric, instructions, structured answer) and its verdict
- ``apply``   scoring a run's rows in chunks, and the judge cells a run still needs

Scores are computed from what the store holds, never during a call: a run scores its rows after
its calls (and its judges' calls) are committed, ``promptgrid score`` does the same for a run
that is over, and neither calls the graded model again.
"""

from __future__ import annotations

from .checks import ScoreFailure

__all__ = ["ScoreFailure"]
