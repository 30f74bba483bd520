"""The runner: parts, records, --replot, command line, workdir ownership, bad input."""

import json
import os
import subprocess
import sys

import jax
import ml_collections
import numpy as np
import pytest

from noisejax import claims, experiment, plots
from noisejax.errors import ConfigError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CALLS = []


def toy_config(preset="quick"):
  return ml_collections.ConfigDict(dict(
      seed=0, steps=3 if preset == "quick" else 100, scale=0.5, tag="a", classes=(7, 9),
      parts=("first", "second"),
      optim=ml_collections.ConfigDict(dict(lr=0.1, batch_size=8)),
      noise=ml_collections.ConfigDict(dict(kind="symmetric", rate=0.3))))


def compute_first(config, run):
  CALLS.append("first")
  for step in range(config.steps):
    run.log(step, value=step * config.scale)
  return {"last": run.read_metrics()[-1]["value"], "curve": np.arange(5.0),
          "key": float(jax.random.uniform(run.key))}


def plot_first(record, config):
  fig, axes = plots.figure()
  axes[0, 0].plot(record["curve"])
  return {"first.png": fig}


def claims_first(record, config):
  return [claims.claim("last", "clean-priority", "the last value is logged",
                       [claims.check("last value", record["last"], ">", 0)], record["last"])]


def compute_second(config, run):
  CALLS.append("second")
  return {"first_last": run.record("first")["last"]}


PARTS = {"first": experiment.Part(compute_first, plot_first, claims_first),
         "second": experiment.Part(compute_second, None, lambda record, config: [])}


def test_parts_write_records_figures_claims_and_timings(tmp_path):
  CALLS.clear()
  out = experiment.execute("toy", toy_config(), tmp_path / "w", PARTS)
  assert [c.id for c in out] == ["first/last"] and out[0].passed and out[0].measured == 1.0
  w = tmp_path / "w"
  saved = json.loads((w / "claims.json").read_text())
  assert saved == [{"id": "first/last", "paper": "clean-priority",
                    "statement": "the last value is logged", "expected": "last value > 0",
                    "measured": 1.0, "passed": True}]
  assert set(json.loads((w / "timings.json").read_text())) == {"first", "second"}
  assert (w / "first.png").stat().st_size > 1000
  record = experiment.load_record(w / "records" / "first")
  np.testing.assert_array_equal(record["curve"], np.arange(5.0))
  assert experiment.load_record(w / "records" / "second") == {"first_last": 1.0}
  assert CALLS == ["first", "second"]


def test_part_keys_follow_one_rule_and_differ():
  a, b = experiment.part_key(0, "first"), experiment.part_key(0, "second")
  assert not np.array_equal(jax.random.key_data(a), jax.random.key_data(b))
  np.testing.assert_array_equal(jax.random.key_data(a),
                                jax.random.key_data(experiment.part_key(0, "first")))


def test_replot_regenerates_from_records_without_computing(tmp_path):
  experiment.execute("toy", toy_config(), tmp_path / "w", PARTS)
  (tmp_path / "w" / "first.png").unlink()
  CALLS.clear()
  out = experiment.execute("toy", toy_config(), tmp_path / "w", PARTS, replot=True)
  assert CALLS == [] and out[0].measured == 1.0 and (tmp_path / "w" / "first.png").exists()
  with pytest.raises(ConfigError, match="config.replot=.*no finished run"):
    experiment.execute("toy", toy_config(), tmp_path / "empty", PARTS, replot=True)


def test_unknown_part_is_rejected_before_anything_runs(tmp_path):
  config = toy_config()
  config.parts = ("first", "third")
  CALLS.clear()
  with pytest.raises(ConfigError, match="config.parts='third'.*valid: first, second"):
    experiment.execute("toy", config, tmp_path / "w", PARTS)
  assert CALLS == [] and not (tmp_path / "w").exists()


def test_overrides_keep_types():
  config = toy_config()
  for field, text in [("steps", "7"), ("scale", "2"), ("tag", "b"), ("classes", "(0, 1)"),
                      ("optim.lr", "1e-3"), ("noise.kind", "pair")]:
    experiment.apply_override(config, field, text)
  assert config.steps == 7 and config.scale == 2.0 and isinstance(config.scale, float)
  assert config.tag == "b" and config.classes == (0, 1) and config.optim.lr == 1e-3
  assert config.noise.kind == "pair"
  experiment.apply_override(config, "parts", "first,second")
  assert config.parts == ("first", "second")
  experiment.apply_override(config, "parts", "(second,)")  # as the README writes it
  assert config.parts == ("second",)


def test_unknown_field_names_valid_choices():
  with pytest.raises(ConfigError) as e:
    experiment.apply_override(toy_config(), "optim.learning_rate", "0.1")
  message = str(e.value)
  assert "optim.learning_rate" in message and "batch_size, lr" in message and "\n" not in message


def test_wrong_type_is_rejected():
  with pytest.raises(ConfigError, match="config.steps='many'.*int"):
    experiment.apply_override(toy_config(), "steps", "many")


def test_workdir_of_another_run_is_never_overwritten(tmp_path):
  experiment.execute("toy", toy_config(), tmp_path / "w", PARTS)
  before = {p.name: p.read_bytes() for p in (tmp_path / "w").iterdir() if p.is_file()}
  other = toy_config()
  other.scale = 3.0
  with pytest.raises(ConfigError, match="config.workdir=.*another run.*scale"):
    experiment.execute("toy", other, tmp_path / "w", PARTS)
  assert {p.name: p.read_bytes() for p in (tmp_path / "w").iterdir() if p.is_file()} == before


def test_failed_claim_is_reported_not_hidden(tmp_path):
  config = toy_config()
  config.scale = -1.0
  out = experiment.execute("toy", config, tmp_path / "w", PARTS)
  assert not out[0].passed
  assert json.loads((tmp_path / "w" / "claims.json").read_text())[0]["passed"] is False


def test_log_fn_drops_records_left_by_an_interrupted_run(tmp_path):
  run = experiment.Run("toy", toy_config(), tmp_path)
  for step in (0, 10, 20, 30):
    run.log(step, x=step)
  log = run.log_fn()  # a resumed fit whose checkpoint was at step 10 logs step 20 next
  log({"step": 20, "x": -20})
  log({"step": 30, "x": -30})
  assert [(r["step"], r["x"]) for r in run.read_metrics()] == [(0, 0), (10, 10), (20, -20),
                                                                 (30, -30)]


def run_module(*args, cwd=ROOT):
  return subprocess.run([sys.executable, "-m", "experiments.u_curve", *args], cwd=cwd,
                        capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("args,field", [
    (["--preset", "fast"], "config.preset='fast'"),
    (["--config.data.name=imagenet"], "config.data.name='imagenet'"),
    (["--config.model.name=vgg99"], "config.model.name='vgg99'"),
    (["--config.noise.rate=1.5"], "config.noise.rate=1.5"),
    (["--config.optim.lr=0"], "config.optim.lr=0.0"),
    (["--config.method.name=mixup"], "config.method.name='mixup'"),
    (["--bogus"], "config.argv='--bogus'"),
])
def test_cli_bad_input_one_line_error_nothing_overwritten(tmp_path, args, field):
  workdir = tmp_path / "earlier"
  workdir.mkdir()
  (workdir / "config.json").write_text('{"_experiment": "u_curve", "seed": 1}')
  (workdir / "claims.json").write_text("[]")
  result = run_module(*args, "--workdir", str(workdir))
  assert result.returncode == 2, result.stderr
  lines = result.stderr.strip().splitlines()
  assert len(lines) == 1 and lines[0].startswith("error: ") and field in lines[0], result.stderr
  assert (workdir / "config.json").read_text() == '{"_experiment": "u_curve", "seed": 1}'
  assert (workdir / "claims.json").read_text() == "[]"


def test_cli_batch_larger_than_data(tmp_path):
  result = run_module("--preset", "tiny", "--config.optim.batch_size=100000",
                      "--workdir", str(tmp_path / "w"))
  assert result.returncode == 2
  assert result.stderr.strip().splitlines()[-1].startswith("error: config.optim.batch_size=100000")
