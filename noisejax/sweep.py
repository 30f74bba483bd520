"""Sweeps as data: a product of config fields × seeds, each point an ordinary run.

  python -m experiments.sweep kernel_early_stopping --preset tiny --root runs/sweeps/kes \\
      --grid noise.rate=0.2,0.4 --grid kernel.lr=0.5,1.0 --seeds 3 --parallel 2 \\
      --metric fig9/laplacian_u_shape.final_test_error --x noise.rate

A *point* is one combination of grid values plus one seed (config `seed` ∈ 0..N−1). Its
id is its overrides, `noise.rate=0.2,kernel.lr=0.5,seed=1`, and its workdir is
`root/runs/<id, '/' → '_'>`, an ordinary experiment workdir (`experiment.execute`: it
resumes from its records and checkpoints, and refuses another run's results).

`root/sweep.json` records every point:

  {"experiment", "preset", "grid": {field: [texts]}, "seeds": N,
   "points": {id: {"overrides": {field: text}, "seed": s, "workdir": str,
                   "status": "pending|running|done|failed", "error": str|null,
                   "job_id": str|null, "claims": {claim_id: {"measured", "passed"}}|null}}}

`grid` and `seeds` are the union of every command run on this root: a changed grid adds
points and never touches another point's workdir. Every write goes through
`update_points` (an fcntl lock on `root/.sweep.lock`, read-modify-write, atomic rename),
since several jobs update the file at once.

Every grid value is checked before anything runs or is written: the field must exist in
the preset's config, the text must parse to its type (`experiment.apply_override`), and
each point's whole config must pass `config.validate` and the experiment's `validate`.

An executor runs points: `LocalExecutor` (subprocesses on this machine) here,
`noisejax.slurm.SlurmExecutor` (a SLURM job array). Both run

  python -m noisejax.sweep run-point --root R --point ID      (→ `run_point`)

`write_summary` tabulates every claim per grid combination over the seeds (mean ± 95% CI
half-width, `claims.SeedStats`) in `root/summary.md` and plots a metric against a swept
field in `root/summary_<metric>.png`.
"""

import argparse
import ast
import collections
import contextlib
import fcntl
import importlib
import itertools
import json
import math
import os
import pathlib
import subprocess
import sys
import threading
import time
import traceback
from typing import Callable, Optional

from noisejax import config as config_lib
from noisejax import distributed, experiment
from noisejax.claims import SeedStats, to_jsonable
from noisejax.errors import ConfigError, check_choice

STATUSES = ("pending", "running", "done", "failed")
POINT_FIELDS = ("overrides", "seed", "workdir", "status", "error", "job_id", "claims")
SWEEP_FILE = "sweep.json"
LOCK_FILE = ".sweep.lock"


# ----------------------------------------------------------------------------
# The experiment and its grid.


def experiment_names() -> tuple:
  """The experiments (and benchmarks) a sweep can run: those `reproduce` knows."""
  from experiments import reproduce  # pylint: disable=g-import-not-at-top
  return tuple(reproduce.EXPERIMENTS) + tuple(reproduce.BENCHMARKS)


def experiment_module(name: str):
  """The module `experiments.<name>` (get_config, PARTS, optional validate)."""
  check_choice("experiment", name, experiment_names())
  return importlib.import_module(f"experiments.{name}")


def split_values(text: str) -> list[str]:
  """'0.2,0.4' → ['0.2', '0.4']; commas inside brackets or quotes do not split:
  '(7,9),(3,5)' → ['(7,9)', '(3,5)']."""
  values, current, depth, quote = [], "", 0, None
  for char in text:
    if quote:
      quote = None if char == quote else quote
    elif char in "'\"":
      quote = char
    elif char in "([{":
      depth += 1
    elif char in ")]}":
      depth -= 1
    elif char == "," and depth == 0:
      values.append(current.strip())
      current = ""
      continue
    current += char
  return values + [current.strip()]


def parse_grid(specs) -> dict[str, list[str]]:
  """['noise.rate=0.2,0.4', 'loss.name=gce'] → {'noise.rate': ['0.2', '0.4'], ...}.

  A spec without values, an empty value, a value or a field given twice, or the field
  `seed` (set by --seeds) is a ConfigError naming the field.
  """
  grid = {}
  for spec in specs:
    field, eq, text = spec.partition("=")
    field = field.strip()
    if not field or not eq:
      raise ConfigError("grid", spec, reason="expects <field>=<value>,<value>,...")
    if field in grid:
      raise ConfigError(field, text, reason="appears in two --grid flags; give its values "
                        "in one, comma-separated")
    if field == "seed":
      raise ConfigError(field, text, reason="seeds are set by --seeds N (seeds 0..N-1)")
    values = split_values(text) if text.strip() else []
    if not values or "" in values:
      raise ConfigError(field, text, reason="the grid needs at least one value and no "
                        "empty one (e.g. --grid noise.rate=0.2,0.4)")
    repeated = [v for v, n in collections.Counter(values).items() if n > 1]
    if repeated:
      raise ConfigError(field, text, reason=f"the value {repeated[0]} repeats")
    grid[field] = values
  return grid


def point_id(overrides: dict, seed: int) -> str:
  """`noise.rate=0.2,loss.name=gce,seed=1`: the point's overrides in grid order."""
  return ",".join([f"{f}={t}" for f, t in overrides.items()] + [f"seed={seed}"])


def point_workdir(root, point_id_: str) -> pathlib.Path:
  return pathlib.Path(root).resolve() / "runs" / point_id_.replace("/", "_")


def point_config(module, preset: str, overrides: dict, seed: int):
  """The point's config, checked as `experiment.execute` checks it before running."""
  config = experiment.build_config(module.get_config, preset,
                                   list(overrides.items()) + [("seed", str(seed))])
  config_lib.validate(config)
  experiment.selected_parts(config, module.PARTS)
  if getattr(module, "validate", None) is not None:
    module.validate(config)
  return config


def plan(experiment_name: str, preset: str, grid: dict, seeds: int) -> dict[str, dict]:
  """Every point of grid × seeds as a sweep.json entry, each config checked; writes
  nothing.

  An experiment that trains all seeds of a part in one program declares the config field
  counting them, `SEEDS_FIELD` (experiments.sln: "seeds"); there --seeds N gives one
  point per grid combination with that field set to N (seed 0), so the N seeds run
  vmapped in one job and its claims are judged over them. Elsewhere a point is one seed.
  """
  if isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 1:
    raise ConfigError("seeds", seeds, reason="must be a positive integer")
  check_choice("preset", preset, experiment.PRESETS)
  module = experiment_module(experiment_name)
  seeds_field = getattr(module, "SEEDS_FIELD", None)
  if seeds_field in grid:
    raise ConfigError(seeds_field, ",".join(grid[seeds_field]),
                      reason=f"{experiment_name}'s seeds are set by --seeds N")
  points = {}
  for values in itertools.product(*grid.values()):
    overrides = dict(zip(grid, values))
    if seeds_field:
      overrides[seeds_field] = str(seeds)
    for seed in range(1 if seeds_field else seeds):
      point_config(module, preset, overrides, seed)
      points[point_id(overrides, seed)] = {
          "overrides": overrides, "seed": seed, "workdir": None, "status": "pending",
          "error": None, "job_id": None, "claims": None}
  return points


# ----------------------------------------------------------------------------
# sweep.json: one lock, atomic writes.


def load(root) -> dict:
  """The sweep recorded in `root/sweep.json`."""
  path = pathlib.Path(root) / SWEEP_FILE
  if not path.exists():
    raise ConfigError("root", str(root), reason="holds no sweep.json (no sweep started there)")
  return json.loads(path.read_text())


@contextlib.contextmanager
def _locked(root):
  with open(pathlib.Path(root) / LOCK_FILE, "a") as lock:
    fcntl.flock(lock, fcntl.LOCK_EX)
    try:
      yield
    finally:
      fcntl.flock(lock, fcntl.LOCK_UN)


def _write(root, sweep: dict):
  path = pathlib.Path(root) / SWEEP_FILE
  tmp = path.with_name(f".{SWEEP_FILE}.{os.getpid()}.{threading.get_ident()}")
  with open(tmp, "w") as f:
    f.write(json.dumps(sweep, indent=1))
    f.flush()
    os.fsync(f.fileno())
  os.replace(tmp, path)


def update_points(root, changes: dict[str, dict]) -> dict:
  """Sets fields of several points in one locked read-modify-write; returns the sweep."""
  for fields in changes.values():
    unknown = set(fields) - set(POINT_FIELDS)
    if unknown:
      raise TypeError(f"not fields of a sweep point: {sorted(unknown)}; valid: {POINT_FIELDS}")
    if "status" in fields:
      check_choice("status", fields["status"], STATUSES)
  with _locked(root):
    sweep = load(root)
    for point, fields in changes.items():
      if point not in sweep["points"]:
        raise ConfigError("point", point, reason=f"not a point of {root}/{SWEEP_FILE}")
      sweep["points"][point].update(to_jsonable(fields))
    _write(root, sweep)
  return sweep


def update_point(root, point_id_: str, **fields) -> dict:
  """Sets fields of one point (status, error, job_id, claims, ...); returns the point."""
  return update_points(root, {point_id_: fields})["points"][point_id_]


def check_root(root, experiment_name: str, preset: str):
  """Refuses a root that holds another experiment's or preset's sweep, or files of no
  sweep. Reads only."""
  root = pathlib.Path(root)
  if (root / SWEEP_FILE).exists():
    sweep = load(root)
    if (sweep["experiment"], sweep["preset"]) != (experiment_name, preset):
      raise ConfigError("root", str(root), reason=f"holds a sweep of {sweep['experiment']} "
                        f"--preset {sweep['preset']}; choose another --root")
  elif root.exists() and any(p.name != LOCK_FILE for p in root.iterdir()):
    raise ConfigError("root", str(root), reason="exists and holds files of no sweep; "
                      "choose an empty or new --root")


def init(root, experiment_name: str, preset: str, grid: dict, seeds: int,
         points: dict[str, dict]) -> dict:
  """Creates root/sweep.json or adds the new points to it (known points are kept as they
  are); returns the sweep."""
  root = pathlib.Path(root).resolve()
  check_root(root, experiment_name, preset)
  root.mkdir(parents=True, exist_ok=True)
  with _locked(root):
    check_root(root, experiment_name, preset)
    if (root / SWEEP_FILE).exists():
      sweep = load(root)
    else:
      sweep = {"experiment": experiment_name, "preset": preset, "grid": {}, "seeds": 0,
               "points": {}}
    for field, values in grid.items():
      known = sweep["grid"].setdefault(field, [])
      known += [v for v in values if v not in known]
    sweep["seeds"] = max(sweep["seeds"], seeds)
    for point, entry in points.items():
      if point not in sweep["points"]:
        sweep["points"][point] = {**entry, "workdir": str(point_workdir(root, point))}
    _write(root, sweep)
  return sweep


# ----------------------------------------------------------------------------
# One point, in this process.


def one_line_error(error: BaseException) -> str:
  """'<ErrorType>: <first line of the message>'."""
  lines = str(error).strip().splitlines()
  text = f"{type(error).__name__}: {lines[0]}" if lines else type(error).__name__
  return text if len(text) <= 300 else text[:297] + "..."


def run_point(root, point_id_: str) -> str:
  """Runs one point in this process and records it: running → done (with its claims) or
  failed (with a one-line error). An interrupted point resumes from its workdir's records
  and checkpoints; a point already done returns at once. Returns the status.

  In a multi-process job (`noisejax.distributed`) every process runs the point; only
  process 0 records it.
  """
  root = pathlib.Path(root).resolve()
  sweep = load(root)
  point = sweep["points"].get(point_id_)
  if point is None:
    raise ConfigError("point", point_id_, reason=f"not a point of {root}/{SWEEP_FILE}")
  if point["status"] == "done":
    return "done"
  distributed.initialize()  # before any other JAX call; a no-op for one process
  experiment.enable_compilation_cache()
  records = distributed.is_main_process()
  if records:
    update_point(root, point_id_, status="running", error=None)
  try:
    module = experiment_module(sweep["experiment"])
    config = point_config(module, sweep["preset"], point["overrides"], point["seed"])
    claims = experiment.execute(sweep["experiment"], config, point_workdir(root, point_id_),
                                module.PARTS, validate=getattr(module, "validate", None))
  except Exception as e:  # pylint: disable=broad-except
    traceback.print_exc()
    if records:
      update_point(root, point_id_, status="failed", error=one_line_error(e))
    return "failed"
  if records:
    update_point(root, point_id_, status="done", error=None,
                 claims={c.id: {"measured": c.measured, "passed": c.passed} for c in claims})
  return "done"


# ----------------------------------------------------------------------------
# Executors.


def run_point_command(root, point_id_: str) -> list[str]:
  """The command line that runs one point (`run_point`) in a fresh process."""
  return [sys.executable, "-m", "noisejax.sweep", "run-point", "--root",
          str(pathlib.Path(root).resolve()), "--point", point_id_]


def log_path(root, point_id_: str) -> pathlib.Path:
  return pathlib.Path(root).resolve() / "logs" / (point_id_.replace("/", "_") + ".log")


class LocalExecutor:
  """Runs each point as a subprocess `python -m noisejax.sweep run-point ...` on this
  machine, at most `parallel` at once; output in root/logs/<point>.log.

  A process that ends without recording a result (killed, crashed) marks its point
  failed with its exit code. Job ids are `local-<pid of this process>.<k>`.
  """

  _job_numbers = itertools.count()  # one numbering per process: job ids never repeat in it

  def __init__(self, root, parallel: int = 1):
    if isinstance(parallel, bool) or not isinstance(parallel, int) or parallel < 1:
      raise ConfigError("parallel", parallel, reason="must be a positive integer")
    self.root = pathlib.Path(root).resolve()
    self.parallel = parallel
    self.returncodes = {}
    self._queue = collections.deque()
    self._lock = threading.Lock()
    self._thread = None

  def submit(self, point_ids: list[str]) -> dict[str, str]:
    """Queues the points; they start in the background. Returns point id → job id."""
    jobs = {}
    with self._lock:
      for point in point_ids:
        jobs[point] = f"local-{os.getpid()}.{next(LocalExecutor._job_numbers)}"
        self._queue.append((point, jobs[point]))
      if self._thread is None:
        self._thread = threading.Thread(target=self._schedule, daemon=True)
        self._thread.start()
    return jobs

  def wait(self):
    """Blocks until every submitted point's process has ended."""
    while True:
      with self._lock:
        thread = self._thread
      if thread is None:
        return
      thread.join()

  def _start(self, point: str, job: str):
    log = log_path(self.root, point)
    log.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "NOISEJAX_QUIET": os.environ.get("NOISEJAX_QUIET", "1")}
    with open(log, "a") as f:
      f.write(f"== {job} {time.strftime('%Y-%m-%d %H:%M:%S')}: {point}\n")
      f.flush()
      process = subprocess.Popen(run_point_command(self.root, point), stdout=f,
                                 stderr=subprocess.STDOUT, env=env)
    print(f"started {point} ({job})", flush=True)
    return process, time.time()

  def _finished(self, point: str, returncode: int, seconds: float):
    self.returncodes[point] = returncode
    status = load(self.root)["points"][point]["status"]
    if status not in ("done", "failed"):
      status = "failed"
      update_point(self.root, point, status=status,
                   error=f"ProcessExit: exited with code {returncode} before recording a "
                   f"result; log: {log_path(self.root, point)}")
    print(f"{status} {point} ({seconds:.0f} s)", flush=True)

  def _schedule(self):
    """Starts queued points as slots free up; ends when nothing is queued or running."""
    running = {}
    try:
      while True:
        with self._lock:
          while self._queue and len(running) < self.parallel:
            point, job = self._queue.popleft()
            running[point] = self._start(point, job)
          if not running:
            self._thread = None
            return
        for point, (process, start) in list(running.items()):
          if process.poll() is not None:
            del running[point]
            self._finished(point, process.returncode, time.time() - start)
        time.sleep(0.1)
    except BaseException:  # wait() must not wait for a thread that died
      with self._lock:
        self._thread = None
      raise


# ----------------------------------------------------------------------------
# A whole sweep.


def check_plot(grid: dict, metric: Optional[str], x: Optional[str]) -> Optional[str]:
  """The swept field the figure's x axis shows (None without --metric)."""
  if metric is None:
    if x is not None:
      raise ConfigError("x", x, reason="needs --metric (what to plot against it)")
    return None
  if x is None and len(grid) == 1:
    return next(iter(grid))
  if x is None:
    raise ConfigError("x", x, tuple(grid), reason="--metric needs --x <swept field>")
  if x not in grid:
    raise ConfigError("x", x, tuple(grid), reason="must be a swept (--grid) field")
  return x


def run_sweep(experiment_name: str, preset: str, root, grid_specs, *, seeds: int = 1,
              make_executor: Callable = LocalExecutor, metric: Optional[str] = None,
              x: Optional[str] = None) -> dict:
  """Checks every point, records them in root/sweep.json, runs those not done with
  `make_executor(root)`, waits, writes the summary; returns this grid's points (id →
  sweep.json entry).

  Bad input raises ConfigError before anything is written or submitted.
  """
  grid = parse_grid(grid_specs)
  points = plan(experiment_name, preset, grid, seeds)
  x = check_plot(grid, metric, x)
  check_root(root, experiment_name, preset)
  executor = make_executor(root)
  sweep = init(root, experiment_name, preset, grid, seeds, points)
  todo = [p for p in points if sweep["points"][p]["status"] != "done"]
  print(f"{experiment_name} --preset {preset}: {len(points)} points, "
        f"{len(points) - len(todo)} already done, {len(todo)} to run", flush=True)
  if todo:
    update_points(root, {p: {"status": "pending", "error": None} for p in todo})
    jobs = executor.submit(todo)
    update_points(root, {p: {"job_id": job} for p, job in jobs.items()})
    executor.wait()
  write_summary(root, metric=metric, x=x)
  recorded = load(root)["points"]
  return {p: recorded[p] for p in points}


# ----------------------------------------------------------------------------
# Summary: a table of claims per grid combination, a figure of one metric.


def _number(value) -> Optional[float]:
  if isinstance(value, bool) or not isinstance(value, (int, float)):
    return None
  return float(value) if math.isfinite(value) else None


def _leaves(value, prefix=""):
  """(dotted key, scalar) for every scalar in a nested dict; lists are left out."""
  if isinstance(value, dict):
    for key, sub in value.items():
      yield from _leaves(sub, f"{prefix}.{key}" if prefix else str(key))
  elif not isinstance(value, list):
    yield prefix, value


def _aggregate(values: list) -> str:
  """mean ± 95% CI half-width of numbers; 'k/N true' of booleans; else the value(s)."""
  numbers = [_number(v) for v in values]
  if values and all(n is not None for n in numbers):
    stats = SeedStats.of(numbers)
    return f"{stats.mean:.3g}" if stats.n < 2 else (
        f"{stats.mean:.3g} ± {stats.ci_high - stats.mean:.2g}")
  if values and all(isinstance(v, bool) for v in values):
    return f"{sum(values)}/{len(values)} true"
  distinct = list(dict.fromkeys(v if isinstance(v, str) else json.dumps(v) for v in values))
  return distinct[0] if len(distinct) == 1 else f"{len(distinct)} values"


def summarize_measured(measured: list) -> str:
  """One table cell for a claim's measured values over seeds; dicts per scalar entry."""
  if measured and all(isinstance(m, dict) for m in measured):
    keys = list(dict.fromkeys(k for m in measured for k, _ in _leaves(m)))
    per_key = [dict(_leaves(m)) for m in measured]
    cells = [f"{k} {_aggregate([p[k] for p in per_key if k in p])}" for k in keys]
    text = "; ".join(cells)
    return text if len(text) <= 160 else text[:157] + "..."
  return _aggregate(measured)


def _cell(text) -> str:
  return str(text).replace("|", "\\|")


def _combinations(sweep: dict) -> dict[tuple, list[dict]]:
  """Grid combination (a text or None per grid field) → its points, in grid order."""
  grid = sweep["grid"]
  groups = collections.defaultdict(list)
  for point in sweep["points"].values():
    groups[tuple(point["overrides"].get(f) for f in grid)].append(point)

  def order(key):
    return [grid[f].index(t) if t in grid[f] else -1 for f, t in zip(grid, key)]

  return {key: sorted(groups[key], key=lambda p: p["seed"]) for key in sorted(groups, key=order)}


def _status_counts(points: list[dict]) -> str:
  counts = collections.Counter(p["status"] for p in points)
  return ", ".join(f"{counts[s]} {s}" for s in STATUSES if counts[s])


def summary_markdown(sweep: dict, figure: Optional[str] = None) -> str:
  """The summary table: one row per grid combination, per claim its measured value over
  the finished seeds and how many seeds pass it."""
  grid, points = sweep["grid"], sweep["points"]
  claim_ids = list(dict.fromkeys(c for p in points.values() for c in (p["claims"] or {})))
  lines = [f"# Sweep of {sweep['experiment']} (--preset {sweep['preset']})", "",
           "Grid: " + ("; ".join(f"`{f}` ∈ {{{', '.join(v)}}}" for f, v in grid.items())
                       or "none") + f"; seeds 0..{sweep['seeds'] - 1}. "
           f"Points: {_status_counts(list(points.values()))}.", "",
           "Each claim's measured value is the mean ± the 95% CI half-width (Student t) over "
           "the seeds that finished; *passed* counts those seeds. — : the preset's value.",
           ""]
  header = list(grid) + ["status"]
  for claim_id in claim_ids:
    header += [f"`{claim_id}`", "passed"]
  lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
  for key, group in _combinations(sweep).items():
    row = [t if t is not None else "—" for t in key] + [_status_counts(group)]
    done = [p for p in group if p["status"] == "done" and p["claims"]]
    for claim_id in claim_ids:
      results = [p["claims"][claim_id] for p in done if claim_id in p["claims"]]
      if not results:
        row += ["—", "—"]
        continue
      row += [summarize_measured([r["measured"] for r in results]),
              f"{sum(r['passed'] for r in results)}/{len(results)} seeds"]
    lines.append("| " + " | ".join(_cell(c) for c in row) + " |")
  failed = {i: p for i, p in points.items() if p["status"] == "failed"}
  if failed:
    lines += ["", "## Failed points", ""]
    lines += [f"- `{i}`: {p['error']}" for i, p in failed.items()]
  if figure:
    lines += ["", f"![{figure}]({figure})"]
  return "\n".join(lines) + "\n"


def metric_value(point: dict, metric: str) -> Optional[float]:
  """A point's value of `metric`: a claim's measured value (`<claim id>` or `<claim
  id>.<key>...` into a measured dict; a dict with a 'mean' gives its mean), else the last
  value of that key in the point's metrics.jsonl."""
  claims = point["claims"] or {}
  for claim_id, result in claims.items():
    if metric == claim_id or metric.startswith(claim_id + "."):
      value = result["measured"]
      for key in metric[len(claim_id) + 1:].split(".") if metric != claim_id else ():
        value = value.get(key) if isinstance(value, dict) else None
      if isinstance(value, dict):
        value = value.get("mean")
      return _number(value)
  path = pathlib.Path(point["workdir"]) / "metrics.jsonl"
  if point["status"] != "done" or not path.exists():
    return None
  values = [r[metric] for r in map(json.loads, path.read_text().splitlines()) if metric in r]
  return _number(values[-1]) if values else None


def _metric_choices(sweep: dict) -> tuple:
  choices = []
  for point in sweep["points"].values():
    for claim_id, result in (point["claims"] or {}).items():
      choices += [claim_id] if _number(result["measured"]) is not None else [
          f"{claim_id}.{k}" for k, v in _leaves(result["measured"]) if _number(v) is not None]
  return tuple(dict.fromkeys(choices))


def _as_number(text: str) -> Optional[float]:
  try:
    return _number(ast.literal_eval(text))
  except (ValueError, SyntaxError):
    return None


def metric_figure(sweep: dict, metric: str, x: str):
  """`metric` against the swept field `x`: the mean over seeds with a 95% CI band, one
  line per combination of the other grid fields (those with several values)."""
  from noisejax import plots  # pylint: disable=g-import-not-at-top
  if x not in sweep["grid"]:
    raise ConfigError("x", x, tuple(sweep["grid"]), reason="must be a swept (--grid) field")
  xs = sweep["grid"][x]
  numeric = all(_as_number(t) is not None for t in xs)
  position = {t: (_as_number(t) if numeric else i) for i, t in enumerate(xs)}
  lines = collections.defaultdict(lambda: collections.defaultdict(list))
  for point in sweep["points"].values():
    value = metric_value(point, metric)
    overrides = point["overrides"]
    if value is not None and x in overrides:
      others = ", ".join(f"{f}={overrides.get(f, '—')}" for f, values in sweep["grid"].items()
                         if f != x and len(values) > 1)
      lines[others][overrides[x]].append(value)
  if not lines:
    raise ConfigError("metric", metric, _metric_choices(sweep),
                      reason="no finished point has a numeric value of it")
  fig, axes = plots.figure()
  ax = axes[0, 0]
  for label, by_x in lines.items():
    texts = sorted(by_x, key=lambda t: position[t])
    stats = [SeedStats.of(by_x[t]) for t in texts]
    at = [position[t] for t in texts]
    line, = ax.plot(at, [s.mean for s in stats], "o-", lw=1.5, label=label or "all points")
    if any(s.n > 1 for s in stats):
      low = [s.ci_low if s.n > 1 else s.mean for s in stats]
      high = [s.ci_high if s.n > 1 else s.mean for s in stats]
      ax.fill_between(at, low, high, color=line.get_color(), alpha=0.2, lw=0)
  if not numeric:
    ax.set_xticks(range(len(xs)), xs)
  seeds = max(len(v) for by_x in lines.values() for v in by_x.values())
  ax.set(xlabel=x, ylabel=metric,
         title=f"{sweep['experiment']} ({sweep['preset']}): mean, 95% CI over ≤{seeds} seeds")
  ax.legend(fontsize=7)
  return fig


def figure_name(metric: str) -> str:
  return f"summary_{metric.replace('/', '_')}.png"


def write_summary(root, metric: Optional[str] = None, x: Optional[str] = None) -> pathlib.Path:
  """Writes root/summary.md and, with `metric`, root/summary_<metric>.png."""
  from noisejax import plots  # pylint: disable=g-import-not-at-top
  root = pathlib.Path(root)
  sweep = load(root)
  path = root / "summary.md"
  path.write_text(summary_markdown(sweep))
  if metric is not None:  # after the table: a metric no point has still leaves the table
    x = x or (next(iter(sweep["grid"])) if len(sweep["grid"]) == 1 else None)
    figure = figure_name(metric)
    plots.save(metric_figure(sweep, metric, x), root / figure)
    path.write_text(summary_markdown(sweep, figure))
  return path


def status_table(root) -> str:
  """Every point with its status, job id and error, as aligned text."""
  sweep = load(root)
  rows = [("point", "status", "job", "error")] + [
      (i, p["status"], p["job_id"] or "—", p["error"] or "") for i, p in sweep["points"].items()]
  widths = [max(len(r[k]) for r in rows) for k in range(3)]
  text = [f"{sweep['experiment']} --preset {sweep['preset']} in {root}: "
          f"{_status_counts(list(sweep['points'].values()))}"]
  text += ["  ".join(c.ljust(w) for c, w in zip(r[:3], widths)) + "  " + r[3] for r in rows]
  return "\n".join(line.rstrip() for line in text)


# ----------------------------------------------------------------------------
# The job entry point.


def main(argv=None) -> int:
  """python -m noisejax.sweep run-point --root R --point ID: exit 0 done, 1 failed."""
  parser = argparse.ArgumentParser(prog="python -m noisejax.sweep")
  command = parser.add_subparsers(dest="command", required=True).add_parser(
      "run-point", help="run one point of a sweep in this process (the job entry point)")
  command.add_argument("--root", required=True)
  command.add_argument("--point", required=True)
  args = parser.parse_args(argv)
  try:
    status = run_point(args.root, args.point)
  except ConfigError as e:
    print(f"error: {e}", file=sys.stderr)
    return 2
  print(f"{args.point}: {status}")
  return 0 if status == "done" else 1


if __name__ == "__main__":
  sys.exit(main())
