"""The command line to repeat in each worker when ``torchann train --nproc N`` starts a local
data-parallel job: what the user typed, read back from the Click context."""

from __future__ import annotations

import os
from typing import Any, Collection

__all__ = ["relaunch_argv"]


def relaunch_argv(ctx: Any, *, drop: Collection[str] = ("nproc",)) -> list[str]:
    """The command line that produced a Typer/Click context, for the workers to run again.

    Only what was typed is repeated (defaults and environment variables reach the workers on
    their own), each option as ``--name=value`` so that values such as ``-1`` survive, and
    without the parameters named in ``drop`` (``--nproc``, which would launch again).
    """
    chain = []
    while ctx is not None:
        chain.append(ctx)
        ctx = ctx.parent
    argv: list[str] = []
    for level, c in enumerate(reversed(chain)):
        if level:  # the root's info_name is the program name; below it come subcommand names
            argv.append(c.info_name)
        argv += _typed_params(c, drop)
    return argv


def _typed_params(ctx: Any, drop: Collection[str]) -> list[str]:
    options: list[str] = []
    positional: list[str] = []
    for param in ctx.command.params:
        if param.name in drop or not getattr(param, "expose_value", True) or param.name not in ctx.params:
            continue
        source = ctx.get_parameter_source(param.name)
        if source is None or source.name not in ("COMMANDLINE", "PROMPT"):
            continue
        value = ctx.params[param.name]
        if getattr(param, "param_type_name", "") == "argument":
            positional += _as_strings(value)
        elif getattr(param, "count", False):
            options += [param.opts[0]] * int(value or 0)
        elif getattr(param, "is_flag", False):
            if value:
                options.append(param.opts[0])
            elif param.secondary_opts:
                options.append(param.secondary_opts[0])
        else:
            name = param.opts[0]
            for item in (value if getattr(param, "multiple", False) else [value]):
                parts = _as_strings(item)
                if name.startswith("--") and len(parts) == 1:
                    options.append(f"{name}={parts[0]}")
                else:
                    options += [name, *parts]
    if any(p.startswith("-") for p in positional):
        positional.insert(0, "--")  # what follows is data, not options
    return options + positional


def _as_strings(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        return [s for v in value for s in _as_strings(v)]
    if isinstance(value, float):
        return [repr(value)]  # round-trips exactly
    return [os.fspath(value) if isinstance(value, os.PathLike) else str(value)]
