"""The runner: command line, overrides, workdir ownership, claims, bad input."""

import json
import os
import subprocess
import sys

import ml_collections
import pytest

from noisejax import experiment
from noisejax.errors import ConfigError
from noisejax.experiment import Claim

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def toy_config(preset="quick"):
  return ml_collections.ConfigDict(dict(
      seed=0, steps=3 if preset == "quick" else 100, scale=0.5, tag="a", classes=(7, 9),
      optim=ml_collections.ConfigDict(dict(lr=0.1, batch_size=8)),
      noise=ml_collections.ConfigDict(dict(kind="symmetric", rate=0.3))))


def toy_run(config, run):
  for step in range(config.steps):
    run.log(step, value=step * config.scale)
  measured = run.read_metrics()[-1]["value"]
  return [Claim("toy/last", "clean-priority", "the last value is logged", "> 0", measured,
                measured > 0)]


def test_overrides_keep_types():
  config = toy_config()
  for field, text in [("steps", "7"), ("scale", "2"), ("tag", "b"), ("classes", "(0, 1)"),
                      ("optim.lr", "1e-3"), ("noise.kind", "pair")]:
    experiment.apply_override(config, field, text)
  assert config.steps == 7 and config.scale == 2.0 and isinstance(config.scale, float)
  assert config.tag == "b" and config.classes == (0, 1) and config.optim.lr == 1e-3
  assert config.noise.kind == "pair"


def test_unknown_field_names_valid_choices():
  with pytest.raises(ConfigError) as e:
    experiment.apply_override(toy_config(), "optim.learning_rate", "0.1")
  message = str(e.value)
  assert "optim.learning_rate" in message and "batch_size, lr" in message and "\n" not in message


def test_wrong_type_is_rejected():
  with pytest.raises(ConfigError, match="config.steps='many'.*int"):
    experiment.apply_override(toy_config(), "steps", "many")


@pytest.mark.parametrize("field,value,pattern", [
    ("noise.rate", 1.2, "noise.rate=1.2"),
    ("noise.kind", "gaussian", "noise.kind='gaussian'.*valid: none, symmetric"),
    ("optim.lr", -0.1, "optim.lr=-0.1.*> 0"),
    ("optim.batch_size", -4, "optim.batch_size"),
])
def test_validate_rejects_bad_shared_fields(field, value, pattern):
  config = toy_config()
  section, name = field.split(".")
  config[section][name] = value
  with pytest.raises(ConfigError, match=pattern):
    experiment.validate(config)


def test_execute_writes_config_metrics_claims(tmp_path):
  claims = experiment.execute("toy", toy_config(), tmp_path / "w", toy_run)
  assert claims[0].passed and claims[0].measured == 1.0
  saved = json.loads((tmp_path / "w" / "claims.json").read_text())
  assert saved == [{"id": "toy/last", "paper": "clean-priority", "statement": "the last value is logged",
                    "expected": "> 0", "measured": 1.0, "passed": True}]
  assert json.loads((tmp_path / "w" / "config.json").read_text())["steps"] == 3


def test_workdir_of_another_run_is_never_overwritten(tmp_path):
  experiment.execute("toy", toy_config(), tmp_path / "w", toy_run)
  before = {p.name: p.read_bytes() for p in (tmp_path / "w").iterdir()}
  other = toy_config()
  other.scale = 3.0
  with pytest.raises(ConfigError, match="config.workdir=.*another run.*scale"):
    experiment.execute("toy", other, tmp_path / "w", toy_run)
  assert {p.name: p.read_bytes() for p in (tmp_path / "w").iterdir()} == before


def test_failed_claim_is_reported_not_hidden(tmp_path):
  config = toy_config()
  config.scale = -1.0
  claims = experiment.execute("toy", config, tmp_path / "w", toy_run)
  assert not claims[0].passed
  assert json.loads((tmp_path / "w" / "claims.json").read_text())[0]["passed"] is False


def test_claim_measured_values_are_json():
  import numpy as np
  claim = Claim("x", "sln", "s", "e", {"a": np.float32(0.5), "b": np.arange(2), "c": float("nan")},
                np.bool_(True))
  assert claim.measured == {"a": 0.5, "b": [0, 1], "c": "nan"} and claim.passed is True
  with pytest.raises(ConfigError, match="claim.paper"):
    Claim("x", "unknown-paper", "s", "e", 1, True)


def run_module(*args, cwd=ROOT):
  return subprocess.run([sys.executable, "-m", "experiments.u_curve", *args], cwd=cwd,
                        capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("args,field", [
    (["--preset", "fast"], "config.preset='fast'"),
    (["--config.data.name=imagenet"], "config.data.name='imagenet'"),
    (["--config.model.name=vgg99"], "config.model.name='vgg99'"),
    (["--config.noise.rate=1.5"], "config.noise.rate=1.5"),
    (["--config.optim.lr=0"], "config.optim.lr=0.0"),
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
  result = run_module("--config.optim.batch_size=100000", "--config.optim.epochs=1",
                      "--workdir", str(tmp_path / "w"))
  assert result.returncode == 2
  assert result.stderr.strip().splitlines()[-1].startswith("error: config.optim.batch_size=100000")
