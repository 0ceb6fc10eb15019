"""This package's version and the versions of the libraries a result depends on (provenance)."""

from __future__ import annotations

import platform
from importlib import metadata

__version__ = "0.2.0"

PACKAGES = ("jdmbayes", "pymc", "pytensor", "arviz", "nutpie", "pymc-extras", "numpy", "scipy",
            "pandas", "xarray", "lifelines", "matplotlib")


def package_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions
