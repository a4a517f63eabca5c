"""How a request reaches the Rust core: in-process (``dmheal._core.call``) or the ``dmheal``
binary (``dmheal call``, request on stdin). Both take the contract's JSON request and answer
with the same envelope, ``{"result": ...}`` or ``{"error": {"kind", "message"}}``; this module
only moves it and reads it, whatever the binary's exit code.

``DMHEAL_BACKEND=native|binary`` forces one; otherwise the native module is used when it
imports on CPython >= 3.8 (PyO3's abi3 floor) and the binary otherwise: on dom0's Python 3.6
the binary serves even where the native module happens to import. ``DMHEAL_BIN`` names the
binary; otherwise it is looked up on PATH, then in /usr/bin.

When the in-process core refuses a request that only a separate process may carry out (kind
``needs_own_process``: SM's fcntl lock on an 8.2-style host), the binary carries it out.
"""

import atexit
import errno
import json
import os
import sys
import threading
import time

# subprocess, select and signal are imported where the binary is used: the native path, in
# SM's process on a VM start, needs none of them (subprocess alone takes longer to import than
# a heal's decision when nothing else in the process has imported it).

from .errors import DmhealError


def _monotonic():
    clock = getattr(time, "monotonic", None)  # Python 2.7 has none: wall time serves
    return clock() if clock else time.time()


def _which(name):
    """The first executable `name` on PATH (shutil.which, which Python 2.7 lacks)."""
    for d in os.environ.get("PATH", "").split(os.pathsep):
        p = os.path.join(d, name)
        if d and os.path.isfile(p) and os.access(p, os.X_OK):
            return p
    return None

# PyO3's abi3-py38 module: below this, never loaded even if it happens to import.
NATIVE_MIN = (3, 8)


def _load_native():
    if sys.version_info < NATIVE_MIN:
        return None
    try:
        from . import _core  # noqa: F401  (absent where only the binary is installed)
    except ImportError:
        return None
    return _core


def _choose(force=None):
    """'native' or 'binary' for the next call."""
    wanted = force or os.environ.get("DMHEAL_BACKEND", "")
    if wanted not in ("", "native", "binary"):
        raise DmhealError("bad_input", "DMHEAL_BACKEND must be 'native' or 'binary', not %r" % wanted)
    if wanted == "binary":
        return "binary"
    if _load_native() is not None:
        return "native"
    if wanted == "native":
        why = ("Python %d.%d is older than %d.%d, the native module's floor"
               % (sys.version_info[0], sys.version_info[1], NATIVE_MIN[0], NATIVE_MIN[1])
               if sys.version_info < NATIVE_MIN else "dmheal._core cannot be imported")
        raise DmhealError("no_backend", "DMHEAL_BACKEND=native, but %s" % why)
    return "binary"


def backend_name(force=None):
    """'native' or 'binary': which backend the next call will use."""
    return _choose(force)


def _binary_path():
    path = os.environ.get("DMHEAL_BIN") or _which("dmheal") or "/usr/bin/dmheal"
    if not os.access(path, os.X_OK):
        raise DmhealError("no_backend", "the dmheal binary was not found (set DMHEAL_BIN)")
    return path


def _timed_out(what, timeout):
    return DmhealError("timeout", "%s did not answer within %.1f s and was abandoned" % (what, timeout))


def _reap(proc):
    """Wait for a killed process in the background: one stuck in D state cannot die until
    its I/O returns, and nothing here may wait for that."""
    t = threading.Thread(target=proc.wait, name="dmheal-reap")
    t.daemon = True
    t.start()


def _communicate(proc, text, timeout):
    """Send `text`, read stdout and stderr to the end, by `timeout` (None: no bound); None at
    the deadline. One path for every Python (2.7 has no communicate(timeout=))."""
    import select
    deadline = None if timeout is None else _monotonic() + timeout
    try:
        proc.stdin.write(text)
        proc.stdin.close()
    except (IOError, OSError) as e:  # it exited without reading: its answer says why
        if e.errno != errno.EPIPE:
            raise
    chunks = {proc.stdout.fileno(): [], proc.stderr.fileno(): []}
    open_fds = list(chunks)
    while open_fds:
        wait = None if deadline is None else deadline - _monotonic()
        if wait is not None and wait <= 0:
            return None
        try:
            ready, _, _ = select.select(open_fds, [], [], wait)
        except (select.error, OSError) as e:
            if e.args and e.args[0] == errno.EINTR:
                continue
            raise
        for fd in ready:
            data = os.read(fd, 65536)
            if data:
                chunks[fd].append(data)
            else:
                open_fds.remove(fd)
    left = None if deadline is None else max(0.0, deadline - _monotonic())
    if left is None:
        proc.wait()
    else:
        while proc.poll() is None:
            if _monotonic() >= deadline:
                return None
            time.sleep(min(0.01, left))
    text_of = lambda fd: b"".join(chunks[fd]).decode("utf-8", "replace")
    return text_of(proc.stdout.fileno()), text_of(proc.stderr.fileno())


def _via_binary(text, timeout):
    """The envelope `dmheal call` prints for request `text`."""
    import signal
    import subprocess
    own_group = {"start_new_session": True} if sys.version_info[0] >= 3 else {"preexec_fn": os.setsid}
    proc = subprocess.Popen(
        [_binary_path(), "call"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, universal_newlines=True,
        **own_group  # its own process group: a deadline kills all of it
    )
    answer = _communicate(proc, text, timeout)
    if answer is None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except OSError:
            pass
        for stream in (proc.stdin, proc.stdout, proc.stderr):
            try:
                stream.close()
            except (OSError, ValueError, IOError):
                pass
        _reap(proc)
        raise _timed_out("the dmheal binary", timeout)
    out, err = answer
    try:
        envelope = json.loads(out)
    except ValueError:
        envelope = None
    if not isinstance(envelope, dict) or not ("result" in envelope or "error" in envelope):
        raise DmhealError("internal", "dmheal exited %d without an answer: %s"
                          % (proc.returncode, (err or out).strip()[-2000:]))
    return envelope


# In-process calls given up on, still running. The interpreter must not finalize under one:
# a thread inside the Rust core that comes back to a finalizing interpreter is ended by
# pthread_exit, which unwinds through Rust frames and kills the process (SIGSEGV/SIGILL) - SM's
# process, on a VM start. The core bounds its own waits, so waiting for them at exit (bounded)
# costs little.
_ABANDONED = []
EXIT_WAIT = 10.0


def _wait_for_abandoned():
    deadline = _monotonic() + EXIT_WAIT
    for t in _ABANDONED:
        t.join(max(0.0, deadline - _monotonic()))


atexit.register(_wait_for_abandoned)


def _via_native(core, text, timeout):
    """The envelope `_core.call` returns for request `text`; with a timeout, the call runs on
    a thread that is abandoned if it does not return in time (the core bounds its own waits;
    this is the last line)."""
    if timeout is None:
        return json.loads(core.call(text))
    box = {}
    # Set as soon as the answer is in: the caller goes on while the thread winds down (its
    # exit costs a few milliseconds in some kernels, and a VM start waits on this).
    done = threading.Event()

    def run():
        try:
            box["out"] = core.call(text)
        except BaseException as e:  # a PanicException is not an Exception
            box["raised"] = e
        finally:
            done.set()

    t = threading.Thread(target=run, name="dmheal-core")
    t.daemon = True
    t.start()
    if not done.wait(timeout):
        _ABANDONED.append(t)
        raise _timed_out("the in-process core", timeout)
    if "raised" in box:
        raise DmhealError("internal", "the native module failed: %r" % (box["raised"],))
    return json.loads(box["out"])


def call(request, force=None, timeout=None):
    """Send `request` (a dict, the contract's) to the core; its result, or DmhealError."""
    text = json.dumps(request)
    started = _monotonic()
    backend = _choose(force)
    if backend == "native":
        envelope = _via_native(_load_native(), text, timeout)
        error = envelope.get("error") or {}
        if error.get("kind") == "needs_own_process":
            left = None if timeout is None else max(0.0, timeout - (_monotonic() - started))
            envelope = _via_binary(text, left)
    else:
        envelope = _via_binary(text, timeout)
    if "result" in envelope:
        return envelope["result"]
    error = envelope.get("error")
    if not isinstance(error, dict):
        raise DmhealError("internal", "an envelope with neither result nor error: %r" % (envelope,))
    raise DmhealError(error.get("kind", "internal"), error.get("message", ""))


def contract(force=None):
    """The core's contract (operations and parameters), from the chosen backend."""
    if _choose(force) == "native":
        return json.loads(_load_native().contract())
    import subprocess
    out = subprocess.check_output([_binary_path(), "contract"], universal_newlines=True)
    return json.loads(out)
