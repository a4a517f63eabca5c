"""Type stub of the native module (src/python.rs). Each function returns a JSON string."""

from os import PathLike
from typing import Optional, Union

__version__: str

class CoreError(Exception):
    """args: (kind, message)"""

_Path = Optional[Union[str, PathLike]]

def inspect(target: str, journal: _Path = None) -> str: ...
def scan(journal: _Path = None) -> str: ...
def heal(target: str, apply: bool = False, journal: _Path = None, lock_timeout: Optional[float] = None,
         record: bool = False, in_sm_process: bool = False, tool_timeout: Optional[float] = None) -> str: ...
def journal(journal: _Path = None) -> str: ...
def restore(id: str, journal: _Path = None, lock_timeout: Optional[float] = None) -> str: ...
