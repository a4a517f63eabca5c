import os
import shutil
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "kernel"))

import uml  # noqa: E402


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
