"""Sweeps: grid × seeds through the local executor, sweep.json, resume, summary, bad grids."""

import contextlib
import hashlib
import io
import json
import pathlib
import subprocess
import sys
import threading

import numpy as np
import pytest

from experiments import sweep as sweep_cli
from noisejax import claims, sweep
from noisejax.errors import ConfigError

EXPERIMENT = "kernel_early_stopping"
METRIC = "fig9/laplacian_u_shape.final_test_error"
# The tiny preset with one kernel; a one-value grid field is fixed for every point.
FIXED = ["--grid", "kernel.names=laplacian"]
GRID = ["--grid", "noise.rate=0.2,0.4", "--grid", "data.classes=(7,9)", *FIXED]
IDS = [f"noise.rate={r},data.classes=(7,9),kernel.names=laplacian,seed={s}"
       for r in ("0.2", "0.4") for s in (0, 1)]
# Added to the sweep later: class 12 passes every config check (two distinct classes) but
# is not in the data, so that point fails when it runs.
ADDED = ["--grid", "noise.rate=0.3", "--grid", "data.classes=(7,9),(7,12)", *FIXED]
GOOD, BAD = (f"noise.rate=0.3,data.classes={c},kernel.names=laplacian,seed=0"
             for c in ("(7,9)", "(7,12)"))


def command(root, grid=GRID, seeds="2"):
  return [EXPERIMENT, "--preset", "tiny", "--root", str(root), *grid, "--seeds", seeds,
          "--parallel", "2"]


def files(directory) -> dict:
  """path → (content hash, mtime) of every file under `directory`."""
  return {str(p.relative_to(directory)): (hashlib.sha1(p.read_bytes()).hexdigest(),
                                          p.stat().st_mtime_ns)
          for p in sorted(pathlib.Path(directory).rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def root(tmp_path_factory):
  """A finished sweep: noise.rate ∈ {0.2, 0.4} × seeds {0, 1}, two points at a time."""
  root = tmp_path_factory.mktemp("sweep") / "kes"
  assert sweep_cli.main(command(root) + ["--metric", METRIC, "--x", "noise.rate"]) == 0
  return root


@pytest.fixture(scope="module")
def extended(root):
  """The same root after a changed grid: (files of the first sweep before, exit code,
  output)."""
  before = files(root / "runs")
  with contextlib.redirect_stdout(io.StringIO()) as out:
    code = sweep_cli.main(command(root, ADDED, seeds="1"))
  return before, code, out.getvalue()


def test_every_point_runs_and_the_summary_has_every_claim(root):
  recorded = sweep.load(root)
  assert (recorded["experiment"], recorded["preset"]) == (EXPERIMENT, "tiny")
  assert recorded["grid"]["noise.rate"][:2] == ["0.2", "0.4"] and recorded["seeds"] == 2
  assert list(recorded["points"])[:4] == IDS
  for point_id in IDS:
    point = recorded["points"][point_id]
    assert point["status"] == "done" and point["error"] is None, point
    assert point["job_id"].startswith("local-")
    workdir = root / "runs" / point_id
    assert point["workdir"] == str(workdir.resolve())
    config = json.loads((workdir / "config.json").read_text())
    assert config["seed"] == point["seed"] and config["kernel"]["names"] == ["laplacian"]
    assert str(config["noise"]["rate"]) == point["overrides"]["noise.rate"]
    saved = json.loads((workdir / "claims.json").read_text())
    assert point["claims"] == {c["id"]: {"measured": c["measured"], "passed": c["passed"]}
                               for c in saved}
  claim = "fig9/laplacian_u_shape"
  per_seed = [recorded["points"][i]["claims"][claim]["measured"]["final_test_error"]
              for i in IDS[:2]]
  assert per_seed[0] != per_seed[1]  # the seeds draw other noise: a real spread

  summary = (root / "summary.md").read_text()
  for claim_id in recorded["points"][IDS[0]]["claims"]:
    assert f"`{claim_id}`" in summary
  rows = [l for l in summary.splitlines() if l.startswith("| 0.2 | (7,9) |")]
  assert len(rows) == 1 and "| 2 done |" in rows[0]
  stats = claims.SeedStats.of(per_seed)  # rate 0.2, seeds 0 and 1
  assert f"final_test_error {stats.mean:.3g} ± {stats.ci_high - stats.mean:.2g}" in rows[0]
  passed = sum(recorded["points"][i]["claims"][claim]["passed"] for i in IDS[:2])
  assert f"| {passed}/2 seeds |" in rows[0]
  figure = root / sweep.figure_name(METRIC)
  assert figure.stat().st_size > 10_000


def test_rerun_skips_every_finished_point(root, capsys):
  before = files(root / "runs")
  jobs = {i: p["job_id"] for i, p in sweep.load(root)["points"].items()}
  assert sweep_cli.main(command(root)) == 0
  assert "4 points, 4 already done, 0 to run" in capsys.readouterr().out
  assert files(root / "runs") == before  # no workdir touched: nothing recomputed or re-plotted
  assert {i: p["job_id"] for i, p in sweep.load(root)["points"].items()} == jobs


def test_changed_grid_adds_points_and_leaves_old_workdirs_alone(root, extended):
  before, _, out = extended
  assert "2 points, 0 already done, 2 to run" in out
  after = files(root / "runs")
  assert {k: after[k] for k in before} == before  # byte-identical, same mtimes
  recorded = sweep.load(root)
  assert list(recorded["points"]) == IDS + [GOOD, BAD]
  assert len({p["job_id"] for p in recorded["points"].values()}) == 6
  assert recorded["grid"] == {"noise.rate": ["0.2", "0.4", "0.3"],
                              "data.classes": ["(7,9)", "(7,12)"], "kernel.names": ["laplacian"]}
  rows = [l for l in (root / "summary.md").read_text().splitlines() if l.startswith("| 0.")]
  assert [r.split(" | ")[:2] for r in rows] == [["| 0.2", "(7,9)"], ["| 0.4", "(7,9)"],
                                                ["| 0.3", "(7,9)"], ["| 0.3", "(7,12)"]]


def test_failing_point_is_recorded_while_the_others_finish(root, extended):
  _, code, out = extended
  assert code == 1 and f"failed {BAD}" in out
  points = sweep.load(root)["points"]
  assert points[GOOD]["status"] == "done" and points[GOOD]["claims"]
  bad = points[BAD]
  assert bad["status"] == "failed" and bad["claims"] is None
  assert bad["error"].startswith("ConfigError: config.data.classes=(7, 12) is invalid: class 12")
  assert "\n" not in bad["error"]
  summary = (root / "summary.md").read_text()
  assert "| 0.3 | (7,12) | laplacian | 1 failed | — |" in summary
  assert f"- `{BAD}`: {bad['error']}" in summary


def test_status_prints_the_points_without_running(root, capsys):
  before = files(root)
  assert sweep_cli.main(["--root", str(root), "--status"]) == 0
  out = capsys.readouterr().out
  for point_id in IDS:
    assert any(l.startswith(point_id) and " done " in l for l in out.splitlines())
  assert files(root) == before


def test_interrupted_point_resumes_from_its_records(root):
  """A point left running (its job was killed after the part's record was saved) is run
  again: the record is reused, not recomputed, and the claims come back the same."""
  point_id = IDS[3]
  workdir = root / "runs" / point_id
  claims_before = sweep.load(root)["points"][point_id]["claims"]
  timings = (workdir / "timings.json").read_bytes()
  (workdir / "claims.json").unlink()
  sweep.update_point(root, point_id, status="running", claims=None)
  assert sweep.run_point(root, point_id) == "done"
  point = sweep.load(root)["points"][point_id]
  assert point["status"] == "done" and point["claims"] == claims_before
  assert (workdir / "timings.json").read_bytes() == timings  # no part computed again
  assert sweep.run_point(root, point_id) == "done"  # done: returns at once


@pytest.mark.parametrize("grid, field", [
    (["--grid", "noise.rat=0.2"], "noise.rat"),                       # unknown field
    (["--grid", "kernel.steps=100,1.5"], "kernel.steps"),             # wrong type
    (["--grid", "noise.rate="], "noise.rate"),                        # no values
    (["--grid", "noise.rate=0.2", "--grid", "noise.rate=0.4"], "noise.rate"),  # repeated
    (["--grid", "noise.rate=0.2,1.5"], "noise.rate"),                 # config.validate
    (["--grid", "kernel.lr=1.0,2.5"], "kernel.lr"),                   # the experiment's validate
    (["--grid", "noise.rate=0.2", "--metric", METRIC, "--x", "kernel.lr"], "x"),
])
def test_bad_grid_exits_2_naming_the_field_and_writes_nothing(tmp_path, capsys, grid, field):
  root = tmp_path / "root"
  assert sweep_cli.main([EXPERIMENT, "--preset", "tiny", "--root", str(root), *grid]) == 2
  err = capsys.readouterr().err
  assert err.count("\n") == 1 and f"config.{field}=" in err
  assert not root.exists()


def test_unknown_experiment_exits_2_from_the_command_line(tmp_path):
  root = tmp_path / "root"
  out = subprocess.run([sys.executable, "-m", "experiments.sweep", "no_such_experiment",
                        "--root", str(root), "--grid", "noise.rate=0.2"],
                       capture_output=True, text=True, check=False)
  assert out.returncode == 2, out.stderr
  assert out.stderr.startswith("error: config.experiment='no_such_experiment' is invalid")
  assert "kernel_early_stopping" in out.stderr and out.stderr.count("\n") == 1
  assert not root.exists()


def test_root_of_another_experiment_or_preset_is_refused(root, capsys):
  before = files(root)
  for other in (["ntk_angles", "--preset", "tiny", "--grid", "width=32"],
                [EXPERIMENT, "--preset", "quick", "--grid", "noise.rate=0.2"]):
    assert sweep_cli.main([*other, "--root", str(root)]) == 2
    assert "config.root=" in capsys.readouterr().err
  assert files(root) == before
  not_a_sweep = root / "runs" / IDS[0]  # an experiment workdir
  with pytest.raises(ConfigError, match="holds files of no sweep"):
    sweep.run_sweep(EXPERIMENT, "tiny", not_a_sweep, ["noise.rate=0.2"])


def test_grid_values_split_at_top_level_commas():
  assert sweep.parse_grid(["data.classes=(7,9),(3,5)", "loss.name=gce"]) == {
      "data.classes": ["(7,9)", "(3,5)"], "loss.name": ["gce"]}
  assert sweep.point_id({"data.classes": "(7,9)", "loss.name": "gce"}, 1) == (
      "data.classes=(7,9),loss.name=gce,seed=1")
  with pytest.raises(ConfigError, match="seed"):
    sweep.parse_grid(["seed=0,1"])


def test_concurrent_updates_are_never_lost(tmp_path):
  points = sweep.plan(EXPERIMENT, "tiny", {"noise.rate": ["0.1", "0.2", "0.3", "0.4"]}, 2)
  sweep.init(tmp_path, EXPERIMENT, "tiny", {"noise.rate": ["0.1", "0.2", "0.3", "0.4"]}, 2,
             points)

  def update(point_id):
    for k in range(10):
      sweep.update_point(tmp_path, point_id, job_id=f"{point_id}#{k}")

  threads = [threading.Thread(target=update, args=(p,)) for p in points]
  for t in threads:
    t.start()
  for t in threads:
    t.join()
  recorded = sweep.load(tmp_path)["points"]
  assert {p: recorded[p]["job_id"] for p in points} == {p: f"{p}#9" for p in points}
  with pytest.raises(ConfigError, match="status"):
    sweep.update_point(tmp_path, next(iter(points)), status="finished")
  assert all(recorded[p]["status"] == "pending" for p in points)


def test_summary_aggregates_seeds_per_grid_combination():
  """A hand-made sweep: numbers → mean ± 95% CI half-width, booleans → counts, a field a
  point does not set → '—', failed points listed with their error."""
  def point(rate, loss, seed, value, status="done"):
    overrides = {"noise.rate": rate, **({"loss.name": loss} if loss else {})}
    measured = {"best": value, "ok": value < 0.3, "curve": [value, value]}
    return sweep.point_id(overrides, seed), {
        "overrides": overrides, "seed": seed, "workdir": "/nowhere", "status": status,
        "job_id": None, "error": None if status == "done" else "ConfigError: boom",
        "claims": None if status != "done" else {
            "p/num": {"measured": value, "passed": value < 0.25},
            "p/dict": {"measured": measured, "passed": True}}}

  points = dict(point(r, l, s, float(r) + 0.01 * s + (0.1 if l == "gce" else 0))
                for r in ("0.2", "0.4") for l in ("ce", "gce") for s in range(3))
  points.update([point("0.2", "gce", 3, 0.0, status="failed"), point("0.3", None, 0, 0.3)])
  recorded = {"experiment": EXPERIMENT, "preset": "tiny", "seeds": 4, "points": points,
              "grid": {"noise.rate": ["0.2", "0.4", "0.3"], "loss.name": ["ce", "gce"]}}
  lines = sweep.summary_markdown(recorded).splitlines()
  rows = [l for l in lines if l.startswith("| 0.")]
  stats = claims.SeedStats.of([0.2, 0.21, 0.22])
  assert rows[0] == ("| 0.2 | ce | 3 done | "
                     f"{stats.mean:.3g} ± {stats.ci_high - stats.mean:.2g} | 3/3 seeds | "
                     f"best {stats.mean:.3g} ± {stats.ci_high - stats.mean:.2g}; ok 3/3 true "
                     "| 3/3 seeds |")
  assert rows[1].startswith("| 0.2 | gce | 3 done, 1 failed | 0.31 ± ")
  assert "| 0/3 seeds |" in rows[3]                    # 0.4, gce: 0.5 > 0.25 in every seed
  assert rows[4].startswith("| 0.3 | — | 1 done | 0.3 | 0/1 seeds |")  # one seed: no CI
  assert "- `noise.rate=0.2,loss.name=gce,seed=3`: ConfigError: boom" in lines
  fig = sweep.metric_figure(recorded, "p/dict.best", "noise.rate")
  assert [l.get_label() for l in fig.axes[0].get_lines()] == [
      "loss.name=ce", "loss.name=gce", "loss.name=—"]
  np.testing.assert_allclose(fig.axes[0].get_lines()[0].get_xydata(),
                             [[0.2, 0.21], [0.4, 0.41]])
  with pytest.raises(ConfigError, match=r"config\.metric='p/nope'.*valid: p/num, p/dict\.best"):
    sweep.metric_figure(recorded, "p/nope", "noise.rate")


def test_seeds_of_an_experiment_that_vmaps_them_go_into_one_point():
  """experiments.sln trains all seeds of a part in one program (SEEDS_FIELD): --seeds 3
  is one point per grid combination with seeds=3, not three points."""
  points = sweep.plan("sln", "tiny", {"settings.symmetric.sigma": ["0.2", "0.5"]}, 3)
  assert sorted(points) == ["settings.symmetric.sigma=0.2,seeds=3,seed=0",
                            "settings.symmetric.sigma=0.5,seeds=3,seed=0"]
  assert all(p["overrides"]["seeds"] == "3" and p["seed"] == 0 for p in points.values())
  with pytest.raises(ConfigError, match="seeds=.*set by --seeds"):
    sweep.plan("sln", "tiny", {"seeds": ["2"]}, 1)
  many = sweep.plan("kernel_early_stopping", "tiny", {"noise.rate": ["0.2"]}, 3)
  assert [p["seed"] for p in many.values()] == [0, 1, 2]  # one seed per point elsewhere
