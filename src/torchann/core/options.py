"""Every training option and its default, declared once.

Three groups, each a frozen dataclass whose fields carry their help text:

* ``DataOptions``: how a table becomes training rows (target, features, task, held-out rows,
  missing values, scaling).
* ``NetworkOptions``: the network's shape (hidden widths, activation, dropout, norm).
* ``FitOptions``: how ``fit`` trains (epochs, batch size, optimiser, schedule, early stopping,
  seed, device, precision, threads).

``torchann.train``, the ``torchann train`` command (its help text and ``args.json``), the
scikit-learn estimators and ``fit`` all read their defaults from here, so the same table and
seed train the same model whichever door it comes through.
"""

from __future__ import annotations

import difflib
from dataclasses import MISSING, asdict, dataclass, field, fields
from typing import Any, Optional

from .errors import UsageError

__all__ = [
    "DataOptions", "NetworkOptions", "FitOptions", "TrainOptions",
    "option_help", "option_default", "split_options", "TRAIN_OPTION_NAMES", "auto_batch_size",
    "auto_time_budget", "auto_ple_bins", "auto_num_embeddings", "PLE_MIN_DISTINCT", "auto_networks", "EPOCH_FACTS",
]

#: Keys of an epoch's history record that describe the run rather than measure the model: what
#: the progress lines, the kept-epoch line and the curves leave out of the losses and metrics.
EPOCH_FACTS = ("epoch", "seconds", "lr", "time_left")


def _opt(default: Any, help: str, *, flag: str | None = None) -> Any:
    return field(default=default, metadata={"help": help, "flag": flag})


@dataclass(frozen=True)
class DataOptions:
    """How a table becomes training rows."""

    target: Optional[tuple[str, ...]] = _opt(None, "Target column(s) [default: the table's own target].")
    features: Optional[tuple[str, ...]] = _opt(None, "Feature columns [default: every other column].")
    exclude: tuple[str, ...] = _opt((), "Columns to leave out of the features (identifiers, leaks).")
    task: Optional[str] = _opt(None, "regression or classification [default: inferred from the target].")
    val_split: float = _opt(
        0.2, "Fraction of rows held out for validation and early stopping (stratified for classes); 0 for none.")
    scale: bool = _opt(True, "Scale numeric features (by --scaling) and standardise regression targets, with the "
                             "training rows' statistics; off leaves numbers as they are.")
    fill_missing: Optional[str] = _opt(
        "mean", "mean, median or zero for missing numbers (with an indicator input); none makes them an error.")
    scaling: str = _opt("quantile", "quantile (normal scores of the training quantiles) or standard for numbers.")
    target_log: Optional[bool] = _opt(
        None, "Learn a regression target as log1p(y) [default: when it is positive and strongly skewed].")
    drop_missing_target: bool = _opt(
        False, "Leave out rows whose target is missing (their number is said); off: a missing target is an error.")
    ple_bins: Optional[int] = _opt(
        None, "Also give each numeric column as a piecewise-linear encoding over this many training quantile "
              "bins (Gorishniy et al. 2022) [default: auto_ple_bins: 16 bins for columns of more than 32 distinct "
              "values, from 1,000 training rows on]; 0 for none.")


@dataclass(frozen=True)
class NetworkOptions:
    """The network's shape."""

    hidden: tuple[int, ...] = _opt((256, 256), "Hidden layer widths, e.g. 256,256.")
    activation: str = _opt("relu", "relu, tanh, sigmoid, gelu, leaky_relu or identity.")
    dropout: float = _opt(0.1, "Dropout after each hidden layer.")
    norm: str = _opt("none", "none, batch or layer normalisation after each hidden layer.")
    num_embeddings: Optional[str] = _opt(
        None, "periodic: each numeric input also enters as a learnt periodic embedding (PLR, Gorishniy et al. "
              "2022), for numbers of 3 or more distinct values and date parts; none for the numbers as they are "
              "[default: auto_num_embeddings: periodic from 1,000 training rows, where at most 16 inputs would "
              "be embedded].")
    ensemble: int = _opt(
        1, "Members sharing the hidden layers (TabM-mini, Gorishniy et al. 2025): each scales the inputs by "
           "its own vector and has its own output layer; trained on the mean of their losses, answering with "
           "the mean of their answers (predict --std gives their spread); 1 for one network.")
    networks: Optional[int] = _opt(
        None, "Networks trained on the same rows from seeds seed, seed + 1, ..., each stopped early on its own best "
              "epoch, answering together (the mean of their answers, of their class probabilities for classes; "
              "predict --std gives their spread) [default: auto_networks: 4 up to 4,096 training rows, fewer above, 1 "
              "from 16,384 rows on and when the run checkpoints, resumes or runs under torchrun]; 1 for one network.")


@dataclass(frozen=True)
class FitOptions:
    """How ``fit`` trains."""

    epochs: int = _opt(200, "Most passes over the training rows (early stopping usually ends sooner).")
    batch_size: Optional[int] = _opt(
        None, "Rows per step [default: chosen from the number of training rows, 32 to 512].")
    lr: float = _opt(1e-3, "Learning rate.")
    optimizer: str = _opt("adamw", "sgd, adam or adamw.")
    loss: Optional[str] = _opt(None, "mse, mae, cross_entropy or bce [default: mse for regression, "
                                     "cross_entropy for classification].")
    class_weight: Optional[str] = _opt(
        None, "balanced weighs each class by n_rows / (n_classes * its rows) in the loss; none for equal weights.")
    weight_decay: Optional[float] = _opt(
        None, "Weight decay, decoupled for adamw, L2 for sgd and adam [default: 0.01 for adamw, 0 for sgd and adam].")
    momentum: float = _opt(0.0, "Momentum for sgd.")
    clip_grad_norm: Optional[float] = _opt(None, "Clip the gradient norm to this value.")
    scheduler: Optional[str] = _opt(None, "none, cosine, step, plateau or one_cycle.")
    early_stopping: Optional[int] = _opt(
        16, "Stop after this many epochs without a better validation loss and restore the best epoch; "
            "0 to train every epoch.")
    seed: Optional[int] = _opt(0, "Random seed for the split, initial weights, order and dropout.")
    device: str = _opt("auto", "auto, cpu, cuda, cuda:N or mps.")
    precision: str = _opt("auto", "auto, fp32 or bf16 (autocast); auto takes bf16 only where the hardware runs it "
                                  "natively (AMX, AVX512-BF16, CUDA), the step is large and a short timing of it "
                                  "finds bf16 faster.")
    threads: Optional[int] = _opt(None, "CPU threads for training [default: chosen from the step's work and the "
                                        "free cores, timed where more than one count could win; OMP_NUM_THREADS or "
                                        "torch.set_num_threads also set it].")
    time_budget: Optional[float] = _opt(
        None, "Seconds training may take: no epoch starts past it, and the best epoch so far is kept "
              "[default for train: chosen from the table's size (auto_time_budget); fit: no limit].")


# One flat view for the command line, ``torchann.train(**options)`` and ``args.json``.
GROUPS = (DataOptions, NetworkOptions, FitOptions)
TRAIN_OPTION_NAMES: tuple[str, ...] = tuple(f.name for g in GROUPS for f in fields(g))


@dataclass(frozen=True)
class TrainOptions:
    """All three groups: what ``torchann.train`` and ``torchann train`` take."""

    data: DataOptions = field(default_factory=DataOptions)
    network: NetworkOptions = field(default_factory=NetworkOptions)
    fit: FitOptions = field(default_factory=FitOptions)

    @classmethod
    def from_flat(cls, options: dict[str, Any], *, where: str = "train") -> "TrainOptions":
        """Build from flat keyword options; an unknown name fails with the closest valid one."""
        groups = split_options(options, where=where)
        return cls(DataOptions(**groups[DataOptions]), NetworkOptions(**groups[NetworkOptions]),
                   FitOptions(**groups[FitOptions]))

    def to_flat(self) -> dict[str, Any]:
        """A flat JSON-ready dict (tuples as lists), as ``args.json`` stores it."""
        flat: dict[str, Any] = {}
        for part in (self.data, self.network, self.fit):
            flat.update({k: list(v) if isinstance(v, tuple) else v for k, v in asdict(part).items()})
        return flat


def split_options(options: dict[str, Any], *, where: str = "train") -> dict[type, dict[str, Any]]:
    """Sort flat keyword options into their groups."""
    owner = {f.name: g for g in GROUPS for f in fields(g)}
    groups: dict[type, dict[str, Any]] = {g: {} for g in GROUPS}
    for name, value in options.items():
        group = owner.get(name)
        if group is None:
            close = difflib.get_close_matches(name, TRAIN_OPTION_NAMES, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else f"; valid options: {', '.join(TRAIN_OPTION_NAMES)}"
            raise UsageError(f"{where}() got an unknown option {name!r}{hint}")
        if isinstance(value, list):
            value = tuple(value)
        groups[group][name] = value
    return groups


def _field(name: str):
    for group in GROUPS:
        for f in fields(group):
            if f.name == name:
                return f
    raise KeyError(name)


def option_default(name: str) -> Any:
    """The declared default of option ``name``."""
    f = _field(name)
    return f.default if f.default is not MISSING else f.default_factory()  # type: ignore[misc]


def option_help(name: str) -> str:
    """Help text for option ``name`` with its default, as the command line shows it."""
    f = _field(name)
    text = f.metadata["help"]
    if "[default:" in text:
        return text
    default = option_default(name)
    if default is None:
        return text
    if isinstance(default, tuple):
        shown = ",".join(str(v) for v in default) if default else "none"
    elif isinstance(default, bool):
        shown = "on" if default else "off"
    else:
        shown = str(default)
    return f"{text} [default: {shown}]"


def auto_batch_size(n_rows: int) -> int:
    """The default batch size for ``n_rows`` training rows: about 1/32 of the rows as a power
    of two, within 32..512, so that small tables still take enough steps per epoch and large
    ones are not slowed by tiny steps."""
    import math

    if n_rows <= 32 * 32:
        return 32
    return int(min(512, max(32, 2 ** round(math.log2(n_rows / 32)))))


def auto_time_budget(n_rows: int, n_inputs: int) -> float:
    """The default ``time_budget`` of ``torchann.train`` for ``n_rows`` training rows of
    ``n_inputs`` inputs: 120 seconds and 20 more per million row-inputs (a 4,000-row table of
    26 inputs: 122 s). It is a guard for large tables, not a schedule: on a quiet machine the
    tables of docs/quality.md end by early stopping in a few seconds. (A 30-second budget
    stopped diamonds and txhousing at 5,000 rows on a 2-core machine at load average 20-27.)"""
    return 120.0 + 2e-5 * float(n_rows) * float(n_inputs)


#: The automatic piecewise-linear encoding (``ple_bins=None``): ``PLE_BINS`` quantile bins for each
#: numeric column of more than ``PLE_MIN_DISTINCT`` distinct training values, once a table has
#: ``PLE_MIN_ROWS`` training rows (docs/quality.md, "Piecewise-linear encoding by default").
PLE_BINS = 16
PLE_MIN_ROWS = 1000
PLE_MIN_DISTINCT = 32


def auto_ple_bins(n_rows: int) -> int:
    """The default ``ple_bins`` for ``n_rows`` training rows: ``PLE_BINS`` from ``PLE_MIN_ROWS``
    rows on, else 0. Measured on the suite of docs/quality.md: the bins gained most where trees
    lead (hours and prices: taxi, hotel, churn, loans, ames) and cost score on small tables
    (diabetes, 353 training rows) and on columns of few values (digits' pixel counts), which the
    row and distinct-value thresholds leave out."""
    return PLE_BINS if n_rows >= PLE_MIN_ROWS else 0


#: The automatic periodic embeddings (``num_embeddings=None``) are for tables of at most this many
#: inputs to embed: 16 embeddings of 16 values are as wide as the default first hidden layer (256).
#: Wider tables, many coded or pixel columns, keep their numbers as they are (docs/quality.md,
#: "Periodic embeddings by default": on digits and caravan the embeddings cost score and time).
PERIODIC_MAX_INPUTS = 16


def auto_num_embeddings(n_rows: int) -> str:
    """The default ``num_embeddings`` for ``n_rows`` training rows: ``"periodic"`` from
    ``PLE_MIN_ROWS`` rows on, else ``"none"``; ``train`` embeds then only where the table has at
    most ``PERIODIC_MAX_INPUTS`` inputs to embed (docs/quality.md, "Periodic embeddings by
    default": they gained where numbers hold narrow effects, hours, days, calls)."""
    return "periodic" if n_rows >= PLE_MIN_ROWS else "none"


#: Networks ``train`` trains by default (``networks=None``, see ``auto_networks``): at most
#: ``MAX_AUTO_NETWORKS``, about ``NETWORK_ROWS`` training rows' worth of them.
MAX_AUTO_NETWORKS = 4
NETWORK_ROWS = 16384


def auto_networks(n_rows: int) -> int:
    """The default ``networks`` for ``n_rows`` training rows: ``NETWORK_ROWS // n_rows`` within
    1..``MAX_AUTO_NETWORKS`` (4 up to 4,096 rows, 3 to 5,461, 2 to 8,192, then 1). Averaging
    networks gains most where a table is small and one network's answers vary most from seed to
    seed; on large tables each network costs more and gains less (docs/quality.md, "Several
    networks by default"). A run that checkpoints, resumes or runs under torchrun trains one."""
    return max(1, min(MAX_AUTO_NETWORKS, NETWORK_ROWS // max(int(n_rows), 1)))
