"""Type stub of the native module (src/python.rs): the contract's in-process backend."""

__version__: str

def call(request: str) -> str:
    """Run one JSON request ({"op": ..., params...}); the JSON envelope {"result": ...} or
    {"error": {"kind": ..., "message": ...}}. Never raises for the core's errors."""
    ...

def contract() -> str:
    """The operations and their parameters, as JSON (what `dmheal contract` prints)."""
    ...
