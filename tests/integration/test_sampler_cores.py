"""The chains run on one thread each up to the process's cores, and the draws of a seed are
the same whatever that number (so a run on another machine, or under a narrower CPU
affinity, gives the same numbers)."""

from __future__ import annotations

import numpy as np
import pymc as pm


def test_the_draws_do_not_depend_on_the_cores_the_chains_run_on(monkeypatch):
    import nutpie

    from jdmbayes.inference import sampling

    with pm.Model() as model:
        mu = pm.Normal("mu", 0, 10)
        sigma = pm.HalfNormal("sigma", 5)
        z = pm.Normal("z", 0, 1, shape=5)
        pm.Normal("y", mu + sigma * z, 1.0, observed=np.array([1.2, 0.4, 2.2, 1.9, 0.7]))
    asked = []
    real_sample = nutpie.sample

    def recording_sample(*args, **kwargs):
        asked.append(kwargs["cores"])
        return real_sample(*args, **kwargs)

    monkeypatch.setattr(nutpie, "sample", recording_sample)
    settings = sampling.SamplerSettings(draws=200, tune=200, seed=5)
    draws = {}
    for cores in (1, 3, 8):
        monkeypatch.setattr(sampling, "usable_cores", lambda cores=cores: cores)
        draws[cores] = sampling.sample_posterior(model, settings, "cores-test").idata
    assert asked == [1, 3, 4]
    for cores in (3, 8):
        for name in ("mu", "sigma", "z"):
            assert np.array_equal(draws[1].posterior[name].values,
                                  draws[cores].posterior[name].values)
