"""dmheal: find device-mapper ghosts of XenServer / XCP-ng VDIs and heal them safely.

Every function returns the same content as the ``dmheal`` CLI prints with ``--json``. The work
is done by the native module ``dmheal._core`` where it loads, and otherwise (dom0's Python 3.6)
by running the ``dmheal`` binary: same answers either way.
"""

from ._backend import (
    DmhealError,
    backend_name,
    heal,
    inspect,
    journal,
    restore,
    scan,
)

__all__ = [
    "DmhealError",
    "backend_name",
    "heal",
    "inspect",
    "journal",
    "restore",
    "scan",
]
