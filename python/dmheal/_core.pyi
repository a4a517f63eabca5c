"""Type stub of the native module (src/python.rs): the contract's in-process backend.

`call` answers JSON text; the shapes below are what its `result` (and the facade's functions)
hold, for type checkers and readers. The words in them (verdicts, actions, reason codes) are
listed by `contract()` and mirrored in `dmheal.outcomes`."""

from typing import Dict, List, Optional

# typing_extensions, not typing: a stub is read only by type checkers (which all know it), and
# this package also ships to dom0's Python 3.6, whose typing has neither name.
from typing_extensions import Literal, TypedDict

__version__: str

def call(request: str) -> str:
    """Run one JSON request ({"op": ..., params...}); the JSON envelope {"result": ...} or
    {"error": {"kind": ..., "message": ...}}. Never raises for the core's errors."""
    ...

def contract() -> str:
    """The operations and their parameters, the reason codes, verdicts and actions, as JSON
    (what `dmheal contract` prints)."""
    ...

Verdict = Literal["absent", "healthy", "ghost", "in-use", "suspicious"]
HealAction = Literal["nothing-to-do", "would-remove", "removed", "refused", "failed"]
BatchAction = Literal["removed", "would-remove", "refused", "already-gone", "failed"]
Layer = Literal["naming", "device-mapper", "lvm", "tapdisk", "sm", "xapi", "holders",
                "openers", "mounts"]
Signal = Literal["clear", "healthy", "in-use", "suspicious"]
HostState = Literal["live", "disabled", "down", "unknown"]
AskStatus = Literal["asked", "skipped", "failed"]

class Reason(TypedDict):
    layer: Layer
    signal: Signal
    code: str  # `<layer>_<state>`, one of contract()["reason_codes"]
    state: str
    message: str

class Facts(TypedDict, total=False):
    """Every layer's view of one DM name (src/facts/mod.rs); the fields a caller usually reads."""
    dm_name: str
    sr_uuid: Optional[str]
    vdi_uuid: Optional[str]
    device: Optional[Dict[str, object]]
    holders: List[Dict[str, object]]
    openers: List[Dict[str, object]]
    mounts: List[Dict[str, object]]
    lvm: Optional[Dict[str, object]]
    tapdisk: Dict[str, object]
    refcount: Dict[str, object]
    xapi: Dict[str, object]

class Inspection(TypedDict):
    target: str
    dm_name: str
    verdict: Verdict
    summary: str
    reasons: List[Reason]
    facts: Facts

class HealOutcome(TypedDict):
    action: HealAction
    message: str
    journal_id: Optional[int]
    lock: Optional[str]
    inspection: Inspection

class ScanCounts(TypedDict):
    mappings: int
    ghost: int
    in_use: int
    suspicious: int
    healthy: int
    inactive_lvs: int

class Scan(TypedDict):
    mappings: List[Inspection]
    counts: ScanCounts
    inactive_lvs: List[str]

class BatchItem(TypedDict, total=False):
    dm_name: str
    sr_uuid: Optional[str]
    vdi_uuid: Optional[str]
    action: BatchAction
    message: str
    journal_id: int

class BatchCounts(TypedDict):
    mappings: int
    ghosts: int
    removed: int
    would_remove: int
    refused: int
    already_gone: int
    failed: int

class BatchOutcome(TypedDict, total=False):
    apply: bool
    results: List[BatchItem]
    counts: BatchCounts
    lock: str

class HostAnswer(TypedDict, total=False):
    """One host's part of `pool scan`, `pool heal`, `vm` and `doctor` (the same shape)."""
    host_uuid: str
    host_name: str
    state: HostState
    version: str
    status: AskStatus
    error: str
    answer: object

class Finding(TypedDict):
    """A finding of `vm` or `doctor`: what it is, and the commands that fix it."""
    code: str
    severity: str
    summary: str
    plan: List[str]
