from sm.lvutil import *
