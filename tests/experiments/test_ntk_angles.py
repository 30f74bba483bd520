"""End to end: ntk_angles' tiny preset writes its records, figures and claims; --replot."""

import json

import numpy as np
import pytest

from experiments import ntk_angles
from noisejax import experiment
from noisejax.errors import ConfigError


def test_tiny_preset_end_to_end(tmp_path):
  config = ntk_angles.get_config("tiny")
  claims = experiment.execute("ntk_angles", config, tmp_path, ntk_angles.PARTS,
                              validate=ntk_angles.validate)
  by_id = {c.id: c for c in claims}
  assert list(by_id) == ["fig2/thm3.1_linear_two_layer", "fig2/thm3.1_relu_two_layer",
                         "fig2/cor3.2_monotone", "fig2/deep_nets_follow_ntk_limit",
                         "fig3/within_smaller_than_between"]
  assert by_id["fig3/within_smaller_than_between"].passed  # separated clusters, any width
  assert by_id["fig2/cor3.2_monotone"].measured["closed_form"] == {"linear": True, "relu": True}
  record = experiment.load_record(tmp_path / "records" / "fig2")
  assert record["theta_d_K"].shape == (9,)                  # 16 points on S¹: θ_d ∈ [0, π]
  assert set(record["theta_h_SxK"]) == {"linear_2", "linear_3", "relu_2", "relu_3"}
  theta_h = record["theta_h_SxK"]["relu_2"]
  assert theta_h.shape == (2, 9)
  np.testing.assert_allclose(theta_h[:, 0], 0, atol=2e-3)  # ∠(∇h(x), ∇h(x)) = 0
  # The claim is computed from the record: the 2-layer linear deviation, recomputed.
  closed = record["theta_d_K"]                              # θ_h = θ_d for linear nets
  deviation = np.abs(record["theta_h_SxK"]["linear_2"].mean(0) - closed).max()
  assert by_id["fig2/thm3.1_linear_two_layer"].measured["max_deviation_rad"] == pytest.approx(
      deviation, rel=1e-5)
  fig3 = experiment.load_record(tmp_path / "records" / "fig3")
  assert len(fig3["within"]) == 2 * 8 * 7 // 2 and len(fig3["between"]) == 8 * 8
  for name in ("fig2_theta_h_vs_theta_d.png", "fig3_cluster_angles.png"):
    assert (tmp_path / name).stat().st_size > 10_000
  saved = json.loads((tmp_path / "claims.json").read_text())
  replotted = experiment.execute("ntk_angles", config, tmp_path, ntk_angles.PARTS, replot=True)
  assert [c.measured for c in replotted] == [c["measured"] for c in saved]
  assert [c.passed for c in replotted] == [c["passed"] for c in saved]


def test_bad_grid_fails_before_anything_runs(tmp_path):
  config = ntk_angles.get_config("tiny")
  config.num_points = 15
  with pytest.raises(ConfigError, match=r"config\.num_points=15"):
    experiment.execute("ntk_angles", config, tmp_path / "run", ntk_angles.PARTS,
                       validate=ntk_angles.validate)
  config = ntk_angles.get_config("tiny")
  config.activations = ("linear", "tanh")
  with pytest.raises(ConfigError, match=r"config\.activations='tanh'"):
    ntk_angles.validate(config)
  assert not (tmp_path / "run").exists()
