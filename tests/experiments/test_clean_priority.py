"""clean_priority: the tiny preset end to end (claims, records, figures, --replot), the
claims on hand-made histories, the config checks and the eq. 8 / 14 predictions."""

import dataclasses
import json

import numpy as np
import pytest

from experiments import clean_priority as cp
from experiments import clean_priority_claims as cp_claims
from noisejax import experiment, noise
from noisejax.errors import ConfigError
from noisejax.theory import ntk_angles

RUN_CLAIMS = ("init_angle_noise_clean", "init_ratio", "ratio_falls_to_about_1",
              "ratio_decreases_before_es", "assumption_4_1", "prop_4_2_gd_follows_clean_gradient",
              "clean_priority_before_es", "thm_4_4_subset_losses",
              "best_test_below_noise_and_final")
BINARY_CLAIMS = RUN_CLAIMS + ("remark_3_3_theta_h_constant", "later_stage_fits_noise")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
  workdir = tmp_path_factory.mktemp("clean_priority")
  config = cp.get_config("tiny")
  claims = experiment.execute("clean_priority", config, workdir, cp.PARTS, validate=cp.validate)
  return config, workdir, claims


def test_tiny_preset_claims_records_and_figures(tiny):
  config, workdir, claims = tiny
  runs = [("binary", "d0.4"), ("binary", "d0.3"), ("widths", "width8"),
          ("multiclass", "d0.3"), ("noise_levels", "d0.1")]
  expected = [f"{p}/{t}_{n}" for p, t in runs[:2] for n in BINARY_CLAIMS]
  expected += [f"histograms/{n}_{c}" for n in ("synthetic_clusters", "MNIST_0_vs_1", "MNIST_7_vs_9")
               for c in ("noise_opposite", "other_separated_orthogonal")]
  expected += [f"widths/width8_{n}" for n in BINARY_CLAIMS] + ["widths/remark_3_3_wider_moves_less"]
  expected += [f"multiclass/d0.3_{n}" for n in RUN_CLAIMS] + ["multiclass/d0.3_fig10_other_separated_orthogonal"]
  expected += [f"noise_levels/d0.1_{n}" for n in RUN_CLAIMS]
  assert [c.id for c in claims] == expected  # width16 and noise level 0.3 are copied runs
  saved = json.loads((workdir / "claims.json").read_text())
  assert [(c["id"], c["passed"]) for c in saved] == [(c.id, c.passed) for c in claims]

  record = {p: experiment.load_record(workdir / "records" / p) for p, _ in runs}
  assert record["widths"]["runs"]["width16"]["copied_from"] == "binary/d0.4"
  assert record["noise_levels"]["runs"]["d0.3"]["copied_from"] == "multiclass/d0.3"
  # Diagnostics every diag_every evaluations: each epoch in multiclass, every 2nd at δ = 0.1.
  mc = record["multiclass"]["runs"]["d0.3"]["history"]
  assert [r["epoch"] for r in mc] == [0, 1, 2]
  assert all("ratio_c9" in r and "noisy_residual_l2" in r and "val_error" in r for r in mc)
  levels = record["noise_levels"]["runs"]["d0.1"]["history"]
  assert ["ratio_mean" in r for r in levels] == [True, False, True]
  assert "noisy_residual_l2" not in record["binary"]["runs"]["d0.4"]["history"][0]

  # The histogram of the binary run's w0 (train_classifier with zero epochs) has the
  # angles that the run's own diagnostics measured at step 0, by another persample route.
  hist = experiment.load_record(workdir / "records" / "histograms")
  assert hist["copied_from"] == "binary/d0.3"
  panel = hist["panels"][2]
  angles = next(c for c in claims if c.id == "binary/d0.3_init_angle_noise_clean").measured
  np.testing.assert_allclose(panel["stats"]["subset_angles_Cx3"][:, 1],
                             [angles["c0"], angles["c1"]], atol=0.05)
  assert panel["stats"]["masks_BxCx3"].shape == (120, 2, 3)  # every binary training sample

  noisy = noise.NoisyLabels.load(workdir / "binary_d0.4" / "noise.npz")
  assert len(noisy.labels) == 120  # 160 images, 40 held out
  assert noisy.is_noisy.sum() == np.floor(0.4 * np.bincount(noisy.clean_labels) + 0.5).sum()
  metrics = experiment.Run("r", config, workdir / "binary_d0.4").read_metrics()
  assert [m["epoch"] for m in metrics] == [0, 1, 2] and "ratio_c1" in metrics[0]
  for name in ("fig4_theta_g_histograms", "fig5_binary_dynamics_d0.4",
               "fig5_binary_dynamics_d0.3", "fig6_binary_ratio_assumption41",
               "fig11left_binary_subset_losses", "fig12_widths",
               "fig1_fig7top_multiclass_dynamics", "fig8left_multiclass_ratio",
               "fig10_single_logit_histograms", "fig11middle_multiclass_subset_losses",
               "fig13_noise_levels"):
    assert (workdir / f"{name}.png").stat().st_size > 10_000, name


def test_replot_gives_the_same_claims(tiny):
  config, workdir, claims = tiny
  again = experiment.execute("clean_priority", config, workdir, cp.PARTS, replot=True,
                             validate=cp.validate)
  assert [dataclasses.asdict(c) for c in again] == [dataclasses.asdict(c) for c in claims]


def _history(ratios, test_errors, cos=-0.99):
  """A binary run: val_error (the ES key) follows the test error; every record diagnosed."""
  n = len(ratios)
  return [dict(step=t, epoch=float(t), test_error=test, val_error=0.4 + 0.2 * test,
               train_error=max(0.0, 0.5 - 0.1 * t), clean_error=0.5 - 0.05 * t,
               noisy_error=0.5 + 0.05 * t if t <= n // 2 else 0.0,
               noisy_residual=0.5 + 0.01 * t, clean_loss=0.7 - 0.05 * t,
               noisy_loss=0.7 + 0.05 * t if t <= n // 2 else 0.7 - 0.05 * t,
               ratio_mean=ratio, ratio_c0=ratio, ratio_c1=ratio, cos_c0=cos, cos_c1=cos,
               cos_mean=cos, alpha_mean=1 / ratio, pbar_c0=0.5, pbar_c1=0.5, grad_cos=0.95)
          for t, (ratio, test) in enumerate(zip(ratios, test_errors))]


def _claims(rate, history):
  rec = {"history": history, "rate": rate, "num_classes": 2, "num_outputs": 1}
  th = cp.get_config("quick").thresholds
  return {c.id.split("_", 1)[1]: c for c in cp_claims.run_claims("x", rec, th)}


def test_run_claims_pass_and_fail_on_hand_made_histories():
  ratios = [1.5, 1.45, 1.4, 1.35, 1.3, 1.25, 1.2, 1.15, 1.1, 1.05, 1.0, 1.0, 0.98, 0.97, 0.96,
            0.95, 0.95, 0.94, 0.93, 0.92]
  tests = [0.5, 0.4, 0.35, 0.3, 0.25, 0.2, 0.18, 0.16, 0.15, 0.14, 0.13, 0.16, 0.2, 0.25, 0.3,
           0.33, 0.35, 0.36, 0.37, 0.38]
  good = _claims(0.4, _history(ratios, tests))
  assert list(good) == list(RUN_CLAIMS)
  assert all(c.passed for c in good.values()), [c for c in good.values() if not c.passed]
  assert good["ratio_falls_to_about_1"].expected == (
      "|ratio − 1| at the last diagnostic ≤ t_ES (geometric mean over c) ≤ 0.2")
  # Too few points before the ES point: the trend claims fail however monotone.
  short = _claims(0.4, _history(ratios[:6] + [1.0] * 4, [0.5, 0.3, 0.2, 0.15, 0.13, 0.12,
                                                        0.2, 0.3, 0.35, 0.4]))
  assert not short["ratio_decreases_before_es"].passed
  bad = _claims(0.4, _history([1.5 + 0.05 * t for t in range(20)],
                              [0.5 - 0.004 * t for t in range(20)], -0.5))
  for name in ("init_angle_noise_clean", "ratio_falls_to_about_1", "ratio_decreases_before_es",
               "assumption_4_1", "best_test_below_noise_and_final"):
    assert not bad[name].passed, name
  # The condition of eq. 8 (f(w0) ≈ 1/2) fails for one class: init_ratio fails.
  skewed = _history(ratios, tests)
  skewed[0]["pbar_c1"] = 0.2
  assert not _claims(0.4, skewed)["init_ratio"].passed
  above = _claims(0.6, _history([0.6, 0.6], [0.5, 0.7]))
  assert list(above) == ["majority_noise_is_learned"] and above["majority_noise_is_learned"].passed


@pytest.mark.parametrize("field, value, message", [
    ("parts", ("histograms", "binary"), "put binary before histograms"),
    ("method", "jacfwd", "valid: auto, taps, vmap"),
    ("noise_levels.diag_every", 0, "config.noise_levels.diag_every=0"),
])
def test_bad_configs_fail_before_anything_runs(tmp_path, field, value, message):
  config = cp.get_config("tiny")
  experiment.apply_override(config, field, repr(value) if not isinstance(value, str) else value)
  with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
    experiment.execute("clean_priority", config, tmp_path / "run", cp.PARTS, validate=cp.validate)
  assert not (tmp_path / "run").exists()
