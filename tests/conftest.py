import errno
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
    missing kernel is a failure, not a skip: these tests are the product's proof."""
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
