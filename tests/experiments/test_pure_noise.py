"""End to end: pure_noise's tiny preset writes its records, figures, metrics and claims."""

import dataclasses
import json

import pytest

from experiments import pure_noise
from noisejax import experiment
from noisejax.errors import ConfigError

IDS = ["theorem1/theorem1_layers_balanced", "theorem1/cor1_gradient_flow_monotone",
       "single/theorem2_hinge_equilibrium_dh", "single/theorem2_logistic_equilibrium",
       "single/theorem2_linear_decay", "hidden/fig3_no_bias_weights_decay",
       "hidden/fig3_hinge_faster_than_logistic", "hidden/fig4_bias_weights_stay",
       "hidden/fig4_relu_death", "hidden/fig4_biases_decrease", "hidden/theorem1_trained_sgd",
       "hidden/fig4_death_time_scales_as_inverse_h2", "basis/theorem3_outputs_vanish",
       "basis/theorem4_large_h_all_dead", "basis/theorem4_small_h_half_alive",
       "mnist/thm4_mnist_all_dead_at_h_0.001", "mnist/thm4_mnist_larger_h_sparser"]
FIGURES = ("fig2_single_neuron.png", "fig3_no_bias.png", "fig4_with_bias.png",
           "thm34_standard_basis.png")


def _execute(config, workdir, **kwargs):
  return experiment.execute("pure_noise", config, workdir, pure_noise.PARTS,
                            validate=pure_noise.validate, **kwargs)


def test_tiny_preset_end_to_end(tmp_path):
  config = pure_noise.get_config("tiny")
  claims = _execute(config, tmp_path)
  assert [c.id for c in claims] == IDS
  passed = {c.id for c in claims if c.passed}
  # Theorem 1's identity, Cor. 1, Theorems 3 and 4.1 are exact: they hold at any size.
  assert {IDS[0], IDS[1], IDS[12], IDS[13]} <= passed
  saved = json.loads((tmp_path / "claims.json").read_text())
  assert [c["id"] for c in saved] == IDS and [c["passed"] for c in saved] == [
      c.passed for c in claims]

  rows = experiment.load_record(tmp_path / "records" / "theorem1")["rows"]
  assert len(rows) == 2 * 4  # (mlp depth 2, conv) × (relu, leaky relu) × (hinge, logistic)
  assert claims[0].measured["cases"] == sum(r["misclassified"] for r in rows)
  flow = experiment.load_record(tmp_path / "records" / "theorem1")["flow"]
  assert set(flow) == {"depth2_h0.02", "depth2_h0.005"}
  assert flow["depth2_h0.005"]["norms"].shape == (2, 11, 2)  # S×R×L: t = 2, every 0.2
  single = experiment.load_record(tmp_path / "records" / "single")
  assert single["mean_norms"]["hinge"].shape == (4, 2000 // 100 + 1)  # H×R
  hidden = experiment.load_record(tmp_path / "records" / "hidden")
  assert hidden["curves"]["bias_logistic"]["b_tracked_seed0"].shape == (2000 // 200 + 1, 8)
  assert claims[11].measured["exponent"] == hidden["exponent"]
  assert len(hidden["scaling"]) == 3
  t1 = claims[10].measured["nobias_hinge"]
  assert 0 <= t1["first_tenth"] <= 1 and len(t1["per_seed"]) == 2
  basis = experiment.load_record(tmp_path / "records" / "basis")["rows"]
  assert {r["k"] for r in basis} == {8, 32} and len(basis) == 2 * 6
  mnist = experiment.load_record(tmp_path / "records" / "mnist")
  assert mnist["records"]["active_fraction"].shape == (3, 2, 2)  # H×S×R
  for name in FIGURES:
    assert (tmp_path / name).stat().st_size > 10_000
  metrics = [json.loads(l) for l in (tmp_path / "metrics.jsonl").read_text().splitlines()]
  assert any("single_hinge_norm_h1" in m for m in metrics)
  assert set(json.loads((tmp_path / "timings.json").read_text())) == set(pure_noise.PARTS)

  (tmp_path / FIGURES[0]).unlink()
  replotted = _execute(config, tmp_path, replot=True)
  assert [dataclasses.asdict(c) for c in replotted] == [dataclasses.asdict(c) for c in claims]
  assert (tmp_path / FIGURES[0]).exists()


def test_bad_config_fails_before_anything_runs(tmp_path):
  config = pure_noise.get_config("tiny")
  config.single.record_every = 0
  with pytest.raises(ConfigError, match="single.record_every"):
    _execute(config, tmp_path)
  config = pure_noise.get_config("tiny")
  config.parts = ("theorem5",)
  with pytest.raises(ConfigError, match="parts"):
    _execute(config, tmp_path)
  assert not any(tmp_path.iterdir())
