"""Stand-in of SM's util (drivers/util.py, sm/core/util.py): CommandException, pread/pread2,
SMlog, the local xapi session and this host's uuid."""
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


def pread(cmdlist, quiet=False):
    proc = subprocess.Popen(cmdlist, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            universal_newlines=True)
    out, err = proc.communicate()
    if proc.returncode != 0:
        raise CommandException(proc.returncode, str(cmdlist), (err or out).strip())
    return out


def pread2(cmdlist, quiet=False):
    return pread(cmdlist, quiet=quiet)


def pathexists(path):
    try:
        os.lstat(path)
        return True
    except OSError:
        return False


def SMlog(message, ident="SM", priority=syslog.LOG_INFO):
    for line in str(message).split("\n"):
        syslog.openlog(ident, 0, syslog.LOG_LOCAL2)
        syslog.syslog(priority, "[%d] %s" % (os.getpid(), line))
        syslog.closelog()


def get_localAPI_session():
    """As SM: root with an empty password over xapi's local unix socket."""
    import XenAPI
    path = os.environ.get("SM_STANDIN_XAPI", "/var/lib/xcp/xapi")
    session = XenAPI.Session("http://%s/" % path.replace("/", "_"), transport=XenAPI.UDSTransport())
    session.xenapi.login_with_password("root", "", "", "SM")
    return session


def get_this_host():
    with open(os.environ.get("SM_STANDIN_INVENTORY", "/etc/xensource-inventory")) as f:
        for line in f:
            if line.startswith("INSTALLATION_UUID"):
                return line.split("=", 1)[1].strip().strip("'\"")
    raise SMException("no INSTALLATION_UUID")


def attached_as(sm_config):
    for key, value in sm_config.items():
        if key.startswith("host_") and value in ("RW", "RO"):
            return value
    return None
