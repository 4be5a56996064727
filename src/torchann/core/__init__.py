"""The foundation every layer stands on: the error hierarchy (``errors``), string choices
parsed once (``choices``), every training option and its default declared once (``options``),
atomic writes and careful reads (``files``) and the argument checks shared by the entry points
(``checks``). Imports nothing of torchann and nothing heavy: ``torchann --help`` loads it.
"""
