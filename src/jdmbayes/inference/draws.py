"""Groups of a fit's draws, held as an ``xarray.DataTree`` (ArviZ 1's InferenceData).

Every group is a child node (``posterior``, ``sample_stats``, ``log_likelihood``,
``log_prior``, ``posterior_predictive``, ``observed_data``, ``constant_data``, ``prior``);
these helpers read a group as a plain ``xarray.Dataset`` and set one, so that no module
relies on attribute assignment (which on a DataTree would not replace the child).
"""

from __future__ import annotations

import math

import numpy as np
import xarray as xr

# draws a longitudinal model's posterior predictive replicates (the predictive checks'
# bands, the stored posterior_predictive): every k-th draw of each chain, at most this many
# in all. A 95% band from 1,000 draws has 25 in each tail; replicating every value of
# every draw took 24 s of the outputs of a 2,000-patient score (16,000 values x 4,000 draws)
PREDICTIVE_CHECK_DRAWS = 1000


def group_dataset(tree: xr.DataTree, name: str) -> xr.Dataset:
    """The group ``name`` as a Dataset (a copy: changing it leaves the tree alone)."""
    return tree[name].to_dataset()


def set_group(tree: xr.DataTree, name: str, dataset: xr.Dataset) -> None:
    """Add or replace the group ``name``."""
    tree[name] = xr.DataTree(dataset)


def group_names(tree: xr.DataTree) -> list[str]:
    return list(tree.children)


def from_groups(groups: dict[str, xr.Dataset]) -> xr.DataTree:
    """A tree of the given groups (in that order)."""
    return xr.DataTree.from_dict(dict(groups))


def draw_step(total: int, most: int) -> int:
    """The smallest k such that every k-th draw of each chain leaves at most ``most`` of
    ``total`` draws (the stored copy's thinning, :mod:`jdmbayes.results.storage`, and the
    predictive's)."""
    return max(1, math.ceil(total / most))


def every_kth_draw(flat: np.ndarray, chains: int, step: int) -> np.ndarray:
    """Draws 0, ``step``, 2 ``step``, ... of each chain of ``flat``, which holds chains x
    draws draws along axis 0, chain by chain (``flat`` itself when ``step`` is 1)."""
    if step == 1:
        return flat
    kept = flat.reshape(chains, flat.shape[0] // chains, *flat.shape[1:])[:, ::step]
    # the length is given, not -1: a variable may have a dimension of length 0
    return kept.reshape(kept.shape[0] * kept.shape[1], *flat.shape[1:])
