"""The Typer application, its global options, and the one place errors become exit codes
and Python warnings become ``warning:`` lines."""

from __future__ import annotations

import contextlib
import sys
import warnings
from typing import Any, Iterator, Optional

import typer
from typer.core import TyperGroup

from ..core.version import __version__
from ..core.errors import TorchannError


try:  # typer vendors click from 0.22 on
    from typer._click.exceptions import ClickException as _ClickException
except ImportError:  # pragma: no cover - older typer with click installed beside it
    from click.exceptions import ClickException as _ClickException


def printable(text: str) -> str:
    """``text`` with every control character escaped (``\\x1b``, ``\\n``): names read from files
    reach error lines, and a terminal must get them as text, not as commands."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


@contextlib.contextmanager
def warnings_as_lines(ctx: Any) -> Iterator[None]:
    """Every Python warning a command raises (torchann's, or a library's) as one line
    ``warning: MESSAGE`` on stderr, without the ``file.py:123: UserWarning:`` source line that
    Python prints; with ``--debug``, Python's own form. Python's filters still decide what is
    shown (the same warning from the same place once)."""
    previous = warnings.showwarning

    def show(message: Any, category: Any, filename: str, lineno: int, file: Any = None, line: Any = None) -> None:
        stream = sys.stderr  # looked up now: a live progress bar redirects it above the bar
        if (ctx.obj or {}).get("debug"):
            stream.write(warnings.formatwarning(message, category, filename, lineno, line))
        else:
            stream.write(f"warning: {printable(str(message))}\n")
        stream.flush()

    warnings.showwarning = show
    try:
        yield
    finally:
        warnings.showwarning = previous


class _Group(TyperGroup):
    """Turns torchann's own errors into one line on stderr and the documented exit code, and
    warnings into ``warning:`` lines (:func:`warnings_as_lines`), for every command."""

    def invoke(self, ctx: Any) -> Any:
        try:
            with warnings_as_lines(ctx):
                return super().invoke(ctx)
        except TorchannError as err:
            if (ctx.obj or {}).get("debug"):
                raise
            typer.echo(f"error: {printable(str(err))}", err=True)
            ctx.exit(err.exit_code)
        except _ClickException as err:  # usage errors repeat what was typed: escape it too
            err.message = printable(err.message)
            raise
        except KeyboardInterrupt:
            if (ctx.obj or {}).get("debug"):
                raise
            typer.echo("interrupted", err=True)
            ctx.exit(130)


app = typer.Typer(
    cls=_Group,
    name="torchann",
    help="Build, train, inspect, save, load and benchmark feed-forward neural networks.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    # Plain help and usage errors: typer's rich help imports rich.markdown, pygments and more
    # (~0.15 s), which would put `torchann --help` past its 0.3 s budget.
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"torchann {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    ctx: typer.Context,
    debug: bool = typer.Option(False, "--debug", help="Show the full traceback when a command fails."),
    version: Optional[bool] = typer.Option(
        None, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    ctx.obj = {"debug": debug}


def main(argv: list[str] | None = None) -> int:
    """Console-script entry point; returns the exit code."""
    try:
        app(args=argv, prog_name="torchann", standalone_mode=True)
    except SystemExit as exit_:
        code = exit_.code
        return code if isinstance(code, int) else (0 if code is None else 1)
    return 0


def stderr_console():
    """A rich console on stderr: messages and progress never mix with data on stdout.

    When stderr is not a terminal (a log file, a pipe, a batch job) nothing is wrapped: rich
    would otherwise cut every line at its default 80 columns, and a log line split in two
    no longer matches a grep."""
    from rich.console import Console

    console = Console(stderr=True)
    if not console.is_terminal:
        console.soft_wrap = True
    return console


def parse_floats(text: str, *, option: str) -> list[float]:
    """Parse ``"10,11"`` into ``[10.0, 11.0]`` with an error that names the option."""
    from ..core.errors import UsageError

    try:
        return [float(part) for part in text.replace(";", ",").split(",") if part.strip()]
    except ValueError:
        raise UsageError(f"{option} expects comma-separated numbers such as '10,11', got {text!r}") from None


def parse_ints(text: str, *, option: str) -> list[int]:
    """Parse ``"8,8"`` into ``[8, 8]`` with an error that names the option."""
    from ..core.errors import UsageError

    try:
        return [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise UsageError(f"{option} expects comma-separated integers such as '8,8', got {text!r}") from None
