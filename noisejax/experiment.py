"""The experiment runner: command line, workdir, parts, records, figures and claims.

Every experiment module has one shape:

  def get_config(preset) -> ml_collections.ConfigDict     # presets quick, paper, tiny
  PARTS = {"<part>": experiment.Part(compute, plot, claims), ...}
  if __name__ == "__main__":
    experiment.main("<name>", get_config, PARTS)

and is started as

  python -m experiments.<name> [--preset quick|paper|tiny] [--workdir DIR]
                               [--config.<field>=<value> ...] [--replot]

The runner runs the parts named in `config.parts` (all parts if the config has none), in
order. A part is three functions:

  compute(config, run) -> record     trains / simulates; `run.key` is the part's key
                                     `part_key(config.seed, part)`, the one key rule
  plot(record, config) -> {filename: figure}
  claims(record, config) -> [Claim]  a pure function of the record

The record (a dict of numbers, lists and arrays) is saved to `records/<part>.json` (+
`.npz` for arrays) and read back before plotting, so a fresh run and `--replot` see the
same record. A part whose record exists is not computed again: rerunning a finished
command, or `--replot`, regenerates figures and claims from the records alone. Claim ids
are `<part>/<name>`.

A run owns its workdir: `config.json`, `metrics.jsonl` (one JSON object per logged step),
`noise.npz`, `checkpoints/`, `records/`, `timings.json` (seconds per part), its figures as
PNG and `claims.json`. A workdir holding another run's results is never overwritten.

Several processes (multi-host JAX, `noisejax.distributed`): `main` joins them first;
every process computes every part (training is data-parallel over all their devices),
only process 0 writes the workdir's files, and every process calls the orbax
checkpoints (which write each array once). The workdir must be on a file system all
processes see: the others read the records process 0 wrote.
"""

import ast
import dataclasses
import json
import os
import pathlib
import shutil
import sys
import time
import zlib
from typing import Callable, Iterable, Optional

import jax
import ml_collections
import numpy as np

from noisejax import config as config_lib
from noisejax import distributed
from noisejax.claims import Claim, to_jsonable
from noisejax.errors import ConfigError, NonFiniteLossError, check_choice

PRESETS = config_lib.PRESETS


def enable_compilation_cache(directory=None):
  """JAX's persistent compilation cache, so a second run of the same programs does not
  compile them again: `directory`, else $NOISEJAX_CACHE_DIR, else ~/.cache/noisejax/jax
  (under $XDG_CACHE_HOME if set). NOISEJAX_CACHE_DIR=off disables it."""
  directory = directory or os.environ.get("NOISEJAX_CACHE_DIR")
  if directory == "off":
    return None
  if not directory:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    directory = os.path.join(base, "noisejax", "jax")
  jax.config.update("jax_compilation_cache_dir", directory)
  jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.2)
  return directory


def part_key(seed: int, part: str):
  """The PRNG key of one part of an experiment: fold_in(key(seed), crc32(part))."""
  return jax.random.fold_in(jax.random.key(seed), zlib.crc32(part.encode()))


@dataclasses.dataclass(frozen=True)
class Part:
  """One part of an experiment: compute a record, plot it, judge the claims on it."""
  compute: Callable
  plot: Optional[Callable]
  claims: Callable


# ----------------------------------------------------------------------------
# Records: JSON for the structure, one npz for the arrays.


def _split_arrays(value, arrays: dict):
  if isinstance(value, dict):
    return {str(k): _split_arrays(v, arrays) for k, v in value.items()}
  if isinstance(value, (list, tuple)):
    return [_split_arrays(v, arrays) for v in value]
  if isinstance(value, (np.ndarray, jax.Array)) and np.ndim(value) > 0:
    name = f"a{len(arrays)}"
    arrays[name] = np.asarray(value)
    return {"__array__": name}
  if isinstance(value, (np.bool_, bool)):
    return bool(value)
  if isinstance(value, (np.integer,)):
    return int(value)
  if isinstance(value, (np.floating, jax.Array)):
    return float(value)
  return value


def _join_arrays(value, arrays):
  if isinstance(value, dict):
    if set(value) == {"__array__"}:
      return arrays[value["__array__"]]
    return {k: _join_arrays(v, arrays) for k, v in value.items()}
  if isinstance(value, list):
    return [_join_arrays(v, arrays) for v in value]
  return value


def save_record(stem, record: dict):
  """Writes `stem.json` and, if the record holds arrays, `stem.npz`."""
  stem = pathlib.Path(stem)
  stem.parent.mkdir(parents=True, exist_ok=True)
  arrays = {}
  structure = _split_arrays(record, arrays)
  if arrays:
    np.savez(stem.with_suffix(".npz"), **arrays)
  stem.with_suffix(".json").write_text(json.dumps(structure, indent=1))


def load_record(stem) -> dict:
  stem = pathlib.Path(stem)
  arrays = {}
  if stem.with_suffix(".npz").exists():
    with np.load(stem.with_suffix(".npz")) as f:
      arrays = {k: f[k] for k in f.files}
  return _join_arrays(json.loads(stem.with_suffix(".json").read_text()), arrays)


# ----------------------------------------------------------------------------
# The workdir of a run.


class Run:
  """The workdir of one run (or of one training inside it) and the files it writes."""

  def __init__(self, name: str, config, workdir, *, part: Optional[str] = None):
    self.name = name
    self.config = config
    self.workdir = pathlib.Path(workdir).resolve()
    self.part = part
    self.checkpoint_dir = self.workdir / "checkpoints"
    self.metrics_path = self.workdir / "metrics.jsonl"

  @property
  def key(self):
    """The part's PRNG key (`part_key`)."""
    if self.part is None:
      raise ValueError("run.key exists inside a part only")
    return part_key(self.config.seed, self.part)

  def child(self, subdir: str) -> "Run":
    """A run in `workdir/subdir` with its own metrics.jsonl and checkpoints (one of
    several trainings inside one experiment)."""
    run = Run(self.name, self.config, self.workdir / subdir, part=self.part)
    if distributed.is_main_process():
      run.workdir.mkdir(parents=True, exist_ok=True)
    return run

  def record(self, part: str) -> Optional[dict]:
    """The saved record of another part of this run, or None if it has none."""
    stem = self._root() / "records" / part
    return load_record(stem) if stem.with_suffix(".json").exists() else None

  def _root(self) -> pathlib.Path:
    root = self.workdir
    while not (root / "config.json").exists() and root.parent != root:
      root = root.parent
    return root

  def log(self, step: int, **scalars):
    """Appends one JSON line `{"step": step, **scalars}` to metrics.jsonl."""
    self._append({"step": int(step), **scalars})

  def _append(self, record: dict):
    if not distributed.is_main_process():
      return
    with open(self.metrics_path, "a") as f:
      f.write(json.dumps(to_jsonable(record)) + "\n")

  def log_fn(self) -> Callable[[dict], None]:
    """A `log_fn` for train.fit. Its first record drops the records at or after its step
    (left behind by an interrupted run that resumes from an earlier checkpoint)."""
    first = [True]

    def log(record):
      if first[0] and distributed.is_main_process():
        kept = [r for r in self.read_metrics() if r["step"] < record["step"]]
        self.metrics_path.write_text("".join(json.dumps(r) + "\n" for r in kept))
        first[0] = False
      self._append(record)

    return log

  def read_metrics(self) -> list[dict]:
    if not self.metrics_path.exists():
      return []
    with open(self.metrics_path) as f:
      return [json.loads(line) for line in f if line.strip()]

  def progress(self, iterable: Iterable, total=None, desc=None):
    from tqdm.auto import tqdm  # pylint: disable=g-import-not-at-top
    quiet = os.environ.get("NOISEJAX_QUIET") == "1" or not distributed.is_main_process()
    return tqdm(iterable, total=total, desc=desc or self.name, mininterval=2.0,
                disable=quiet, leave=False)

  def save_noise(self, noisy_labels, name: str = "noise"):
    path = self.workdir / f"{name}.npz"
    if not distributed.is_main_process():
      return os.fspath(path)
    self.workdir.mkdir(parents=True, exist_ok=True)
    return noisy_labels.save(path)

  def save_json(self, name: str, obj):
    path = self.workdir / (name if name.endswith(".json") else f"{name}.json")
    if distributed.is_main_process():
      path.write_text(json.dumps(to_jsonable(obj), indent=1))
    return path

  def write_text(self, name: str, text: str):
    """workdir/name holding `text` (written by process 0 only)."""
    path = self.workdir / name
    if distributed.is_main_process():
      path.write_text(text)
    return path

  def train_classifier(self, config, splits, *, key, subdir: Optional[str] = None, **kwargs):
    """train.train_classifier logging to this run's (or `subdir`'s) metrics.jsonl, with
    its checkpoints and a progress bar."""
    from noisejax import train  # pylint: disable=g-import-not-at-top
    run = self.child(subdir) if subdir else self
    desc = f"{self.name}/{subdir}" if subdir else self.name
    return train.train_classifier(
        config, splits, key=key, log_fn=run.log_fn(), checkpoint_dir=run.checkpoint_dir,
        progress=lambda it, total: run.progress(it, total, desc), **kwargs)


# ----------------------------------------------------------------------------
# Workdir ownership.


def _config_json(config) -> str:
  return json.dumps(to_jsonable(config.to_dict()), indent=1, sort_keys=True)


def prepare_workdir(name: str, config, workdir, *, must_exist: bool = False) -> Run:
  """Creates the workdir, or reuses it when it holds this very config (resume).

  A workdir holding another run's results is never overwritten.
  """
  run = Run(name, config, workdir)
  path = run.workdir
  wanted = _config_json(config)
  config_path = path / "config.json"
  if path.exists() and any(path.iterdir()):
    if not config_path.exists():
      raise ConfigError("workdir", str(path), reason="exists and holds files of no noisejax run; "
                        "choose an empty or new --workdir")
    existing = json.loads(config_path.read_text())
    meta = existing.pop("_experiment", name)
    if meta != name or json.dumps(existing, indent=1, sort_keys=True) != wanted:
      diff = _config_diff(existing, json.loads(wanted))
      raise ConfigError("workdir", str(path), reason=f"holds the results of another run "
                        f"({meta}; differs in {diff}); choose a new --workdir or delete it")
  elif must_exist:
    raise ConfigError("replot", str(path), reason="no finished run in this workdir")
  distributed.barrier("noisejax.prepare_workdir")  # every process checked before any writes
  if distributed.is_main_process():
    path.mkdir(parents=True, exist_ok=True)
    content = json.loads(wanted)
    content["_experiment"] = name
    config_path.write_text(json.dumps(content, indent=1, sort_keys=True))
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


# ----------------------------------------------------------------------------
# Running the parts.


def selected_parts(config, parts: dict) -> list[str]:
  names = list(config.get("parts") or parts)
  for name in names:
    check_choice("parts", name, tuple(parts))
  return names


def check_config(config, parts: dict, validate: Optional[Callable] = None) -> list[str]:
  """Validates `config` as every run does (the shared pieces, the part names, the
  experiment's own `validate`); returns the names of the parts it runs."""
  config_lib.validate(config)
  names = selected_parts(config, parts)
  if validate is not None:
    validate(config)
  return names


def execute(name: str, config, workdir, parts: dict, *, replot: bool = False,
            validate: Optional[Callable] = None) -> list[Claim]:
  """Validates `config`, runs (or, with `replot`, only re-plots) its parts in `workdir`,
  writes the figures, timings.json and claims.json; returns the claims. With several
  processes each computes every part and process 0 alone writes."""
  names = check_config(config, parts, validate)
  run = prepare_workdir(name, config, workdir, must_exist=replot)
  from noisejax import plots  # pylint: disable=g-import-not-at-top
  timings_path = run.workdir / "timings.json"
  timings = json.loads(timings_path.read_text()) if timings_path.exists() else {}
  claims = []
  main_process = distributed.is_main_process()
  for part in names:
    stem = run.workdir / "records" / part
    distributed.barrier(f"noisejax.execute.{part}")  # nobody wrote this part's record yet
    if not stem.with_suffix(".json").exists():
      if replot:
        raise ConfigError("replot", part, reason="this part has no saved record; run it first")
      start = time.time()
      record = parts[part].compute(config, Run(name, config, run.workdir, part=part))
      if main_process:
        save_record(stem, record)
        timings[part] = round(time.time() - start, 1)
        timings_path.write_text(json.dumps(timings, indent=1))
      distributed.barrier(f"noisejax.execute.{part}.saved")  # the others read it back
    record = load_record(stem)
    if parts[part].plot is not None and main_process:
      for filename, fig in parts[part].plot(record, config).items():
        plots.save(fig, run.workdir / filename)
    for c in parts[part].claims(record, config):
      if not isinstance(c, Claim):
        raise TypeError(f"{name}/{part}: claims() must return Claim objects, got "
                        f"{type(c).__name__}")
      claims.append(dataclasses.replace(c, id=f"{part}/{c.id}"))
  run.save_json("claims.json", [dataclasses.asdict(c) for c in claims])
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
  if isinstance(current, (tuple, list)) and isinstance(value, (tuple, list, int, float, str)):
    if isinstance(value, str):  # a,b,c or (a,b,c): a tuple of words or numbers
      words = value.strip().strip("()[]").split(",")
      value = tuple(parse_value(field, v.strip(), None) for v in words if v.strip())
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


_FLAGS = ("--preset", "--workdir", "--config.<field>=<value>", "--replot", "--dry_run")


def read_flags(argv: list[str], *, switches=(), valued=()) -> Optional[list[tuple]]:
  """The command line as (argument, flag, value) triples, None for -h/--help: a switch
  gives True, a valued flag takes `--flag=value` or `--flag value`, any other
  `--key=value` its value, and anything else None."""
  if any(arg in ("-h", "--help") for arg in argv):
    return None
  args, out = list(argv), []
  while args:
    arg = args.pop(0)
    key, eq, value = arg.partition("=")
    if key in switches and not eq:
      value = True
    elif key in valued and not eq:
      if not args:
        raise ConfigError(key[2:], None, reason="needs a value")
      value = args.pop(0)
    elif not eq:
      value = None
    out.append((arg, key, value))
  return out


def parse_args(argv: list[str]) -> Optional[dict]:
  """{"preset", "workdir", "overrides": [(field, text)], "replot", "dry_run"}; None for
  --help."""
  flags = read_flags(argv, switches=("--replot", "--dry_run"), valued=("--preset", "--workdir"))
  if flags is None:
    return None
  out = {"preset": "quick", "workdir": None, "overrides": [], "replot": False, "dry_run": False}
  for arg, key, value in flags:
    if key in ("--replot", "--dry_run") and value is True:
      out[key[2:]] = True
    elif key == "--preset":
      out["preset"] = check_choice("preset", value, PRESETS)
    elif key == "--workdir":
      out["workdir"] = value
    elif key.startswith("--config.") and value is not None:
      out["overrides"].append((key[len("--config."):], value))
    else:
      raise ConfigError("argv", arg, _FLAGS, reason="unknown argument")
  return out


def build_config(get_config: Callable, preset: str, overrides) -> ml_collections.ConfigDict:
  config = get_config(preset)
  for field, text in overrides:
    apply_override(config, field, text)
  return config


def print_claims(name: str, claims: list[Claim], stream=sys.stdout):
  passed = sum(c.passed for c in claims)
  print(f"{name}: {passed}/{len(claims)} claims passed", file=stream)
  for c in claims:
    mark = "PASS" if c.passed else "FAIL"
    print(f"  [{mark}] {c.id}: measured {c.measured} (expected {c.expected})", file=stream)


def main(name: str, get_config: Callable, parts: dict, argv=None, *,
         validate: Optional[Callable] = None):
  """The command line of every experiment module."""
  from noisejax.data import DataUnavailableError  # pylint: disable=g-import-not-at-top
  argv = sys.argv[1:] if argv is None else argv
  try:
    distributed.initialize()  # before any other JAX call; a no-op for one process
    enable_compilation_cache()
    args = parse_args(argv)
    if args is None:
      print(f"usage: python -m experiments.{name} [--preset {'|'.join(PRESETS)}] "
            "[--workdir DIR] [--config.<field>=<value> ...] [--replot] [--dry_run]\n\n"
            f"parts: {', '.join(parts)}\n\n" + (sys.modules[get_config.__module__].__doc__ or ""))
      return 0
    config = build_config(get_config, args["preset"], args["overrides"])
    if args["dry_run"]:  # builds, measures two steps per part, reports; writes nothing
      from noisejax import dry_run  # pylint: disable=g-import-not-at-top
      selected = {part: parts[part] for part in check_config(config, parts, validate)}
      make_run = lambda part, workdir: Run(name, config, workdir, part=part)
      if dry_run.main(f"{name} --preset {args['preset']}", config, selected, make_run):
        sys.exit(1)
      return 0
    workdir = args["workdir"] or os.path.join("runs", name, args["preset"])
    claims = execute(name, config, workdir, parts, replot=args["replot"], validate=validate)
  except (ConfigError, DataUnavailableError) as e:
    print(f"error: {e}", file=sys.stderr)
    sys.exit(2)
  except NonFiniteLossError as e:
    print(f"error: {e}", file=sys.stderr)
    sys.exit(3)
  if distributed.is_main_process():
    print_claims(name, claims)
    print(f"results in {pathlib.Path(workdir).resolve()}")
  return 0


def copy_figures(workdir, destination):
  """Copies a run's figures (PNG) and tables (Markdown) into `destination`."""
  destination = pathlib.Path(destination)
  destination.mkdir(parents=True, exist_ok=True)
  copied = []
  workdir = pathlib.Path(workdir)
  for png in sorted(list(workdir.glob("*.png")) + list(workdir.glob("*.md"))):
    shutil.copy2(png, destination / png.name)
    copied.append(destination / png.name)
  return copied
