"""Tutorial §2.3: the values of an intermediate layer.

The tutorial rewrites ``forward`` to return the hidden layer's output beside the result,
which changes what the model returns everywhere it is used. ``torchann.activations`` records
any named layer's output during one ordinary forward pass (through forward hooks that it
removes afterwards), so the model stays as it is.

Run: ``python examples/section_2_3_activations.py [OUT_DIR]`` (or set TORCHANN_TUTORIAL_OUT).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import torch

import torchann

INPUT = [[0.1, 0.2], [0.3, 0.4]]


def out_dir(default: str = "runs/tutorial") -> Path:
    return Path(sys.argv[1] if len(sys.argv) > 1 else os.environ.get("TORCHANN_TUTORIAL_OUT", default))


def main(out: str | os.PathLike | None = None, *, seed: int = 0) -> dict:
    out = Path(out if out is not None else out_dir())
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    model = torchann.mlp(2, [8], 1)  # layers: linear1, act1 (the tutorial's hidden_output), output
    x = torch.tensor(INPUT)

    acts = torchann.activations(model, x, layers=["act1", "output"])
    hidden_output, output = acts["act1"], acts["output"]
    print("hidden_output:", hidden_output)
    print("output:", output)
    with torch.no_grad():
        print("model(x), unchanged by the hooks:", model(x))
    return {
        "initial": [p.detach().clone() for p in model.parameters()],
        "input": x,
        "hidden_output": hidden_output,
        "output": output,
    }


if __name__ == "__main__":
    main()
