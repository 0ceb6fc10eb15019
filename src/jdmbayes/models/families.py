r"""Accelerated-failure-time families on the log-time scale, in PyTensor and NumPy.

For time :math:`T` with location :math:`\eta` and scale :math:`\sigma`,
:math:`\log T = \eta + \sigma\varepsilon` and :math:`z = (\log t - \eta)/\sigma`:

==============  ==========================  ==========================================
family          :math:`\varepsilon`         :math:`\log S(t)`
==============  ==========================  ==========================================
weibull         standard minimum Gumbel     :math:`-e^{z}` (shape :math:`1/\sigma`,
                                            scale :math:`e^{\eta}`)
lognormal       standard normal             :math:`\log\Phi(-z)`
loglogistic     standard logistic           :math:`-\log(1+e^{z})`
==============  ==========================  ==========================================

and :math:`\log f(t) = \log f_\varepsilon(z) - \log\sigma - \log t`. Interval-censored terms
use :math:`\log(S(L)-S(R)) = \log S(L) + \log(1-e^{\log S(R)-\log S(L)})`, stable for
narrow intervals and far tails.
"""

from __future__ import annotations

import numpy as np
import pytensor.tensor as pt
from pymc.distributions.dist_math import normal_lccdf
from scipy import special

LOG_2PI = float(np.log(2 * np.pi))


def log_survival(family: str, log_t, eta, sigma):
    """PyTensor log S(t) given log t."""
    z = (log_t - eta) / sigma
    if family == "weibull":
        return -pt.exp(z)
    if family == "lognormal":
        return normal_lccdf(0.0, 1.0, z)
    if family == "loglogistic":
        return -pt.softplus(z)
    raise ValueError(f"unknown family {family!r}")


def log_density(family: str, log_t, eta, sigma):
    """PyTensor log f(t) given log t (density of T, not of log T)."""
    z = (log_t - eta) / sigma
    if family == "weibull":
        core = z - pt.exp(z)
    elif family == "lognormal":
        core = -0.5 * z**2 - 0.5 * LOG_2PI
    elif family == "loglogistic":
        core = z - 2 * pt.softplus(z)
    else:
        raise ValueError(f"unknown family {family!r}")
    return core - pt.log(sigma) - log_t


# below this, log(1 - e^x) is -e^x to double precision
LOG1MEXP_TAIL = -40.0


def log1mexp(x):
    """PyTensor log(1 - e^x) for x < 0 whose derivatives of every order stay finite.

    PyTensor's ``log1mexp`` is exact in value, but its second derivative is inf/inf (nan)
    far in the tail (x below about -700), which the Newton steps of the integrated frailty
    meet; there it equals -e^x to double precision, which is used instead."""
    return pt.switch(x < LOG1MEXP_TAIL, -pt.exp(x),
                     pt.log1mexp(pt.maximum(x, LOG1MEXP_TAIL)))


def log_interval(family: str, log_lo, log_hi, eta, sigma):
    """PyTensor log(S(lo) - S(hi)) for 0 < lo < hi."""
    s_lo = log_survival(family, log_lo, eta, sigma)
    s_hi = log_survival(family, log_hi, eta, sigma)
    return s_lo + log1mexp(s_hi - s_lo)


def np_log_survival(family: str, t, eta, sigma):
    return np_log_survival_z(family, (np.log(t) - eta) / sigma)


def np_log_survival_z(family: str, z):
    """NumPy log S at standardised log time z."""
    if family == "weibull":
        return -np.exp(z)
    if family == "lognormal":
        return special.log_ndtr(-z)
    if family == "loglogistic":
        return -np.logaddexp(0.0, z)
    raise ValueError(f"unknown family {family!r}")


def np_log_density_z(family: str, z):
    """NumPy log f_epsilon(z): the density of T is this minus log sigma and log t."""
    if family == "weibull":
        return z - np.exp(z)
    if family == "lognormal":
        return -0.5 * z**2 - 0.5 * LOG_2PI
    if family == "loglogistic":
        return z - 2 * np.logaddexp(0.0, z)
    raise ValueError(f"unknown family {family!r}")


def np_standard_error(family: str, rng: np.random.Generator, size):
    """Draws of the standard error term epsilon."""
    if family == "weibull":
        return np.log(rng.standard_exponential(size))
    if family == "lognormal":
        return rng.standard_normal(size)
    if family == "loglogistic":
        u = rng.uniform(size=size)
        return np.log(u) - np.log1p(-u)
    raise ValueError(f"unknown family {family!r}")


def np_median_log_epsilon(family: str) -> float:
    """Median of epsilon (log of the median time is eta + sigma * this)."""
    return {"weibull": float(np.log(np.log(2.0))), "lognormal": 0.0, "loglogistic": 0.0}[family]
