"""The SLURM executor of a sweep: its points as one submitit job array.

  python -m experiments.sweep u_curve --preset quick --root runs/sweeps/u --seeds 5 \\
      --grid noise.rate=0.2,0.4 --executor slurm --slurm.timeout_min=120 \\
      --slurm.gpus_per_node=1 --slurm.slurm_partition=gpu

Each point is one task of a submitit job array (`map_array`, at most
`slurm_array_parallelism` running at once); the task runs `noisejax.sweep.run_point` in
the job's Python (the interpreter that submitted it), which records the point in
`sweep.json`. submitit's files and the jobs' logs go to `root/slurm/<job id>/`.

Preemption and time limits: a job that is preempted, or reaches its time limit, gets
SIGUSR2 from SLURM (`--signal`, `signal_delay_s` before the limit); submitit then calls
`PointJob.checkpoint`, which requeues the same point, and the requeued job resumes from
the point's latest orbax checkpoint and records (`experiment.execute`), so its final
metrics are those of an uninterrupted run. A job requeued by SLURM itself (`scontrol
requeue`, a node failure) resumes the same way.

Multi-task jobs (`nodes` × `tasks_per_node` > 1) reach sbatch as they are; every task
runs the point, `run_point` joins them into one JAX job (`noisejax.distributed`), and
process 0 records it.

A local one-node cluster for trying this and for the tests: `tools/local_slurm.sh`.
"""

import ast
import contextlib
import io
import math
import os
import pathlib
import re
import shutil
import subprocess
import time
from typing import Optional

import submitit

from noisejax.errors import ConfigError, check_range
from noisejax.experiment import parse_value

# option: (kind, lowest value, lowest value excluded). The names are submitit.AutoExecutor's.
OPTIONS = {
    "timeout_min": (int, 1, False),
    "gpus_per_node": (int, 0, False),
    "cpus_per_task": (int, 1, False),
    "mem_gb": (float, 0, True),
    "slurm_partition": (str, None, False),
    "slurm_array_parallelism": (int, 1, False),
    "nodes": (int, 1, False),
    "tasks_per_node": (int, 1, False),
    "slurm_additional_parameters": (dict, None, False),
}
DEFAULTS = {"timeout_min": 60}  # submitit's own default is 5 minutes

# SLURM job states after which the job runs no more. A requeued job (scontrol requeue,
# submitit's checkpoint, PreemptMode=REQUEUE) goes through COMPLETING back to PENDING;
# PREEMPTED is left out since a job may pass through it on its way to a requeue.
ENDED = ("BOOT_FAIL", "CANCELLED", "COMPLETED", "DEADLINE", "FAILED", "NODE_FAIL",
         "OUT_OF_MEMORY", "SPECIAL_EXIT", "TIMEOUT", "REVOKED")
GONE = "GONE"  # no longer known to squeue


class SlurmUnavailableError(ConfigError):
  """`--executor slurm` on a machine without SLURM (or SLURM gone while waiting)."""

  def __init__(self, reason: str, hint: str = "use --executor local, or start a local "
               "cluster with tools/local_slurm.sh start"):
    ValueError.__init__(self, f"no SLURM here: {reason}; {hint}")
    self.field, self.value, self.choices = "executor", "slurm", ("local",)


class SlurmSubmitError(ConfigError):
  """sbatch refused the job array (a partition, account or resource it does not have)."""

  def __init__(self, message: str):
    lines = [line for line in str(message).strip().splitlines() if line.strip()]
    reason = lines[-1] if lines else "no reason given"
    ValueError.__init__(self, f"sbatch refused the jobs: {reason}")
    self.field, self.value, self.choices = "slurm", None, None


class PointFailedError(RuntimeError):
  """Raised by a job whose point failed, so that SLURM records the job as FAILED."""


def parse_option(name: str, value):
  """The value of one executor option, from a Python value or command-line text."""
  if name not in OPTIONS:
    raise ConfigError(f"slurm.{name}", value, OPTIONS, reason="no such SLURM option")
  kind, low, low_open = OPTIONS[name]
  field = f"slurm.{name}"
  if kind is dict:
    if isinstance(value, str):
      try:
        value = ast.literal_eval(value)
      except (ValueError, SyntaxError):
        pass
    if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
      raise ConfigError(field, value, reason="expects a dict of sbatch options, e.g. "
                        "{'qos': 'high', 'constraint': 'a100'}")
    return dict(value)
  if kind is str and isinstance(value, (int, float)) and not isinstance(value, bool):
    value = str(value)  # e.g. --slurm.slurm_partition=1
  if isinstance(value, str) and kind is not str:
    value = parse_value(field, value, kind())
  if isinstance(value, bool) or not isinstance(value, (int, float) if kind is float else kind):
    raise ConfigError(field, value, reason=f"expects a {kind.__name__}")
  if low is not None:
    check_range(field, value, low, math.inf, low_open=low_open)
  return float(value) if kind is float else value


def parse_options(options: dict) -> dict:
  """DEFAULTS updated with `options`, each checked (`parse_option`)."""
  return {**DEFAULTS, **{name: parse_option(name, value) for name, value in options.items()}}


class PointJob(submitit.helpers.Checkpointable):
  """The job of one point: runs it; on preemption or time limit submitit calls
  `checkpoint`, which requeues it."""

  def __call__(self, root: str, point_id: str) -> str:
    from noisejax import sweep  # pylint: disable=g-import-not-at-top
    status = sweep.run_point(root, point_id)
    if status == "failed":
      error = sweep.load(root)["points"][point_id]["error"]
      raise PointFailedError(f"{point_id}: {error}")
    return status

  def checkpoint(self, root: str, point_id: str):
    """Requeues the same point. Nothing to save here: the point's workdir already holds
    its orbax checkpoints and finished records, and `run_point` resumes from them."""
    return submitit.helpers.DelayedSubmission(self, root, point_id)


def job_states(job_ids) -> Optional[dict[str, str]]:
  """{job id: SLURM state} from `squeue` (ended jobs too, while SLURM keeps them); a job
  squeue no longer knows is GONE. None when squeue itself fails (e.g. a busy slurmctld)."""
  job_ids = list(job_ids)
  if not job_ids:
    return {}
  arrays = sorted({j.split("_")[0] for j in job_ids})
  result = subprocess.run(["squeue", "-h", "-r", "-t", "all", "-o", "%i|%T", "-j",
                           ",".join(arrays)], capture_output=True, text=True)
  if result.returncode != 0:
    if "Invalid job id" in result.stderr:
      return {j: GONE for j in job_ids}
    return None
  states = dict(line.split("|", 1) for line in result.stdout.split() if "|" in line)
  return {j: states.get(j, GONE) for j in job_ids}


class SlurmExecutor:
  """Runs a sweep's points as a submitit job array on SLURM.

  options: `OPTIONS` (values or their command-line text; unknown or bad: ConfigError).
  `submit(point_ids)` → {point id: job id} ("<array id>_<index>"); `wait()` blocks until
  every submitted job has ended and marks failed a point whose job ended without
  recording it (killed, out of time, out of memory); `states` holds each job's last
  SLURM state.
  """

  def __init__(self, root, **options):
    self.options = parse_options(options)
    if shutil.which("sbatch") is None:
      raise SlurmUnavailableError("sbatch is not on PATH")
    self.root = pathlib.Path(root).resolve()
    self.folder = self.root / "slurm" / "%j"
    self.states = {}
    self._jobs = {}  # job id -> (point id, submitit job)

  def _executor(self):
    from noisejax import sweep  # pylint: disable=g-import-not-at-top
    executor = submitit.AutoExecutor(folder=self.folder, cluster="slurm")
    options = dict(self.options)
    timeout_s = options["timeout_min"] * 60
    executor.update_parameters(
        name=f"noisejax-{sweep.load(self.root)['experiment']}",
        slurm_signal_delay_s=int(min(90, timeout_s // 4)),
        slurm_setup=[f"export NOISEJAX_QUIET={os.environ.get('NOISEJAX_QUIET', '1')}"],
        **options)
    return executor

  def submit(self, point_ids: list[str]) -> dict[str, str]:
    """Submits the points as one job array; returns point id → job id. A point whose
    recorded job (of an earlier command on this root) is still queued or running is not
    submitted again: its job is waited for."""
    queued = self._still_queued(point_ids)
    for point, job_id in queued.items():
      self._jobs[job_id] = (point, submitit.SlurmJob(self.folder, job_id))
      print(f"already queued {point} (job {job_id})", flush=True)
    new = [p for p in point_ids if p not in queued]
    if not new:
      return queued
    executor = self._executor()
    try:
      with contextlib.redirect_stderr(io.StringIO()):  # submitit prints sbatch's errors
        jobs = executor.map_array(PointJob(), [str(self.root)] * len(new), new)
    except submitit.core.utils.FailedJobError as e:
      raise SlurmSubmitError(str(e)) from None
    for point, job in zip(new, jobs):
      self._jobs[job.job_id] = (point, job)
      print(f"submitted {point} (job {job.job_id})", flush=True)
    return {**queued, **{point: job.job_id for point, job in zip(new, jobs)}}

  def _still_queued(self, point_ids) -> dict[str, str]:
    """{point: its recorded job id} for the points whose job SLURM has not ended (and
    whose job folder is in this root, so the id is not another cluster's)."""
    from noisejax import sweep  # pylint: disable=g-import-not-at-top
    points = sweep.load(self.root)["points"]
    recorded = {p: points[p]["job_id"] for p in point_ids if points[p]["job_id"]}
    recorded = {p: j for p, j in recorded.items() if re.fullmatch(r"\d+(_\d+)?", j)
                and (self.root / "slurm" / j).is_dir()}
    states = job_states(recorded.values()) or {}
    return {p: j for p, j in recorded.items()
            if states.get(j, GONE) not in ENDED + (GONE,)}

  def wait(self, poll_s: Optional[float] = None, squeue_patience_s: float = 600):
    """Blocks until every submitted job has ended; polls squeue every `poll_s` seconds
    (default: 1 s, growing to 30 s on long sweeps). squeue failing for
    `squeue_patience_s` in a row (SLURM gone) is a SlurmUnavailableError."""
    start = last_answer = time.time()
    running = dict(self._jobs)
    while running:
      states = job_states(running)
      if states is None and time.time() - last_answer > squeue_patience_s:
        raise SlurmUnavailableError(f"squeue has failed for {squeue_patience_s:.0f} s",
                                    f"the jobs {', '.join(running)} may still run; rerun the "
                                    "sweep once squeue shows them ended")
      last_answer = time.time() if states is not None else last_answer
      for job_id, state in (states or {}).items():
        if state != self.states.get(job_id):
          print(f"{state.lower()} {running[job_id][0]} (job {job_id})", flush=True)
          self.states[job_id] = state
        if state in ENDED or state == GONE:
          self._settle(job_id, *running.pop(job_id))
      if running:
        time.sleep(poll_s or min(30.0, 1.0 + (time.time() - start) / 60))

  def _settle(self, job_id: str, point_id: str, job):
    """Marks failed a point whose job ended without recording a result."""
    from noisejax import sweep  # pylint: disable=g-import-not-at-top
    if sweep.load(self.root)["points"][point_id]["status"] in ("done", "failed"):
      return
    reason = f"job {job_id} ended {self.states.get(job_id, GONE)} before the point finished"
    if job.paths.result_pickle.exists():
      outcome, last_line = _outcome(job)
      if outcome == "error":
        reason = last_line
    sweep.update_point(self.root, point_id, status="failed",
                       error=f"SlurmJobError: {reason}; log: {job.paths.stderr}")


def _outcome(job) -> tuple[str, str]:
  """("success" | "error", the last line of its traceback) of a job's result pickle."""
  outcome, value = submitit.core.utils.pickle_load(job.paths.result_pickle)
  lines = [line for line in str(value).strip().splitlines() if line.strip()]
  return outcome, (lines[-1].strip() if lines else "")
