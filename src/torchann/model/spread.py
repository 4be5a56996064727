"""The spread of a model's members per row: the regression members' (weighted) standard
deviation in target units, or the weight of the members whose label differs from the
ensemble's; for tuned ensembles (``network.members``) and shared-weight members (``TabMini``)."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..core.choices import Task
from ..core.errors import UsageError
from ..network.predict import MemberColumns, predict as network_outputs

__all__ = ["members_spread"]


def members_spread(model: Any, x: np.ndarray, *, block: int, first_row: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``(answers, spread)`` for inputs ``x``: answers as ``predict`` gives them (regression
    ``(n, k)``), spread ``(n, k)`` (regression) or ``(n, 1)`` (classes); see ``BaseModel.predict``."""
    members = getattr(model.network, "members", None)
    if model.members < 2 or (members is None and not hasattr(model.network, "member_outputs")):
        raise UsageError("this model is one network, so it has no spread between members; train it with "
                         "--ensemble K (ensemble=K) or tune it with ensembling on for members that can disagree")
    if members is None:  # shared-weight members (TabMini), equal weights, run side by side
        w = np.full(model.members, 1.0 / model.members)
        cols = network_outputs(MemberColumns(model.network), x, block=block, first_row=first_row)
        outs = list(cols.reshape(len(x), model.members, -1).permute(1, 0, 2))
    else:
        w = np.asarray(model.spec.weights, dtype=np.float64)  # type: ignore[attr-defined]
        outs = [network_outputs(m, x, block=block, first_row=first_row) for m in members]
    whole = network_outputs(model.network, x, block=block, first_row=first_row)
    pre = model.preprocessor
    if pre.task is Task.REGRESSION:
        each = np.stack([pre.inverse_y(o).reshape(len(x), -1) for o in outs])  # (K, n, k)
        mean = np.tensordot(w, each, axes=1)
        std = np.sqrt(np.maximum(np.tensordot(w, (each - mean) ** 2, axes=1), 0.0))
        return pre.inverse_y(whole).reshape(len(x), -1), std
    chosen = pre.proba(whole).argmax(axis=1)
    agree = np.stack([pre.proba(o).argmax(axis=1) == chosen for o in outs])  # (K, n)
    labels = pre.inverse_y(whole)
    return labels, (1.0 - np.tensordot(w, agree.astype(np.float64), axes=1)).reshape(-1, 1)

