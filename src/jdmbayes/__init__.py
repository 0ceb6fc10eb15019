"""jdmbayes: hierarchical Bayesian models for small clinical series.

Data flows one way, and the subpackages name the steps (``ARCHITECTURE.md``): read and validate
(:mod:`jdmbayes.data`) -> index and build (:mod:`jdmbayes.models`) -> sample, diagnose and
summarise (:mod:`jdmbayes.inference`, with :mod:`jdmbayes.estimands` for the quantities) ->
write (:mod:`jdmbayes.results`). :mod:`jdmbayes.kinds` runs one model of a registered kind end
to end, :mod:`jdmbayes.batch` many at once, :mod:`jdmbayes.planning` the next study's assurance;
:mod:`jdmbayes.api` is the front door.
"""

from jdmbayes.cachedir import configure as _configure_cache
from jdmbayes.versions import __version__

_configure_cache()   # before PyTensor is imported: compiled code goes to the user's cache

from jdmbayes.api import (  # noqa: E402  (the public front door)
    Fit,
    compare,
    fit,
    load_series,
    plan,
    sensitivity,
)

__all__ = ["Fit", "compare", "fit", "load_series", "plan", "sensitivity", "__version__"]
