"""The checks a stored preprocessor record passes before anything is built from it.

A ``spec.json`` is read from disk and may be damaged or hostile: every field of its
``extra.preprocessor`` is checked for type, finiteness and size, and the inputs it encodes are
counted against the network's own width, so that a record listing ten million categories for a
2-input network is refused before any list of that size is built. Each problem is one
``ModelFileError`` naming the file and the field.
"""

from __future__ import annotations

import math
from typing import Any

from ..core.choices import FillMissing, Scaling, Task
from ..data.columns import LabelKind
from ..core.errors import ModelFileError
from ..core.files import field_key
from .features import Feature

FORMAT = "torchann.preprocessor"  # the record's "format" field

__all__ = ["check_record", "MAX_CATEGORIES", "MAX_STORED_CLASSES"]

MAX_STORED_CLASSES = 100_000  # a classifier with more classes is not one torchann trained
MAX_CATEGORIES = 1000  # a stored categorical feature with more categories is not one torchann fitted
_RECORD_KEYS = {"format", "version", "task", "scale", "fill_missing", "features", "targets", "target_mean",
                "target_std", "classes", "class_kind", "scaling", "target_log", "dropped"}
_OPTIONAL_KEYS = {"version", "scaling", "target_log", "dropped"}  # absent in version 1 records
_FEATURE_KEYS = {f for f in Feature.__dataclass_fields__}


def _bad(source: str, place: str, problem: str) -> ModelFileError:
    return ModelFileError(f"{source}: field {place} {problem}; the model file is damaged: train or save it again")


def _what(value: Any) -> str:
    if isinstance(value, (list, dict)):
        return f"a {type(value).__name__} of {len(value):,} item(s)"
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _number(source: str, place: str, value: Any, *, positive: bool = False) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise _bad(source, place, f"holds {_what(value)}, not a finite number")
    if positive and not value > 0:
        raise _bad(source, place, f"holds {value!r}; it must be above 0")


def _labels(source: str, place: str, values: Any, kind: Any, kind_place: str, limit: int, least: int) -> None:
    if not isinstance(kind, str) or kind not in {k.value for k in LabelKind}:  # (a list here was a TypeError)
        raise _bad(source, kind_place, f"holds {_what(kind)}; expected one of {', '.join(LabelKind.values())}")
    if not isinstance(values, list) or not least <= len(values) <= limit:
        raise _bad(source, place, f"holds {_what(values)}; expected a list of {least} to {limit:,} values")
    want = {"str": (str,), "bool": (bool,), "int": (int,), "float": (int, float)}[kind]
    for i, v in enumerate(values):
        if not isinstance(v, want) or (kind != "bool" and isinstance(v, bool)) or \
                (isinstance(v, float) and not math.isfinite(v)):
            raise _bad(source, f"{place}[{i}]", f"holds {_what(v)}, not a {kind} label")
    if len(set(values)) != len(values):
        raise _bad(source, place, "lists a value twice")


def check_record(d: Any, source: str, in_features: int | None, out_features: int | None) -> None:
    """Every field of a stored preprocessor, checked before any object is built from it."""
    if not isinstance(d, dict) or d.get("format") != FORMAT:
        found = d.get("format") if isinstance(d, dict) else type(d).__name__
        raise ModelFileError(f"{source}: not a torchann preprocessor record (format {found!r}); "
                             f"the model file may be damaged")
    missing = sorted((_RECORD_KEYS - _OPTIONAL_KEYS) - set(d))
    if missing:
        raise _bad(source, missing[0], "is missing")
    unknown = sorted(set(d) - _RECORD_KEYS)
    if unknown:
        raise _bad(source, field_key(unknown[0]), "is not a preprocessor field")
    if d["task"] not in Task.values():
        raise _bad(source, "task", f"holds {_what(d['task'])}; expected one of {', '.join(Task.values())}")
    if not isinstance(d["scale"], bool):
        raise _bad(source, "scale", f"holds {_what(d['scale'])}, not true or false")
    if d["fill_missing"] is not None and d["fill_missing"] not in FillMissing.values():
        raise _bad(source, "fill_missing", f"holds {_what(d['fill_missing'])}; expected null or one of "
                                           f"{', '.join(FillMissing.values())}")
    targets = d["targets"]
    if not isinstance(targets, list) or not targets or not all(isinstance(t, str) for t in targets):
        raise _bad(source, "targets", f"holds {_what(targets)}; expected a list of column names")
    features = d["features"]
    if not isinstance(features, list) or not features:
        raise _bad(source, "features", f"holds {_what(features)}; expected a list of features")
    if in_features is not None and len(features) > in_features:
        raise _bad(source, "features", f"lists {len(features):,} features for a network with {in_features} inputs")
    width, names = 0, set()
    for i, f in enumerate(features):
        place = f"features[{i}]"
        if not isinstance(f, dict):
            raise _bad(source, place, f"holds {_what(f)}; expected an object")
        extra = sorted(set(f) - _FEATURE_KEYS)
        if extra:
            raise _bad(source, f"{place}.{field_key(extra[0])}", "is not a feature field")
        if not isinstance(f.get("name"), str) or f["name"] in names:
            raise _bad(source, f"{place}.name", f"holds {_what(f.get('name'))}; expected a column name used once")
        names.add(f["name"])
        if f.get("kind") == "numeric":
            _number(source, f"{place}.mean", f.get("mean", 0.0))
            _number(source, f"{place}.std", f.get("std", 1.0), positive=True)
            for key in ("fill", "low", "high"):
                if f.get(key) is not None:
                    _number(source, f"{place}.{key}", f[key])
            for key in ("knots", "scores", "bins"):
                values = f.get(key)
                if values is not None:
                    if not isinstance(values, list) or len(values) > 100_000:
                        raise _bad(source, f"{place}.{key}", f"holds {_what(values)}; expected a list of numbers")
                    for k, v in enumerate(values):
                        _number(source, f"{place}.{key}[{k}]", v)
            _check_quantile_map(source, place, f.get("knots"), f.get("scores"))
            bins = f.get("bins")
            if bins is not None:
                if not isinstance(bins, list) or len(bins) < 3:
                    raise _bad(source, f"{place}.bins", f"holds {_what(bins)}; expected at least 3 increasing numbers")
                for k, v in enumerate(bins):
                    _number(source, f"{place}.bins[{k}]", v)
                if any(b >= c for b, c in zip(bins, bins[1:])):
                    raise _bad(source, f"{place}.bins", "holds edges that are not at least 3 increasing numbers")
            width += 1 + (len(bins) - 1 if bins else 0) + bool(f.get("indicator"))
        elif f.get("kind") == "date":
            for key in ("date_mean", "date_std"):
                values = f.get(key)
                if not isinstance(values, list) or len(values) != 4:
                    raise _bad(source, f"{place}.{key}", f"holds {_what(values)}; expected 4 numbers")
                for k, v in enumerate(values):
                    _number(source, f"{place}.{key}[{k}]", v, positive=key == "date_std")
            if not isinstance(f.get("date_format"), str):
                raise _bad(source, f"{place}.date_format", f"holds {_what(f.get('date_format'))}; expected text")
            width += 4 + bool(f.get("indicator"))
        elif f.get("kind") == "categorical":
            extra_slots = bool(f.get("missing_slot")) + bool(f.get("other"))
            left = MAX_CATEGORIES if in_features is None else max(in_features - width - extra_slots, 0)
            _labels(source, f"{place}.categories", f.get("categories"), f.get("label_kind"), f"{place}.label_kind",
                    min(left, MAX_CATEGORIES), 0 if extra_slots else 1)
            width += len(f["categories"]) + extra_slots
        else:
            raise _bad(source, f"{place}.kind", f"holds {_what(f.get('kind'))}; expected 'numeric', 'date' or "
                                                f"'categorical'")
    if in_features is not None and width != in_features:
        raise _bad(source, "features", f"encode {width:,} inputs but the network takes {in_features}")
    _check_optional(source, d, len(targets))
    if d["task"] == Task.REGRESSION:
        for key in ("target_mean", "target_std"):
            values = d[key]
            if not isinstance(values, list) or len(values) != len(targets):
                raise _bad(source, key, f"holds {_what(values)}; expected {len(targets)} number(s), one per target")
            for k, v in enumerate(values):
                _number(source, f"{key}[{k}]", v, positive=key == "target_std")
        outputs = {len(targets)}
    else:
        if len(targets) != 1:
            raise _bad(source, "targets", f"lists {len(targets)} targets; a classifier has one")
        limit = MAX_STORED_CLASSES if out_features is None else max(out_features, 2)
        _labels(source, "classes", d["classes"], d["class_kind"], "class_kind", limit, 2)
        outputs = {len(d["classes"])} | ({1} if len(d["classes"]) == 2 else set())
    if out_features is not None and out_features not in outputs:
        raise _bad(source, "targets" if d["task"] == Task.REGRESSION else "classes",
                   f"decode {min(outputs)} output(s) but the network has {out_features}")


def _check_optional(source: str, d: dict, n_targets: int) -> None:
    """The fields version 2 added (``from_dict`` raised ValueError or TypeError for a bad one)."""
    if d.get("scaling", "standard") not in Scaling.values():
        raise _bad(source, "scaling", f"holds {_what(d.get('scaling'))}; expected one of {', '.join(Scaling.values())}")
    log = d.get("target_log")
    if log is not None and (not isinstance(log, list) or len(log) not in (0, n_targets) or
                            not all(isinstance(v, bool) for v in log)):
        raise _bad(source, "target_log", f"holds {_what(log)}; expected null or one true/false per target")
    dropped = d.get("dropped")
    if dropped is not None and (not isinstance(dropped, dict) or not all(isinstance(v, str) for v in dropped.values())):
        raise _bad(source, "dropped", f"holds {_what(dropped)}; expected an object of column names and reasons")


def _check_quantile_map(source: str, place: str, knots: Any, scores: Any) -> None:
    """A quantile map is knots and scores together, one score per knot, the knots increasing
    (``np.interp`` raised ValueError for lists of two lengths, and answers nonsense for knots
    out of order)."""
    if knots is None and scores is None:
        return
    if not knots or not scores or len(knots) != len(scores):
        raise _bad(source, f"{place}.scores", f"holds {_what(scores)} for {_what(knots)} of knots; expected one "
                                              f"score per knot")
    if any(b < a for a, b in zip(knots, knots[1:])):
        raise _bad(source, f"{place}.knots", "is not in increasing order")


# --------------------------------------------------------------------------------- helpers

