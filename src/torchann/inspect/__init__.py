"""Looking inside a network without changing it: ``summary()`` (``summary``, over one
hooked forward pass in ``trace``), layer outputs through forward hooks, the parameter table
and a spec in words (``layers``).
May import: ``core``, ``render``, ``network``.
"""

from .summary import Summary, summary, summary_of_spec
from .layers import activations, parameters_table, describe_spec

__all__ = ["Summary", "summary", "summary_of_spec", "activations", "parameters_table", "describe_spec"]
