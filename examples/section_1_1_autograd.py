"""Tutorial §1.1: autograd, then the 2-3-1 sigmoid net trained by plain gradient descent.

The tutorial writes the forward pass, the update ``W -= lr * W.grad`` and the gradient reset
by hand. Here the same network, from the same initial weights, is a ``torchann.mlp`` trained
by ``torchann.fit`` with SGD; its loss at every step equals the hand-written loop's.

Run: ``python examples/section_1_1_autograd.py [OUT_DIR]`` (or set TORCHANN_TUTORIAL_OUT).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import torch

import torchann

# The tutorial's initial weights, as it writes them: W[0] is used as ``x @ W[0]``, so it is the
# transpose of what nn.Linear stores (nn.Linear computes ``x @ weight.T``).
W0 = [[-0.0053, 0.3793], [-0.5820, -0.5204], [-0.2723, 0.1896]]  # (3, 2) before the tutorial's .T
B0 = [-0.0140, 0.5607, -0.0628]
W1 = [[0.1528, -0.1745, -0.1135]]  # (1, 3) before the tutorial's .T
B1 = [-0.5516]


def initial_weights() -> list[torch.Tensor]:
    """The tutorial's weights in ``model.parameters()`` order: linear1.weight, linear1.bias, output.weight, output.bias."""
    return [torch.tensor(w, dtype=torch.float32) for w in (W0, B0, W1, B1)]


def out_dir(default: str = "runs/tutorial") -> Path:
    return Path(sys.argv[1] if len(sys.argv) > 1 else os.environ.get("TORCHANN_TUTORIAL_OUT", default))


def main(out: str | os.PathLike | None = None, *, device: str = "auto") -> dict:
    out = Path(out if out is not None else out_dir())
    out.mkdir(parents=True, exist_ok=True)

    # Part 1: d/dx sum(x^2) = 2x.
    x = torch.tensor([[2.0, -1.0], [1.0, 1.0]], requires_grad=True)
    print(x)
    x.pow(2).sum().backward()
    print(x.grad)

    # Part 2: one input [1, 1], target 0, 1000 steps of gradient descent with lr 0.001.
    inputs, target = torch.tensor([[1.0, 1.0]]), torch.tensor([[0.0]])
    model = torchann.mlp(2, [3], 1, activation="sigmoid")
    history = torchann.fit(
        model, inputs, target, epochs=1000, batch_size=1, optimizer="sgd", lr=0.001, loss="mse",
        init_weights=initial_weights(), shuffle=False, seed=0, device=device, early_stopping=None,
    )
    losses = history.losses  # one row and batch size 1: one epoch is one step
    for loss in losses[::20]:
        print(loss)

    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    fig, ax = plt.subplots()
    ax.plot(losses)
    ax.set_title("Loss over increasing number of epochs")
    ax.set_xlabel("step")
    ax.set_ylabel("mean squared error")
    plot = out / "section_1_1_loss.png"
    fig.savefig(plot)
    plt.close(fig)
    print(f"loss plot: {plot}")
    return {
        "x": x.detach(),
        "grad": x.grad.clone(),
        "losses": losses,
        "weights": [p.detach().cpu().clone() for p in model.parameters()],
        "device": history.info["device"],
        "plot": plot,
    }


if __name__ == "__main__":
    main()
