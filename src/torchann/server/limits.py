"""``Limits``: what one server accepts and how it batches, each default declared once.

``torchann serve``'s flags, ``torchann.serve(...)`` and ``create_app(model, limits)`` all read
these fields (the CLI takes its help text and defaults from them).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from typing import Any

from ..core.errors import UsageError

__all__ = ["Limits", "limit_help", "limit_default"]


def _opt(default: Any, help: str) -> Any:
    return field(default=default, metadata={"help": help})


@dataclass(frozen=True)
class Limits:
    """Batching, size, time and concurrency limits of a server (see ``docs/serve.md``)."""

    max_batch_rows: int = _opt(1024, "Rows coalesced into one forward pass at most.")
    max_wait_ms: float = _opt(
        2.0, "How long a request may wait for others to share its forward pass (only while other requests "
             "are inside the server); 0 turns batching off.")
    max_body_mb: float = _opt(16.0, "Largest request body in MB; a larger one is answered 413.")
    timeout: float = _opt(30.0, "Seconds a request may take (reading its body, waiting, predicting); "
                                "then 504 (408 for a body that stops arriving).")
    max_concurrency: int = _opt(256, "Requests inside the server at once; more are answered 429.")
    api_key: str | None = field(default=None, repr=False, metadata={"help": "Key required in a header."})

    def __post_init__(self) -> None:
        _positive_int("max_batch_rows", self.max_batch_rows)
        _positive_int("max_concurrency", self.max_concurrency)
        _number("max_wait_ms", self.max_wait_ms, least=0.0)
        _number("max_body_mb", self.max_body_mb, least=0.0, strict=True)
        _number("timeout", self.timeout, least=0.0, strict=True)
        if self.api_key is not None and (not isinstance(self.api_key, str) or not self.api_key.strip()):
            raise UsageError("api_key must be a non-empty string (or None for no key)")

    @property
    def max_body_bytes(self) -> int:
        return int(self.max_body_mb * 1_000_000)

    @property
    def batching(self) -> bool:
        return self.max_wait_ms > 0


def _positive_int(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise UsageError(f"{name} must be a positive integer, got {value!r}")


def _number(name: str, value: Any, *, least: float, strict: bool = False) -> None:
    ok = not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value)
    if not ok or value < least or (strict and value == least):
        bound = f"above {least:g}" if strict else f"at least {least:g}"
        raise UsageError(f"{name} must be a number {bound}, got {value!r}")


def limit_help(name: str) -> str:
    """The help text of field ``name`` (for the CLI)."""
    return next(f.metadata["help"] for f in fields(Limits) if f.name == name)


def limit_default(name: str) -> Any:
    return next(f.default for f in fields(Limits) if f.name == name)
