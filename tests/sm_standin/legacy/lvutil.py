import util
from lvutil_impl import make

activateNoRefcount = make(util)
