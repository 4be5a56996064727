"""The run as people look at it: the HTML report (``page``: what it shows gathered as plain
data in ``gather``, drawn by ``sections`` and ``layout``), the loss curve PNG (``plots``) and
TensorBoard event files (``tensorboard``). It asks the model; the model never imports it.
May import: ``model``, ``export`` and the layers below.
"""

from .page import report_html, write_report, run_rows, REPORT_FILE
from .plots import loss_curve_png, LOSS_CURVE_FILE

__all__ = ["report_html", "write_report", "run_rows", "REPORT_FILE", "loss_curve_png", "LOSS_CURVE_FILE"]
