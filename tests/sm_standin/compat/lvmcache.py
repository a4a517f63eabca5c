from sm.lvmcache import *
