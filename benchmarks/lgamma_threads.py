"""Log-gamma on one and on several threads of one process: C's ``lgamma`` (what numba
compiles ``math.lgamma`` and PyTensor's ``gammaln`` to) against ``lgamma_r``
(``jdmbayes.models.lgamma``), and nutpie sampling a bounded-score model whose log density
calls one or the other, with 1 and 2 threads.

    python benchmarks/lgamma_threads.py [--threads 2] [--patients 500] [--rounds 3]

Prints, for each round, nanoseconds per call on each thread (the same loop over the same
values) and, for the model, milliseconds per leapfrog step on each thread (the chains take
the same steps with either function: the values are the same bits), each function in
turn.
"""

from __future__ import annotations

import argparse
import math
import threading
import time

import numba
import numpy as np

from jdmbayes.models.lgamma import lgamma_r

REPEATS = 1500


@numba.njit(nogil=True)
def _sum_lgamma(x, repeats):
    total = 0.0
    for _ in range(repeats):
        for value in x:
            total += math.lgamma(value)
    return total


@numba.njit(nogil=True)
def _sum_lgamma_r(x, repeats):
    total = 0.0
    for _ in range(repeats):
        for value in x:
            total += lgamma_r(value)
    return total


def per_call_ns(function, x, threads: int) -> float:
    workers = [threading.Thread(target=function, args=(x, REPEATS)) for _ in range(threads)]
    start = time.perf_counter()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return (time.perf_counter() - start) / REPEATS / x.size * 1e9


def score_model(patients: int, use_reentrant: bool):
    """A beta-binomial score over 8 visits, patient levels centred, as the sampled bounded
    score's log density has it (4 log-gamma functions of the parameters per value)."""
    import pymc as pm
    import pytensor.tensor as pt

    from jdmbayes.models.lgamma import gammaln

    rng = np.random.default_rng(1)
    visits = 8
    patient = np.repeat(np.arange(patients), visits)
    week = np.tile(np.arange(visits) * 4.0, patients)
    level = rng.normal(0.0, 1.0, patients)
    p = 1 / (1 + np.exp(-(level[patient] + 0.05 * week)))
    value = rng.binomial(52, rng.beta(p * 20, (1 - p) * 20)).astype(float)
    log_gamma = gammaln if use_reentrant else pt.gammaln
    with pm.Model() as model:
        alpha = pm.Normal("alpha", 0.0, 1.5)
        sigma = pm.HalfNormal("sigma", 1.0)
        slope = pm.Normal("slope", 0.0, 0.1)
        levels = pm.Normal("level", alpha, sigma, shape=patients)
        phi = pm.LogNormal("phi", 3.0, 1.0)
        mu = pm.math.invlogit(levels[patient] + slope * week)
        a, b = mu * phi, (1 - mu) * phi
        pm.Potential("likelihood", (log_gamma(value + a) + log_gamma(52 - value + b)
                                    - log_gamma(a) - log_gamma(b)).sum()
                     + value.size * (pt.gammaln(phi) - pt.gammaln(52 + phi)))
    return model


def per_leapfrog_ms(compiled, threads: int) -> float:
    import nutpie

    start = time.perf_counter()
    trace = nutpie.sample(compiled, draws=150, tune=150, chains=threads, cores=threads,
                          seed=1, target_accept=0.9, progress_bar=False)
    elapsed = time.perf_counter() - start
    steps = int(trace.sample_stats.n_steps.sum() + trace.warmup_sample_stats.n_steps.sum())
    return elapsed * threads / steps * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--patients", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=3,
                        help="each function in turn this many times (the penalty of the "
                             "shared variable depends on where the threads run, which can "
                             "change from one moment to the next on a virtual machine)")
    args = parser.parse_args()
    import nutpie

    x = np.random.default_rng(0).uniform(0.5, 60.0, 16000)
    _sum_lgamma(x, 1), _sum_lgamma_r(x, 1)
    compiled = {name: nutpie.compile_pymc_model(score_model(args.patients, reentrant))
                for name, reentrant in (("lgamma", False), ("lgamma_r", True))}
    print(f"| round | function | ns per call, 1 thread | on each of {args.threads} threads | "
          f"score model ({args.patients} patients x 8 values): ms per leapfrog step, "
          f"1 thread | on each of {args.threads} threads |\n|---|---|---|---|---|---|")
    for round_ in range(1, args.rounds + 1):
        for name, function in (("lgamma", _sum_lgamma), ("lgamma_r", _sum_lgamma_r)):
            print(f"| {round_} | {name} | {per_call_ns(function, x, 1):.2f} | "
                  f"{per_call_ns(function, x, args.threads):.2f} | "
                  f"{per_leapfrog_ms(compiled[name], 1):.3f} | "
                  f"{per_leapfrog_ms(compiled[name], args.threads):.3f} |", flush=True)


if __name__ == "__main__":
    main()
