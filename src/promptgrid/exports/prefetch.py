"""Import what a run's export will need while its calls are in flight.

The export's libraries are slow to import (pyarrow and the numpy it loads ~0.3 s, pandas for
the DataFrame ~0.5 s more) and a run does not need them until its last answer is in. A run's
calls mostly wait on the network, so a thread imports them meanwhile and the export finds them
loaded; on a run that keeps the processor busy the import costs the same processor time either
way. Nothing waits for the thread: an ``import`` in the export waits on the module's import
lock until the thread is done with it, and if the thread failed the export's own import raises
the error where it is reported.
"""

from __future__ import annotations

import importlib
import sys
import threading
from collections.abc import Sequence

__all__ = ["prefetch"]

#: Every export reads the store through Arrow's JSON reader (``table.batches``).
_ALWAYS = ("pyarrow.json",)
#: What each format's writer imports on top, for the formats a run writes by default.
_BY_FORMAT = {"parquet": ("pyarrow.parquet",), "csv": ("pyarrow.csv", "pyarrow.compute")}


def prefetch(formats: Sequence[str], *, frame: bool = False) -> threading.Thread | None:
    """Start importing, in a thread, the modules exporting ``formats`` (and building the
    DataFrame, with ``frame``) needs; the thread, or None when they are all loaded."""
    names = [*_ALWAYS, *(m for fmt in formats for m in _BY_FORMAT.get(fmt, ()))]
    if frame:
        names.append("pandas")
    missing = [name for name in dict.fromkeys(names) if name not in sys.modules]
    if not missing:
        return None
    # Not a daemon: a process that ends meanwhile lets the import finish rather than stop a
    # thread inside an extension module's initialisation.
    thread = threading.Thread(target=_import, args=(missing,), name="promptgrid-prefetch")
    thread.start()
    return thread


def _import(names: list[str]) -> None:
    for name in names:
        try:
            importlib.import_module(name)
        except Exception:  # the export imports it again and reports what is wrong
            return
