from sm.core.util import *
