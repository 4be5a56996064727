"""The preprocessing and the answers of a ``Model`` as ONNX operators.

Each fitted step of ``Preprocessor`` has one small function here that adds its nodes to a
:class:`GraphBuilder`: filling a missing number, scaling or the quantile map, the missing
indicator, one-hot encoding a category with its ``other`` and missing slots, and on the way
out turning the network's outputs back into target units (``expm1`` for a target learnt as
``log1p``), or into class labels and probabilities. Date features are not covered (the
exporter refuses them). ``onnx_export.py`` puts the blocks on either side of the network.

The arithmetic follows ``Preprocessor`` step by step and in the same precision: raw numbers
come in as float64 (as torchann reads them), are filled and scaled in float64 and cast to
float32 for the network; outputs are cast to float64 before unscaling or the softmax. So a
graph's answers equal ``Model.predict``'s up to the network's float32 arithmetic.

Inputs are 1-D, one per raw feature column, ``(batch,)``:

* numbers: ``tensor(double)``, NaN for a missing value;
* text categories: ``tensor(string)``, ``""`` for a missing value (ONNX strings cannot be null);
* number or true/false categories: ``tensor(double)`` (1.0 / 0.0 for true / false), NaN missing.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["GraphBuilder", "feature_block", "input_type", "answers"]


class GraphBuilder:
    """Nodes, constants, inputs and outputs of one ONNX graph, with fresh names for values.

    Internal values are named ``torchann/<hint>_<n>``; ``taken`` holds names already used (the
    raw column names), so an internal name never collides with an input or output.
    """

    def __init__(self, taken: set[str] | None = None) -> None:
        self.nodes: list[Any] = []
        self.initializers: list[Any] = []
        self.inputs: list[Any] = []
        self.outputs: list[Any] = []
        self.taken = set(taken or ())
        self._count = 0

    def fresh(self, hint: str) -> str:
        while True:
            self._count += 1
            name = f"torchann/{hint}_{self._count}"
            if name not in self.taken:
                self.taken.add(name)
                return name

    def const(self, value: np.ndarray, hint: str = "const") -> str:
        from onnx import numpy_helper

        name = self.fresh(hint)
        array = np.asarray(value)
        if array.dtype == object:  # strings: numpy_helper wants bytes or str objects
            array = np.array([str(v) for v in array.ravel()], dtype=object).reshape(array.shape)
        self.initializers.append(numpy_helper.from_array(array, name=name))
        return name

    def op(self, op_type: str, inputs: list[str], hint: str | None = None, *, out: str | None = None,
           **attrs: Any) -> str:
        from onnx import helper

        result = out or self.fresh(hint or op_type.lower())
        self.nodes.append(helper.make_node(op_type, inputs, [result], name=self.fresh(f"node_{op_type}"), **attrs))
        return result


# ---------------------------------------------------------------------------------- inputs


def input_type(feature: Any) -> int:
    """The ONNX element type of a raw feature column's input."""
    from onnx import TensorProto

    if feature.kind == "categorical" and feature.label_kind == "str":
        return TensorProto.STRING
    return TensorProto.DOUBLE


def feature_block(g: GraphBuilder, feature: Any, fill_categories: bool) -> str:
    """Add the input for one raw column and its preprocessing; returns a ``(batch, width)`` float64 value.

    ``fill_categories``: the model was trained with ``fill_missing`` set, so a missing category is
    its ``missing_slot`` input, or an all-zero block when training rows had none missing (without
    it, torchann refuses the row; the graph gives the same block).
    """
    from onnx import helper

    g.inputs.append(helper.make_tensor_value_info(feature.name, input_type(feature), ["batch"]))
    column = g.op("Unsqueeze", [feature.name, g.const(np.array([1], dtype=np.int64), "axes")], "column")
    if feature.kind == "numeric":
        value = filled(g, column, feature.fill)
        raw = value
        if feature.knots is not None:
            value = quantile_mapped(g, value, feature.knots, feature.scores or [])
        else:
            value = scaled(g, value, feature.mean, feature.std)
        if feature.bins:
            value = g.op("Concat", [value, piecewise_linear(g, raw, feature.bins)], "with_bins", axis=1)
        return with_indicator(g, value, column) if feature.indicator else value
    categories = feature.categories or []
    block = one_hot(g, column, categories, feature.label_kind) if categories else None
    missing = is_missing(g, column, feature.label_kind)
    parts = [block] if block is not None else []
    if feature.other:
        parts.append(other_slot(g, block, missing))
    if feature.missing_slot:
        parts.append(g.op("Cast", [missing], "missing_slot", to=_double()))
    return parts[0] if len(parts) == 1 else g.op("Concat", parts, "categorical", axis=1)


def filled(g: GraphBuilder, x: str, fill: float | None) -> str:
    """A missing number (NaN) becomes ``fill``; without a fill value NaN flows on (torchann refuses it)."""
    if fill is None:
        return x
    return g.op("Where", [g.op("IsNaN", [x], "missing"), g.const(np.array(fill, dtype=np.float64), "fill"), x],
                "filled")


def scaled(g: GraphBuilder, x: str, mean: float, std: float) -> str:
    """``(x - mean) / std`` in float64, as ``Preprocessor.transform_x`` computes it."""
    if mean == 0.0 and std == 1.0:
        return x
    centred = g.op("Sub", [x, g.const(np.array(mean, dtype=np.float64), "mean")], "centred")
    return g.op("Div", [centred, g.const(np.array(std, dtype=np.float64), "std")], "scaled")


def quantile_mapped(g: GraphBuilder, x: str, knots: list, scores: list) -> str:
    """``np.interp(x, knots, scores)`` in float64, as ``encoders.apply_quantile_map`` computes it.

    The segment of ``x`` is the number of knots (but the last) at or below it, less one; inside it
    the value is ``slope * (x - knot) + score`` with numpy's slope ``(s[j+1] - s[j]) / (k[j+1] - k[j])``.
    Below the first knot the first score, at or above the last the last score; NaN stays NaN.
    """
    k = np.asarray(knots, dtype=np.float64)
    s = np.asarray(scores, dtype=np.float64)
    nan = g.op("IsNaN", [x], "nan")
    if k.size == 1:
        return g.op("Where", [nan, x, g.const(np.array(s[0]), "score")], "quantile_mapped")
    slopes = (s[1:] - s[:-1]) / (k[1:] - k[:-1])
    low = g.op("Max", [x, g.const(np.array(k[0]), "first_knot")], "at_least_first")
    at_or_above = g.op("GreaterOrEqual", [low, g.const(k[None, :-1], "knots")], "at_or_above")
    count = g.op("ReduceSum", [g.op("Cast", [at_or_above], "at_or_above_n", to=_int64()),
                               g.const(np.array([1], dtype=np.int64), "axes")], "count", keepdims=1)
    segment = g.op("Sub", [count, g.const(np.array(1, dtype=np.int64), "one")], "segment")
    knot = g.op("Gather", [g.const(k[:-1], "knots"), segment], "knot", axis=0)
    score = g.op("Gather", [g.const(s[:-1], "scores"), segment], "score", axis=0)
    slope = g.op("Gather", [g.const(slopes, "slopes"), segment], "slope", axis=0)
    inside = g.op("Add", [g.op("Mul", [slope, g.op("Sub", [low, knot], "offset")], "rise"), score], "inside")
    top = g.op("GreaterOrEqual", [x, g.const(np.array(k[-1]), "last_knot")], "at_or_above_last")
    mapped = g.op("Where", [top, g.const(np.array(s[-1]), "last_score"), inside], "mapped")
    return g.op("Where", [nan, x, mapped], "quantile_mapped")


def piecewise_linear(g: GraphBuilder, x: str, bins: list) -> str:
    """``(batch, 1)`` -> ``(batch, T)``: ``encoders.ple_encode`` in float64, ``min(max((x - left) / width,
    low), high)`` with the bounds of ``encoders.ple_bounds``."""
    from ..preprocess.encoders import ple_bounds

    edges = np.asarray(bins, dtype=np.float64)
    low, high = ple_bounds(edges.size - 1)
    share = g.op("Div", [g.op("Sub", [x, g.const(edges[None, :-1], "bin_left")], "past_left"),
                         g.const(np.diff(edges)[None, :], "bin_width")], "bin_share")
    floored = g.op("Max", [share, g.const(low[None, :], "bin_low")], "bin_floored")
    return g.op("Min", [floored, g.const(high[None, :], "bin_high")], "bins")


def with_indicator(g: GraphBuilder, value: str, raw: str) -> str:
    """``value`` and a second column, 1.0 where the raw number was missing (NaN), else 0.0."""
    flag = g.op("Cast", [g.op("IsNaN", [raw], "missing")], "indicator", to=_double())
    return g.op("Concat", [value, flag], "with_indicator", axis=1)


def is_missing(g: GraphBuilder, x: str, label_kind: str | None) -> str:
    """``(batch, 1)`` bool: the category is missing (``""`` for text, NaN otherwise)."""
    if label_kind == "str":
        return g.op("Equal", [x, g.const(np.array([""], dtype=object), "empty")], "missing")
    return g.op("IsNaN", [x], "missing")


def other_slot(g: GraphBuilder, block: str | None, missing: str) -> str:
    """``(batch, 1)`` 0/1: a present value that matches no kept category (a rare or unseen one),
    as ``transform_x`` pools a category left out of ``categories`` into ``other``."""
    if block is None:
        known = g.op("Cast", [missing], "known", to=_double())
    else:
        known = g.op("Add", [g.op("ReduceSum", [block, g.const(np.array([1], dtype=np.int64), "axes")], "matched",
                                  keepdims=1),
                             g.op("Cast", [missing], "missing_number", to=_double())], "known")
    return g.op("Sub", [g.const(np.array(1.0), "one"), g.op("Min", [known, g.const(np.array(1.0), "one")], "known1")],
                "other_slot")


def one_hot(g: GraphBuilder, x: str, categories: list, label_kind: str | None) -> str:
    """``(batch, 1)`` labels -> ``(batch, n_categories)`` 0/1, one column per known category.

    ``Equal`` against the sorted categories: a missing or unknown value matches none of them.
    """
    if label_kind == "str":
        known = np.array([str(c) for c in categories], dtype=object)
    else:  # numbers and true/false compare as float64 (True is 1.0)
        known = np.array([float(c) for c in categories], dtype=np.float64)
    match = g.op("Equal", [x, g.const(known, "categories")], "is_category")
    return g.op("Cast", [match], "one_hot", to=_double())


def network_input(g: GraphBuilder, blocks: list[str]) -> str:
    """The feature blocks side by side, as the float32 matrix the network takes."""
    joined = blocks[0] if len(blocks) == 1 else g.op("Concat", blocks, "features", axis=1)
    from onnx import TensorProto

    return g.op("Cast", [joined], "inputs", to=TensorProto.FLOAT)


# --------------------------------------------------------------------------------- answers


def answers(g: GraphBuilder, outputs: str, pre: Any, out_features: int) -> None:
    """Add the graph outputs: one per regression target in its units, or the class label and
    the class probabilities."""
    from onnx import helper

    wide = g.op("Cast", [outputs], "outputs64", to=_double())
    if pre.task.value == "regression":
        values = g.op("Add", [g.op("Mul", [wide, g.const(np.asarray(pre.target_std, dtype=np.float64), "target_std")],
                                   "times_std"),
                              g.const(np.asarray(pre.target_mean, dtype=np.float64), "target_mean")], "answers")
        if pre.target_log and any(pre.target_log):
            values = from_log(g, values, pre.target_log)
        for k, name in enumerate(pre.target_names):
            g.op("Gather", [values, g.const(np.array(k, dtype=np.int64), "target")], out=name, axis=1)
            g.outputs.append(helper.make_tensor_value_info(name, _double(), ["batch"]))
        return
    proba_name = probabilities_name(pre)
    probabilities(g, wide, len(pre.classes), out_features, out=proba_name)
    best = g.op("ArgMax", [proba_name], "class_index", axis=1, keepdims=0)
    labels = class_labels(pre.classes, pre.class_kind)
    label = pre.target_names[0]
    g.op("Gather", [g.const(labels, "classes"), best], out=label, axis=0)
    g.outputs.append(helper.make_tensor_value_info(label, label_type(pre.class_kind), ["batch"]))
    g.outputs.append(helper.make_tensor_value_info(proba_name, _double(), ["batch", len(pre.classes)]))


def from_log(g: GraphBuilder, values: str, logged: list) -> str:
    """``expm1`` of the targets learnt as ``log1p(y)`` (``inverse_y``), the others as they are.

    ONNX has no ``Expm1``: ``exp(y) - 1``, and below ``|y| < 1e-5`` the series ``y + y^2/2 + y^3/6``,
    which keeps the relative error near float64's where ``exp(y) - 1`` would cancel."""
    small = g.op("Less", [g.op("Abs", [values], "magnitude"), g.const(np.array(1e-5), "small")], "small")
    square = g.op("Mul", [values, values], "square")
    series = g.op("Add", [values, g.op("Mul", [square, g.op("Add", [g.const(np.array(0.5), "half"),
                                                                     g.op("Div", [values, g.const(np.array(6.0), "six")],
                                                                          "sixth")], "coefficient")], "tail")],
                  "series")
    direct = g.op("Sub", [g.op("Exp", [values], "exp"), g.const(np.array(1.0), "one")], "exp_less_one")
    expm1 = g.op("Where", [small, series, direct], "expm1")
    mask = g.const(np.asarray([bool(v) for v in logged], dtype=np.bool_), "target_log")
    return g.op("Where", [mask, expm1, values], "answers")


def probabilities(g: GraphBuilder, logits: str, n_classes: int, out_features: int, *, out: str) -> str:
    """Softmax over the logits; one logit for two classes is the second class's sigmoid."""
    if out_features == 1 and n_classes == 2:
        p1 = g.op("Sigmoid", [logits], "p1")
        p0 = g.op("Sub", [g.const(np.array(1.0, dtype=np.float64), "one"), p1], "p0")
        return g.op("Concat", [p0, p1], out=out, axis=1)
    return g.op("Softmax", [logits], out=out, axis=1)


def probabilities_name(pre: Any) -> str:
    """``"probabilities"``, unless a feature or the target already has that name."""
    taken = set(pre.feature_names) | set(pre.target_names)
    name = "probabilities"
    while name in taken:
        name = f"{name}_"
    return name


def class_labels(classes: list, class_kind: str | None) -> np.ndarray:
    dtype = {"str": object, "int": np.int64, "float": np.float64, "bool": np.bool_}.get(class_kind or "str", object)
    if dtype is object:
        return np.array([str(c) for c in classes], dtype=object)
    return np.array(classes, dtype=dtype)


def label_type(class_kind: str | None) -> int:
    from onnx import TensorProto

    return {"int": TensorProto.INT64, "float": TensorProto.DOUBLE, "bool": TensorProto.BOOL}.get(
        class_kind or "str", TensorProto.STRING)


def _int64() -> int:
    from onnx import TensorProto

    return TensorProto.INT64


def _double() -> int:
    from onnx import TensorProto

    return TensorProto.DOUBLE
