"""Create model variables from a prior set, with every hyperparameter as ``pm.Data``.

A sensitivity analysis that changes only hyperparameter values swaps the data
(``hyperparameter_values``) into the already-compiled model: no rebuild, no recompilation.
"""

from __future__ import annotations

import pymc as pm
from pymc_extras.prior import Prior

from jdmbayes.models.spec import PriorSet


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


_LOGP_FUNCTIONS: dict[tuple, object] = {}
# PyTensor mode of the log prior densities: PyTensor's Python linker, each node one NumPy
# call over every draw at once. numba (PyTensor's default) took 3.0 s to compile them for
# the five bundled models on a machine's first run (``benchmarks/RESULTS.md``).
LOG_PRIOR_MODE = "FAST_COMPILE"


def _logp_function(distribution: str, arguments: tuple[str, ...], ndim: int):
    """Elementwise log density of ``distribution`` (values, *hyperparameters), not compiled
    (:data:`LOG_PRIOR_MODE`); built once per distribution, argument names and value rank in
    a process."""
    key = (distribution, arguments, ndim)
    if key not in _LOGP_FUNCTIONS:
        import pytensor
        import pytensor.tensor as pt

        value = pt.tensor("value", shape=(None,) * ndim)
        hyper = [pt.scalar(a) for a in arguments]
        variable = getattr(pm, distribution).dist(**dict(zip(arguments, hyper)))
        _LOGP_FUNCTIONS[key] = pytensor.function([value, *hyper], pm.logp(variable, value),
                                                 mode=LOG_PRIOR_MODE)
    return _LOGP_FUNCTIONS[key]


def log_prior_dataset(prior_set: PriorSet, posterior):
    """The ``log_prior`` group: log density of each draw of each prior-set parameter under
    that set (constrained scale, no Jacobian), as power-scaling sensitivity needs it.

    Only the parameters the prior set names are included; random effects (frailties, cell
    deviations) are part of the model, not of the prior being assessed.
    """
    import xarray as xr

    terms = {}
    for parameter, prior in prior_set.priors.items():
        if parameter not in posterior:
            continue
        values = posterior[parameter]
        arguments = tuple(sorted(prior.parameters))
        function = _logp_function(prior.distribution, arguments, values.ndim)
        terms[parameter] = (values.dims, function(values.values.astype(float),
                                                  *[float(prior.parameters[a])
                                                    for a in arguments]))
    return xr.Dataset(terms, coords={k: v for k, v in posterior.coords.items()})
