"""End to end: feature_learning's tiny preset writes its records, figures, metrics and
claims; --replot gives the same claims; bad sizes and missing data fail before the
synthetic parts run."""

import json

import pytest

from experiments import feature_learning
from noisejax import early_stopping, experiment
from noisejax.data import DataUnavailableError
from noisejax.errors import ConfigError
from noisejax.noise import NoisyLabels

IDS = ["real/memorized_later", "real/test_accuracy_drop", "dynamics/stage1_fit",
       "dynamics/stage1_signal_over_noise", "dynamics/stage2_memorization",
       "dynamics/stage2_test_error", "dynamics/loss_derivative_mechanism",
       "dynamics/sample_selection_log2", "dynamics/early_stopping", "dynamics/noiseless",
       "sweep/two_stages", "sweep/kou_contrast"]


def _execute(config, workdir, **kwargs):
  return experiment.execute("feature_learning", config, workdir, feature_learning.PARTS,
                            validate=feature_learning.validate, **kwargs)


def test_tiny_preset_end_to_end_and_replot(tmp_path):
  claims = _execute(feature_learning.get_config("tiny"), tmp_path)
  assert [c.id for c in claims] == IDS
  by_id = {c.id: c for c in claims}
  assert by_id["dynamics/stage1_fit"].passed  # 16 samples at n·SNR² = 11: the window shows
  assert by_id["sweep/two_stages"].measured["0.1"]["frac_window"] == 0  # noise dominates
  assert by_id["dynamics/stage2_memorization"].measured["acc_noisy_end"] == [1.0, 1.0]
  metrics = [json.loads(l) for l in (tmp_path / "metrics.jsonl").read_text().splitlines()]
  assert sorted((m["seed"], m["epoch"]) for m in metrics) == [(s, e) for s in (0, 1)
                                                              for e in (0, 1, 2)]
  assert all("val_error" in m for m in metrics)  # the held-out split with flipped labels
  noisy = NoisyLabels.load(tmp_path / "noise.npz")
  assert noisy.is_noisy.sum() == 48  # exactly ⌊0.2·240⌋ labels flipped, 60 held out
  real = by_id["real/memorized_later"].measured["per_seed"]
  assert all(r["final"]["clean_acc"] > 0.9 for r in real)  # 0 vs 1 is easy in 2 epochs
  assert by_id["real/test_accuracy_drop"].measured["drop"]["seeds"] == 2
  record = experiment.load_record(tmp_path / "records" / "dynamics")
  es = record["seed0"]["noisy"]["es_index"]  # noisejax.early_stopping on the held-out error
  assert es == early_stopping.index(record["seed0"]["noisy"]["val_error"])
  assert record["seed0"]["noisy"]["losses"].shape == (len(record["seed0"]["noisy"]["steps"]), 16)
  assert not record["seed0"]["clean"]["is_noisy"].any()  # the noiseless twin
  assert record["seed0"]["noisy"]["is_noisy"].mean() == pytest.approx(record["realized_tau"][0])
  for name in ("fig1_dynamics.png", "sample_selection.png", "sweep_nsnr2.png", "real_data.png"):
    assert (tmp_path / name).stat().st_size > 10_000, name
  saved = json.loads((tmp_path / "claims.json").read_text())
  assert [c["id"] for c in saved] == IDS
  assert set(json.loads((tmp_path / "timings.json").read_text())) == {"real", "dynamics", "sweep"}
  (tmp_path / "fig1_dynamics.png").unlink()
  replotted = _execute(feature_learning.get_config("tiny"), tmp_path, replot=True)
  assert replotted == claims and (tmp_path / "fig1_dynamics.png").exists()


@pytest.mark.parametrize("field, value, match", [
    ("synthetic.d", 10, "synthetic.d"),
    ("synthetic.tau_pos", 0.5, "synthetic.tau_pos"),
    ("sweep.d_over_n", (1.0,), "sweep.d_over_n"),
    ("real.data.classes", (0, 1, 2), "real.data.classes"),
    ("real.noise.rate", 0.6, "real.noise.rate"),
    ("real.model.name", "vgg99", "real.model.name"),
])
def test_bad_config_fails_before_anything_runs(tmp_path, field, value, match):
  config = feature_learning.get_config("tiny")
  experiment.apply_override(config, field, repr(value))
  with pytest.raises(ConfigError, match=match):
    _execute(config, tmp_path)
  assert not (tmp_path / "records").exists()


def test_missing_real_data_fails_before_the_synthetic_parts(tmp_path):
  config = feature_learning.get_config("tiny")
  config.real.data.name = "cifar10"
  config.real.data.data_dir = str(tmp_path / "no_data")
  with pytest.raises(DataUnavailableError, match="cifar10"):
    _execute(config, tmp_path / "run")
  assert not (tmp_path / "run" / "records" / "dynamics.json").exists()
