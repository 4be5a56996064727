"""Tutorial §2.2: mini-batches of 2 rows, shuffled every epoch, and a prediction for [[10, 11]].

The tutorial wraps the data in a ``Dataset`` and a ``DataLoader(batch_size=2, shuffle=True)``,
which fetches rows one at a time in Python and stacks them. ``torchann.fit`` keeps the rows in
one tensor on the training device and slices batches out of it; each epoch's order is
``torchann.batching.epoch_permutation(n, seed=seed, epoch=e)``, so a run can be repeated.

Run: ``python examples/section_2_2_batches.py [OUT_DIR]`` (or set TORCHANN_TUTORIAL_OUT).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import torch

import torchann
from torchann.batching.batches import epoch_permutation

X = [[1, 2], [3, 4], [5, 6], [7, 8]]
Y = [[3], [7], [11], [15]]
VAL_X = [[10, 11]]


def out_dir(default: str = "runs/tutorial") -> Path:
    return Path(sys.argv[1] if len(sys.argv) > 1 else os.environ.get("TORCHANN_TUTORIAL_OUT", default))


def main(out: str | os.PathLike | None = None, *, seed: int = 0, epochs: int = 20, device: str = "auto") -> dict:
    out = Path(out if out is not None else out_dir())
    out.mkdir(parents=True, exist_ok=True)
    x, y = torch.tensor(X).float(), torch.tensor(Y).float()

    # The batches fit will take in the first epoch, printed as the tutorial prints its DataLoader.
    order = epoch_permutation(len(x), seed=seed, epoch=0)
    for start in range(0, len(x), 2):
        rows = order[start : start + 2]
        print(x[rows], y[rows])

    torch.manual_seed(seed)
    model = torchann.mlp(2, [8], 1)
    initial = [p.detach().clone() for p in model.parameters()]
    history = torchann.fit(model, x, y, epochs=epochs, batch_size=2, shuffle=True, optimizer="sgd", lr=0.001,
                           loss="mse", seed=seed, device=device, early_stopping=None)
    # The tutorial adds up the two batch losses of an epoch; fit reports their mean over rows.
    steps = history.info["steps_per_epoch"]
    epoch_sums = [loss * steps for loss in history.losses]
    print("time: ", sum(history["seconds"]))
    print(epoch_sums[0])
    print(epoch_sums[-1])

    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    fig, ax = plt.subplots()
    ax.plot(epoch_sums)
    ax.set_title("Loss over increasing number of epochs")
    plot = out / "section_2_2_loss.png"
    fig.savefig(plot)
    plt.close(fig)

    prediction = torchann.predict(model, VAL_X)
    print(prediction)
    return {
        "initial": initial,
        "seed": seed,
        "epochs": epochs,
        "losses": history.losses,
        "epoch_sums": epoch_sums,
        "prediction": prediction,
        "device": history.info["device"],
        "plot": plot,
    }


if __name__ == "__main__":
    main()
