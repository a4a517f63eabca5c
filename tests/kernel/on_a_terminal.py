"""Run a command with its stderr on a pseudo-terminal (as an admin's shell gives it) and its
stdout where ours goes; everything the terminal receives is appended to argv[1] as it comes,
so another process can watch it. Exits with the command's exit code.

    on_a_terminal.py TERMINAL_LOG cmd args...
"""

import os
import pty
import subprocess
import sys

log, argv = sys.argv[1], sys.argv[2:]
master, slave = pty.openpty()
child = subprocess.Popen(argv, stderr=slave)
os.close(slave)
with open(log, "ab", buffering=0) as out:
    while True:
        try:
            chunk = os.read(master, 4096)
        except OSError:  # EIO: every writer of the terminal is gone
            break
        if not chunk:
            break
        out.write(chunk)
sys.exit(child.wait())
