"""dmheal: find device-mapper ghosts of XenServer / XCP-ng VDIs and heal them safely.

Every function returns the same content as the ``dmheal`` CLI prints with ``--json``. The work
is done by the native module ``dmheal._core`` where it loads, and otherwise (dom0's Python 3.6)
by running the ``dmheal`` binary: same answers either way.

Importing this package is cheap on purpose (the SM hook's .pth imports it in every Python
process): the backend is loaded on the first call.
"""

from .errors import DmhealError

# Kept equal to Cargo.toml's version (a test checks).
__version__ = "0.1.0"

__all__ = [
    "DmhealError",
    "__version__",
    "backend_name",
    "doctor",
    "heal",
    "inspect",
    "journal",
    "restore",
    "scan",
]


def _load():
    from . import _backend as backend
    return backend


def backend_name():
    """'native' or 'binary': which backend the next call will use."""
    return _load().backend_name()


def inspect(target, journal=None):
    """Every layer's view of one volume (LV path, DM name or VDI uuid) and the verdict."""
    return _load().inspect(target, journal=journal)


def scan(journal=None):
    """Every SR-VG mapping and every SR LV on this host."""
    return _load().scan(journal=journal)


def heal(target, apply=False, journal=None, lock_timeout=None):
    """Remove a proven ghost; a dry run unless ``apply`` is true."""
    return _load().heal(target, apply=apply, journal=journal, lock_timeout=lock_timeout)


def journal(journal=None):
    """The journal's entries, oldest first."""
    return _load().journal(journal=journal)


def restore(entry_id, journal=None, lock_timeout=None):
    """Recreate the mapping that journal entry ``entry_id`` removed."""
    return _load().restore(entry_id, journal=journal, lock_timeout=lock_timeout)


def doctor(apply=False, journal=None):
    """Cross-layer findings (SRs, PBDs, VMs, VDIs, mappings); ``apply``: the safe subset."""
    return _load().doctor(apply=apply, journal=journal)
