"""The model kinds, each registered once with everything it provides (:class:`ModelKind`).

Adding a kind: write its module beside these (``build_*`` in :mod:`jdmbayes.models`, its
outputs, prior predictive and simulator here), register it below, and test it.
"""

from __future__ import annotations

from jdmbayes.errors import InputError
from jdmbayes.kinds.common import ModelKind
from jdmbayes.kinds.episodes import EPISODES
from jdmbayes.kinds.longitudinal import LONGITUDINAL
from jdmbayes.kinds.milestones import MILESTONES
from jdmbayes.models.spec import ModelSpec

KINDS: dict[str, ModelKind] = {kind.name: kind for kind in (MILESTONES, EPISODES, LONGITUDINAL)}


def kind_of(spec: ModelSpec) -> ModelKind:
    if spec.kind not in KINDS:
        raise InputError(f"{spec.path}: model kind {spec.kind!r} is not registered; "
                         f"valid: {', '.join(KINDS)}")
    return KINDS[spec.kind]
