"""Dry run of an experiment's preset: does every part start, and how long would it take here?

  python -m experiments.<name> --preset paper --dry_run [--config.<field>=<value> ...]

The runner builds and validates the config as for a real run, then hands it here. Every
selected part runs its `compute` with a run whose `train_classifier` does not train: it
builds the model, spec and initial state of the training (`train.make_spec`,
`train.init_state`) on the data the part read through the real path (`noisejax.data`:
TFDS for mnist, cifar10, cifar100), compiles the program the training loop runs, calls it
twice at the configured batch size (the first call warms up, the second is timed) and
stops the part. A part whose compute cannot reach a `train_classifier` call (a jitted
simulation, an analysis at initialization) is not run: "not a training: not estimated".

Nothing is written: the parts run in a temporary workdir that is removed. The report
gives, per part, the parameter count, train / test sizes, batch size, steps per run,
runs, seconds per step on this device, compile seconds and the estimated time of the
part's first training, then the total. Estimates count the optimizer steps only
(evaluations, `eval_fn` and checkpoints are not timed). A part that fails to start (bad
shape, missing data, a KeyError in the config) is reported with its one-line error and
the dry run exits with 1.

An experiment module may declare how many trainings a part runs, read from its config:
`TRAINING_CALLS = {"<part>": lambda config: <count>}`; the report then says "first
training call of k".
"""

import dataclasses
import functools
import math
import sys
import tempfile
import time
import types
from typing import Callable, Optional

import jax
import jax.numpy as jnp
import numpy as np

from noisejax import models, train
from noisejax.errors import NonFiniteLossError

STEPS_PER_CALL = 16  # steps per timed call where the training loop runs a lax.scan
MEASURED, NOT_TRAINING, NO_CALL, FAILED = ("measured", "not a training", "no training call",
                                           "failed")


@dataclasses.dataclass(frozen=True)
class Measurement:
  """A training's shape and the measured speed of its step on this device."""
  model: str
  num_params: int
  num_train: int
  num_test: int
  batch_size: int
  steps_per_run: int
  runs: int
  runs_per_program: int   # runs vmapped in one program (train.runs_per_program)
  step_seconds: float     # one step of runs_per_program runs
  compile_seconds: float
  platform: str

  @property
  def seconds(self) -> float:
    """Estimated time of the optimizer steps: programs × steps per run × step time."""
    programs = math.ceil(self.runs / self.runs_per_program)
    return programs * self.steps_per_run * self.step_seconds


@dataclasses.dataclass(frozen=True)
class PartReport:
  """What the dry run found for one part."""
  part: str
  status: str                      # MEASURED, NOT_TRAINING, NO_CALL or FAILED
  measurement: Optional[Measurement] = None
  calls: Optional[int] = None      # train_classifier calls, when the experiment declares them
  error: Optional[str] = None      # "<ErrorType>: <first line>" when FAILED
  wall_seconds: float = 0.0        # time the dry run of this part took


# ----------------------------------------------------------------------------
# Measuring one training.


def _describe(model_config) -> str:
  options = ", ".join(f"{k}={v}" for k, v in model_config.items()
                      if k != "name" and v is not None)
  return f"{model_config.name}({options})" if options else model_config.name


@functools.partial(jax.jit, static_argnames=("spec", "num_steps", "axes"), donate_argnums=(1,))
def _steps(spec, state, x_B, labels_B, index_B, key, *, num_steps, axes):
  """`num_steps` steps on one batch (one step alone, or a lax.scan as the training loop
  runs them), step t with key fold_in(key, t); vmapped over runs when `axes` = (axis of
  x_B, axis of labels_B)."""

  def one_run(state, x_B, labels_B, key):
    step = lambda st, t: train.train_step(spec, st, x_B, labels_B, index_B,
                                          jax.random.fold_in(key, t))
    if num_steps == 1:
      state, loss = step(state, 0)
      return state, loss[None]
    return jax.lax.scan(step, state, jnp.arange(num_steps))

  if axes is None:
    return one_run(state, x_B, labels_B, key)
  return jax.vmap(one_run, in_axes=(0, *axes, 0))(state, x_B, labels_B, key)


def _time_steps(spec, args, num_steps: int, axes) -> tuple:
  """(compile seconds, seconds per step): `_steps` compiled ahead of time, called twice
  (the first call warms up, the second is timed)."""
  start = time.perf_counter()
  compiled = _steps.lower(spec, *args, num_steps=num_steps, axes=axes).compile()
  compile_seconds = time.perf_counter() - start
  state, losses = compiled(*args)
  jax.block_until_ready(losses)
  start = time.perf_counter()
  state, losses = compiled(state, *args[1:])
  jax.block_until_ready(losses)
  step_seconds = (time.perf_counter() - start) / num_steps
  losses = np.asarray(losses)
  if not np.isfinite(losses).all():
    raise NonFiniteLossError(f"training loss {losses[~np.isfinite(losses)][0]} in the "
                             f"first {2 * num_steps} steps of the dry run")
  return compile_seconds, step_seconds


def measure_training(config, splits, *, key, num_classes: Optional[int] = None,
                     hparams: Optional[dict] = None, lr=None) -> Measurement:
  """Builds what `train.train_classifier(config, splits, key=key, ...)` would train and
  times its step on this device, without training.

  Compiles the program the training loop runs (one step per call, or a lax.scan of
  STEPS_PER_CALL steps where the loop scans, see `train.scan_is_fast`) for as many runs
  vmapped as the loop trains in one program (`train.runs_per_program`), calls it twice on
  the first batch and times the second call, at the first run's learning rate (`lr`,
  default optim.lr: data in the optimizer state, so it does not change the step's time,
  only whether these steps stay finite).
  Raises what a real training would raise at its start (ConfigError for a batch larger
  than the data, shape errors, NonFiniteLossError for a non-finite loss in these steps).
  """
  lr = float(np.ravel(config.optim.lr if lr is None else lr)[0])  # the first run's
  keys = jnp.asarray(key)
  batched = keys.ndim == 1 and jax.dtypes.issubdtype(keys.dtype, jax.dtypes.prng_key)
  num_runs = keys.shape[0] if batched else 1
  spec, hp = train.training_spec(config, splits, num_classes=num_classes, hparams=hparams)
  chunk = train.runs_per_program(spec, config.optim, num_runs) if batched else 1

  runs = splits.runs(0, chunk) if batched else splits
  x_example = np.asarray(runs.x_train[0][:1] if runs.inputs_per_run else runs.x_train[:1])
  init = lambda k, h: train.init_state(spec, k, x_example, lr=lr, hparams=h)
  num_params = models.count_params(jax.eval_shape(
      lambda: spec.model.init(jax.random.key(0), x_example, train=False))["params"])
  batch = spec.batch_size
  first = lambda a, per_run: jnp.asarray(a[:, :batch] if per_run else a[:batch])
  x_B = first(runs.x_train, runs.inputs_per_run)
  labels_B = first(runs.noisy.labels, runs.labels_per_run)
  if batched:
    hp_R = {k: jnp.broadcast_to(jnp.asarray(v, jnp.float32), (num_runs,))[:chunk]
            for k, v in hp.items()}
    state = jax.jit(jax.vmap(init))(keys[:chunk], hp_R)
    axes, step_keys = (0 if runs.inputs_per_run else None,
                       0 if runs.labels_per_run else None), keys[:chunk]
  else:
    state, axes, step_keys = jax.jit(init)(keys, hp), None, keys
  num_steps = STEPS_PER_CALL if train.scan_is_fast(spec) else 1
  compile_seconds, step_seconds = _time_steps(
      spec, (state, x_B, labels_B, jnp.arange(batch), step_keys), num_steps, axes)
  return Measurement(
      model=_describe(config.model), num_params=num_params, num_train=splits.num_train,
      num_test=int(np.shape(splits.y_test)[-1]), batch_size=batch,
      steps_per_run=spec.steps_per_epoch * config.optim.epochs, runs=num_runs,
      runs_per_program=chunk, step_seconds=step_seconds, compile_seconds=compile_seconds,
      platform=jax.devices()[0].platform)


# ----------------------------------------------------------------------------
# Dry-running the parts.


class _Measured(BaseException):
  """Stops a part once its first training is measured (a BaseException, as pytest's
  outcomes, so that no `except Exception` in a part swallows it)."""

  def __init__(self, measurement: Measurement):
    super().__init__("measured")
    self.measurement = measurement


class DryRun:
  """A part's run: the runner's Run, except that `train_classifier` measures the training
  (`measure_training`) and stops the part."""

  def __init__(self, run):
    self._run = run

  def __getattr__(self, name):
    return getattr(self._run, name)

  def child(self, subdir: str) -> "DryRun":
    return DryRun(self._run.child(subdir))

  def train_classifier(self, config, splits, *, key, num_classes=None, hparams=None, lr=None,
                       **logging):
    del logging  # subdir, eval_fn, run_labels: nothing is trained, logged or evaluated
    raise _Measured(measure_training(config, splits, key=key, num_classes=num_classes,
                                     hparams=hparams, lr=lr))


def reaches_training(fn) -> bool:
  """Whether `fn` (a part's compute) can reach a `train_classifier` call, read from its
  code without running it: its own code, the functions nested in it or closed over, the
  functions it calls by name in their modules and the methods of the project's classes
  it names, recursively."""
  seen = set()

  def methods_of(cls):
    if not cls.__module__.split(".")[0] in ("noisejax", "experiments"):
      return []
    return [f for f in vars(cls).values() if isinstance(f, types.FunctionType)]

  def visit(code, names):
    if code in seen:
      return False
    seen.add(code)
    if "train_classifier" in code.co_names:
      return True
    called = [names.get(n) for n in code.co_names] + list(code.co_consts)
    called += [f for c in called if isinstance(c, type) for f in methods_of(c)]
    return any(visit(c, names) if isinstance(c, types.CodeType) else
               isinstance(c, types.FunctionType) and visit(c.__code__, c.__globals__)
               for c in called)

  closed = [c.cell_contents for c in fn.__closure__ or () if c.cell_contents is not None]
  return visit(fn.__code__, fn.__globals__) or any(
      isinstance(f, types.FunctionType) and visit(f.__code__, f.__globals__) for f in closed)


def _one_line(err: BaseException) -> str:
  text = (str(err).strip().splitlines() or [""])[0]
  return f"{type(err).__name__}: {text}" if text else type(err).__name__


def _declared_calls(part: str, compute: Callable, config) -> Optional[int]:
  """The part's number of trainings, from its module's TRAINING_CALLS (None if absent)."""
  declared = getattr(sys.modules.get(compute.__module__), "TRAINING_CALLS", None) or {}
  return int(declared[part](config)) if part in declared else None


def dry_run(config, parts: dict, make_run: Callable) -> list:
  """Dry-runs `parts` ({name: experiment.Part}, in order) of a validated `config`.

  make_run(part, workdir) -> the runner's Run of that part in `workdir` (a temporary
  directory, removed at the end). Returns one PartReport per part.
  """
  reports = []
  with tempfile.TemporaryDirectory(prefix="noisejax-dry-run-") as workdir:
    for name, part in parts.items():
      start = time.perf_counter()
      report = dict(part=name)
      try:
        report["calls"] = _declared_calls(name, part.compute, config)
        if not reaches_training(part.compute):
          report["status"] = NOT_TRAINING
        else:
          part.compute(config, DryRun(make_run(name, workdir)))
          report["status"] = NO_CALL  # it ran to its end without training
      except _Measured as measured:
        report.update(status=MEASURED, measurement=measured.measurement)
      except Exception as err:  # pylint: disable=broad-except  (reported, exit code 1)
        report.update(status=FAILED, error=_one_line(err))
      reports.append(PartReport(**report, wall_seconds=time.perf_counter() - start))
  return reports


# ----------------------------------------------------------------------------
# The report.


def duration(seconds: float) -> str:
  """0.0123 s, 12.3 s, 45 min, 3.2 h, 4.1 days."""
  if seconds < 120:
    return f"{seconds:.3g} s"
  if seconds < 2 * 3600:
    return f"{seconds / 60:.0f} min"
  if seconds < 2 * 86400:
    return f"{seconds / 3600:.1f} h"
  return f"{seconds / 86400:.1f} days"


def _covers(report: PartReport) -> str:
  if report.calls is None:
    return "its first train_classifier call"
  return "its one training" if report.calls == 1 else f"the first training call of {report.calls}"


def format_report(title: str, reports: list) -> str:
  """The printed report: one block per part, then the total."""
  width = max(len(r.part) for r in reports) + 2
  pad = " " * (width + 2)
  device, count = jax.devices()[0], jax.device_count()
  kind = "" if device.device_kind == device.platform else f"{device.device_kind}, "
  lines = [f"dry run of {title} on {device.platform} ({kind}{count} device"
           f"{'s' * (count > 1)}); nothing written"]
  total, measured = 0.0, []
  for r in reports:
    head = f"  {r.part:<{width}}"
    if r.status == FAILED:
      lines.append(f"{head}FAILED {r.error}")
    elif r.status == NOT_TRAINING:
      lines.append(f"{head}not a training (no train_classifier call; a simulation or an "
                   "analysis): not estimated")
    elif r.status == NO_CALL:
      lines.append(f"{head}ran to its end in {duration(r.wall_seconds)} without a "
                   "train_classifier call")
    else:
      m = r.measurement
      total += m.seconds
      measured.append(r.part)
      chunks = "" if m.runs_per_program == m.runs else f" ({m.runs_per_program} per program)"
      lines += [
          f"{head}{m.model}: {m.num_params:,} parameters; data {m.num_train:,} train / "
          f"{m.num_test:,} test; batch {m.batch_size:,}",
          f"{pad}{m.steps_per_run:,} steps per run × {m.runs} run{'s' * (m.runs > 1)}{chunks};"
          f" {duration(m.step_seconds)} per step on {m.platform}, compile "
          f"{duration(m.compile_seconds)}",
          f"{pad}estimate {duration(m.seconds)}: {_covers(r)} (optimizer steps only)"]
  failed = [r.part for r in reports if r.status == FAILED]
  lines.append((f"total estimate {duration(total)} for the first training of "
                f"{', '.join(measured)}" if measured else "total: no training to estimate")
               + (f"; FAILED: {', '.join(failed)}" if failed else ""))
  return "\n".join(lines)


def main(title: str, config, parts: dict, make_run: Callable, *, stream=None) -> int:
  """Dry-runs `parts` of a validated `config` and prints the report; 1 if a part failed
  to start, else 0. `title` names the run in the report ("u_curve --preset paper")."""
  reports = dry_run(config, parts, make_run)
  print(format_report(title, reports), file=stream or sys.stdout)
  return 1 if any(r.status == FAILED for r in reports) else 0
