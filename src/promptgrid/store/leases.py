"""A run's lease, as functions over a :class:`~.core.Store` (as :mod:`.batch` is for batch
mode): one process executes a run. Its owner (:class:`~.owners.Owner`) takes the lease
(``runs.owner``), renews it with its heartbeat every ``HEARTBEAT_S`` and gives it up with the
run's status; an owner whose heartbeat is older than ``LEASE_TTL_S``, or whose pid is gone on
this host, holds nothing. Each is one transaction."""

from __future__ import annotations

import time

from ..errors import RunOwned
from .core import Store
from .failures import guarded
from .owners import Owner, alive, beat
from .records import now

__all__ = ["acquire", "heartbeat", "release"]


@guarded("taking the run's lease")
def acquire(store: Store, run_id: str, owner: Owner) -> None:
    """Become the run's owner and mark it running; raise :class:`RunOwned` if another live
    process owns it."""
    with store.transaction():
        row = store.db.execute(
            "SELECT o.owner, o.pid, o.host, o.heartbeat FROM runs r "
            "JOIN owners o ON o.owner = r.owner WHERE r.run_id = ?",
            (run_id,),
        ).fetchone()
        at = time.time()
        if row is not None and row[0] != owner.id and alive(row[1], row[2], row[3], at):
            raise RunOwned(
                f"run {run_id} is being executed by process {row[1]} on {row[2]} (its "
                f"heartbeat is {at - row[3]:.0f} s old); let it finish, or stop it "
                f"(Ctrl-C in its terminal, or `kill {row[1]}`) and resume"
            )
        beat(store.db, owner, at)
        store.db.execute(
            "UPDATE runs SET owner = ?, status = 'running', finished_at = NULL WHERE run_id = ?",
            (owner.id, run_id),
        )


@guarded("renewing the run's heartbeat")
def heartbeat(store: Store, owner: Owner) -> None:
    """Tell other processes this owner is alive."""
    with store.transaction():
        beat(store.db, owner, time.time())


@guarded("releasing the run")
def release(store: Store, run_id: str, owner: Owner, status: str) -> None:
    """Record how the run ended, give up its lease and this owner's claims."""
    with store.transaction():
        store.db.execute(
            "UPDATE runs SET status = ?, finished_at = ?, owner = NULL "
            "WHERE run_id = ? AND (owner = ? OR owner IS NULL)",
            (status, now(), run_id, owner.id),
        )
        store.db.execute("DELETE FROM claims WHERE owner = ?", (owner.id,))
        store.db.execute("DELETE FROM owners WHERE owner = ?", (owner.id,))
