"""End to end: u_curve's tiny preset writes its records, figure, metrics and claims."""

import json

import numpy as np

from experiments import u_curve
from noisejax import experiment
from noisejax.noise import NoisyLabels


def test_tiny_preset_end_to_end(tmp_path):
  claims = experiment.execute("u_curve", u_curve.get_config("tiny"), tmp_path, u_curve.PARTS)
  assert [c.id for c in claims] == ["u_curve/best_test_below_noise", "u_curve/u_shape",
                                    "u_curve/memorizes_noise"]
  metrics = [json.loads(l) for l in (tmp_path / "metrics.jsonl").read_text().splitlines()]
  assert [m["epoch"] for m in metrics] == [0, 1, 2, 3]
  assert min(m["test_error"] for m in metrics) < 0.6  # it learns from 280 clean labels
  noisy = NoisyLabels.load(tmp_path / "noise.npz")
  assert noisy.is_noisy.sum() == 120  # exactly 30% of each class of 40
  assert np.all(noisy.labels[noisy.is_noisy] != noisy.clean_labels[noisy.is_noisy])
  assert claims[0].measured == min(m["test_error"] for m in metrics)
  assert (tmp_path / "u_curve.png").stat().st_size > 10_000
  saved = json.loads((tmp_path / "claims.json").read_text())
  assert [c["id"] for c in saved] == [c.id for c in claims]
  assert saved[0]["passed"] == (saved[0]["measured"] < 0.3)
