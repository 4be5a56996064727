"""Tutorial §2.4: ``nn.Sequential``, the torchsummary table, and the small data set again.

``torchann.mlp`` builds an ``nn.Sequential`` with named layers (linear1, act1, output).
``torchann.summary`` prints the tutorial's torchsummary table line for line, on whatever
device the model is on (the tutorial's ``.to(device='cuda')`` fails on a CPU-only machine,
and torchsummary is no longer maintained). The last part trains the 2-8-1 net with batches
of 2 for 50 epochs and predicts three rows, as the tutorial's Sequential rewrite does.

Run: ``python examples/section_2_4_sequential.py [OUT_DIR]`` (or set TORCHANN_TUTORIAL_OUT).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import torch

import torchann
from torchann.runtime.devices import resolve_device

X = [[1, 2], [3, 4], [5, 6], [7, 8]]
Y = [[3], [7], [11], [15]]
VAL = [[8, 9], [10, 11], [1.5, 2.5]]


def out_dir(default: str = "runs/tutorial") -> Path:
    return Path(sys.argv[1] if len(sys.argv) > 1 else os.environ.get("TORCHANN_TUTORIAL_OUT", default))


def main(out: str | os.PathLike | None = None, *, seed: int = 0, device: str = "auto") -> dict:
    out = Path(out if out is not None else out_dir())
    out.mkdir(parents=True, exist_ok=True)
    dev = resolve_device(device)

    # 784 -> 128 (ReLU) -> 10 on a batch of 64 random rows.
    torch.manual_seed(seed)
    big = torchann.mlp(784, [128], 10)
    with torch.no_grad():
        big_shape = tuple(big(torch.randn(64, 784)).shape)
    print(torch.Size(big_shape))

    # 2 -> 8 (ReLU) -> 1, its outputs for three rows, and its summary.
    model = torchann.mlp(2, [8], 1).to(dev)
    with torch.no_grad():
        print(model(torch.tensor(VAL, device=dev)))
    table = torchann.summary(model, input_size=(1, 2))
    print(table)

    # The tutorial's Sequential rewrite of §2.2: batches of 2, shuffled, 50 epochs, SGD lr 0.001.
    torch.manual_seed(seed)
    net = torchann.mlp(2, [8], 1)
    initial = [p.detach().clone() for p in net.parameters()]
    history = torchann.fit(net, X, Y, epochs=50, batch_size=2, shuffle=True, optimizer="sgd", lr=0.001,
                           loss="mse", seed=seed, device=device, early_stopping=None)
    print("time: ", sum(history["seconds"]))
    prediction = torchann.predict(net, VAL)
    print(prediction)
    return {
        "big_output_shape": big_shape,
        "summary": table,
        "summary_text": str(table),
        "initial": initial,
        "seed": seed,
        "losses": history.losses,
        "prediction": prediction,
        "device": history.info["device"],
    }


if __name__ == "__main__":
    main()
