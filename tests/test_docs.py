"""The docs cannot drift from the code: every ```python block of README.md and docs/*.md runs,
and every flag of every `torchann ...` command they show is in that command's --help.

Python blocks of one page run in order in one namespace (like a notebook), in a temporary
folder that holds the files the pages name (see ``_fixture_files``):

* ``houses.csv``: rooms, area, zone -> price (the README's example table), ``test.csv`` (more
  labelled rows), ``new.csv`` (rows with an ``id`` and no price);
* ``runs/price``: a model trained on ``houses.csv`` (what ``torchann train houses.csv --target
  price --out runs/price`` writes, trained quickly);
* ``big.csv``, ``big.parquet``: ``new.csv`` again under the names the scoring examples use.

A marker on the line before a block changes how it runs; each says why:

* ``<!-- docs-test: skip (reason) -->``: not run (a server that blocks, a cluster, a long
  timing); the block is still compiled and its top-level imports run, so a renamed module or
  function fails here too;
* ``<!-- docs-test: checkout -->``: run from the checkout's root (the block reads ``tests/``).

The page's lines are in every failure's traceback (``README.md:30``).
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
MARK = re.compile(r"<!--\s*docs-test:\s*(skip|checkout)\b\s*(.*?)\s*-->")
FENCE = re.compile(r"^```([\w-]*)[ \t]*\n(.*?)^```[ \t]*$", re.S | re.M)
runner = CliRunner()


# -- the python blocks ------------------------------------------------------------------------


def python_blocks(page: Path) -> list[tuple[int, str, str | None, str]]:
    """``(line, code, marker, reason)`` of each ```python block; line is the first code line."""
    text = page.read_text(encoding="utf-8")
    found = []
    for m in FENCE.finditer(text):
        if m.group(1) != "python":
            continue
        before = text[: m.start()].rstrip("\n").rsplit("\n", 1)[-1]
        mark = MARK.search(before)
        found.append((text[: m.start()].count("\n") + 2, m.group(2),
                      mark.group(1) if mark else None, mark.group(2) if mark else ""))
    return found


def _houses(n: int, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    rooms = rng.integers(1, 7, size=n).astype(np.float64)
    area = np.round(rng.uniform(40, 250, size=n), 1)
    zone = rng.choice(["north", "south", "east", "west"], size=n)
    price = np.round(30_000 * rooms + 2_000 * area + np.where(zone == "north", 50_000, 0)
                     + rng.normal(0, 10_000, size=n), 0)
    return {"rooms": rooms, "area": area, "zone": zone, "price": price}


def _write_csv(path: Path, columns: dict[str, np.ndarray]) -> None:
    import csv

    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(columns)
        writer.writerows(zip(*(c.tolist() for c in columns.values())))


@pytest.fixture(scope="module")
def fixture_files(tmp_path_factory) -> Path:
    """The files the pages name; each page gets a fresh copy."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    import torchann

    base = tmp_path_factory.mktemp("doc-files")
    _write_csv(base / "houses.csv", _houses(120, seed=0))
    _write_csv(base / "test.csv", _houses(40, seed=1))
    new = _houses(20, seed=2)
    del new["price"]
    new = {"id": np.arange(1, 21), **new}
    _write_csv(base / "new.csv", new)
    shutil.copy(base / "new.csv", base / "big.csv")
    pq.write_table(pa.table(new), base / "big.parquet")
    torchann.train(base / "houses.csv", target="price", hidden=[16], epochs=30).save(base / "runs" / "price")
    return base


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_python_blocks_run(page, fixture_files, tmp_path, monkeypatch):
    blocks = python_blocks(page)
    if not blocks:
        pytest.skip(f"{page.name} has no python block")
    for mark, reason in ((m, r) for _, _, m, r in blocks if m == "skip"):
        assert reason.startswith("(") and len(reason) > 10, f"{page.name}: a skip marker needs a (reason)"
    work = tmp_path / "work"
    shutil.copytree(fixture_files, work)
    monkeypatch.chdir(work)
    monkeypatch.setenv("MPLBACKEND", "Agg")
    namespace: dict = {"__name__": "__docs__"}
    for line, code, mark, _ in blocks:
        # Padding with blank lines makes the traceback name the page's own line numbers.
        compiled = compile("\n" * (line - 1) + code, str(page.relative_to(ROOT)), "exec")
        if mark == "skip":
            _imports_only(compiled, code, line, page)
            continue
        here = os.getcwd()
        if mark == "checkout":
            os.chdir(ROOT)
        try:
            exec(compiled, namespace)
        finally:
            os.chdir(here)


def _imports_only(compiled, code: str, line: int, page: Path) -> None:
    """Run the top-level ``import`` statements of a skipped block (in a namespace of their own)."""
    import ast

    tree = ast.parse("\n" * (line - 1) + code)
    imports = ast.Module([n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))], type_ignores=[])
    exec(compile(imports, str(page.relative_to(ROOT)), "exec"), {"__name__": "__docs__"})


def test_skips_are_few():
    """At most a third of the blocks are skipped, each with its reason in the page."""
    blocks = [(p.name, line, mark, reason) for p in PAGES for line, _, mark, reason in python_blocks(p)]
    skipped = [b for b in blocks if b[2] == "skip"]
    assert len(blocks) > 20 and len(skipped) <= len(blocks) // 3, skipped


# -- the command lines ------------------------------------------------------------------------

STOP = {"|", ">", ">>", "<", "&&", "||", ";", "&", "2>", "2>&1", "\\"}
GLOBAL = {"--debug", "--version", "--help", "-h"}
OPTION = re.compile(r"(?<![\w-])(--?[A-Za-z][\w-]*)")


def command_lines(page: Path) -> list[tuple[int, str]]:
    """``(line, text)``: each line of the non-Python code blocks, and each inline code span."""
    text = page.read_text(encoding="utf-8")
    found = []
    for m in FENCE.finditer(text):
        if m.group(1) in ("python", "json", "mermaid"):
            continue
        first = text[: m.start()].count("\n") + 2
        for i, line in enumerate(m.group(2).replace("\\\n", " \n").splitlines()):
            found.append((first + i, line))
    prose = FENCE.sub(lambda m: "\n" * m.group(0).count("\n"), text)
    for m in re.finditer(r"`([^`\n]+)`", prose):
        found.append((prose[: m.start()].count("\n") + 1, m.group(1)))
    return found


# Where a command starts: a piece of the line (split at `&&`, `||`, `|`, `;`) that begins with it,
# after a `$ ` prompt and VAR=value words. Prose that merely contains the word ("...so torchann
# reads only") is not a command.
COMMAND = re.compile(r"^\s*(?:\$\s+)?(?:[A-Z_]+=\S*\s+)*(?:\$\()?torchann[ \t]+(.+)$")
# Shown on purpose with a mistake: reliability.md's catalogue of bad input and its error lines.
DELIBERATELY_WRONG = {("frobnicate",)}


def invocations(line: str) -> list[list[str]]:
    """The words after each ``torchann`` command in ``line`` (a shell comment cut off)."""
    line = re.sub(r"(^|\s)#.*$", "", line)
    out = []
    for piece in re.split(r"&&|\|\||\||;", line):
        m = COMMAND.match(piece)
        if m is None:
            continue
        try:
            words = shlex.split(m.group(1))
        except ValueError:
            words = m.group(1).split()
        out.append(words)
    return out


_HELP: dict[tuple[str, ...], tuple[int, str]] = {}


def help_of(words: tuple[str, ...]) -> tuple[int, str]:
    from torchann.cli import app

    if words not in _HELP:
        result = runner.invoke(app, [*words, "--help"])
        _HELP[words] = (result.exit_code, result.output)
    return _HELP[words]


def check_invocation(words: list[str]) -> str | None:
    """None when the command exists and has every flag given, else what is wrong."""
    words = [w.strip("[]") for w in words]
    while words and words[0] in GLOBAL:
        words = words[1:]
    if tuple(words) in DELIBERATELY_WRONG:
        return None
    if not words or not re.fullmatch(r"[a-z][a-z-]*", words[0]):
        return None  # `torchann --debug ...`, `torchann [command]`: no command named
    command = (words[0],)
    code, text = help_of(command)
    if code != 0:
        return f"no command `torchann {words[0]}`"
    rest = words[1:]
    if "Commands:" in text and rest and re.fullmatch(r"[a-z][a-z-]*", rest[0]):
        command = (*command, rest[0])
        code, text = help_of(command)
        if code != 0:
            return f"no command `torchann {' '.join(command)}`"
        rest = rest[1:]
    offered = set(OPTION.findall(text.split("Options:", 1)[-1])) | GLOBAL
    for word in rest:
        if word in STOP or word.startswith(("2>", ">")):
            break
        if word.startswith("-") and len(word) > 1 and not re.fullmatch(r"-[\d.]+", word):
            flag = word.split("=", 1)[0]
            if flag not in offered:
                return f"`torchann {' '.join(command)}` has no option {flag}"
    return None


def test_every_documented_flag_exists():
    wrong = []
    checked = 0
    for page in PAGES:
        for line, text in command_lines(page):
            for words in invocations(text):
                problem = check_invocation(words)
                checked += 1
                if problem:
                    wrong.append(f"{page.relative_to(ROOT)}:{line}: {problem}: {text.strip()}")
    assert checked > 100
    assert not wrong, "\n".join(wrong)


def test_the_flag_check_can_fail():
    assert check_invocation(["train", "data.csv", "--target", "y"]) is None
    assert check_invocation(["train", "data.csv", "--no-such-flag"]) == "`torchann train` has no option --no-such-flag"
    assert check_invocation(["bench", "matmul", "--shape", "1x2x3"]) is None
    assert check_invocation(["bench", "matmul", "--shapes", "1x2x3"]) is not None
    assert check_invocation(["frobnicat"]) == "no command `torchann frobnicat`"
    assert check_invocation(["predict", "run", "--data", "x.csv", ">", "--not-a-flag"]) is None
    assert invocations("torchann cv d.csv --folds 3  # five by default") == [["cv", "d.csv", "--folds", "3"]]
    assert invocations("$ OMP_NUM_THREADS=1 torchann train a.csv && torchann predict r -i 1") == [
        ["train", "a.csv"], ["predict", "r", "-i", "1"]]
    assert invocations("so torchann reads only tensors") == []


# -- the option table of docs/model.md --------------------------------------------------------

OPTIONS_START = "<!-- options: generated from torchann/core/options.py by tests/test_docs.py -->"
OPTIONS_END = "<!-- end of options -->"
FLAG_SPELLING = {"scale": "`--no-scale`", "target_log": "`--target-log` / `--no-target-log`"}


def options_table() -> str:
    """Every option of ``torchann.train`` in its group, with its flag, default and help."""
    from dataclasses import fields

    from torchann.core.options import GROUPS, option_default

    lines = ["| group | option | flag | default | what |", "|---|---|---|---|---|"]
    for group in GROUPS:
        for f in fields(group):
            default = option_default(f.name)
            shown = "none" if default is None else (",".join(map(str, default)) or "none") if isinstance(
                default, tuple) else str(default).lower() if isinstance(default, bool) else str(default)
            said = re.search(r"\[default: ([^\]]*)\]", f.metadata["help"])  # what None means, in words
            shown = f"`{shown}`" + (f": {said.group(1)}" if said else "")
            text = re.sub(r"\s*\[default: [^\]]*\]", "", f.metadata["help"]).replace("|", "\\|")
            flag = FLAG_SPELLING.get(f.name, f"`--{f.name.replace('_', '-')}`")
            lines.append(f"| `{group.__name__}` | `{f.name}` | {flag} | {shown.replace('|', '/')} | {text} |")
    return "\n".join(lines)


def test_model_md_lists_every_option_with_its_default():
    page = ROOT / "docs" / "model.md"
    text = page.read_text(encoding="utf-8")
    table = options_table()
    block = f"{OPTIONS_START}\n{table}\n{OPTIONS_END}"
    if os.environ.get("TORCHANN_REGENERATE_DOCS"):
        text = re.sub(re.escape(OPTIONS_START) + r".*?" + re.escape(OPTIONS_END), lambda _: block, text, flags=re.S)
        page.write_text(text, encoding="utf-8")
    assert block in text, "docs/model.md's option table is stale: rerun with TORCHANN_REGENERATE_DOCS=1"
    from typer.testing import CliRunner as _Runner

    from torchann.cli import app

    train_help = _Runner().invoke(app, ["train", "--help"]).output
    for flag in re.findall(r"`(--[a-z-]+)`", table):
        assert flag in train_help, flag


def test_sklearn_md_names_every_estimator_parameter():
    import inspect

    from torchann.api.sklearn import MLPRegressor

    text = (ROOT / "docs" / "sklearn.md").read_text(encoding="utf-8")
    table = text.split("| parameter |", 1)[1].split("\n\n", 1)[0]
    named = set(re.findall(r"`(\w+)`", table))
    missing = [p for p in inspect.signature(MLPRegressor).parameters if p not in named]
    assert not missing, f"docs/sklearn.md's parameter table lacks {missing}"


# -- modules, files and scripts the pages name ------------------------------------------------


def _named(pattern: str) -> list[tuple[str, int, str]]:
    found = []
    for page in PAGES:
        text = page.read_text(encoding="utf-8")
        for m in re.finditer(pattern, text):
            found.append((page.name, text[: m.start()].count("\n") + 1, m.group(1)))
    return found


def test_named_source_files_exist():
    wrong = [f"{page}:{line}: {path}" for page, line, path in _named(r"(?<![\w/])((?:src/)?torchann/[\w/]+\.py)")
             if not (ROOT / "src" / path.removeprefix("src/")).is_file()]
    assert not wrong, "\n".join(wrong)


def test_named_modules_and_names_exist():
    import importlib

    wrong = []
    for page, line, dotted in _named(r"(?<![\w.\-/])(torchann(?:\.[a-z_][a-z_0-9]*)+)"):
        obj = importlib.import_module("torchann")
        for part in dotted.split(".")[1:]:
            try:
                obj = getattr(obj, part)
            except AttributeError:
                try:
                    obj = importlib.import_module(f"{obj.__name__}.{part}")
                except (ImportError, AttributeError):
                    wrong.append(f"{page}:{line}: {dotted}")
                    break
    assert not wrong, "\n".join(wrong)


def test_named_scripts_exist():
    import importlib.util

    wrong = [f"{page}:{line}: {name}" for page, line, name in _named(r"python3? -m ([\w.]+)")
             if importlib.util.find_spec(name) is None]
    wrong += [f"{page}:{line}: {name}" for page, line, name in _named(r"python3? ((?:benchmarks|examples)/[\w/]+\.py)")
              if not (ROOT / name).is_file()]
    assert not wrong, "\n".join(wrong)


def test_transform_x_takes_what_export_md_hands_it(fixture_files):
    """docs/export.md feeds the network-only graph ``model.preprocessor.transform_x(frame)``: a
    DataFrame, a path, a dict of columns and rows in feature order give the Table's matrix."""
    import pandas as pd

    import torchann

    model = torchann.load(fixture_files / "runs" / "price")
    want = model.preprocessor.transform_x(torchann.load_table(fixture_files / "new.csv"))
    frame = pd.read_csv(fixture_files / "new.csv")
    assert want.shape == (20, model.preprocessor.in_features)
    for given in (frame, fixture_files / "new.csv", {k: frame[k].to_numpy() for k in frame},
                  frame[model.feature_names].values.tolist()):
        assert np.array_equal(model.preprocessor.transform_x(given), want)
    np.testing.assert_allclose(model.preprocessor.inverse_y(model.network_outputs(want))[:, 0], model.predict(frame))
