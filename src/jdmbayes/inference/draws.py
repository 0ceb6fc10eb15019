"""Groups of a fit's draws, held as an ``xarray.DataTree`` (ArviZ 1's InferenceData).

Every group is a child node (``posterior``, ``sample_stats``, ``log_likelihood``,
``log_prior``, ``posterior_predictive``, ``observed_data``, ``constant_data``, ``prior``);
these helpers read a group as a plain ``xarray.Dataset`` and set one, so that no module
relies on attribute assignment (which on a DataTree would not replace the child).
"""

from __future__ import annotations

import xarray as xr


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
