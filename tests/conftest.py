import errno
import glob
import os
import shutil
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "kernel"))

import uml  # noqa: E402


def _host_has_device_mapper():
    """Whether this host's kernel answers on /dev/mapper/control. A node alone proves nothing:
    running lvm or dmsetup on a host without dm-mod leaves one behind (ENODEV on open)."""
    try:
        os.close(os.open("/dev/mapper/control", os.O_RDWR))
        return True
    except OSError as e:
        return e.errno not in (errno.ENOENT, errno.ENODEV, errno.ENXIO)


HOST_HAS_DEVICE_MAPPER = _host_has_device_mapper()


def _find_binary():
    env = os.environ.get("DMHEAL_BIN")
    if env:
        return env
    for profile in ("x86_64-unknown-linux-gnu/release", "release", "debug"):
        p = os.path.join(ROOT, "target", profile, "dmheal")
        if os.path.exists(p):
            return p
    return shutil.which("dmheal")


@pytest.fixture(scope="session")
def dmheal_bin():
    path = _find_binary()
    if not path:
        pytest.fail("no dmheal binary: run `cargo build --release` or set DMHEAL_BIN")
    return path


@pytest.fixture(scope="session")
def kernel():
    """The user-mode kernel runner. With DMHEAL_REQUIRE_KERNEL=1 (the test command sets it) a
    missing kernel is a failure, not a skip: these tests are the product's proof.
    `scripts/test --quick` sets DMHEAL_SKIP_KERNEL=1: every test that boots one skips."""
    if os.environ.get("DMHEAL_SKIP_KERNEL") == "1":
        pytest.skip("quick mode (DMHEAL_SKIP_KERNEL=1): no user-mode kernel")
    why = uml.available()
    if why:
        if os.environ.get("DMHEAL_REQUIRE_KERNEL") == "1":
            pytest.fail("real-kernel tests cannot run: " + why)
        pytest.skip(why)
    return uml


def run_cli(binary, *args, **kw):
    env = dict(os.environ)
    env.update(kw.pop("env", {}))
    return subprocess.run([binary] + list(args), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          universal_newlines=True, env=env, timeout=60, **kw)


def _find_python(version, env):
    """One of dom0's interpreters: a real CPython `version` (pyenv's on these machines), or
    None."""
    if os.environ.get(env):
        return os.environ[env]
    roots = [os.environ.get("PYENV_ROOT") or "", os.path.expanduser("~/.pyenv")]
    for root in roots:
        found = sorted(glob.glob(os.path.join(root, "versions", version + "*", "bin", "python" + version)))
        if found:
            return found[-1]
    return shutil.which("python" + version)


# XenServer 8.4 / XCP-ng 8.3 run SM and plugins on 3.6; Citrix Hypervisor 8.2 CU1 on 2.7.
PYTHON36 = _find_python("3.6", "DMHEAL_PYTHON36")
PYTHON36_MISSING = "no CPython 3.6 on this machine (pyenv install 3.6, or set DMHEAL_PYTHON36)"
PYTHON27 = _find_python("2.7", "DMHEAL_PYTHON27")
PYTHON27_MISSING = "no CPython 2.7 on this machine (pyenv install 2.7, or set DMHEAL_PYTHON27)"
# The package's source, for interpreters that do not have the wheel installed (3.6 never can).
PACKAGE_SOURCE = os.path.join(ROOT, "python")


@pytest.fixture(scope="session")
def python36():
    if not PYTHON36:
        pytest.skip(PYTHON36_MISSING)
    return PYTHON36


def dom0_pythons():
    """dom0's Pythons as pytest params: 2.7 (8.2) and 3.6 (8.3 / 8.4), each on the binary;
    skipped, visibly, only where one is not installed."""
    return [
        pytest.param(PYTHON27, id="py27", marks=pytest.mark.skipif(not PYTHON27, reason=PYTHON27_MISSING)),
        pytest.param(PYTHON36, id="py36", marks=pytest.mark.skipif(not PYTHON36, reason=PYTHON36_MISSING)),
    ]


def interpreters():
    """The Pythons the adapters must run on: this one (3.8+, the native module) and dom0's 3.6
    and 2.7 (the binary), each a pytest param; skipped, visibly, only where none is installed."""
    return [pytest.param(None, id="py3")] + dom0_pythons()


def guest_env(python):
    """Environment for a guest script that runs the adapters under `python` (None: this one)."""
    if python is None:
        return {}
    return {"PYTHON": python, "PYTHONPATH": PACKAGE_SOURCE, "DMHEAL_PYTHON": python}
