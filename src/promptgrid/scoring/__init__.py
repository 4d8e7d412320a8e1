"""Scores: each declared check of an answer, computed from the stored answers.

- ``checks``  the deterministic kinds (equals, regex, json_schema, close_to, ...)
- ``custom``  ``python: module:function`` scorers and what they may return
- ``judge``   a judge's request (rubric, instructions, structured answer) and its verdict
- ``patterns`` which engine searches a regex in an answer: re2 (linear time) or Python's ``re``
- ``worker``  the child process every score but a judge's runs in, under per-answer time limits
- ``apply``   scoring a run's rows in chunks, and the judge cells a run still needs

Scores are computed from what the store holds, never during a call: a run scores its rows after
its calls (and its judges' calls) are committed, ``promptgrid score`` does the same for a run
that is over, and neither calls the graded model again. Nothing a score meets — an answer, a
verdict, a scorer's code — can end or hang the run: each failure is one row's score error.
"""

from __future__ import annotations

from .checks import ScoreFailure

__all__ = ["ScoreFailure"]
