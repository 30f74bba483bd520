"""End to end: the u_curve experiment on a tiny slice of mnist5k."""

import json

import numpy as np

from experiments import u_curve
from noisejax import experiment
from noisejax.noise import NoisyLabels


def test_u_curve_tiny_run_writes_everything(tmp_path):
  config = u_curve.get_config("quick")
  config.data.limit = 400
  config.optim.batch_size = 50
  config.optim.epochs = 3
  claims = experiment.execute("u_curve", config, tmp_path, u_curve.run)

  assert [c.id for c in claims] == ["u_curve/best_test_below_noise", "u_curve/u_shape",
                                    "u_curve/memorizes_noise"]
  metrics = [json.loads(l) for l in (tmp_path / "metrics.jsonl").read_text().splitlines()]
  assert [m["epoch"] for m in metrics] == [0, 1, 2, 3]
  assert min(m["test_error"] for m in metrics) < 0.5  # it learns from 280 clean labels
  noisy = NoisyLabels.load(tmp_path / "noise.npz")
  assert noisy.is_noisy.sum() == 120  # exactly 30% of each class of 40
  assert np.all(noisy.labels[noisy.is_noisy] != noisy.clean_labels[noisy.is_noisy])
  assert claims[0].measured == min(m["test_error"] for m in metrics)
  assert (tmp_path / "u_curve.png").stat().st_size > 10_000
  assert json.loads((tmp_path / "claims.json").read_text())[0]["id"] == claims[0].id
