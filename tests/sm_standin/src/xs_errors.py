"""Stand-in of SM's xs_errors.XenError: the error an SR operation fails with, by name and code
(XE_SR_ERRORCODES.xml), an SROSError carrying the code."""


class SROSError(Exception):
    def __init__(self, errno, reason):
        Exception.__init__(self, errno, reason)
        self.errno = errno
        self.reason = reason


CODES = {"LVMMount": (52, "Logical Volume mount/activate error"),
         "FileSRCreate": (60, "Unable to create the file SR")}


def XenError(key, opterr=None):
    code, text = CODES[key]
    if opterr:
        text = "%s [opterr=%s]" % (text, opterr)
    return SROSError(code, text)
