"""The model's side of a request: rows in, answers and per-row facts out, many requests at once.

``Predictor.run(jobs)`` is called on the model thread with one or more requests (a batch). It
encodes the requests' rows with the stored preprocessing (requests whose columns have the same
types are encoded together; a request whose rows are bad fails alone), runs one forward pass
over every row of the batch, and decodes each request's slice: labels or numbers,
probabilities on request, and the rows' facts (``InputFacts``: unseen categories, numbers
outside the training range, filled missing values).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..data.table import Table
from ..core.errors import TorchannError
from ..preprocess.facts import InputFacts
from .errors import ServerError

__all__ = ["Job", "Answer", "Predictor", "members_of", "LARGE_PASS_ROWS"]

# From this many rows a pass may take more intra-op threads than the server's own count
# (``Predictor.large_threads``): its products are large enough that the threads' hand-offs
# cost little beside them; smaller passes stay on the server's count (one under torchann serve).
LARGE_PASS_ROWS = 256


@dataclass
class Job:
    """One request's rows and what it asked for."""

    table: Table
    proba: bool = False
    std: bool = False
    cancelled: bool = False  # its client gave up (timeout): skip it if it has not run yet

    @property
    def rows(self) -> int:
        return self.table.n_rows


@dataclass
class Answer:
    predictions: np.ndarray  # (n,) labels or numbers, or (n, k) for k regression targets
    facts: InputFacts
    proba: np.ndarray | None = None  # (n, n_classes)
    std: np.ndarray | None = None  # (n,) or (n, k): the members' spread
    extra: dict[str, Any] = field(default_factory=dict)


def members_of(model: Any) -> int:
    """How many ensemble members ``model`` has (``Model.members``; 1 for one network)."""
    members = getattr(model, "members", 1)
    return members if isinstance(members, int) else 1


class Predictor:
    """Answers for batches of requests from one ``torchann.Model``."""

    def __init__(self, model: Any, *, large_threads: int | None = None) -> None:
        self.model = model
        self.large_threads = large_threads  # intra-op threads for passes of LARGE_PASS_ROWS rows or more
        self.features = list(model.feature_names)
        self.classifier = model.task == "classification"
        self.members = members_of(model)  # 2 or more: ?std=true answers their spread

    def check(self, job: Job) -> None:
        """What a request asks for that this model cannot give: a 400 before any work."""
        if job.proba and not self.classifier:
            raise ServerError(400, f"proba=true needs a classifier; this model predicts "
                                   f"{', '.join(self.model.target_names)} as numbers (regression)")
        if job.std and self.members < 2:
            raise ServerError(400, "std=true needs a model with ensemble members (the spread is their "
                                   "disagreement); this model has none: leave out std", code="no_members")

    # --------------------------------------------------------------------------- model thread

    def run(self, jobs: list[Job]) -> list[Answer | Exception]:
        """Answers (or the error of each failed request) for ``jobs``, in order."""
        results: list[Answer | Exception | None] = [None] * len(jobs)
        encoded: list[tuple[int, np.ndarray, InputFacts]] = []
        for group in _groups(jobs):
            encoded.extend(self._encode(jobs, group, results))
        if encoded:
            x = encoded[0][1] if len(encoded) == 1 else np.concatenate([e[1] for e in encoded])
            try:
                out = self.forward(x)
                start = 0
                for i, xi, facts in encoded:
                    stop = start + len(xi)
                    results[i] = self._decode(jobs[i], out[start:stop], facts)
                    start = stop
            except TorchannError as err:
                for i, _, _ in encoded:
                    results[i] = err
        return [r if r is not None else ServerError(504, "the request was given up") for r in results]

    def forward(self, x: np.ndarray) -> Any:
        """Network outputs for encoded rows, as ``Model.predict`` computes them (the same
        answers whatever the thread count: each row's sums do not depend on it)."""
        if self.large_threads is None or len(x) < LARGE_PASS_ROWS:
            return self.model.network_outputs(x)
        import torch

        previous = torch.get_num_threads()
        torch.set_num_threads(self.large_threads)
        try:
            return self.model.network_outputs(x)
        finally:
            torch.set_num_threads(previous)

    def _encode(self, jobs: list[Job], group: list[int], results: list) -> list[tuple[int, np.ndarray, InputFacts]]:
        pre = self.model.preprocessor
        if len(group) > 1:  # one encoding for requests whose columns have the same types
            tables = [jobs[i].table for i in group]
            joined = Table({n: np.concatenate([t.columns[n] for t in tables]) for n in self.features}, source="request")
            try:
                x, facts = pre.transform_x_facts(joined)
            except TorchannError:
                pass  # some request is bad: encode them one by one, so that only it fails
            else:
                out, start = [], 0
                for i, t in zip(group, tables):
                    stop = start + t.n_rows
                    out.append((i, x[start:stop], facts.slice(start, stop)))
                    start = stop
                return out
        out = []
        for i in group:
            try:
                x, facts = pre.transform_x_facts(jobs[i].table)
            except TorchannError as err:
                results[i] = err
            else:
                out.append((i, x, facts))
        return out

    def _decode(self, job: Job, out: np.ndarray, facts: InputFacts) -> Answer:
        pre = self.model.preprocessor
        if self.classifier:
            answer = Answer(pre.inverse_y(out), facts, proba=pre.proba(out) if job.proba else None)
        else:
            y = pre.inverse_y(out).reshape(len(out), -1)
            answer = Answer(y[:, 0] if y.shape[1] == 1 else y, facts)
        if job.std:
            answer.std = self.spread(job.table)
        return answer

    def spread(self, table: Table) -> np.ndarray:
        """The members' spread per row, as ``Model.predict(..., return_std=True)`` gives it: their
        standard deviation in target units (regression), their disagreement (classes)."""
        return np.asarray(self.model.predict(table, return_std=True)[1])


def _groups(jobs: list[Job]) -> list[list[int]]:
    """Indices of the live jobs, grouped by the types of their columns."""
    if len(jobs) == 1:  # a request alone (an idle server's): its own group
        return [] if jobs[0].cancelled else [[0]]
    groups: dict[tuple, list[int]] = {}
    for i, job in enumerate(jobs):
        if not job.cancelled:
            key = tuple(c.dtype for c in job.table.columns.values())  # numpy dtypes compare and hash
            groups.setdefault(key, []).append(i)
    return list(groups.values())
