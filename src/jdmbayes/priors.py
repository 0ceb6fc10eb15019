"""Create model variables from a prior set, with every hyperparameter as ``pm.Data``.

A sensitivity analysis that changes only hyperparameter values swaps the data
(``hyperparameter_values``) into the already-compiled model: no rebuild, no recompilation.
"""

from __future__ import annotations

import pymc as pm
from pymc_extras.prior import Prior

from .spec import PriorSet


def hyper_name(parameter: str, argument: str) -> str:
    return f"prior_{parameter}__{argument}"


def hyperparameter_values(prior_set: PriorSet) -> dict[str, float]:
    """Data-container name -> value, for ``compiled.with_data(**values)``."""
    return {hyper_name(p, a): float(v) for p, prior in prior_set.priors.items()
            for a, v in prior.parameters.items()}


def create_prior_variable(prior_set: PriorSet, parameter: str, name: str, dims=None):
    """The model variable ``name`` distributed as ``prior_set``'s ``parameter``."""
    prior = prior_set.priors[parameter]
    data = {a: pm.Data(hyper_name(parameter, a), float(v))
            for a, v in prior.parameters.items()}
    return Prior(prior.distribution, dims=dims, **data).create_variable(name)
