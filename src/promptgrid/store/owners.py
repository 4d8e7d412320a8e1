"""Who executes a run: an :class:`Owner` (pid, host, a token) with a lease renewed by its
heartbeat. An owner is alive while its heartbeat is younger than ``LEASE_TTL_S`` and, on this
host, its pid exists."""

from __future__ import annotations

import os
import secrets
import socket
import sqlite3
from dataclasses import dataclass, field

#: Seconds between two heartbeats of a run's owner.
HEARTBEAT_S = 5.0
#: An owner whose heartbeat is older than this is dead, wherever it ran.
LEASE_TTL_S = 30.0


@dataclass(frozen=True)
class Owner:
    """A process that executes runs in a store: ``pid@host`` and a token against pid reuse."""

    pid: int
    host: str
    token: str = field(default_factory=lambda: secrets.token_hex(4))

    @property
    def id(self) -> str:
        """The owner's key in the store."""
        return f"{self.pid}@{self.host}#{self.token}"

    @classmethod
    def me(cls) -> Owner:
        """This process."""
        return cls(os.getpid(), socket.gethostname())

    def __str__(self) -> str:
        return f"process {self.pid} on {self.host}"


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid exists on this host (a zombie counts as dead)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # PermissionError: it exists, as another user's process
        return True
    try:  # a zombie (killed, not yet reaped: no init in a container) is dead for us
        with open(f"/proc/{pid}/stat", "rb") as stat:
            return stat.read().rsplit(b")", 1)[-1].split()[0] != b"Z"
    except (OSError, IndexError):
        return True


def alive(pid: int, host: str, heartbeat: float, at: float) -> bool:
    fresh = at - heartbeat < LEASE_TTL_S
    return fresh and (host != socket.gethostname() or pid_alive(pid))


def beat(db: sqlite3.Connection, owner: Owner, at: float) -> None:
    """Record ``owner``'s heartbeat at ``at`` (in the caller's transaction)."""
    db.execute(
        "INSERT INTO owners (owner, pid, host, heartbeat) VALUES (?,?,?,?) "
        "ON CONFLICT (owner) DO UPDATE SET heartbeat = excluded.heartbeat",
        (owner.id, owner.pid, owner.host, at),
    )
