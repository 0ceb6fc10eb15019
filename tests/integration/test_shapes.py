"""Longitudinal time shapes (issue 18): a plateau, a straight line and a spline, each with
correlated patient baseline and change. For each shape a series is simulated from the model
at known values on the design of docs/example-trajectories (150 patients, irregular visits),
then fitted: every population parameter is recovered within 3 posterior SDs (a stated
tolerance: about 0.3% of such checks fail by chance). The bundled example itself (a linear
truth) is ranked by ``compare`` and its truth recovered by the linear shape."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

import jdmbayes
from jdmbayes.data.validate import load_series
from jdmbayes.estimands.simulate import simulate_longitudinal
from jdmbayes.models.indexing import index_longitudinal
from jdmbayes.models.longitudinal import time_shape
from jdmbayes.models.spec import load_model_spec
from tests.conftest import ROOT

EXAMPLE = ROOT / "docs" / "example-trajectories"
COMMON = {"intercept": 4.0, "sigma_intercept": 0.5, "change": 0.5, "beta_group": -0.4,
          "sigma_change": 0.3, "rho_baseline_change": -0.3, "noise": 0.25}
SHAPES = {"plateau": {"tau_weeks": 30.0}, "linear": {},
          "spline": {"spline_coef": np.array([0.4, -0.3, 0.2, 0.1])}}


def simulated_series(tmp_path, shape: str, seed: int):
    """A copy of the example's design with values drawn from the ``shape`` model."""
    spec = load_model_spec(str(EXAMPLE / f"marker_{shape}.toml"))
    data = index_longitudinal(load_series(EXAMPLE), spec)
    rng = np.random.default_rng(seed)
    truth = {**COMMON, **SHAPES[shape]}
    n = data.n_patients
    u = rng.standard_normal(n)
    rho = truth["rho_baseline_change"]
    w = rho * u + np.sqrt(1 - rho**2) * rng.standard_normal(n)
    active = np.array([data.design.label("arm", level[0]) == "active"
                       for level in data.design.patient_levels])
    truth["baseline"] = truth["intercept"] + truth["sigma_intercept"] * u
    truth["patient_change"] = (truth["change"] + truth["beta_group"] * active
                               + truth["sigma_change"] * w)
    simulated = simulate_longitudinal(data, spec, {**truth, "intercept": np.array([4.0])}, rng)
    folder = tmp_path / shape
    folder.mkdir()
    (folder / "subjects.csv").write_text((EXAMPLE / "subjects.csv").read_text())
    ids = np.array(data.subject_ids)
    pd.DataFrame({"subject_id": ids[simulated.patient], "measure": "marker",
                  "week": simulated.week, "value": simulated.value}).to_csv(
        folder / "measurements.csv", index=False, float_format="%.10g")
    return folder, spec, truth


@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_each_shape_recovers_its_truth(tmp_path, shape):
    folder, spec, truth = simulated_series(tmp_path, shape, seed=11)
    fit = jdmbayes.fit(str(spec.path), data=folder, seed=5, draws=1000, tune=1000, chains=2,
                       ci_prob=0.95, ci_kind="eti")
    result = fit[spec.name]
    assert result.diagnostics["divergences"] == 0
    posterior = result.idata.posterior
    checked = 0
    for name, value in truth.items():
        if name in ("baseline", "patient_change"):
            continue
        draws = posterior[name].values
        draws = draws.reshape(-1, *draws.shape[2:])
        values = np.atleast_1d(value)
        draws = draws.reshape(draws.shape[0], -1)
        for j, v in enumerate(values):
            z = (np.median(draws[:, j]) - v) / draws[:, j].std()
            assert abs(z) < 3, (shape, name, j, v, np.median(draws[:, j]), z)
            checked += 1
    assert checked == len(COMMON) + {"plateau": 1, "linear": 0, "spline": 4}[shape]


def test_the_spline_departure_basis_is_zero_at_baseline_and_the_reference_week():
    spec = load_model_spec(str(EXAMPLE / "marker_spline.toml"))
    data = index_longitudinal(load_series(EXAMPLE), spec)
    shape = time_shape(data, spec)
    basis = shape.departure_basis(np.array([0.0, spec.final_week, 30.0]))
    assert basis.shape == (3, 4)       # 2 interior knots: 6 cubic B-splines less 2 constraints
    np.testing.assert_allclose(basis[:2], 0.0, atol=1e-12)
    assert np.abs(basis[2]).max() > 0.1
    # the bend vanishes at baseline and at the reference week whatever its coefficients:
    # change is the change by week T
    post = {"intercept": np.zeros(3), "spline_coef": np.random.default_rng(0).normal(size=(3, 4))}
    np.testing.assert_allclose(shape.values([0.0, spec.final_week], post), [[0, 1]] * 3,
                               atol=1e-12)
    np.testing.assert_allclose(shape.offset([0.0, spec.final_week], post), 0.0, atol=1e-12)
    linear = dataclasses.replace(shape, kind="linear")
    np.testing.assert_allclose(linear.values([52.0], post), 0.5)
