"""A sweep of one experiment: grid fields × seeds, each point an ordinary run.

  python -m experiments.sweep <experiment> --preset P --root DIR
      --grid <field>=<v1>,<v2> [--grid ...] [--seeds N]
      [--executor local|slurm] [--parallel N] [--slurm.<option>=<value> ...]
      [--metric <claim id[.key] or metrics.jsonl key> --x <swept field>] [--status]

For example (≈30 s on 2 busy CPU cores: 4 points, 2 at a time):

  python -m experiments.sweep kernel_early_stopping --preset tiny --root runs/sweeps/kes \\
      --grid noise.rate=0.2,0.4 --seeds 2 --parallel 2 \\
      --metric fig9/laplacian_u_shape.final_test_error --x noise.rate

writes root/sweep.json (every point's overrides, status, error, job id, claims),
root/runs/<point>/ (one experiment workdir per point), root/summary.md (every claim per
grid combination: mean ± 95% CI over seeds, seeds passing, status counts) and
root/summary_<metric>.png. Running the same command again skips the finished points and
resumes the others; a changed grid adds points. `--status` prints the points and their
status without running anything. A grid field with one value is fixed for every point
(e.g. --grid kernel.steps=1000). Bad input exits 2 with a one-line error before anything
is written; the command exits 1 when a point failed.

For an experiment that declares SEEDS_FIELD (sln), --seeds N is one point per grid
combination whose N seeds train vmapped in one job.
--executor slurm submits the points as a SLURM job array (noisejax.slurm); its options
are --slurm.timeout_min=, gpus_per_node, cpus_per_task, mem_gb, slurm_partition,
slurm_array_parallelism (default: --parallel), nodes, tasks_per_node,
slurm_additional_parameters.
"""

import functools
import os
import sys

from noisejax import experiment, sweep
from noisejax.errors import ConfigError, check_choice

EXECUTORS = ("local", "slurm")
_FLAGS = ("<experiment>", "--preset", "--root", "--grid", "--seeds", "--executor",
          "--parallel", "--slurm.<option>=<value>", "--metric", "--x", "--status")
_VALUED = ("--preset", "--root", "--grid", "--seeds", "--executor", "--parallel", "--metric",
           "--x")


def _positive_int(field: str, text: str) -> int:
  try:
    value = int(text)
  except ValueError:
    value = 0
  if value < 1:
    raise ConfigError(field, text, reason="must be a positive integer")
  return value


def parse_args(argv: list[str]):
  """The command line as a dict; None for --help."""
  flags = experiment.read_flags(argv, switches=("--status",), valued=_VALUED)
  if flags is None:
    return None
  out = {"experiment": None, "preset": "quick", "root": None, "grid": [], "seeds": 1,
         "executor": "local", "parallel": None, "slurm": {}, "metric": None, "x": None,
         "status": False}
  for arg, key, value in flags:
    if key == "--status" and value is True:
      out["status"] = True
    elif key == "--grid":
      out["grid"].append(value)
    elif key in ("--seeds", "--parallel"):
      out[key[2:]] = _positive_int(key[2:], value)
    elif key == "--executor":
      out["executor"] = check_choice("executor", value, EXECUTORS)
    elif key in _VALUED:
      out[key[2:]] = value
    elif key.startswith("--slurm.") and value is not None:
      out["slurm"][key[len("--slurm."):]] = experiment.parse_value(key[2:], value, None)
    elif not arg.startswith("-") and out["experiment"] is None:
      out["experiment"] = arg
    else:
      raise ConfigError("argv", arg, _FLAGS, reason="unknown argument")
  return out


def make_executor(args: dict):
  """root → the executor the command line asks for."""
  if args["executor"] == "local":
    if args["slurm"]:
      raise ConfigError("executor", "local", EXECUTORS,
                        reason=f"--slurm.{next(iter(args['slurm']))} needs --executor slurm")
    return functools.partial(sweep.LocalExecutor, parallel=args["parallel"] or 1)
  from noisejax import slurm  # pylint: disable=g-import-not-at-top
  options = dict(args["slurm"])
  if args["parallel"]:
    options.setdefault("slurm_array_parallelism", args["parallel"])
  return functools.partial(slurm.SlurmExecutor, **options)


def main(argv=None) -> int:
  argv = sys.argv[1:] if argv is None else argv
  experiment.enable_compilation_cache()
  try:
    args = parse_args(argv)
    if args is None:
      print(__doc__)
      return 0
    name = args["experiment"]
    root = args["root"] or (name and os.path.join("runs", "sweeps", name, args["preset"]))
    if args["status"]:
      if root is None:
        raise ConfigError("root", None, reason="--status needs --root or an experiment")
      if name is not None:
        sweep.check_root(root, name, args["preset"])
      print(sweep.status_table(root))
      return 0
    if name is None:
      raise ConfigError("experiment", None, sweep.experiment_names(),
                        reason="name the experiment to sweep")
    points = sweep.run_sweep(name, args["preset"], root, args["grid"], seeds=args["seeds"],
                             make_executor=make_executor(args), metric=args["metric"],
                             x=args["x"])
  except ConfigError as e:
    print(f"error: {e}", file=sys.stderr)
    return 2
  print(sweep.status_table(root))
  print(f"summary: {os.path.join(os.path.abspath(root), 'summary.md')}")
  return 0 if all(p["status"] == "done" for p in points.values()) else 1

if __name__ == "__main__":
  sys.exit(main())
