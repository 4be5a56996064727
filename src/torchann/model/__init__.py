"""The trained model as a value and on disk: ``BaseModel`` (network + preprocessing + history:
predict, evaluate, save, load) (``base``), the model directory format (``directory``), what a
model says about itself (``facts``), scores (``scores``), scoring a file in chunks
(``scoring``), run folders and their ``args.json`` (``rundir``, ``run_args``), and the safe
import of tutorial ``.pth`` files (``pth``). The report and the export ask this layer; it
never asks them.
May import: every layer below (``core`` ... ``inspect``).
"""

from .base import BaseModel
from .directory import save, read_model_dir, ModelDir
from .pth import import_state_dict
from .scoring import score_file

__all__ = ["BaseModel", "save", "read_model_dir", "ModelDir", "import_state_dict", "score_file"]
