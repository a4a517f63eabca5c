"""Start and stop the simulator for tests, on a unix socket whose path has no underscore
(XenAPI's UDSTransport turns "_" in the URL host into "/")."""

import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
PLUGINS = os.path.join(ROOT, "xapi-plugin")
SCENARIOS = os.path.join(HERE, "scenarios")
HOSTS = {k: "%s0000000-0000-4000-8000-00000000000%s" % (k, k) for k in "abc"}


class Simulator(object):
    def __init__(self, scenario, env=None, tls=None):
        self.dir = "/tmp/dmhealsim%d%d" % (os.getpid(), int(time.time() * 1000) % 100000)
        os.makedirs(self.dir)
        self.socket = os.path.join(self.dir, "xapi")
        ready = os.path.join(self.dir, "ready")
        full_env = dict(os.environ)
        full_env["PYTHONPATH"] = os.pathsep.join(p for p in (HERE, full_env.get("PYTHONPATH", "")) if p)
        full_env["DMHEAL_XAPI"] = self.socket
        full_env.update(env or {})
        listen = ["--unix", self.socket] if not tls else ["--port", "0", "--tls-cert", tls[0], "--tls-key", tls[1]]
        self.proc = subprocess.Popen(
            [sys.executable, os.path.join(HERE, "simulator.py"), os.path.join(SCENARIOS, scenario),
             "--plugins", PLUGINS, "--ready", ready] + listen, env=full_env)
        deadline = time.time() + 20
        while not os.path.exists(ready):
            if time.time() > deadline or self.proc.poll() is not None:
                self.stop()
                raise RuntimeError("the xapi simulator did not start")
            time.sleep(0.05)
        time.sleep(0.05)
        with open(ready) as f:
            self.port = f.read().strip()

    def url(self):
        return "http://" + self.socket.replace("/", "_") + "/"

    def session(self):
        import XenAPI
        s = XenAPI.Session(self.url(), transport=XenAPI.UDSTransport())
        s.xenapi.login_with_password("root", "", "1.0", "dmheal-tests")
        return s

    def stop(self):
        self.proc.kill()
        self.proc.wait()
        for name in os.listdir(self.dir):
            os.unlink(os.path.join(self.dir, name))
        os.rmdir(self.dir)
