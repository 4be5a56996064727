"""A trained model as one ONNX file with its preprocessing inside: the graph's operators
(``onnx_ops``) and the export itself (``onnx``).
May import: ``model`` and the layers below it.
"""

from .onnx import export_onnx

__all__ = ["export_onnx"]
