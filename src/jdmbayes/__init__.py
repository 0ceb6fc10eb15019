"""jdmbayes: hierarchical Bayesian models for small clinical series.

Data flows one way: read (:mod:`jdmbayes.io`) -> validate (:mod:`jdmbayes.validate`) ->
index (:mod:`jdmbayes.indexing`) -> build model (:mod:`jdmbayes.models`) -> sample
(:mod:`jdmbayes.sampling`) -> diagnose (:mod:`jdmbayes.diagnostics`) -> summarise
(:mod:`jdmbayes.summarise`) -> write (:mod:`jdmbayes.runfolder`).
"""

__version__ = "0.2.0"

from .cachedir import configure as _configure_cache

_configure_cache()   # before PyTensor is imported: compiled code goes to the user's cache

from .api import Fit, fit, load_series, sensitivity  # noqa: E402  (the public front door)

__all__ = ["Fit", "fit", "load_series", "sensitivity", "__version__"]
