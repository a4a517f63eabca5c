# Shared body of the stand-in `util` (SM's util.CommandException, pread2, SMlog), loaded by
# both layouts so the two cannot drift apart.
import os
import subprocess
import syslog


class SMException(Exception):
    pass


class CommandException(SMException):
    def __init__(self, code, cmd="", reason="exec failed"):
        self.code = code
        self.cmd = cmd
        self.reason = reason
        Exception.__init__(self, os.strerror(abs(code)) if code else "")


def pread2(cmdlist):
    proc = subprocess.Popen(cmdlist, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            universal_newlines=True)
    out, err = proc.communicate()
    if proc.returncode != 0:
        raise CommandException(proc.returncode, str(cmdlist), err.strip())
    return out


def SMlog(message, ident="SM", priority=syslog.LOG_INFO):
    for line in str(message).split("\n"):
        syslog.openlog(ident, 0, syslog.LOG_LOCAL2)
        syslog.syslog(priority, "[%d] %s" % (os.getpid(), line))
        syslog.closelog()
