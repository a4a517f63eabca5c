"""Ask the simulator one of its own `sim.*` questions over its unix socket and print the
answer as JSON: `ask.py /run/xapi/xapi sim.logins [param...]`. (The official client cannot
send them: they take no session.)"""

import json
import socket
import sys

try:
    import http.client as httplib
except ImportError:  # pragma: no cover
    import httplib


class UnixConnection(httplib.HTTPConnection):
    def __init__(self, path):
        httplib.HTTPConnection.__init__(self, "localhost")
        self.path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.connect(self.path)


def main():
    path, method = sys.argv[1], sys.argv[2]
    params = sys.argv[3:] or ["OpaqueRef:none"]
    c = UnixConnection(path)
    c.request("POST", "/jsonrpc", json.dumps(
        {"jsonrpc": "2.0", "method": method, "params": params, "id": 1}))
    print(json.dumps(json.loads(c.getresponse().read().decode())["result"]))


if __name__ == "__main__":
    main()
