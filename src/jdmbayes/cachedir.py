"""Where compiled code is cached on disk (the user's cache folder), and how numba compiles it.

PyTensor keeps its compiled C modules and numba functions (and
:mod:`jdmbayes.inference.compiled` its nutpie wrappers) under ``base_compiledir``. Unless the
user chose one (``PYTENSOR_FLAGS`` naming ``base_compiledir`` or ``compiledir``), jdmbayes puts
it in the user's cache folder
(``platformdirs.user_cache_dir('jdmbayes')``, e.g. ``~/.cache/jdmbayes/pytensor`` on Linux;
``JDMBAYES_CACHE_DIR`` overrides). This must run before PyTensor is first imported, so
:mod:`jdmbayes` calls :func:`configure` first of all.

numba's own cache (the planning kernels of :mod:`jdmbayes.planning.laplace_kernel`, compiled
with ``cache=True``) would otherwise sit beside the installed source, in its ``__pycache__``:
``configure`` points ``NUMBA_CACHE_DIR`` at ``<cache folder>/numba/<digest>`` as well, unless
the user set it or numba is already imported. numba keys each entry on its own function's
source file (path, size and time) only, not on the files of the functions it calls: the
kernels call the log-gamma and digamma functions of :mod:`jdmbayes.models.lgamma`, so an
edit there alone would leave them stale. ``<digest>`` is that of every source file of the
package with numba code (:data:`NUMBA_SOURCES`): any edit of one gives a new folder.

PyTensor writes the Python source it generates for each numba-compiled graph and operation
to a file (numba reads it back for type inference and tracebacks). Left to itself it makes a
new file in the system's temporary folder for every function of every compile, warm or cold,
and never removes one: hundreds per ``fit.py`` run. ``configure`` gives it a folder of the
user's cache instead (``generated_src_dir``, ``<cache folder>/pytensor/generated_src``), where
each source is one file named by its content, reused by every later run and pruned by PyTensor
when unused for weeks. A folder the user named in ``PYTENSOR_FLAGS`` (a compile folder, or
``generated_src_dir``) is kept; the other is still set.

``configure`` also sets numba's optimisation level (``NUMBA_OPT``) to
:data:`NUMBA_OPT_LEVEL`, on the same terms: unless the user set it or numba is already
imported (so a notebook that imported PyMC first keeps numba's default). The Dask workers of
the command line's local cluster inherit it.
"""

from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path

# LLVM's optimisation level for what numba compiles (numba's default is 3). Compiling the
# five bundled models took 58.4 s at 1 against 68.6 s at 3, and sampling and the compiled
# LOO run as fast: their time is in calls to log-gamma and its kin, which no level changes
# (benchmarks/RESULTS.md). Level 0 samples 9 to 37 times slower.
# Without fast-math no level may reorder floating-point arithmetic, so the machine code
# computes the same numbers at 1 and at 3, and code cached at either level can be loaded
# at the other (tests/integration/test_compile_cache.py fits both ways).
NUMBA_OPT_LEVEL = "1"


# the package's source files with numba code (cached kernels and the functions they call)
NUMBA_SOURCES = ("models/lgamma.py", "estimands/marginal_kernel.py",
                 "planning/laplace_kernel.py", "inference/convergence.py")


def numba_source_digest() -> str:
    """The first 16 hex digits of the SHA-256 of :data:`NUMBA_SOURCES`' contents."""
    package = Path(__file__).parent
    digest = hashlib.sha256()
    for name in NUMBA_SOURCES:
        digest.update(name.encode() + b"\0" + (package / name).read_bytes())
    return digest.hexdigest()[:16]


def cache_root() -> Path:
    if os.environ.get("JDMBAYES_CACHE_DIR"):
        return Path(os.environ["JDMBAYES_CACHE_DIR"])
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("jdmbayes"))


def configure() -> None:
    """Point PyTensor's ``base_compiledir`` and ``generated_src_dir`` (and numba's
    ``NUMBA_CACHE_DIR``) at the user's cache folder, each unless its library is already
    imported or the user set that folder; set numba's optimisation level on the same terms."""
    if "numba" not in sys.modules and not os.environ.get("NUMBA_CACHE_DIR"):
        os.environ["NUMBA_CACHE_DIR"] = str(cache_root() / "numba" / numba_source_digest())
    if "numba" not in sys.modules and not os.environ.get("NUMBA_OPT"):
        os.environ["NUMBA_OPT"] = NUMBA_OPT_LEVEL
    if "pytensor" in sys.modules:
        return
    flags = os.environ.get("PYTENSOR_FLAGS", "")
    named = {part.split("=", 1)[0].strip() for part in flags.split(",") if "=" in part}
    folder = cache_root() / "pytensor"
    ours = []
    if not named & {"base_compiledir", "compiledir"}:
        ours.append(f"base_compiledir={folder}")
    if "generated_src_dir" not in named:
        ours.append(f"generated_src_dir={folder / 'generated_src'}")
    os.environ["PYTENSOR_FLAGS"] = ",".join(part for part in (flags, *ours) if part)


def compile_folder() -> str:
    """Where compiled code of this process is cached (for the run manifest)."""
    import pytensor

    return str(pytensor.config.base_compiledir)
