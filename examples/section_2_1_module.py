"""Tutorial §2.1: a 2-8-1 ReLU network that learns to add two numbers.

The tutorial subclasses ``nn.Module``, prints each layer's weight and bias, and writes the
``zero_grad / backward / step`` loop itself. Here the network is ``torchann.mlp(2, [8], 1)``,
its parameters are listed by ``torchann.parameters_table`` and ``torchann.fit`` runs the
same 50 full-batch SGD steps (lr 0.001) with the same MSE loss.

Run: ``python examples/section_2_1_module.py [OUT_DIR]`` (or set TORCHANN_TUTORIAL_OUT).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import torch

import torchann

X = [[1, 2], [3, 4], [5, 6], [7, 8]]
Y = [[3], [7], [11], [15]]


def out_dir(default: str = "runs/tutorial") -> Path:
    return Path(sys.argv[1] if len(sys.argv) > 1 else os.environ.get("TORCHANN_TUTORIAL_OUT", default))


def main(out: str | os.PathLike | None = None, *, seed: int = 0, device: str = "auto") -> dict:
    out = Path(out if out is not None else out_dir())
    out.mkdir(parents=True, exist_ok=True)

    # The tutorial's nn.Linear(2, 8) and nn.Linear(8, 1) are created in the same order here, so
    # after the same torch.manual_seed they start from the same random weights.
    torch.manual_seed(seed)
    model = torchann.mlp(2, [8], 1)
    initial = [p.detach().clone() for p in model.parameters()]
    print(model)
    print(model.linear1.weight)
    print(model.linear1.bias)
    print(torchann.parameters_table(model))

    x, y = torch.tensor(X).float(), torch.tensor(Y).float()
    first_loss = torch.nn.functional.mse_loss(torchann.predict(model, x), y).item()
    print(f"loss before training: {first_loss}")

    history = torchann.fit(model, x, y, epochs=50, batch_size=4, shuffle=False, optimizer="sgd", lr=0.001,
                           loss="mse", seed=seed, device=device, early_stopping=None)
    losses = history.losses  # four rows, batch size 4: one epoch is one step
    print(f"loss after step 1: {losses[0]}, after step 50: {losses[-1]}")

    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    fig, ax = plt.subplots()
    ax.plot(losses)
    ax.set_title("Loss variation over increasing epochs")
    ax.set_xlabel("epochs")
    ax.set_ylabel("loss value")
    plot = out / "section_2_1_loss.png"
    fig.savefig(plot)
    plt.close(fig)
    print(f"loss plot: {plot}")
    return {
        "initial": initial,
        "first_loss": first_loss,
        "losses": losses,
        "weights": [p.detach().cpu().clone() for p in model.parameters()],
        "table": torchann.parameters_table(model),
        "device": history.info["device"],
        "plot": plot,
    }


if __name__ == "__main__":
    main()
