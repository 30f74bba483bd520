"""notebooks/quickstart.ipynb runs top to bottom on this machine's devices in minutes.

The notebook is executed with nbclient in an ipykernel of this very interpreter (a kernel
spec written for `sys.executable`, whatever kernels are installed elsewhere); its install
cell skips itself because noisejax is importable. Any cell error fails the test, and so do
a run over the time limit and outputs that miss what the notebook is there to show.
"""

import math
import os
import pathlib
import re
import time

import jax
import pytest

_NEEDS = "the notebook test needs nbformat, nbclient and ipykernel (pip install them)"
nbformat = pytest.importorskip("nbformat", reason=_NEEDS)
nbclient = pytest.importorskip("nbclient", reason=_NEEDS)
pytest.importorskip("ipykernel", reason=_NEEDS)

ROOT = pathlib.Path(__file__).resolve().parent.parent
NOTEBOOK = ROOT / "notebooks" / "quickstart.ipynb"
TIME_LIMIT_S = 180.0
INSTALL_URL = "git+https://github.com/noisejax/noisejax"
NUMBER = r"([0-9]+(?:\.[0-9]+)?)"


def _kernel_manager(kernel_dir: pathlib.Path):
  """A kernel manager that starts ipykernel with sys.executable (this venv)."""
  from ipykernel.kernelspec import write_kernel_spec
  from jupyter_client.kernelspec import KernelSpecManager
  from jupyter_client.manager import AsyncKernelManager
  write_kernel_spec(kernel_dir / "noisejax-test")
  specs = KernelSpecManager(kernel_dirs=[str(kernel_dir)], ensure_native_kernel=False)
  return AsyncKernelManager(kernel_name="noisejax-test", kernel_spec_manager=specs)


def _code_cells(nb) -> list:
  return [c for c in nb.cells if c.cell_type == "code"]


def _text(cell) -> str:
  """A code cell's printed text (streams and plain-text results)."""
  parts = []
  for out in cell.get("outputs", []):
    if out.output_type == "stream":
      parts.append(out.text)
    elif "data" in out and "text/plain" in out.data:
      parts.append(out.data["text/plain"])
  return "".join(parts)


def _find(text: str, pattern: str) -> tuple:
  match = re.search(pattern, text)
  assert match, f"no output matches {pattern!r} in:\n{text}"
  return tuple(float(g) for g in match.groups())


@pytest.fixture(scope="module")
def executed(tmp_path_factory):
  """(the executed notebook, its printed text, seconds from kernel start to last cell)."""
  tmp = tmp_path_factory.mktemp("notebook")
  nb = nbformat.read(NOTEBOOK, as_version=4)
  client = nbclient.NotebookClient(nb, km=_kernel_manager(tmp / "kernels"),
                                   timeout=int(TIME_LIMIT_S),
                                   resources={"metadata": {"path": str(tmp)}})
  start = time.perf_counter()
  client.execute(env=dict(os.environ, TMPDIR=str(tmp)))  # raises on any cell error
  seconds = time.perf_counter() - start
  return nb, "\n".join(_text(c) for c in _code_cells(nb)), seconds


def test_committed_notebook_has_no_outputs():
  nb = nbformat.read(NOTEBOOK, as_version=4)
  nbformat.validate(nb)
  for cell in _code_cells(nb):
    assert cell.outputs == [] and cell.execution_count is None, (
        "commit notebooks/quickstart.ipynb with its outputs stripped "
        "(see notebooks/README.md)")


def test_no_cell_names_a_device():
  sources = "\n".join(c.source for c in _code_cells(nbformat.read(NOTEBOOK, as_version=4)))
  for device in ("cpu", "gpu", "tpu", "cuda"):
    assert not re.search(rf"[\"']{device}[\"']", sources, re.I), device


def test_runs_top_to_bottom_within_the_time_limit(executed):
  nb, _, seconds = executed
  cells = _code_cells(nb)
  assert all(c.execution_count for c in cells)
  assert not [o for c in cells for o in c.outputs if o.output_type == "error"]
  assert seconds < TIME_LIMIT_S, f"the notebook took {seconds:.0f} s"


def test_install_cell_is_skipped_where_noisejax_is_importable(executed):
  nb, _, _ = executed
  install = _code_cells(nb)[0]
  assert INSTALL_URL in install.source and "except ImportError" in install.source
  assert install.outputs == []  # pip did not run


def test_reports_the_devices_it_runs_on(executed):
  _, text, _ = executed
  assert f"backend {jax.default_backend()!r}" in text
  assert f"{jax.devices()[0].platform} (" in text


def test_trains_below_the_noise_level_and_shows_the_u_curve(executed):
  nb, text, _ = executed
  seeds, _ = _find(text, rf"{NUMBER} seeds × {NUMBER} epochs in")
  assert seeds > 1  # several seeds in one call
  best, _, _, final, rate = _find(text, rf"best test error {NUMBER} ± {NUMBER} at epoch "
                                        rf"{NUMBER}; final {NUMBER}; noise level δ = {NUMBER}")
  assert best < rate / 2 and final > best  # early stopping beats δ; the curve rises again
  pngs = [o for c in _code_cells(nb) for o in c.outputs if "image/png" in o.get("data", {})]
  assert len(pngs) >= 3  # subset errors + U-curve, the gradient ratio, the experiment's figure


def test_gradient_ratio_follows_the_paper(executed):
  _, text, _ = executed
  ratio0, predicted = _find(text, rf"ratio at init, seed 0: {NUMBER} .*predicts "
                                  rf"\(1 − δ\)/δ = {NUMBER}")
  assert math.isfinite(ratio0) and predicted == pytest.approx(0.7 / 0.3, abs=1e-3)
  assert abs(ratio0 / predicted - 1) < 0.25  # eq. 8 at initialization
  at_early, _ = _find(text, rf"ratio at the early-stopping point: {NUMBER} ± {NUMBER}")
  assert 0.5 < at_early < ratio0  # clean priority fades by the early-stopping point


def test_runs_a_quick_preset_to_its_claims(executed):
  _, text, _ = executed
  passed, total = _find(text, rf"kernel_early_stopping: {NUMBER}/{NUMBER} claims passed")
  rows = re.findall(r"\[(PASS|FAIL)\] fig9/\w+: measured", text)
  assert total == len(rows) == 4 and passed == rows.count("PASS")
