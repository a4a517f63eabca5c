"""The words the core answers with, as `dmheal contract` lists them (a test checks): what a
caller compares an answer's ``verdict`` and ``action`` with. Their shapes are the TypedDicts in
``_core.pyi``. Importing this costs nothing: the SM hook uses it inside SM's process."""

# inspection["verdict"]
ABSENT = "absent"
HEALTHY = "healthy"
GHOST = "ghost"
IN_USE = "in-use"
SUSPICIOUS = "suspicious"
VERDICTS = (ABSENT, HEALTHY, GHOST, IN_USE, SUSPICIOUS)
NOTHING_TO_HEAL = (ABSENT, HEALTHY)

# heal(...)["action"]
NOTHING_TO_DO = "nothing-to-do"
WOULD_REMOVE = "would-remove"
REMOVED = "removed"
REFUSED = "refused"
FAILED = "failed"
HEAL_ACTIONS = (NOTHING_TO_DO, WOULD_REMOVE, REMOVED, REFUSED, FAILED)

# heal_all(...)["results"][i]["action"]: as a heal's, and
ALREADY_GONE = "already-gone"
BATCH_ACTIONS = (REMOVED, WOULD_REMOVE, REFUSED, ALREADY_GONE, FAILED)
