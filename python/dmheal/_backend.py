"""Choose how to reach the Rust core: in-process (``dmheal._core``) or the ``dmheal`` binary.

``DMHEAL_BACKEND=native|binary`` forces one; otherwise the native module is used when it
imports (CPython >= 3.8) and the binary when it does not (dom0's Python 3.6).
``DMHEAL_BIN`` names the binary; otherwise it is looked up on PATH, then in /usr/bin.
"""

import json
import os
import shutil
import subprocess

from .errors import DmhealError

# Exit codes of the binary that carry a normal JSON result (see `dmheal --help`).
_RESULT_EXITS = (0, 3, 4, 5)


def _load_native():
    try:
        from . import _core  # noqa: F401  (absent on Python 3.6)
    except ImportError:
        return None
    return _core


def _choose(force=None):
    wanted = force or os.environ.get("DMHEAL_BACKEND", "")
    if wanted not in ("", "native", "binary"):
        raise DmhealError("bad_input", "DMHEAL_BACKEND must be 'native' or 'binary', not %r" % wanted)
    native = None if wanted == "binary" else _load_native()
    if wanted == "native" and native is None:
        raise DmhealError("no_backend", "DMHEAL_BACKEND=native but dmheal._core cannot be imported")
    return native


def backend_name():
    """'native' or 'binary': which backend the next call will use."""
    return "binary" if _choose() is None else "native"


def _binary():
    path = os.environ.get("DMHEAL_BIN") or shutil.which("dmheal") or "/usr/bin/dmheal"
    if not os.access(path, os.X_OK):
        raise DmhealError("no_backend", "the dmheal binary was not found (set DMHEAL_BIN)")
    return path


def _run_binary(args, journal=None, lock_timeout=None, tool_timeout=None):
    argv = [_binary(), "--json"]
    if tool_timeout is not None:
        argv += ["--tool-timeout", str(tool_timeout)]
    if journal is not None:
        argv += ["--journal", str(journal)]
    if lock_timeout is not None:
        argv += ["--lock-timeout", str(lock_timeout)]
    argv += list(args)
    proc = subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True
    )
    out, err = proc.communicate()
    try:
        value = json.loads(out) if out.strip() else None
    except ValueError:
        value = None
    if proc.returncode in _RESULT_EXITS and value is not None and "error" not in value:
        return value
    if isinstance(value, dict) and isinstance(value.get("error"), dict):
        raise DmhealError(value["error"].get("kind", "internal"), value["error"].get("message", ""))
    if proc.returncode == 2:
        raise DmhealError("bad_input", err.strip())
    raise DmhealError("internal", "dmheal exited %d: %s" % (proc.returncode, err.strip()))


def _call_native(func, *args, **kwargs):
    core = _load_native()
    try:
        return json.loads(getattr(core, func)(*args, **kwargs))
    except core.CoreError as e:
        kind, message = e.args
        raise DmhealError(kind, message)


def inspect(target, journal=None):
    """Every layer's view of one volume (LV path, DM name or VDI uuid) and the verdict."""
    if _choose() is None:
        return _run_binary(["inspect", "--", target], journal)
    return _call_native("inspect", target, journal=journal)


def scan(journal=None):
    """Every SR-VG mapping and every SR LV on this host."""
    if _choose() is None:
        return _run_binary(["scan"], journal)
    return _call_native("scan", journal=journal)


def heal(target, apply=False, journal=None, lock_timeout=None, record=False,
         in_sm_process=False, tool_timeout=None, force=None):
    """Remove a proven ghost; a dry run unless ``apply`` is true. ``record`` journals dry runs
    and refusals too; ``in_sm_process`` tells the native core it runs inside SM; ``force``
    picks the backend for this call ('native' or 'binary')."""
    if _choose(force) is None:
        args = ["heal"] + (["--apply"] if apply else []) + (["--record"] if record else [])
        return _run_binary(args + ["--", target], journal, lock_timeout, tool_timeout)
    return _call_native("heal", target, apply=apply, journal=journal, lock_timeout=lock_timeout,
                        record=record, in_sm_process=in_sm_process, tool_timeout=tool_timeout)


def journal(journal=None):
    """The journal's entries, oldest first."""
    if _choose() is None:
        return _run_binary(["journal"], journal)
    return _call_native("journal", journal=journal)


def restore(entry_id, journal=None, lock_timeout=None):
    """Recreate the mapping that journal entry ``entry_id`` removed."""
    if _choose() is None:
        return _run_binary(["restore", "--", str(entry_id)], journal, lock_timeout)
    return _call_native("restore", str(entry_id), journal=journal, lock_timeout=lock_timeout)


def doctor(apply=False, journal=None):
    """Cross-layer findings with evidence and plans; ``apply`` carries out the safe subset."""
    if _choose() is None:
        return _run_binary(["doctor"] + (["--apply"] if apply else []), journal)
    return _call_native("doctor", apply=apply, journal=journal)
