r"""Rank-normalised split R-hat and bulk and tail ESS of every element of many variables at
once: the gates' convergence figures (:mod:`jdmbayes.inference.diagnostics`).

The definitions are Vehtari, Gelman, Simpson, Carpenter & Bürkner (2021), "Rank-normalization,
folding, and localization: an improved R-hat for assessing convergence of MCMC", *Bayesian
Analysis* 16(2), as ArviZ computes them (``arviz_stats.base.diagnostics``: ``rhat(method=
"rank")``, ``ess(method="bulk")``, ``ess(method="tail", prob=p)``), operation for operation,
so the numbers are ArviZ's to the bit (``tests/unit/test_convergence.py`` compares them).
For a scalar :math:`\theta` with :math:`M` chains of :math:`N` draws, split into :math:`2M`
half-chains of :math:`n = \lfloor N/2 \rfloor`:

* rank normalisation: :math:`z = \Phi^{-1}((r - 3/8) / (2Mn - 3/4 + 1))`, :math:`r` the
  average rank among all :math:`2Mn` draws;
* :math:`\hat R = \max(\hat R(z), \hat R(z_{fold}))`, :math:`z_{fold}` the rank-normalised
  :math:`|\theta - \mathrm{median}\,\theta|` and :math:`\hat R(x) = \sqrt{(B/W + n - 1)/n}`
  with :math:`B = n\,\mathrm{var}(\bar x_{m})` and :math:`W` the mean within-chain variance;
* bulk ESS: :math:`2Mn / \hat\tau` of :math:`z`, :math:`\hat\tau` from the chains' FFT
  autocovariances summed with Geyer's initial positive and monotone sequences (at least
  :math:`1/\log_{10}(2Mn)`);
* tail ESS: the smaller of the ESS of the indicators :math:`\theta \le q_{p}` and
  :math:`\theta \le q_{1-p}`, :math:`q` the sample quantiles (linear interpolation);
* Monte Carlo SE of the mean (the summary rows): the draws' SD over the square root of the
  ESS of the split chains' raw values.

ArviZ computes each element on its own, in Python: on a 2,000-patient fit's 4,000 patient
effects that took about 20 s of one core. Here the ranks, medians, quantiles, FFTs and
variances of a block of elements are each one NumPy call, which releases the GIL, and the
blocks run on threads; Geyer's sequences, a few scalar steps per element, are compiled
(numba, cached in the user's cache folder as the other compiled loops). An element with a
missing value, or too few chains or draws, gets NaN, as in ArviZ.
"""

from __future__ import annotations

from collections.abc import Sequence

import numba
import numpy as np
import xarray as xr
from scipy import stats
from scipy.fftpack import next_fast_len

from jdmbayes.estimands.blocks import on_threads

# elements per block: a block's arrays (elements x chains x draws, and its FFT) stay a few
# megabytes at 4 x 1,000 draws
BLOCK_ELEMENTS = 64
BLOM_OFFSET = 3 / 8


def _split_chains(values: np.ndarray) -> np.ndarray:
    """(E, M, N) -> (E, 2M, N // 2): the first halves of the chains, then the second halves
    (a middle draw of an odd N is left out)."""
    half = values.shape[2] // 2
    return np.concatenate((values[:, :, :half], values[:, :, values.shape[2] - half:]),
                          axis=1)


def _z_scale(values: np.ndarray) -> np.ndarray:
    """Each element's draws rank-normalised among themselves (average ranks of ties)."""
    flat = values.reshape(values.shape[0], -1)
    size = flat.shape[1]
    rank = stats.rankdata(flat, method="average", axis=1)
    rank = (rank - BLOM_OFFSET) / (size - 2 * BLOM_OFFSET + 1)
    return stats.norm.ppf(rank).reshape(values.shape)


def _rhat(values: np.ndarray) -> np.ndarray:
    """Each element's R-hat of its (chains, draws) values."""
    num_samples = values.shape[2]
    chain_mean = np.mean(values, axis=2)
    chain_var = np.var(values, axis=2, ddof=1)
    between_chain_variance = num_samples * np.var(chain_mean, axis=1, ddof=1)
    within_chain_variance = np.mean(chain_var, axis=1)
    return np.sqrt((between_chain_variance / within_chain_variance + num_samples - 1)
                   / num_samples)


def _autocov(values: np.ndarray) -> np.ndarray:
    """Autocovariance of each chain at every lag (FFT), (E, M, N)."""
    n = values.shape[2]
    m = next_fast_len(2 * n)
    centred = values - values.mean(axis=2, keepdims=True)
    transform = np.fft.rfft(centred, n=m, axis=2)
    transform *= np.conjugate(transform)
    cov = np.fft.irfft(transform, n=m, axis=2)[:, :, :n]
    cov /= n
    return cov


@numba.njit(cache=True, nogil=True)
def _geyer_sequences(lag_means, mean_var, var_plus, rho_hat, max_t):
    """Each element's autocorrelations ``rho_hat[e]`` (zero beyond the sum) and the last lag
    ``max_t[e]`` of the initial positive sequence, from its lags' autocovariances averaged
    over chains: Geyer's initial positive sequence, then his initial monotone sequence (as
    ArviZ's ``_ess``, step for step)."""
    n_draw = lag_means.shape[1]
    for e in range(lag_means.shape[0]):
        rho_hat_t = rho_hat[e]
        rho_hat_even = 1.0
        rho_hat_t[0] = rho_hat_even
        rho_hat_odd = 1.0 - (mean_var[e] - lag_means[e, 1]) / var_plus[e]
        rho_hat_t[1] = rho_hat_odd
        t = 1
        while t < (n_draw - 3) and (rho_hat_even + rho_hat_odd) > 0.0:
            rho_hat_even = 1.0 - (mean_var[e] - lag_means[e, t + 1]) / var_plus[e]
            rho_hat_odd = 1.0 - (mean_var[e] - lag_means[e, t + 2]) / var_plus[e]
            if (rho_hat_even + rho_hat_odd) >= 0:
                rho_hat_t[t + 1] = rho_hat_even
                rho_hat_t[t + 2] = rho_hat_odd
            t += 2
        last = t - 2
        if rho_hat_even > 0:
            rho_hat_t[last + 1] = rho_hat_even
        t = 1
        while t <= last - 2:
            if (rho_hat_t[t + 1] + rho_hat_t[t + 2]) > (rho_hat_t[t - 1] + rho_hat_t[t]):
                rho_hat_t[t + 1] = (rho_hat_t[t - 1] + rho_hat_t[t]) / 2.0
                rho_hat_t[t + 2] = rho_hat_t[t + 1]
            t += 2
        max_t[e] = last


def _ess(values: np.ndarray) -> np.ndarray:
    """Each element's ESS of its (chains, draws) values."""
    values = np.asarray(values, dtype=float)
    count, n_chain, n_draw = values.shape
    size = n_chain * n_draw
    out = np.empty(count)
    spread = values.max(axis=(1, 2)) - values.min(axis=(1, 2))
    constant = spread < np.finfo(float).resolution
    out[constant] = size
    varying = np.flatnonzero(~constant)
    if not varying.size:
        return out
    values = values[varying]
    acov = _autocov(values)
    chain_mean = values.mean(axis=2)
    # the chains' mean at each lag, each a sum over a contiguous row as ArviZ's is
    lag_means = np.ascontiguousarray(acov.transpose(0, 2, 1)).mean(axis=2)
    mean_var = lag_means[:, 0] * n_draw / (n_draw - 1.0)
    var_plus = mean_var * (n_draw - 1.0) / n_draw
    if n_chain > 1:
        var_plus = var_plus + np.var(chain_mean, axis=1, ddof=1)
    rho_hat = np.zeros((len(varying), n_draw))
    max_t = np.empty(len(varying), dtype=np.int64)
    _geyer_sequences(lag_means, mean_var, var_plus, rho_hat, max_t)
    floor = 1 / np.log10(size)
    for j, element in enumerate(varying):
        # NumPy's own sums of each row (pairwise summation, as ArviZ's)
        last = int(max_t[j])
        tau_hat = (-1.0 + 2.0 * np.sum(rho_hat[j, : last + 1])
                   + np.sum(rho_hat[j, last + 1: last + 2]))
        tau_hat = max(tau_hat, floor)
        out[element] = np.nan if np.isnan(rho_hat[j]).any() else size / tau_hat
    return out


def _usable(values: np.ndarray, min_chains: int) -> np.ndarray:
    """Elements ArviZ gives a number (not NaN): no NaN among the draws, at least
    ``min_chains`` chains and 4 draws."""
    _, n_chain, n_draw = values.shape
    if n_chain < min_chains or n_draw < 4:
        return np.zeros(values.shape[0], dtype=bool)
    return ~np.isnan(values).any(axis=(1, 2))


def _block(values: np.ndarray, tail_prob, mcse: bool) -> tuple[np.ndarray, ...]:
    """(R-hat, bulk ESS, tail ESS[, MCSE of the mean]) of each element of (E, chains, draws)
    ``values``."""
    count = values.shape[0]
    rhat, bulk, tail = np.full(count, np.nan), np.full(count, np.nan), np.full(count, np.nan)
    mcse_mean = np.full(count, np.nan)
    for_ess = _usable(values, 1)
    for_rhat = for_ess & (values.shape[1] >= 2)     # R-hat needs two chains
    if for_ess.any():
        usable = values[for_ess]
        split = _split_chains(usable)
        z = _z_scale(split)
        bulk[for_ess] = _ess(z)
        if for_rhat.any():
            keep = for_rhat[for_ess]
            split_r, z_r = split[keep], z[keep]
            median = np.median(split_r.reshape(len(split_r), -1), axis=1)
            folded = _z_scale(np.abs(split_r - median[:, None, None]))
            rhat_bulk, rhat_tail = _rhat(z_r), _rhat(folded)
            rhat[for_rhat] = np.where(rhat_tail > rhat_bulk, rhat_tail, rhat_bulk)
        low, high = (tail_prob if isinstance(tail_prob, Sequence)
                     else sorted((tail_prob, 1 - tail_prob)))
        flat = usable.reshape(len(usable), -1)
        ess_by_quantile = []
        for prob in (low, high):
            quantile = np.quantile(flat, prob, axis=1)
            below = usable <= quantile[:, None, None]
            ess_by_quantile.append(_ess(_split_chains(below)))
        tail[for_ess] = np.where(ess_by_quantile[1] < ess_by_quantile[0],
                                 ess_by_quantile[1], ess_by_quantile[0])
        if mcse:     # the SD of the draws over the square root of the mean's ESS
            sd = np.std(flat, axis=1, ddof=1)
            mcse_mean[for_ess] = sd / np.sqrt(_ess(split))
    return (rhat, bulk, tail, mcse_mean) if mcse else (rhat, bulk, tail)


def convergence_of_elements(values: np.ndarray, tail_prob, threads: int | None = None,
                            mcse: bool = False) -> tuple[np.ndarray, ...]:
    """(R-hat, bulk ESS, tail ESS), each (E,), of (E, chains, draws) ``values``; the tail
    ESS at the quantiles ``tail_prob`` (a pair) or ``tail_prob`` and 1 - ``tail_prob``, as
    ArviZ's ``prob``; with ``mcse`` also the Monte Carlo SE of the mean (ArviZ's
    ``mcse(method="mean")``). In blocks of :data:`BLOCK_ELEMENTS` elements on ``threads``
    threads (default: the usable cores)."""
    blocks = [slice(start, min(start + BLOCK_ELEMENTS, len(values)))
              for start in range(0, len(values), BLOCK_ELEMENTS)]
    outputs = 4 if mcse else 3
    if not blocks:
        return tuple(np.empty(0) for _ in range(outputs))
    parts = on_threads(lambda rows: _block(values[rows], tail_prob, mcse), blocks, threads)
    return tuple(np.concatenate([part[k] for part in parts]) for k in range(outputs))


def convergence(posterior: xr.Dataset, tail_prob, threads: int | None = None
                ) -> tuple[xr.Dataset, xr.Dataset, xr.Dataset]:
    """(R-hat, bulk ESS, tail ESS) of every element of every variable of ``posterior``
    (dimensions ``chain`` and ``draw`` first or not), each a Dataset of the variables with
    their other dimensions and coordinates, as ``az.rhat(posterior)``,
    ``az.ess(posterior, method="bulk")`` and ``az.ess(posterior, method="tail",
    prob=tail_prob)`` give them."""
    names, shapes, arrays = [], [], []
    for name, array in posterior.data_vars.items():
        other = [d for d in array.dims if d not in ("chain", "draw")]
        values = array.transpose("chain", "draw", *other).values
        shapes.append((other, values.shape[2:]))
        names.append(name)
        arrays.append(np.moveaxis(values.reshape(values.shape[0], values.shape[1], -1),
                                  2, 0))
    counts = [a.shape[0] for a in arrays]
    # variables of one dtype share blocks; the ranks and medians see each one's own values
    if arrays and all(a.dtype == arrays[0].dtype for a in arrays):
        results = convergence_of_elements(np.concatenate(arrays), tail_prob, threads)
        split = np.cumsum(counts)[:-1]
        per_variable = [np.split(r, split) for r in results]
    else:
        each = [convergence_of_elements(a, tail_prob, threads) for a in arrays]
        per_variable = [[e[k] for e in each] for k in range(3)]
    datasets = []
    for k in range(3):
        data = {}
        for name, (dims, shape), flat in zip(names, shapes, per_variable[k]):
            coords = {d: posterior[name][d].values for d in dims if d in posterior[name].coords}
            data[name] = xr.DataArray(flat.reshape(shape), dims=dims, coords=coords)
        datasets.append(xr.Dataset(data))
    return tuple(datasets)
