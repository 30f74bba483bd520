"""A real one-node SLURM cluster for tests (tools/local_slurm.sh), as a pytest fixture.

  from slurm_fixture import slurm_cluster  # in a test module: the fixture, module-scoped

  def test_something(slurm_cluster):   # sbatch, squeue, scontrol and submitit see the
    ...                                # cluster through SLURM_CONF

Without the Debian packages (slurmctld slurmd slurm-client munge) or root, the tests that
use it are skipped with the reason; under CI (CI=true, where .ci/run installs them) they
fail instead, so a CI run can never pass by skipping them.
"""

import os
import pathlib
import re
import shutil
import subprocess

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "tools" / "local_slurm.sh"
PROGRAMS = ("munged", "slurmctld", "slurmd", "sbatch", "squeue", "scontrol", "sinfo")


def missing_reason():
  """Why no local SLURM can start here, or None."""
  missing = [p for p in PROGRAMS if shutil.which(p) is None]
  if missing:
    return (f"no SLURM here: {', '.join(missing)} missing (apt-get install slurmctld slurmd "
            "slurm-client munge; `bash tools/local_slurm.sh install` does it)")
  if os.geteuid() != 0:
    return "no SLURM here: the local cluster runs its daemons as root (SlurmUser=root)"
  return None


class LocalSlurm:
  """The running cluster: its directory and what SLURM knows of its jobs."""

  def __init__(self, directory: pathlib.Path):
    self.directory = directory
    self.conf = directory / "slurm.conf"

  def scontrol(self, *args) -> str:
    return subprocess.run(["scontrol", *args], check=True, capture_output=True,
                          text=True).stdout

  def job(self, job_id: str) -> dict:
    """`scontrol show job` as {field: value} (SLURM keeps ended jobs for MinJobAge)."""
    return dict(re.findall(r"(\w+)=(\S*)", self.scontrol("show", "job", job_id)))

  def history(self) -> dict[str, str]:
    """Every finished job in the completion log (JobCompType=jobcomp/filetxt; this
    cluster has no slurmdbd for sacct): job id ('<array>_<task>' for array tasks) →
    final state."""
    path = self.directory / "jobcomp.txt"
    states = {}
    for line in path.read_text().splitlines() if path.exists() else []:
      fields = dict(re.findall(r"(\w+)=(\S*)", line))
      job_id = fields["JobId"]
      if fields.get("ArrayJobId") and fields.get("ArrayTaskId"):
        job_id = f"{fields['ArrayJobId']}_{fields['ArrayTaskId']}"
      states[job_id] = fields["JobState"]
    return states

  def log_tail(self, lines: int = 20) -> str:
    logs = [self.directory / f"{d}.log" for d in ("slurmctld", "slurmd")]
    return "\n".join(f"--- {p.name}\n" + "\n".join(p.read_text().splitlines()[-lines:])
                     for p in logs if p.exists())


@pytest.fixture(scope="module")
def slurm_cluster(tmp_path_factory):
  """Starts a one-node cluster in a temporary directory, points SLURM_CONF at it for the
  module's tests (and the jobs they submit), and stops exactly its daemons after."""
  reason = missing_reason()
  if reason:
    if os.environ.get("CI"):
      pytest.fail(f"{reason}; .ci/run should have installed it")
    pytest.skip(reason)
  directory = tmp_path_factory.mktemp("slurm")
  start = subprocess.run(["bash", str(SCRIPT), "start", str(directory)], capture_output=True,
                         text=True, timeout=120)
  if start.returncode != 0:
    subprocess.run(["bash", str(SCRIPT), "stop", str(directory)], capture_output=True)
    pytest.fail(f"tools/local_slurm.sh start failed: {start.stderr.strip()}")
  cluster = LocalSlurm(directory)
  try:
    with pytest.MonkeyPatch.context() as patch:
      patch.setenv("SLURM_CONF", str(cluster.conf))
      yield cluster
  finally:
    subprocess.run(["bash", str(SCRIPT), "stop", str(directory)], capture_output=True)
