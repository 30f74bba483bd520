"""The SLURM executor on a real one-node SLURM (tools/local_slurm.sh), no mock.

Every sweep here is u_curve's tiny preset (400 images, batch 50, a checkpoint each epoch),
run through `python -m experiments.sweep ... --executor slurm` (sbatch, a submitit job
array) with one CPU per job, so the node's two CPUs run two points at once. The file
takes ≈100–140 s on 2 busy CPU cores (the requeue test ≈65 s, the 2 × 2 sweep ≈30–50 s).
"""

import contextlib
import json
import pathlib
import subprocess
import sys
import time

import pytest
from slurm_fixture import ROOT, slurm_cluster  # pylint: disable=unused-import

from experiments import sweep as sweep_cli, u_curve
from noisejax import slurm, sweep

SLURM_OPTIONS = ("--slurm.cpus_per_task=1",)  # and the default timeout_min=60
REQUEUE_EPOCHS = 10  # long enough to interrupt the job twice between first and last checkpoint
_TINY = u_curve.get_config("tiny")  # its training images: the limit less the held-out split
STEPS_PER_EPOCH = (_TINY.data.limit - _TINY.val_size) // _TINY.optim.batch_size


def sweep_command(root, *grid, seeds=1, options=SLURM_OPTIONS) -> list[str]:
  return [sys.executable, "-m", "experiments.sweep", "u_curve", "--preset", "tiny",
          "--root", str(root), *grid, "--seeds", str(seeds), "--executor", "slurm", *options]


def run_sweep(root, *grid, seeds=1, timeout=600) -> subprocess.CompletedProcess:
  return subprocess.run(sweep_command(root, *grid, seeds=seeds), cwd=ROOT, capture_output=True,
                        text=True, timeout=timeout)


@contextlib.contextmanager
def sweeps_in_background(roots: dict, *grid, seeds=1):
  """`python -m experiments.sweep` on each root at once; killed if the test fails."""
  processes = {name: subprocess.Popen(sweep_command(root, *grid, seeds=seeds), cwd=ROOT,
                                      text=True, stdout=subprocess.PIPE,
                                      stderr=subprocess.STDOUT)
               for name, root in roots.items()}
  try:
    yield processes
  finally:
    for process in processes.values():
      if process.poll() is None:
        process.kill()


def wait_for(condition, what: str, cluster, timeout: float = 180):
  """Polls `condition()` until it returns something truthy; fails after `timeout` s."""
  deadline = time.time() + timeout
  while time.time() < deadline:
    value = condition()
    if value:
      return value
    time.sleep(0.1)
  pytest.fail(f"timed out waiting for {what}\n{cluster.log_tail()}")


def recorded_job_ids(root, running: int = 0):
  """The points' job ids once every point has one and `running` of them run, else None."""
  if not (root / "sweep.json").exists():
    return None
  job_ids = [p["job_id"] for p in sweep.load(root)["points"].values()]
  if None in job_ids:
    return None
  states = slurm.job_states(job_ids) or {}
  return job_ids if list(states.values()).count("RUNNING") >= running else None


def metrics(workdir) -> list[dict]:
  return [json.loads(line) for line in (pathlib.Path(workdir) / "metrics.jsonl").read_text()
          .splitlines()]


def checkpoint_steps(workdir) -> list[int]:
  directory = pathlib.Path(workdir) / "checkpoints"
  return sorted(int(d.name) for d in directory.iterdir() if d.name.isdigit()) if (
      directory.exists()) else []


def all_jobs() -> set[str]:
  """Every job SLURM knows, ended or not (one per array task)."""
  return set(subprocess.run(["squeue", "-h", "-r", "-t", "all", "-o", "%i"], check=True,
                            capture_output=True, text=True).stdout.split())


def test_2x2_sweep_completes_through_sbatch(slurm_cluster, tmp_path):
  """The sweep command is stopped once its jobs run and started again: it waits for the
  same jobs instead of submitting them twice."""
  root = tmp_path / "sweep"
  grid = ("--grid", "noise.rate=0.2,0.4")
  with sweeps_in_background({"first": root}, *grid, seeds=2) as processes:
    first_ids = wait_for(lambda: recorded_job_ids(root, running=1), "a running job",
                         slurm_cluster)
    processes["first"].kill()
  jobs_before = all_jobs()
  result = run_sweep(root, *grid, seeds=2)
  assert result.returncode == 0, result.stderr[-3000:]
  assert result.stdout.count("already queued") == 4 and "submitted" not in result.stdout
  assert all_jobs() == jobs_before  # nothing submitted twice
  points = sweep.load(root)["points"]
  assert len(points) == 4
  assert {p["status"] for p in points.values()} == {"done"}
  job_ids = [p["job_id"] for p in points.values()]
  assert job_ids == first_ids
  assert len(set(job_ids)) == 4 and all("_" in j for j in job_ids)  # one array, 4 tasks
  history = slurm_cluster.history()
  assert {j: history.get(j) for j in job_ids} == {j: "COMPLETED" for j in job_ids}
  for point in points.values():
    assert set(point["claims"]) == {"u_curve/best_test_below_noise", "u_curve/u_shape",
                                    "u_curve/memorizes_noise"}
    assert [m["epoch"] for m in metrics(point["workdir"])] == [0, 1, 2, 3]
  summary = (root / "summary.md").read_text()
  assert "| 0.2 | 2 done |" in summary and "| 0.4 | 2 done |" in summary
  assert all(f"`{c}`" in summary for c in points["noise.rate=0.2,seed=0"]["claims"])
  array = job_ids[0].split("_")[0]
  script = (root / "slurm" / array / f"{array}_submission.sh").read_text()
  assert "#SBATCH --array=0-3" in script and "#SBATCH --cpus-per-task=1" in script
  assert sys.executable in script  # the jobs run this very interpreter (the venv)
  for job_id in job_ids:  # submitit's logs under the sweep root
    assert (root / "slurm" / job_id / f"{job_id}_0_log.err").exists()


def running_job_past(root, point_id: str, step: int):
  """The point's job id once it runs and has a checkpoint after `step`, else None."""
  steps = checkpoint_steps(sweep.point_workdir(root, point_id))
  if not (root / "sweep.json").exists() or not steps or steps[-1] <= step:
    return None
  job_id = sweep.load(root)["points"][point_id]["job_id"]
  return job_id if slurm.job_states([job_id])[job_id] == "RUNNING" else None


def interrupt(cluster, command, root, point_id: str, job_id: str) -> int:
  """Sends `command`, waits until the job is back in the queue, checks that it stopped
  mid-run (point running, last checkpoint not the final one); returns that checkpoint."""
  subprocess.run(command, check=True)
  wait_for(lambda: slurm.job_states([job_id])[job_id] == "PENDING",
           f"job {job_id} to be requeued after {command}", cluster)
  assert sweep.load(root)["points"][point_id]["status"] == "running"
  last = checkpoint_steps(sweep.point_workdir(root, point_id))[-1]
  assert last < REQUEUE_EPOCHS * STEPS_PER_EPOCH
  # SLURM holds a requeued job for 2 minutes (its BeginTime); let it start at once.
  cluster.scontrol("update", f"JobId={job_id}", "StartTime=now")
  return last


def test_requeued_and_preempted_job_resumes_from_its_checkpoints(slurm_cluster, tmp_path):
  """The same point twice at the same time: once uninterrupted; once requeued by SLURM
  (`scontrol requeue`) after its first checkpoint, then preempted (SIGUSR2: submitit calls
  PointJob.checkpoint and requeues it) after a later one. Both end with the same metrics."""
  point_id = f"optim.epochs={REQUEUE_EPOCHS},seed=0"
  roots = {name: tmp_path / name for name in ("uninterrupted", "interrupted")}
  root = roots["interrupted"]
  with sweeps_in_background(roots, "--grid", f"optim.epochs={REQUEUE_EPOCHS}") as processes:
    job_id = wait_for(lambda: running_job_past(root, point_id, 0), "the first checkpoint",
                      slurm_cluster)
    requeued_at = interrupt(slurm_cluster, ["scontrol", "requeue", job_id], root, point_id,
                            job_id)
    wait_for(lambda: running_job_past(root, point_id, requeued_at),
             "a checkpoint after the requeue", slurm_cluster)
    interrupt(slurm_cluster, ["scancel", "--signal=USR2", job_id], root, point_id, job_id)
    outputs = {name: p.communicate(timeout=600)[0] for name, p in processes.items()}
  for name, process in processes.items():
    assert process.returncode == 0, outputs[name][-3000:]
  assert int(slurm_cluster.job(job_id)["Restarts"]) == 2
  assert slurm_cluster.history()[job_id] == "COMPLETED"
  log = (root / "slurm" / job_id / f"{job_id}_0_log.err").read_text()
  assert "Caught signal SIGUSR2 on" in log and "this job is preempted" in log
  assert f"Requeued job {job_id}" in log  # by submitit, after PointJob.checkpoint
  points = {name: sweep.load(r)["points"][point_id] for name, r in roots.items()}
  assert points["interrupted"]["status"] == points["uninterrupted"]["status"] == "done"
  workdir = sweep.point_workdir(root, point_id)
  assert checkpoint_steps(workdir)[-1] == REQUEUE_EPOCHS * STEPS_PER_EPOCH
  resumed, reference = (metrics(points[n]["workdir"]) for n in ("interrupted", "uninterrupted"))
  assert len(resumed) == len(reference) == REQUEUE_EPOCHS + 1
  assert all(r == pytest.approx(u, rel=1e-6, abs=1e-7) for r, u in zip(resumed, reference))
  assert points["interrupted"]["claims"] == points["uninterrupted"]["claims"]


def test_failing_point_is_recorded_failed_and_the_others_finish(slurm_cluster, tmp_path):
  """Class 12 passes the config checks but is not in the data: that point fails at run
  time; the other (the preset's classes) finishes."""
  root = tmp_path / "failing"
  result = run_sweep(root, "--grid", "data.classes=None,(3,12)")
  assert result.returncode == 1, result.stderr[-3000:]  # the command reports a failed point
  points = sweep.load(root)["points"]
  good, bad = points["data.classes=None,seed=0"], points["data.classes=(3,12),seed=0"]
  assert good["status"] == "done" and good["claims"]
  assert bad["status"] == "failed" and bad["claims"] is None
  assert bad["error"].startswith("ConfigError: config.data.classes=(3, 12) is invalid")
  assert "\n" not in bad["error"]
  history = slurm_cluster.history()
  assert history[good["job_id"]] == "COMPLETED" and history[bad["job_id"]] == "FAILED"
  assert bad["error"] in (root / "summary.md").read_text()


def test_options_reach_sbatch_and_a_killed_job_fails_its_point(slurm_cluster, tmp_path):
  """Multi-task and resource options as sbatch sees them; a job cancelled before its point
  finished leaves the point failed, naming the job and its log."""
  root = tmp_path / "options"
  points = sweep.plan("u_curve", "tiny", {}, 1)
  sweep.init(root, "u_curve", "tiny", {}, 1, points)
  executor = slurm.SlurmExecutor(root, nodes="1", tasks_per_node="2", cpus_per_task="1",
                                 mem_gb="1", timeout_min="7",
                                 slurm_additional_parameters="{'comment': 'noisejax-test'}")
  (job_id,) = executor.submit(list(points)).values()
  subprocess.run(["scancel", job_id], check=True)
  job = slurm_cluster.job(job_id)
  assert (job["NumTasks"], job["TimeLimit"], job["MinMemoryNode"]) == ("2", "00:07:00", "1G")
  assert job["Comment"] == "noisejax-test"
  script = (root / "slurm" / job_id / f"{job_id}_submission.sh").read_text()
  assert "#SBATCH --nodes=1" in script and "#SBATCH --ntasks-per-node=2" in script
  executor.wait(poll_s=0.2)
  point = sweep.load(root)["points"]["seed=0"]
  assert executor.states[job_id] == "CANCELLED" and point["status"] == "failed"
  assert point["error"].startswith(f"SlurmJobError: job {job_id} ended CANCELLED before the "
                                   "point finished; log: ")
  assert str(root / "slurm" / job_id) in point["error"]


@pytest.mark.parametrize("flag, field, message", [
    ("--slurm.gpus=1", "slurm.gpus", "no such SLURM option; valid: timeout_min, gpus_per_node"),
    ("--slurm.timeout_min=1.5", "slurm.timeout_min", "expects a int"),
    ("--slurm.nodes=0", "slurm.nodes", "must lie in [1, inf)"),
    ("--slurm.slurm_additional_parameters=qos", "slurm.slurm_additional_parameters",
     "expects a dict of sbatch options"),
])
def test_bad_option_exits_2_naming_it_and_writes_nothing(tmp_path, capsys, flag, field,
                                                         message):
  root = tmp_path / "bad"
  code = sweep_cli.main(["u_curve", "--preset", "tiny", "--root", str(root), "--grid",
                         "noise.rate=0.2", "--executor", "slurm", flag])
  error = capsys.readouterr().err.strip()
  assert code == 2 and "\n" not in error
  assert error.startswith(f"error: config.{field}=") and message in error
  assert not root.exists()


def test_no_sbatch_is_one_clear_error_and_writes_nothing(tmp_path, capsys, monkeypatch):
  monkeypatch.setenv("PATH", str(tmp_path / "empty"))
  root = tmp_path / "sweep"
  code = sweep_cli.main(["u_curve", "--preset", "tiny", "--root", str(root), "--grid",
                         "noise.rate=0.2", "--executor", "slurm"])
  error = capsys.readouterr().err.strip()
  assert code == 2
  assert error.startswith("error: no SLURM here: sbatch is not on PATH; use --executor local")
  assert not root.exists()


def test_sbatch_refusing_the_jobs_is_one_line(slurm_cluster, tmp_path, capsys):
  root = tmp_path / "sweep"
  code = sweep_cli.main(["u_curve", "--preset", "tiny", "--root", str(root), "--grid",
                         "noise.rate=0.2", "--executor", "slurm",
                         "--slurm.slurm_partition=nosuchpartition"])
  error = capsys.readouterr().err.strip()
  assert code == 2 and "\n" not in error
  assert error.startswith("error: sbatch refused the jobs: ") and "partition" in error
  assert sweep.load(root)["points"]["noise.rate=0.2,seed=0"]["status"] == "pending"
