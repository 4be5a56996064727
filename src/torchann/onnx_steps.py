"""The preprocessing and the answers of a ``Model`` as ONNX operators.

Each fitted step of ``Preprocessor`` has one small function here that adds its nodes to a
:class:`GraphBuilder`: filling a missing number, scaling, one-hot encoding a category, and on
the way out turning the network's outputs back into target units, or into class labels and
probabilities. ``onnx_export.py`` puts the blocks on either side of the network.

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
    an all-zero block (without it, torchann refuses the row; the graph gives the same zero block).
    """
    from onnx import helper

    g.inputs.append(helper.make_tensor_value_info(feature.name, input_type(feature), ["batch"]))
    column = g.op("Unsqueeze", [feature.name, g.const(np.array([1], dtype=np.int64), "axes")], "column")
    if feature.kind == "numeric":
        return scaled(g, filled(g, column, feature.fill), feature.mean, feature.std)
    return one_hot(g, column, feature.categories or [], feature.label_kind)


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


def _double() -> int:
    from onnx import TensorProto

    return TensorProto.DOUBLE
