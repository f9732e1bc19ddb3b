"""Imported first by the package: keeps one known third-party warning out of every process.

pyHanko imports cryptography's DSA names at import time, and cryptography >= 45 warns
about that in every process that loads pyHanko (the CLI, ``serve`` workers, the issuing
pool's spawned workers, the benchmarks). It is not ours and not actionable by a user, and
it would break the CLI's one-line error contract. The filter is scoped to that message
from pyHanko's modules; every other warning is left alone.
"""

import warnings

warnings.filterwarnings("ignore", message="DSA is deprecated", module=r"pyhanko\.")
