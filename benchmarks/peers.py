"""The training loops the throughput benchmark compares, one function per way of training.

Every function takes the same inputs (a model factory, float32 tensors ``x`` and ``y``, the
batch size, the optimiser name and learning rate, a seed), trains for exactly one epoch and
returns ``Run(seconds, steps, model)``. The clock runs from just before the first line that
belongs to training (building a DataLoader, a Trainer, an estimator) until that tool returns.
Building the model and the data is not timed. Each tool runs the way its documentation
shows; nothing is tuned for this benchmark beyond what the task fixes (no logger and no
progress bar for Lightning, no validation split for skorch, one epoch everywhere).
"""

from __future__ import annotations

import logging
import time
import warnings
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, TensorDataset

import torchann


@dataclass
class Run:
    seconds: float
    steps: int
    predict: Callable[[torch.Tensor], torch.Tensor]  # the trained model, as a function of x
    precision: str = "fp32"  # what it trained in


def _torch_optimizer(name: str, params: Any, lr: float, **kwargs: Any) -> torch.optim.Optimizer:
    cls = {"adam": torch.optim.Adam, "sgd": torch.optim.SGD}[name]
    return cls(params, lr=lr, **kwargs)


def _eval(model: nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
    def predict(x: torch.Tensor) -> torch.Tensor:
        model.eval()
        with torch.no_grad():
            return model(x)

    return predict


# -- (a) the tutorial's loop ------------------------------------------------------------------

class TutorialDataset(Dataset):
    """The tutorial's ``MyDataset`` (§2.2): one row per ``__getitem__`` call."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor) -> None:
        self.x, self.y = x, y

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, ix: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.x[ix], self.y[ix]


def _dataloader_loop(model, dataset, batch_size, optimizer, lr, seed) -> Run:
    start = time.perf_counter()
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=True, generator=torch.Generator().manual_seed(seed))
    opt = _torch_optimizer(optimizer, model.parameters(), lr)
    loss_fn = nn.MSELoss()
    total, steps = 0.0, 0
    model.train()
    for xb, yb in loader:
        opt.zero_grad()
        loss = loss_fn(model(xb), yb)
        loss.backward()
        opt.step()
        total += loss.item()  # the tutorial's running loss: a host read every step
        steps += 1
    return Run(time.perf_counter() - start, steps, _eval(model))


def tutorial_loop(make_model, x, y, *, batch_size, optimizer, lr, seed) -> Run:
    """(a) ``MyDataset.__getitem__`` + ``DataLoader(shuffle=True)`` + ``loss.item()`` per step."""
    return _dataloader_loop(make_model(), TutorialDataset(x, y), batch_size, optimizer, lr, seed)


def tensordataset_loop(make_model, x, y, *, batch_size, optimizer, lr, seed) -> Run:
    """(b) the same loop over ``TensorDataset``."""
    return _dataloader_loop(make_model(), TensorDataset(x, y), batch_size, optimizer, lr, seed)


# -- (c) a hand-written tensor loop -----------------------------------------------------------

def hand_loop(make_model, x, y, *, batch_size, optimizer, lr, seed) -> Run:
    """(c) ``randperm`` + slicing, fused optimiser, no host read inside the epoch."""
    model = make_model()
    start = time.perf_counter()
    opt = _torch_optimizer(optimizer, model.parameters(), lr, fused=True)
    loss_fn = nn.MSELoss()
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))
    xs, ys = x[order], y[order]
    model.train()
    steps = 0
    for i in range(0, len(x), batch_size):
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(model(xs[i : i + batch_size]), ys[i : i + batch_size])
        loss.backward()
        opt.step()
        steps += 1
    return Run(time.perf_counter() - start, steps, _eval(model))


# -- (d) torchann -----------------------------------------------------------------------------

def torchann_fit(make_model, x, y, *, batch_size, optimizer, lr, seed, precision="auto") -> Run:
    """(d) ``torchann.fit`` with its defaults (precision and threads chosen from the work and the
    machine); (d1) and (d2) the same with ``precision="fp32"`` and ``"bf16"``."""
    model = make_model()
    start = time.perf_counter()
    history = torchann.fit(model, x, y, epochs=1, batch_size=batch_size, lr=lr, optimizer=optimizer,
                           seed=seed, device="cpu", precision=precision, early_stopping=None)
    return Run(time.perf_counter() - start, history.info["steps_per_epoch"], _eval(model), history.info["precision"])


def torchann_fit_fp32(make_model, x, y, **kwargs) -> Run:
    return torchann_fit(make_model, x, y, precision="fp32", **kwargs)


def torchann_fit_bf16(make_model, x, y, **kwargs) -> Run:
    return torchann_fit(make_model, x, y, precision="bf16", **kwargs)


def torchann_fit_compiled(make_model, x, y, *, batch_size, optimizer, lr, seed) -> Run:
    """(d3) ``torchann.fit(compile=True)``: torch.compile's default backend, compile time included."""
    model = make_model()
    start = time.perf_counter()
    history = torchann.fit(model, x, y, epochs=1, batch_size=batch_size, lr=lr, optimizer=optimizer,
                           seed=seed, device="cpu", compile=True, early_stopping=None)
    return Run(time.perf_counter() - start, history.info["steps_per_epoch"], _eval(model))


# -- (e) skorch -------------------------------------------------------------------------------

def skorch_fit(make_model, x, y, *, batch_size, optimizer, lr, seed) -> Run:
    """(e) ``skorch.NeuralNetRegressor`` on numpy arrays, no validation split, silent."""
    from skorch import NeuralNetRegressor

    model = make_model()
    xn, yn = x.numpy(), y.numpy()
    torch.manual_seed(seed)  # skorch shuffles with torch's global generator
    start = time.perf_counter()
    net = NeuralNetRegressor(
        model, criterion=nn.MSELoss, optimizer=_torch_optimizer_class(optimizer), lr=lr,
        batch_size=batch_size, max_epochs=1, train_split=None, iterator_train__shuffle=True,
        verbose=0, device="cpu",
    )
    net.fit(xn, yn)
    seconds = time.perf_counter() - start
    return Run(seconds, -(-len(x) // batch_size), _eval(net.module_))


def _torch_optimizer_class(name: str) -> type:
    return {"adam": torch.optim.Adam, "sgd": torch.optim.SGD}[name]


# -- (f) PyTorch Lightning --------------------------------------------------------------------

def lightning_fit(make_model, x, y, *, batch_size, optimizer, lr, seed) -> Run:
    """(f) ``lightning.Trainer``: no logger, no checkpoint, no progress bar, no model summary."""
    import lightning as L

    logging.getLogger("lightning").setLevel(logging.ERROR)
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)

    class Module(L.LightningModule):
        def __init__(self, net: nn.Module) -> None:
            super().__init__()
            self.net = net
            self.loss_fn = nn.MSELoss()

        def training_step(self, batch, batch_idx):
            xb, yb = batch
            return self.loss_fn(self.net(xb), yb)

        def configure_optimizers(self):
            return _torch_optimizer(optimizer, self.parameters(), lr)

    module = Module(make_model())
    start = time.perf_counter()
    loader = DataLoader(TensorDataset(x, y), batch_size=batch_size, shuffle=True,
                        generator=torch.Generator().manual_seed(seed))
    trainer = L.Trainer(max_epochs=1, accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "the dataloader does not have many workers"
        trainer.fit(module, loader)
    return Run(time.perf_counter() - start, trainer.global_step, _eval(module.net))


# -- (g) scikit-learn -------------------------------------------------------------------------

def sklearn_fit(make_model, x, y, *, batch_size, optimizer, lr, seed, hidden=None) -> Run:
    """(g) ``sklearn.neural_network.MLPRegressor``, one epoch (``max_iter=1``), float32, no L2 term.

    scikit-learn's squared loss is half the MSE, so its gradients are half as large: with
    Adam this changes almost nothing; with plain SGD it is the same as half the learning rate.
    """
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPRegressor
    from threadpoolctl import threadpool_limits

    model = make_model()
    sizes = hidden or tuple(m.out_features for m in model if isinstance(m, nn.Linear))[:-1]
    xn, yn = x.numpy(), y.numpy().ravel()
    extra = {"momentum": 0.0, "nesterovs_momentum": False} if optimizer == "sgd" else {}
    start = time.perf_counter()
    est = MLPRegressor(hidden_layer_sizes=sizes, activation="relu", solver=optimizer, alpha=0.0,
                       batch_size=batch_size, learning_rate_init=lr, max_iter=1, shuffle=True,
                       random_state=seed, **extra)
    with threadpool_limits(torch.get_num_threads()), warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est.fit(xn, yn)
    seconds = time.perf_counter() - start

    def predict(xt: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(np.asarray(est.predict(xt.numpy()), dtype=np.float32)).reshape(-1, 1)

    return Run(seconds, -(-len(x) // batch_size), predict)


VARIANTS: dict[str, tuple[str, Callable[..., Run]]] = {
    "tutorial": ("(a) tutorial loop: Dataset.__getitem__ + DataLoader + loss.item()", tutorial_loop),
    "tensordataset": ("(b) TensorDataset + DataLoader", tensordataset_loop),
    "hand": ("(c) hand loop: randperm + slices + fused optimiser", hand_loop),
    "torchann": ("(d) torchann.fit (defaults: precision and threads auto)", torchann_fit),
    "torchann-fp32": ('(d1) torchann.fit precision="fp32"', torchann_fit_fp32),
    "torchann-bf16": ('(d2) torchann.fit precision="bf16"', torchann_fit_bf16),
    "torchann-compile": ("(d3) torchann.fit compile=True (not in the default run)", torchann_fit_compiled),
    "skorch": ("(e) skorch NeuralNetRegressor", skorch_fit),
    "lightning": ("(f) Lightning Trainer", lightning_fit),
    "sklearn": ("(g) scikit-learn MLPRegressor", sklearn_fit),
}
