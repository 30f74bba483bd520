"""The experiment runner: command line, workdir, metrics, figures and claims.

Every experiment module is thin:

  def get_config(preset) -> ml_collections.ConfigDict
  def run(config, run: Run) -> list[Claim]
  if __name__ == "__main__":
    experiment.main("<name>", get_config, run)

and is started as

  python -m experiments.<name> [--preset quick|paper] [--workdir DIR] [--config.<field>=<value> ...]

A run owns its workdir: `config.json`, `metrics.jsonl` (one JSON object per logged
step), `noise.npz`, `checkpoints/`, its figures as PNG and `claims.json`.
"""

import ast
import dataclasses
import json
import math
import os
import pathlib
import shutil
import sys
import time
from typing import Any, Callable, Iterable

import ml_collections
import numpy as np

from noisejax.errors import ConfigError, check_choice

PRESETS = ("quick", "paper")
PAPERS = {
    "clean-priority": "Liu, Abedsoltan & Belkin, On Emergence of Clean-Priority Learning in Early Stopped Neural Networks",
    "misclassification": "Cornacchia, Hazła, Nachum & Yehudayoff, Regularization by Misclassification in ReLU Neural Networks",
    "early-stopping": "Li, Soltanolkotabi & Oymak, Gradient Descent with Early Stopping is Provably Robust to Label Noise",
    "feature-learning": "On the Role of Label Noise in the Feature Learning Process (ICML 2025)",
    "sln": "Chen et al., Noise against Noise: Stochastic Label Noise Helps Combat Inherent Label Noise",
}
_OUTPUTS = ("config.json", "metrics.jsonl", "claims.json", "noise.npz", "checkpoints")


class NonFiniteLossError(RuntimeError):
  """Training produced a NaN or Inf loss; the last good checkpoint is kept."""


@dataclasses.dataclass(frozen=True)
class Claim:
  """One claim of a paper, checked on one run.

  `passed` is computed by the experiment from `measured`; nothing is ever hard-coded.
  """
  id: str
  paper: str
  statement: str
  expected: str
  measured: Any
  passed: bool

  def __post_init__(self):
    check_choice("claim.paper", self.paper, tuple(PAPERS))
    object.__setattr__(self, "passed", bool(self.passed))
    object.__setattr__(self, "measured", to_jsonable(self.measured))


def to_jsonable(value):
  """Numpy / jax scalars and arrays to plain JSON values (NaN/Inf become strings)."""
  if isinstance(value, dict):
    return {str(k): to_jsonable(v) for k, v in value.items()}
  if isinstance(value, (list, tuple)):
    return [to_jsonable(v) for v in value]
  if isinstance(value, (str, bool)) or value is None:
    return value
  if hasattr(value, "shape") and getattr(value, "shape", ()) != ():
    return to_jsonable(np.asarray(value).tolist())
  if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
    return int(value)
  if isinstance(value, np.bool_):
    return bool(value)
  try:
    number = float(value)
  except (TypeError, ValueError):
    return str(value)
  return number if math.isfinite(number) else str(number)


class Run:
  """The workdir of one run and the files it writes."""

  def __init__(self, name: str, config: ml_collections.ConfigDict, workdir):
    self.name = name
    self.config = config
    self.workdir = pathlib.Path(workdir).resolve()
    self.checkpoint_dir = self.workdir / "checkpoints"
    self.metrics_path = self.workdir / "metrics.jsonl"

  def child(self, subdir: str, config=None) -> "Run":
    """A run in `workdir/subdir` with its own metrics.jsonl and checkpoints (one of several
    trainings inside one experiment)."""
    run = Run(self.name, self.config if config is None else config, self.workdir / subdir)
    run.workdir.mkdir(parents=True, exist_ok=True)
    return run

  def log(self, step: int, **scalars):
    """Appends one JSON line `{"step": step, **scalars}` to metrics.jsonl."""
    record = {"step": int(step), **{k: to_jsonable(v) for k, v in scalars.items()}}
    with open(self.metrics_path, "a") as f:
      f.write(json.dumps(record) + "\n")

  def read_metrics(self) -> list[dict]:
    if not self.metrics_path.exists():
      return []
    with open(self.metrics_path) as f:
      return [json.loads(line) for line in f if line.strip()]

  def truncate_metrics(self, last_step: int):
    """Drops the records logged after `last_step` (used when resuming)."""
    kept = [r for r in self.read_metrics() if r["step"] <= last_step]
    with open(self.metrics_path, "w") as f:
      for r in kept:
        f.write(json.dumps(r) + "\n")
    return kept

  def savefig(self, fig, filename: str):
    import matplotlib.pyplot as plt
    path = self.workdir / filename
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path

  def save_noise(self, noisy_labels, name: str = "noise"):
    path = self.workdir / f"{name}.npz"
    noisy_labels.save(path)
    return path

  def save_json(self, name: str, obj):
    path = self.workdir / (name if name.endswith(".json") else f"{name}.json")
    with open(path, "w") as f:
      json.dump(to_jsonable(obj), f, indent=1)
    return path

  def progress(self, iterable: Iterable, total=None, desc=None):
    from tqdm.auto import tqdm
    return tqdm(iterable, total=total, desc=desc or self.name, mininterval=2.0,
                disable=os.environ.get("NOISEJAX_QUIET") == "1", leave=False)


# ----------------------------------------------------------------------------
# Config validation of the fields every experiment shares.


def _get(config, path):
  node = config
  for part in path.split("."):
    if not isinstance(node, (ml_collections.ConfigDict, dict)) or part not in node:
      return None
    node = node[part]
  return node


def validate(config: ml_collections.ConfigDict):
  """Checks the shared fields wherever they appear; raises ConfigError."""
  from noisejax import data, losses, models, noise, train  # pylint: disable=g-import-not-at-top

  named = {
      "data.name": data.DATASETS,
      "model.name": models.MODELS,
      "loss.name": losses.LOSSES,
      "noise.kind": noise.NOISE_TYPES,
      "optim.name": train.OPTIMIZERS,
      "optim.schedule": train.SCHEDULES,
  }
  for field, choices in named.items():
    value = _get(config, field)
    if value is not None:
      check_choice(field, value, choices)
  rate = _get(config, "noise.rate")
  if rate is not None and not 0 <= rate < 1:
    raise ConfigError("noise.rate", rate, reason="must lie in [0, 1)")
  for field in ("optim.lr",):
    value = _get(config, field)
    if value is not None and not value > 0:
      raise ConfigError(field, value, reason="must be > 0")
  for field in ("optim.batch_size", "optim.epochs"):
    value = _get(config, field)
    if value is not None and value < 0:
      raise ConfigError(field, value, reason="must be >= 0 (0 batch size means full batch)")


# ----------------------------------------------------------------------------
# Workdir ownership.


def _config_json(config) -> str:
  return json.dumps(to_jsonable(config.to_dict()), indent=1, sort_keys=True)


def prepare_workdir(name: str, config, workdir) -> Run:
  """Creates the workdir, or reuses it when it holds this very config (resume).

  A workdir holding another run's results is never overwritten.
  """
  run = Run(name, config, workdir)
  path = run.workdir
  wanted = _config_json(config)
  if path.exists() and any(path.iterdir()):
    config_path = path / "config.json"
    if not config_path.exists():
      raise ConfigError("workdir", str(path), reason="exists and holds files of no noisejax run; "
                        "choose an empty or new --workdir")
    existing = json.loads(config_path.read_text())
    meta = existing.pop("_experiment", name)
    if meta != name or json.dumps(existing, indent=1, sort_keys=True) != wanted:
      diff = _config_diff(existing, json.loads(wanted))
      raise ConfigError("workdir", str(path), reason=f"holds the results of another run "
                        f"({meta}; differs in {diff}); choose a new --workdir or delete it")
  path.mkdir(parents=True, exist_ok=True)
  content = json.loads(wanted)
  content["_experiment"] = name
  (path / "config.json").write_text(json.dumps(content, indent=1, sort_keys=True))
  return run


def _config_diff(a: dict, b: dict, prefix="") -> str:
  diffs = []
  for key in sorted(set(a) | set(b)):
    if key == "_experiment":
      continue
    va, vb = a.get(key), b.get(key)
    if isinstance(va, dict) and isinstance(vb, dict):
      sub = _config_diff(va, vb, prefix + key + ".")
      if sub != "nothing":
        diffs.append(sub)
    elif va != vb:
      diffs.append(prefix + key)
  return ", ".join(diffs[:4]) if diffs else "nothing"


def run_parts(config, run: Run, parts: dict) -> list[Claim]:
  """Runs `parts[name](config, run)` for every name in `config.parts`, in order.

  Checks every name first, records each part's wall time in timings.json and
  returns all claims.
  """
  for name in config.parts:
    check_choice("parts", name, tuple(parts))
  claims, times = [], {}
  for name in config.parts:
    start = time.time()
    claims += parts[name](config, run)
    times[name] = round(time.time() - start, 1)
  run.save_json("timings", times)
  return claims


def write_claims(run: Run, claims: list[Claim]):
  run.save_json("claims.json", [dataclasses.asdict(c) for c in claims])


def execute(name: str, config, workdir, run_fn: Callable) -> list[Claim]:
  """Validates `config`, runs `run_fn(config, run)` in `workdir`, writes claims.json."""
  validate(config)
  run = prepare_workdir(name, config, workdir)
  claims = list(run_fn(config, run))
  for claim in claims:
    if not isinstance(claim, Claim):
      raise TypeError(f"{name}: run() must return Claim objects, got {type(claim).__name__}")
  write_claims(run, claims)
  return claims


# ----------------------------------------------------------------------------
# Command line.


def parse_value(field: str, text: str, current):
  """Parses `text` into the type of the config's current value."""
  if isinstance(current, bool):
    if text.lower() in ("true", "1", "yes"):
      return True
    if text.lower() in ("false", "0", "no"):
      return False
    raise ConfigError(field, text, reason="expects a boolean", choices=("true", "false"))
  try:
    value = ast.literal_eval(text)
  except (ValueError, SyntaxError):
    value = text
  if current is None or isinstance(current, str):
    return value if current is None else text
  if isinstance(current, int) and isinstance(value, int):
    return value
  if isinstance(current, float) and isinstance(value, (int, float)) and not isinstance(value, bool):
    return float(value)
  if isinstance(current, (tuple, list)) and isinstance(value, (tuple, list, int, float)):
    value = value if isinstance(value, (tuple, list)) else (value,)
    return type(current)(value)
  raise ConfigError(field, text, reason=f"expects a {type(current).__name__}")


def apply_override(config, field: str, text: str):
  """Sets config.<field> from command-line text; the field must exist."""
  node = config
  parts = field.split(".")
  for i, part in enumerate(parts):
    if not isinstance(node, ml_collections.ConfigDict) or part not in node:
      here = ".".join(parts[:i]) or "config"
      keys = sorted(node.keys()) if isinstance(node, ml_collections.ConfigDict) else []
      raise ConfigError(field, text, keys, reason=f"no such field in {here}")
    if i == len(parts) - 1:
      with node.ignore_type():
        node[part] = parse_value(field, text, node[part])
    else:
      node = node[part]


def parse_args(argv: list[str]):
  """Returns (preset, workdir, [(field, text), ...]) from the command line."""
  preset, workdir, overrides = "quick", None, []
  args = list(argv)
  while args:
    arg = args.pop(0)
    if arg in ("-h", "--help"):
      return None, None, None
    key, eq, value = arg.partition("=")
    if key in ("--preset", "--workdir") and not eq:
      if not args:
        raise ConfigError(key[2:], None, reason="needs a value")
      value = args.pop(0)
    if key == "--preset":
      preset = check_choice("preset", value, PRESETS)
    elif key == "--workdir":
      workdir = value
    elif key.startswith("--config.") and eq:
      overrides.append((key[len("--config."):], value))
    else:
      raise ConfigError("argv", arg, ("--preset", "--workdir", "--config.<field>=<value>"),
                        reason="unknown argument")
  return preset, workdir, overrides


def print_claims(name: str, claims: list[Claim], stream=sys.stdout):
  passed = sum(c.passed for c in claims)
  print(f"{name}: {passed}/{len(claims)} claims passed", file=stream)
  for c in claims:
    mark = "PASS" if c.passed else "FAIL"
    print(f"  [{mark}] {c.id}: measured {c.measured} (expected {c.expected})", file=stream)


def main(name: str, get_config: Callable, run_fn: Callable, argv=None):
  """The command line of every experiment module."""
  argv = sys.argv[1:] if argv is None else argv
  try:
    preset, workdir, overrides = parse_args(argv)
    if preset is None:
      print(f"usage: python -m experiments.{name} [--preset {'|'.join(PRESETS)}] "
            "[--workdir DIR] [--config.<field>=<value> ...]\n\n"
            + (sys.modules[run_fn.__module__].__doc__ or ""))
      return 0
    config = get_config(preset)
    for field, text in overrides:
      apply_override(config, field, text)
    workdir = workdir or os.path.join("runs", name, preset)
    claims = execute(name, config, workdir, run_fn)
  except ConfigError as e:
    print(f"error: {e}", file=sys.stderr)
    sys.exit(2)
  except ValueError as e:
    from noisejax.data import DataUnavailableError  # pylint: disable=g-import-not-at-top
    if not isinstance(e, DataUnavailableError):
      raise
    print(f"error: {e}", file=sys.stderr)
    sys.exit(2)
  except NonFiniteLossError as e:
    print(f"error: {e}", file=sys.stderr)
    sys.exit(3)
  print_claims(name, claims)
  print(f"results in {pathlib.Path(workdir).resolve()}")
  return 0


def copy_figures(workdir, destination):
  """Copies a run's PNG figures into `destination` (e.g. figures/<name>/)."""
  destination = pathlib.Path(destination)
  destination.mkdir(parents=True, exist_ok=True)
  copied = []
  for png in sorted(pathlib.Path(workdir).glob("*.png")):
    shutil.copy2(png, destination / png.name)
    copied.append(destination / png.name)
  return copied
