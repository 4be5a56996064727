"""Loss curves as PNG bytes (written by the caller, atomically)."""

from __future__ import annotations

import io

from ..training.history import History

__all__ = ["loss_curve_png", "LOSS_CURVE_FILE"]

LOSS_CURVE_FILE = "loss.png"  # its name in a model directory


def loss_curve_png(history: History, *, title: str = "Loss over epochs") -> bytes:
    """Training (and validation, when recorded) loss per epoch, log scale when it spans decades."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6, 4), dpi=100)
    ax = fig.add_subplot()
    epochs = [r["epoch"] for r in history]
    losses = history["loss"] if len(history) else []
    ax.plot(epochs, losses, label="train")
    if len(history) and "val_loss" in history.records[-1]:
        ax.plot(epochs, history["val_loss"], label="validation")
    positive = [v for v in losses if v and v > 0]
    if positive and max(positive) / min(positive) > 100:
        ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend()
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()
