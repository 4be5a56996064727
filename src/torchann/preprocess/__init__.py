"""How raw columns become network inputs and outputs become answers, fitted on training rows
and stored as plain JSON: elementwise encoders (``encoders``), one column's feature
(``features``), the value checks (``checks``), the target side and task inference
(``target``), the ``Preprocessor`` (``preprocessor``) and the checks a stored record passes
(``record``).
May import: ``core``, ``data``.
"""

from .preprocessor import OutOfRangeWarning, Preprocessor, UnseenCategoryWarning
from .features import Feature
from .target import infer_task, class_weights

__all__ = ["Preprocessor", "UnseenCategoryWarning", "OutOfRangeWarning", "Feature", "infer_task", "class_weights"]
