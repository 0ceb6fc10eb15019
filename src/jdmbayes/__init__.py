"""jdmbayes: hierarchical Bayesian models for small clinical series.

Data flows one way: read (:mod:`jdmbayes.io`) -> validate (:mod:`jdmbayes.validate`) ->
index (:mod:`jdmbayes.indexing`) -> build model (:mod:`jdmbayes.models`) -> sample
(:mod:`jdmbayes.sampling`) -> diagnose (:mod:`jdmbayes.diagnostics`) -> summarise
(:mod:`jdmbayes.summarise`) -> write (:mod:`jdmbayes.runfolder`).
"""

__version__ = "0.1.0"
