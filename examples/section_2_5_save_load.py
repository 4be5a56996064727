"""Tutorial §2.5: saving and loading a model.

The tutorial saves ``model.state_dict()`` to ``model_weights.pth`` (or the whole pickled model
to ``complete_model.pth``) and loads it back into its own class. A ``.pth`` file is a pickle,
and unpickling can run any code the file names. torchann:

- imports the tutorial's state-dict file with ``torch.load(weights_only=True)`` (tensors only)
  into a ``torchann.mlp`` (``torchann.import_state_dict``, or ``torchann import``);
- saves models as a directory (``spec.json`` + ``weights.safetensors``) that loads without
  unpickling anything (``torchann.save`` / ``torchann.load``);
- refuses a whole pickled model unless the caller says the file is trusted.

Run: ``python examples/section_2_5_save_load.py [OUT_DIR]`` (or set TORCHANN_TUTORIAL_OUT).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import torch
import torch.nn as nn

import torchann
from torchann.model.pth import import_state_dict

X = [[1, 2], [3, 4], [5, 6], [7, 8]]
Y = [[3], [7], [11], [15]]
VAL = [[8, 9], [10, 11], [1.5, 2.5]]


class MyNeuralNet(nn.Module):
    """The tutorial's §2.1 network, as the tutorial writes it."""

    def __init__(self):
        super().__init__()
        self.input_to_hidden_layer = nn.Linear(2, 8)
        self.hidden_layer_activation = nn.ReLU()
        self.hidden_to_output_layer = nn.Linear(8, 1)

    def forward(self, x):
        x = self.input_to_hidden_layer(x)
        x = self.hidden_layer_activation(x)
        x = self.hidden_to_output_layer(x)
        return x


def out_dir(default: str = "runs/tutorial") -> Path:
    return Path(sys.argv[1] if len(sys.argv) > 1 else os.environ.get("TORCHANN_TUTORIAL_OUT", default))


def main(out: str | os.PathLike | None = None, *, seed: int = 0) -> dict:
    out = Path(out if out is not None else out_dir())
    out.mkdir(parents=True, exist_ok=True)

    # The tutorial's model, trained (fit takes any nn.Module), then saved the tutorial's two ways.
    torch.manual_seed(seed)
    mynet = MyNeuralNet()
    torchann.fit(mynet, X, Y, epochs=50, batch_size=2, optimizer="sgd", lr=0.001, seed=seed, early_stopping=None)
    mynet.eval()
    weights_file, pickle_file = out / "model_weights.pth", out / "complete_model.pth"
    torch.save(mynet.to("cpu").state_dict(), weights_file)
    torch.save(mynet, pickle_file)
    with torch.no_grad():
        expected = mynet(torch.tensor(VAL))
    print("the tutorial's model:", expected)

    # 1. Import the state-dict file: tensors only, keys mapped layer by layer onto linear1/output.
    imported = import_state_dict(weights_file, torchann.ModelSpec(2, (8,), 1))
    from_import = torchann.predict(imported, VAL)
    print("imported into torchann:", from_import)

    # 2. Save as a model directory and load it back: JSON + safetensors, nothing unpickled.
    model_dir = torchann.save(imported, out / "section_2_5_model")
    loaded = torchann.load(model_dir)  # a torchann.Model; .network is the nn.Module
    from_dir = torchann.predict(loaded.network, VAL)
    print(f"reloaded from {model_dir}:", from_dir)

    # 3. The whole pickled model is refused, unless we say we trust the file (we wrote it).
    try:
        import_state_dict(pickle_file, torchann.ModelSpec(2, (8,), 1))
        refusal = None
    except torchann.ModelFileError as err:
        refusal = str(err)
        print("refused:", refusal)
    trusted = import_state_dict(pickle_file, torchann.ModelSpec(2, (8,), 1), trust_pickle=True)
    from_trusted = torchann.predict(trusted, VAL)
    print("with trust_pickle=True:", from_trusted)
    return {
        "expected": expected,
        "imported": from_import,
        "reloaded": from_dir,
        "trusted": from_trusted,
        "refusal": refusal,
        "weights_file": weights_file,
        "pickle_file": pickle_file,
        "model_dir": model_dir,
    }


if __name__ == "__main__":
    main()
