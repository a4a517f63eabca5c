from sm import lvutil
from lvmcache_impl import make

LVMCache = make(lvutil)
