from __future__ import annotations

import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BUNDLED = ROOT / "data" / "ding2021"


def family_variant(folder: Path, model: str, family: str) -> str:
    """A bundled milestone spec with another AFT family, named ``<model>_<family>``, written
    to ``folder``: its path."""
    text = (ROOT / "models" / f"{model}.toml").read_text()
    path = folder / f"{model}_{family}.toml"
    path.write_text(text.replace(f'name = "{model}"', f'name = "{model}_{family}"')
                    .replace('family = "weibull"', f'family = "{family}"'))
    return str(path)


@pytest.fixture
def series_copy(tmp_path) -> Path:
    """A writable copy of the bundled series (the three CSV tables only)."""
    folder = tmp_path / "series"
    folder.mkdir()
    for name in ("subjects", "events", "measurements"):
        shutil.copy(BUNDLED / f"{name}.csv", folder / f"{name}.csv")
    return folder


@pytest.fixture(autouse=True, scope="session")
def no_retry_by_default():
    """Tests sample short chains on purpose: a fit that fails a gate is not retried unless
    the test asks (``retry_budget=``, ``--retry-budget``) -- the retry ladder has its own
    tests. Session-wide, so that module-scoped fits see it too."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("JDMBAYES_RETRY_BUDGET", "0")
        yield
