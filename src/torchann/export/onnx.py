"""ONNX export: a trained ``Model`` as one ``.onnx`` file, preprocessing and answers included.

The network is exported with torch's own exporter (``torch.onnx.export(..., dynamo=True)``);
the fitted preprocessing and the decoding of the answers are ONNX operators built around it
(``onnx_ops.py``), so a runtime such as onnxruntime answers from raw columns, with no Python
and no torchann:

* inputs: one per raw feature column, 1-D ``(batch,)``: ``tensor(double)`` for numbers (NaN
  missing) and for number or true/false categories, ``tensor(string)`` for text categories
  (``""`` missing);
* outputs: regression, one ``tensor(double)`` per target in the target's units; classification,
  the class label (named after the target) and ``probabilities`` ``(batch, n_classes)``. A model
  whose network is an ensemble adds the members' spread, as ``predict(..., return_std=True)``
  gives it: ``std(<target>)`` per target, or ``disagreement`` for classes (``onnx_spread.py``).

``network_only=True`` writes the network alone: input ``input`` ``(batch, in_features)``
float32 (the preprocessed matrix, as ``Preprocessor.transform_x`` makes it), output ``output``.

The batch dimension is dynamic; everything is in one file (no external data). The file's
metadata (``torchann.*`` keys) records the features, targets, classes and the preprocessing.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import logging
import os
import warnings
from pathlib import Path
from typing import Any, Iterator

from ..core.errors import UsageError

__all__ = ["export_onnx", "onnx_model", "graph_signature", "INSTALL_HINT"]

INSTALL_HINT = "pip install 'torchann[onnx]' (onnx and onnxscript)"
MAX_BYTES = 2**31 - 1  # protobuf's limit for one file without external data
_QUIET_LOGGERS = ("torch.onnx", "torch.export", "torch._export", "torch._dynamo", "torch.fx", "onnxscript",
                  "onnx_ir")


def export_onnx(model: Any, path: str | os.PathLike, *, network_only: bool = False) -> Path:
    """Write ``model`` as an ONNX file at ``path`` (atomically) and return the path.

    Args:
        model: a ``torchann.Model``.
        path: the ``.onnx`` file to write.
        network_only: the network alone, taking the preprocessed float32 matrix.

    Raises:
        UsageError: the onnx extra is not installed, or the model is too large for one file.
    """
    from ..core.files import atomic_path

    proto = onnx_model(model, network_only=network_only)
    data = proto.SerializeToString()
    final = Path(path)
    with atomic_path(final) as tmp:
        tmp.write_bytes(data)
    return final


def onnx_model(model: Any, *, network_only: bool = False) -> Any:
    """The ``onnx.ModelProto`` of ``model`` (see the module docstring), checked by ``onnx.checker``."""
    onnx = _require_onnx()
    from ..core.version import __version__
    from .onnx_ops import GraphBuilder, answers, feature_block, network_input
    from .onnx_spread import member_weights, spread

    pre = model.preprocessor
    if not network_only:
        _check_covered(pre)
    weights = None if network_only else member_weights(model.network)
    net = _network_proto(model.network, model.spec.in_features, members=weights is not None)
    meta = {
        "torchann.version": __version__,
        "torchann.task": pre.task.value,
        "torchann.features": json.dumps(pre.feature_names),
        "torchann.inputs": json.dumps(pre.input_names),
        "torchann.targets": json.dumps(pre.target_names),
        "torchann.classes": json.dumps(pre.classes),
        "torchann.preprocessor": json.dumps(pre.to_dict()),
        "torchann.graph": "network" if network_only else "model",
    }
    if network_only:
        full = net
    else:
        taken = set(pre.feature_names) | set(pre.target_names)
        front = GraphBuilder(taken)
        fill = pre.fill_missing is not None
        x = network_input(front, [feature_block(front, f, fill) for f in pre.features])
        back = GraphBuilder(taken | front.taken)
        logits = back.fresh("network_output")
        answers(back, logits, pre, model.spec.out_features)
        each = None
        if weights is not None:
            each = back.fresh("network_members")
            spread(back, each, pre, model.spec.out_features, weights)
        full = _compose(onnx, front, x, net, back, logits, each)
    full.doc_string = (f"torchann {__version__}: {pre.task.value} of {', '.join(pre.target_names)} from "
                       f"{', '.join(pre.feature_names[:50])}" + (" (network only)" if network_only else ""))
    onnx.helper.set_model_props(full, meta)
    if full.ByteSize() > MAX_BYTES:
        raise UsageError(f"the network's {model.spec.num_parameters():,} parameters make an ONNX file over 2 GB, "
                         f"the limit of a single file; export a smaller network")
    onnx.checker.check_model(full, full_check=True)
    return full


def graph_signature(path: str | os.PathLike) -> dict[str, list[dict[str, Any]]]:
    """The inputs and outputs of an ONNX file: name, element type and shape (``"batch"`` dynamic)."""
    onnx = _require_onnx()

    model = onnx.load(str(path), load_external_data=False)

    def describe(value: Any) -> dict[str, Any]:
        t = value.type.tensor_type
        shape = [d.dim_param or (d.dim_value if d.HasField("dim_value") else None) for d in t.shape.dim]
        return {"name": value.name, "type": onnx.helper.tensor_dtype_to_np_dtype(t.elem_type).name
                if t.elem_type != onnx.TensorProto.STRING else "string", "shape": shape}

    return {"inputs": [describe(v) for v in model.graph.input],
            "outputs": [describe(v) for v in model.graph.output]}


# What the ONNX steps reproduce; a preprocessing record with more is refused rather than exported wrong.
_COVERED_RECORD = {"format", "version", "task", "scale", "fill_missing", "features", "targets", "target_mean",
                   "target_std", "classes", "class_kind", "scaling", "target_log", "dropped"}
_COVERED_FEATURE = {"name", "kind", "mean", "std", "fill", "categories", "label_kind", "knots", "scores",
                    "indicator", "missing_slot", "other", "bins",
                    "low", "high"}  # the training range: facts for warnings, no part of the encoding


def _check_covered(pre: Any) -> None:
    record = pre.to_dict()
    extra = sorted(k for k in set(record) - _COVERED_RECORD if record[k] not in (None, False, [], {}))
    for f in record["features"]:
        if f.get("kind") not in ("numeric", "categorical"):  # dates: parsing text is not written as ONNX
            extra.append(f"feature kind {f.get('kind')!r} ({f.get('name')})")
            continue
        extra += [f"{k} ({f.get('name')})" for k in sorted(set(f) - _COVERED_FEATURE) if f[k] not in (None, False, [], {})]
    if extra:
        raise UsageError(f"this model's preprocessing uses {', '.join(extra[:5])}, which the ONNX export does not "
                         f"cover yet; export the network alone (--network-only) and preprocess with torchann")


def _compose(onnx: Any, front: Any, x: str, net: Any, back: Any, logits: str, each: str | None = None) -> Any:
    """Preprocessing -> network -> answers as one graph (the network's names prefixed); ``each``:
    the answers' input for the members' outputs, the network's second output."""
    from onnx import compose, helper

    net = compose.add_prefix(net, "network/")
    net_in, net_out = net.graph.input[0].name, net.graph.output[0].name
    inputs = [helper.make_tensor_value_info(logits, onnx.TensorProto.FLOAT, ["batch", None])]
    links = [(net_out, logits)]
    if each is not None:
        inputs.append(helper.make_tensor_value_info(each, onnx.TensorProto.FLOAT, ["batch", None, None]))
        links.append((net.graph.output[1].name, each))
    graph = helper.make_graph(list(front.nodes), "torchann_preprocess", list(front.inputs),
                              [helper.make_tensor_value_info(x, onnx.TensorProto.FLOAT, ["batch", None])],
                              initializer=list(front.initializers))
    head = helper.make_model(graph, opset_imports=list(net.opset_import), ir_version=net.ir_version)
    graph = helper.make_graph(list(back.nodes), "torchann_answers", inputs,
                              list(back.outputs), initializer=list(back.initializers))
    tail = helper.make_model(graph, opset_imports=list(net.opset_import), ir_version=net.ir_version)
    body = compose.merge_models(head, net, io_map=[(x, net_in)])
    whole = compose.merge_models(body, tail, io_map=links)
    whole.graph.name = "torchann"
    return whole


def _network_proto(network: Any, in_features: int, *, members: bool = False) -> Any:
    """The network alone, exported by torch's dynamo exporter with a dynamic batch dimension;
    ``members``: with a second output ``members``, each member's outputs (``onnx_spread``)."""
    import torch

    from .onnx_spread import WithMembers

    net = copy.deepcopy(network).to("cpu").float().eval()
    if members:
        net = WithMembers(net).eval()
    sample = torch.zeros(2, in_features)
    names = ["output", "members"] if members else ["output"]
    with _quiet():
        program = torch.onnx.export(
            net, (sample,), dynamo=True, input_names=["input"], output_names=names,
            dynamic_shapes=({0: torch.export.Dim("batch")},), external_data=False, verbose=False,
            optimize=True,
        )
    proto = program.model_proto
    if len(proto.graph.input) != 1 or len(proto.graph.output) != len(names):  # pragma: no cover - an MLP has one of each
        raise UsageError(f"the exported network has {len(proto.graph.input)} inputs and {len(proto.graph.output)} "
                         f"outputs; torchann exports networks with one of each")
    return proto


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """The exporter's progress lines, warnings and log records go nowhere (the core never prints)."""
    loggers = [logging.getLogger(name) for name in _QUIET_LOGGERS]
    levels = [lg.level for lg in loggers]
    try:
        for lg in loggers:
            lg.setLevel(logging.ERROR)
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), \
                contextlib.redirect_stderr(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


def _require_onnx() -> Any:
    try:
        import onnx
        import onnxscript  # noqa: F401  (torch's dynamo exporter builds the graph with it)
    except ImportError as err:
        raise UsageError(f"ONNX export needs the {err.name} package: {INSTALL_HINT}") from None
    return onnx
