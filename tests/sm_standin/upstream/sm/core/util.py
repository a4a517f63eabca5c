import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))))
from util_impl import CommandException, SMException, SMlog, pread2  # noqa: E402,F401
