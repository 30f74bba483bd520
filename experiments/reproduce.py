"""Runs every experiment, collects its figures into figures/ and its claims into figures/CLAIMS.md.

  python -m experiments.reproduce --preset quick            # all experiments, this CPU
  python -m experiments.reproduce --preset paper            # the papers' scale, GPU/TPU
  python -m experiments.reproduce --preset tiny             # every experiment in seconds
  python -m experiments.reproduce --only u_curve,ntk_angles # a subset
  python -m experiments.reproduce --only bench_persample    # a benchmark (not run by default)

Each experiment runs in runs/reproduce-<preset>/<name>, resumed if it holds the same
config (`--fresh` starts every selected experiment from scratch). For the quick preset
its figures (PNG, and a benchmark's table) are copied to figures/<name>/ and
figures/CLAIMS.md gets the claims of every experiment that has a finished run under the
root, with the wall time of the run that did the work; the paper preset writes to
figures/paper/ instead, the tiny preset only under its root. A failed claim is listed
as failed; an experiment that crashes is listed as crashed and makes the command exit
non-zero.
"""

import importlib
import json
import pathlib
import shutil
import sys
import time
import traceback

from noisejax import claims as claims_lib
from noisejax import experiment
from noisejax.errors import ConfigError, check_choice

# name -> the figures of its paper it reproduces.
EXPERIMENTS = {
    "u_curve": "clean-priority Fig. 1",
    "ntk_angles": "clean-priority Thm 3.1, Cor. 3.2, Figs. 2-3",
    "clean_priority": "clean-priority Figs. 4-8, 10-13, Assumption 4.1",
    "kernel_early_stopping": "clean-priority Fig. 9",
    "pure_noise": "misclassification Thms 1-4, Figs. 2-4",
    "misclassification_sparsity": "misclassification Figs. 1, 5, 6, §6.4",
    "clusterable_gd": "early-stopping Figs. 1, 3, 4, 5; Thms 2.3, 7.1, 9.2",
    "feature_learning": "feature-learning Fig. 1, n·SNR² sweep, Prop. 4.3, real-data check",
    "sln": "SLN Tables 1-2, Figs. 1-6, 8, 10, Props 1-3, App. E",
}
# Engineering benchmarks: run only when named with --only.
BENCHMARKS = {
    "bench_persample": "sample-wise gradient engine vs a plain step and torch.func",
    "bench_seeds": "S seeds in one compiled program vs S runs of a per-step loop",
}
ROOT = pathlib.Path(__file__).resolve().parent.parent


def destination(preset: str, root: pathlib.Path) -> pathlib.Path:
  """Where figures and the claims table of a preset go."""
  return {"quick": ROOT / "figures", "paper": ROOT / "figures" / "paper"}.get(preset, root)


def rounded(value, digits: int = 4):
  """Floats (also nested in dicts and lists) to `digits` significant digits, for reading."""
  if isinstance(value, float):
    return float(f"{value:.{digits}g}")
  if isinstance(value, dict):
    return {k: rounded(v, digits) for k, v in value.items()}
  if isinstance(value, list):
    return [rounded(v, digits) for v in value]
  return value


def _cell(text: str) -> str:
  """Text for one Markdown table cell: a '|' inside it would end the cell."""
  return text.replace("|", "\\|")


def claims_table(results: dict) -> str:
  lines = ["# Claims checked by `python -m experiments.reproduce`", "",
           "Every row is measured on the run named in its experiment column; "
           "a claim that does not hold is reported as FAIL.", "",
           "| experiment | claim | paper | expected | measured | result |",
           "|---|---|---|---|---|---|"]
  for name, (status, claims, seconds) in results.items():
    if status != "ok":
      lines.append(f"| {name} | — | — | — | {status} | CRASHED |")
      continue
    for c in claims:
      measured = c.measured if isinstance(c.measured, str) else json.dumps(rounded(c.measured))
      if len(measured) > 160:
        measured = measured[:157] + "..."
      cells = [_cell(v) for v in (c.statement, c.expected, measured)]
      lines.append(f"| {name} | `{c.id}`: {cells[0]} | {c.paper} | {cells[1]} | "
                   f"{cells[2]} | {'PASS' if c.passed else 'FAIL'} |")
  lines += ["", "| experiment | reproduces | runtime (s) |", "|---|---|---|"]
  for name, (status, _, seconds) in results.items():
    lines.append(f"| {name} | {_described(name)} | {seconds:.0f} |")
  return "\n".join(lines) + "\n"


def _described(name: str) -> str:
  return EXPERIMENTS.get(name) or BENCHMARKS[name]


def load_results(workdir: pathlib.Path):
  """(status, claims, seconds) of a finished run from its claims.json and runtime.json."""
  claims = [claims_lib.Claim(**c) for c in json.loads((workdir / "claims.json").read_text())]
  runtime = workdir / "runtime.json"
  seconds = json.loads(runtime.read_text())["seconds"] if runtime.exists() else float("nan")
  return "ok", claims, seconds


def main(argv):
  preset, only, root, fresh_all = "quick", list(EXPERIMENTS), None, False
  try:
    flags = experiment.read_flags(argv, switches=("--fresh",),
                                  valued=("--preset", "--only", "--workdir"))
    if flags is None:
      print(__doc__)
      return 0
    for arg, key, value in flags:
      if key == "--fresh" and value is True:
        fresh_all = True
      elif key == "--preset":
        preset = check_choice("preset", value, experiment.PRESETS)
      elif key == "--only":
        only = [n for n in value.split(",") if n]
        for n in only:
          check_choice("only", n, tuple(EXPERIMENTS) + tuple(BENCHMARKS))
      elif key == "--workdir":
        root = value
      else:
        raise ConfigError("argv", arg, ("--preset", "--only", "--workdir", "--fresh"),
                          reason="unknown argument")
  except ConfigError as e:
    print(f"error: {e}", file=sys.stderr)
    return 2

  root = pathlib.Path(root or f"runs/reproduce-{preset}")
  figures = destination(preset, root)
  experiment.enable_compilation_cache()
  results = {}
  for name in only:
    module = importlib.import_module(f"experiments.{name}")
    if fresh_all and (root / name).exists():
      shutil.rmtree(root / name)
    fresh = not (root / name).exists()
    start = time.time()
    print(f"== {name} ({_described(name)})", flush=True)
    try:
      claims = experiment.execute(name, module.get_config(preset), root / name, module.PARTS,
                                  validate=getattr(module, "validate", None))
      status = "ok"
    except Exception as e:  # pylint: disable=broad-except
      traceback.print_exc()
      claims, status = [], f"{type(e).__name__}: {e}".replace("|", "/").splitlines()[0][:200]
    seconds = time.time() - start
    runtime = root / name / "runtime.json"
    if status == "ok" and (fresh or not runtime.exists()):
      runtime.write_text(json.dumps({"seconds": round(seconds, 1)}))
    elif status == "ok":  # a resumed run: report the time of the run that did the work
      seconds = json.loads(runtime.read_text())["seconds"]
    results[name] = (status, claims, seconds)
    if status == "ok":
      experiment.print_claims(name, claims)
      if figures != root:
        experiment.copy_figures(root / name, figures / name)
    print(f"   {seconds:.0f} s", flush=True)

  # Experiments not run this time keep the results of their last run under `root`.
  everything = list(EXPERIMENTS) + list(BENCHMARKS)
  for name in everything:
    if name not in results and (root / name / "claims.json").exists():
      results[name] = load_results(root / name)
  results = {name: results[name] for name in everything if name in results}
  figures.mkdir(parents=True, exist_ok=True)
  table_path = figures / "CLAIMS.md"
  table_path.write_text(claims_table(results))
  print(f"claims table: {table_path}")
  return 1 if any(s != "ok" for s, _, _ in results.values()) else 0


if __name__ == "__main__":
  sys.exit(main(sys.argv[1:]))
