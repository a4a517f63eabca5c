"""dmheal: find device-mapper ghosts of XenServer / XCP-ng VDIs and heal them safely.

Every function sends one request of the core's contract (``dmheal contract`` lists them) and
returns the same content the ``dmheal`` CLI prints with ``--json``. The work is done by the
native module ``dmheal._core`` on CPython >= 3.8, and otherwise (dom0's Python 3.6) by the
``dmheal`` binary: same requests, same answers, same errors (``DmhealError.kind``).

Parameters common to every operation: ``journal`` (path), ``lock_timeout`` and
``tool_timeout`` (seconds), ``xapi_session`` (a session to use instead of logging in).
Facade-only: ``force`` ('native' or 'binary': the backend for this call) and ``timeout``
(seconds after which the call is abandoned, whatever the core is doing).

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
    "heal_all",
    "inspect",
    "journal",
    "restore",
    "scan",
    "survey",
    "vm",
    "volumes",
]

# Parameters of the facade that are not the core's (the contract test knows them).
FACADE_ONLY = ("force", "timeout")


def _call(op, params, force=None, timeout=None):
    from . import _backend
    request = {"op": op}
    request.update((k, v) for k, v in params.items() if v is not None)
    return _backend.call(request, force=force, timeout=timeout)


def backend_name(force=None):
    """'native' or 'binary': which backend the next call will use."""
    from . import _backend
    return _backend.backend_name(force)


def inspect(target, journal=None, lock_timeout=None, tool_timeout=None, xapi_session=None,
            force=None, timeout=None):
    """Every layer's view of one volume (LV path, DM name or VDI uuid) and the verdict."""
    return _call("inspect", dict(target=target, journal=journal, lock_timeout=lock_timeout,
                                 tool_timeout=tool_timeout, xapi_session=xapi_session),
                 force, timeout)


def scan(journal=None, lock_timeout=None, tool_timeout=None, xapi_session=None,
         force=None, timeout=None):
    """Every SR-VG mapping and every SR LV on this host."""
    return _call("scan", dict(journal=journal, lock_timeout=lock_timeout,
                              tool_timeout=tool_timeout, xapi_session=xapi_session),
                 force, timeout)


def heal(target, apply=False, record=False, activating=False, budget=None, in_sm_process=False,
         journal=None, lock_timeout=None, tool_timeout=None, xapi_session=None,
         force=None, timeout=None):
    """Remove a proven ghost; a dry run unless ``apply``. ``record`` journals dry runs and
    refusals too; ``activating``: called from SM's own activation of the volume; ``budget``:
    seconds the whole heal may take (no removal starts after it); ``in_sm_process``: the
    caller runs inside SM (the in-process core then never opens SM's fcntl lock files)."""
    return _call("heal", dict(target=target, apply=apply, record=record, activating=activating,
                              budget=budget, in_sm_process=in_sm_process, journal=journal,
                              lock_timeout=lock_timeout, tool_timeout=tool_timeout,
                              xapi_session=xapi_session),
                 force, timeout)


def heal_all(apply=False, budget=None, journal=None, lock_timeout=None, tool_timeout=None,
             xapi_session=None, force=None, timeout=None):
    """Every ghost a scan of this host proves, each decided again under SM's lock and removed
    as ``heal`` does; a dry run unless ``apply``. ``budget``: seconds the whole batch may take
    (no removal starts after it; the ghosts left are reported refused)."""
    return _call("heal_all", dict(apply=apply, budget=budget, journal=journal,
                                  lock_timeout=lock_timeout, tool_timeout=tool_timeout,
                                  xapi_session=xapi_session),
                 force, timeout)


def journal(journal=None, lock_timeout=None, tool_timeout=None, xapi_session=None,
            force=None, timeout=None):
    """The journal's entries, oldest first."""
    return _call("journal", dict(journal=journal, lock_timeout=lock_timeout,
                                 tool_timeout=tool_timeout, xapi_session=xapi_session),
                 force, timeout)


def restore(id, journal=None, lock_timeout=None, tool_timeout=None, xapi_session=None,
            force=None, timeout=None):
    """Recreate the mapping that journal entry ``id`` removed."""
    return _call("restore", dict(id=str(id), journal=journal, lock_timeout=lock_timeout,
                                 tool_timeout=tool_timeout, xapi_session=xapi_session),
                 force, timeout)


def doctor(apply=False, host_timeout=None, journal=None, lock_timeout=None, tool_timeout=None,
           xapi_session=None, force=None, timeout=None):
    """Cross-layer findings, pool-wide (SRs judged by their storage, PBDs, VMs, VDIs,
    mappings); ``apply``: only what ``restore`` undoes exactly; ``host_timeout``: seconds each
    other host may take to answer its survey."""
    return _call("doctor", dict(apply=apply, host_timeout=host_timeout, journal=journal,
                                lock_timeout=lock_timeout, tool_timeout=tool_timeout,
                                xapi_session=xapi_session),
                 force, timeout)


def survey(journal=None, lock_timeout=None, tool_timeout=None, xapi_session=None,
           force=None, timeout=None):
    """What this host's storage says about SRs (LVM's PVs and VGs, SR mounts, udev
    locations), its domains and its tapdisks: what ``doctor`` asks each host."""
    return _call("survey", dict(journal=journal, lock_timeout=lock_timeout,
                                tool_timeout=tool_timeout, xapi_session=xapi_session),
                 force, timeout)


def vm(vm, apply=False, host_timeout=None, journal=None, lock_timeout=None, tool_timeout=None,
       xapi_session=None, force=None, timeout=None):
    """Why a VM (uuid or name-label) will not start: its disks, every host's mappings of them
    and its domain, the blocking finding first with the next step; ``apply`` heals the proven
    ghosts on the hosts that hold them; ``host_timeout``: seconds each host may take."""
    return _call("vm", dict(vm=vm, apply=apply, host_timeout=host_timeout, journal=journal,
                            lock_timeout=lock_timeout, tool_timeout=tool_timeout,
                            xapi_session=xapi_session),
                 force, timeout)


def volumes(vdis, domid=None, journal=None, lock_timeout=None, tool_timeout=None,
            xapi_session=None, force=None, timeout=None):
    """This host's mappings of ``vdis`` (a list of VDI uuids, or their text separated by
    commas) and, given ``domid``, whether that domain runs here."""
    if isinstance(vdis, (list, tuple)):
        vdis = list(vdis)
    return _call("volumes", dict(vdis=vdis, domid=domid, journal=journal,
                                 lock_timeout=lock_timeout, tool_timeout=tool_timeout,
                                 xapi_session=xapi_session),
                 force, timeout)
