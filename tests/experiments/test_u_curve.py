"""End to end: u_curve's tiny preset writes its records, figure, metrics and claims."""

import json

import numpy as np

from experiments import u_curve
from noisejax import early_stopping, experiment
from noisejax.noise import NoisyLabels


def test_tiny_preset_end_to_end(tmp_path):
  claims = experiment.execute("u_curve", u_curve.get_config("tiny"), tmp_path, u_curve.PARTS)
  assert [c.id for c in claims] == ["u_curve/best_test_below_noise", "u_curve/u_shape",
                                    "u_curve/memorizes_noise"]
  metrics = [json.loads(l) for l in (tmp_path / "metrics.jsonl").read_text().splitlines()]
  assert [m["epoch"] for m in metrics] == [0, 1, 2, 3]
  assert min(m["test_error"] for m in metrics) < 0.6  # it learns from 280 clean labels
  noisy = NoisyLabels.load(tmp_path / "noise.npz")
  assert len(noisy.labels) == 360  # 40 of the 400 held out
  assert noisy.is_noisy.sum() == np.floor(0.3 * np.bincount(noisy.clean_labels) + 0.5).sum()
  assert np.all(noisy.labels[noisy.is_noisy] != noisy.clean_labels[noisy.is_noisy])
  es = early_stopping.point(metrics)  # the ES point: smoothed held-out noisy-label error
  assert claims[0].measured["at_es"] == es["test_error"] and "val_error" in metrics[0]
  assert (tmp_path / "u_curve.png").stat().st_size > 10_000
  saved = json.loads((tmp_path / "claims.json").read_text())
  assert [c["id"] for c in saved] == [c.id for c in claims]
  assert saved[0]["passed"] == (saved[0]["measured"]["at_es"] < 0.3)
  assert saved[2]["passed"] == (metrics[-1]["noisy_error"] <= 0.05)
