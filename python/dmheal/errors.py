"""The facade's one exception type (kept free of imports: the SM hook loads it in SM)."""


class DmhealError(Exception):
    """A failure of the core: ``kind`` is a stable machine name, ``message`` the cause chain."""

    def __init__(self, kind, message):
        Exception.__init__(self, kind, message)
        self.kind = kind
        self.message = message

    def __str__(self):
        return "%s: %s" % (self.kind, self.message)
