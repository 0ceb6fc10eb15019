"""The reduced varied-design check in CI: the three smallest of the 40 committed designs
(``validation/designs/``), both models each, fitted with the defaults as ``fit`` fits them
(retry ladder within its default budget). Every fit must pass every gate, and the truths
inside their 95% intervals must reach the lower end of the central 99% binomial range of a
nominal 95% rate (with about 50 truths: at least 43)."""

import pytest
from scipy import stats

from jdmbayes.api import DEFAULT_RETRY_BUDGET_S, DEFAULT_RETRY_FIRST_MULTIPLE
from jdmbayes.batch.design_check import MODELS, design_verdict, run_designs
from jdmbayes.batch.designs import draw_designs
from jdmbayes.inference.sampling import SamplerSettings

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def checked(tmp_path_factory):
    designs = sorted(draw_designs(40, 20261203), key=lambda d: d.patients)[:3]
    settings = SamplerSettings(retry_budget_s=DEFAULT_RETRY_BUDGET_S,
                               retry_budget_first_multiple=DEFAULT_RETRY_FIRST_MULTIPLE)
    return run_designs(designs, tmp_path_factory.mktemp("designs"), settings, MODELS,
                       echo=print)


def test_the_smallest_designs_pass_every_gate(checked):
    fits, _ = checked
    assert len(fits) == 6
    failing = fits[fits["verdict"] != "pass"]
    assert failing.empty, failing.to_string()
    assert (fits["divergences"] == 0).all()


def test_truths_inside_their_intervals_at_the_nominal_rate(checked):
    fits, coverage = checked
    low = stats.binom.ppf(0.005, len(coverage), 0.95)
    assert coverage["inside"].sum() >= low, coverage[~coverage["inside"]].to_string()
    assert (coverage["ci_prob"] == 0.95).all() and (coverage["ci_kind"] == "eti").all()
    assert (design_verdict(fits, coverage)["verdict"] == "passes").all()
