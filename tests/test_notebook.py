"""The Colab notebook: ``notebooks/sedjax_colab.py`` (the jupytext source of truth) executes on CPU
with its small settings, and the committed ``notebooks/sedjax_colab.ipynb`` is its conversion.

* Drift: the .ipynb's cells (types, sources, tags) are jupytext's conversion of the .py, and it
  stores no outputs. Regenerate it with ``jupytext --sync notebooks/sedjax_colab.py`` (or
  ``jupytext --to ipynb notebooks/sedjax_colab.py``, which gives every cell a new id).
* Execution: the .py is read with ``jupytext.read``, the cell tagged ``install`` is dropped (sedjax
  is installed already), and ``nbclient`` runs the rest in a fresh ``python3`` kernel with
  ``SEDJAX_NOTEBOOK_SMALL=1`` and ``JAX_PLATFORMS=cpu``, in a temporary working directory. The
  kernel is this interpreter: the test writes its own ``python3`` kernelspec (``sys.executable``)
  into a temporary ``JUPYTER_PATH`` entry, which comes before every installed one. Then: no cell
  errored, the run folder has ``metrics.jsonl``, ``eval.gif`` exists (and was displayed), and
  ``sweep.csv`` holds the 3 schedules.

Compilation dominates (three programs: the run, the evaluation's period, the sweep), so the
kernel's XLA compiles at backend optimisation level 0, and with a compilation cache of its own.
"""

from __future__ import annotations

import csv
import json
import os
import sys
from pathlib import Path

import jupytext
import nbformat
from nbclient import NotebookClient
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT / "notebooks" / "sedjax_colab.py"
NOTEBOOK = ROOT / "notebooks" / "sedjax_colab.ipynb"


def _tags(cell) -> list[str]:
    return list(cell.get("metadata", {}).get("tags", []))


def test_ipynb_is_the_conversion_of_the_source():
    want = jupytext.read(SOURCE)
    got = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(got)
    regenerate = "regenerate it: jupytext --sync notebooks/sedjax_colab.py"
    assert [(c.cell_type, c.source, _tags(c)) for c in got.cells] == \
        [(c.cell_type, c.source, _tags(c)) for c in want.cells], f"{NOTEBOOK.name} differs from {SOURCE.name}: {regenerate}"
    assert got.metadata.get("kernelspec", {}).get("name") == "python3"
    for c in got.cells:
        if c.cell_type == "code":
            assert not c.outputs and c.execution_count is None, f"{NOTEBOOK.name} stores outputs: {regenerate}"
    tags = [t for c in want.cells for t in _tags(c)]
    assert tags.count("install") == 1 and tags.count("parameters") == 1, tags


def _python3_kernelspec(root: Path, env: dict) -> Path:
    """A ``python3`` kernelspec running this interpreter (with ``env``), under ``root/kernels``."""
    d = root / "kernels" / "python3"
    d.mkdir(parents=True)
    spec = {"argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
            "display_name": "Python 3 (sedjax test)", "language": "python", "env": env}
    (d / "kernel.json").write_text(json.dumps(spec))
    return root


def test_notebook_runs_on_cpu(tmp_path, monkeypatch):
    nb = jupytext.read(SOURCE)
    nb.cells = [c for c in nb.cells if "install" not in _tags(c)]
    work = tmp_path / "work"
    work.mkdir()
    xla_flags = " ".join(f for f in (os.environ.get("XLA_FLAGS", ""), "--xla_backend_optimization_level=0") if f)
    env = {"SEDJAX_NOTEBOOK_SMALL": "1", "JAX_PLATFORMS": "cpu", "XLA_FLAGS": xla_flags,
           "SEDJAX_CACHE_DIR": str(tmp_path / "cache"), "MPLBACKEND": "module://matplotlib_inline.backend_inline"}
    jupyter_dir = _python3_kernelspec(tmp_path / "jupyter", env)
    monkeypatch.setenv("JUPYTER_PATH", os.pathsep.join(p for p in (str(jupyter_dir), os.environ.get("JUPYTER_PATH"))
                                                       if p))

    client = NotebookClient(nb, kernel_name="python3", timeout=600, startup_timeout=120,
                            resources={"metadata": {"path": str(work)}})
    client.execute()  # raises CellExecutionError naming the cell on the first error

    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert not errors, errors
    text = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    assert "backend: cpu" in text, text[:2000]
    mimes = [m for c in nb.cells if c.cell_type == "code" for o in c.outputs for m in o.get("data", {})]
    assert "image/gif" in mimes and mimes.count("image/png") >= 4, mimes  # 2 run plots, 2 matplotlib figures

    run_dir = work / "runs" / "colab"
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    assert lines and "objective" in json.loads(lines[-1])
    with Image.open(run_dir / "eval.gif") as gif:
        assert gif.format == "GIF" and gif.n_frames > 1
    with open(work / "runs" / "colab_sweep" / "sweep.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert sorted({int(r["config"]) for r in rows}) == [0, 1, 2], rows
    assert sorted({float(r["principal.rates[0]"]) for r in rows}) == [0.0, 0.5, 1.0]
