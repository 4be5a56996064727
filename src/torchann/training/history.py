"""History: what one training run measured, epoch by epoch."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Iterator

from ..core.options import EPOCH_FACTS

__all__ = ["History"]


@dataclass
class History:
    """Per-epoch records (``loss``, ``val_loss``, metrics, ``lr``, ``seconds``) and run facts.

    ``history["loss"]`` gives one key over all epochs; ``len(history)`` the epochs run.
    """

    records: list[dict[str, Any]] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)  # device, seed, rows, steps, stop reason

    def append(self, record: dict[str, Any]) -> None:
        self.records.append(record)

    def __len__(self) -> int:
        return len(self.records)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return iter(self.records)

    def __getitem__(self, key: str) -> list[Any]:
        if not self.records or key not in self.records[-1]:
            known = sorted({k for r in self.records for k in r})
            raise KeyError(f"no {key!r} in this history; recorded: {', '.join(known) or 'nothing yet'}")
        return [r.get(key) for r in self.records]

    @property
    def losses(self) -> list[float]:
        return [r["loss"] for r in self.records]

    @property
    def final_loss(self) -> float | None:
        return self.records[-1]["loss"] if self.records else None

    def to_jsonl(self) -> str:
        """One JSON object per epoch; the run facts are repeated in none of them."""
        return "".join(json.dumps(r, sort_keys=False) + "\n" for r in self.records)

    def to_dict(self) -> dict[str, Any]:
        return {"records": self.records, "info": self.info}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "History":
        return cls(records=list(data.get("records", [])), info=dict(data.get("info", {})))

    @classmethod
    def from_jsonl(cls, text: str) -> "History":
        return cls(records=[json.loads(line) for line in text.splitlines() if line.strip()])

    def _repr_html_(self) -> str:
        """The curves (loss and each metric, training and validation) for a notebook."""
        from html import escape

        from ..render.html import chart_box, curve_marks, fragment, history_curves, num

        curves = history_curves(self.records, self.info)
        if not curves["epochs"]:
            return fragment('<p class="note">History: no epochs yet.</p>')
        last = self.records[-1]
        shown = ", ".join(f"{escape(k)} {num(v)}" for k, v in last.items() if isinstance(v, float) and k not in EPOCH_FACTS)
        boxes = "".join(chart_box(c["name"], curves["epochs"], c["series"], marks=curve_marks(curves),
                                  interactive=False) for c in curves["charts"])
        return fragment(f"<p><b>History</b>: {len(self)} epochs; last: {shown}</p><div class=\"grid\">{boxes}</div>")

    def __repr__(self) -> str:
        last = self.records[-1] if self.records else {}
        shown = ", ".join(f"{k}={v:.4g}" for k, v in last.items() if isinstance(v, float))
        return f"History(epochs={len(self)}{', ' + shown if shown else ''})"
