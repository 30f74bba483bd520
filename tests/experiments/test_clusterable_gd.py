"""End to end: clusterable_gd's tiny preset writes every part's record, figures, the CNN
trainings' metrics and probes, and claims that --replot reproduces from the records."""

import json

import numpy as np
import pytest

from experiments import clusterable_gd
from noisejax import early_stopping, experiment
from noisejax.errors import ConfigError
from noisejax.noise import NoisyLabels

CLAIMS = [
    "covariance/closed_form_matches_mc", "covariance/lambda_lower_bound",
    "covariance/lambda_scaling_with_K", "fig5/early_fits_true_labels", "fig5/overfits_late",
    "fig5/loss_separated_early", "fig5/loss_overlap_late", "fig5/jacobian_mechanism",
    "perfect/no_overfitting", "perfect/theorem_9_2_bound",
    "perfect/theorem_10_8_jacobian", "distance/fit_needs_more_distance",
    "distance/fit_distance_sqrt_s", "distance/early_stop_close_to_init",
    "distance/theorem_2_2_held_out", "distance/width_independent",
    "sweeps/fig1/mnist/converged_fits_corruption", "sweeps/fig1/mnist/early_stopping_robust",
    "sweeps/fig3/mnist/distance_grows_with_corruption", "sweeps/fig4ab/mnist/loss_separation",
    "jacobian/few_large_singular_values", "jacobian/spectra_close_before_after",
    "jacobian/residual_vs_corruption_subspace"]
FIGURES = ["fig5a_training_error.png", "fig5bc_loss_histograms.png", "perfect_clusters.png",
           "distance_from_init_clusterable.png", "fig1_mnist_accuracy_vs_corruption.png",
           "fig3_mnist_accuracy_vs_distance.png", "fig4ab_mnist_loss_histograms.png",
           "fig4c_jacobian_spectrum.png"]


def test_tiny_preset_end_to_end_and_replot(tmp_path):
  config = clusterable_gd.get_config("tiny")
  claims = experiment.execute("clusterable_gd", config, tmp_path, clusterable_gd.PARTS,
                              validate=clusterable_gd.validate)
  assert [c.id for c in claims] == CLAIMS  # the 23 claims of the quick run, in order
  saved = json.loads((tmp_path / "claims.json").read_text())
  assert [(c["id"], c["passed"]) for c in saved] == [(c.id, c.passed) for c in claims]
  for name in FIGURES:
    assert (tmp_path / name).stat().st_size > 5_000, name
  by_id = {c.id: c for c in claims}
  # ε0 = 0: GD stays cluster-constant and ends at Π_{S₊}(y), within Thm 9.2's bound.
  assert by_id["perfect/theorem_9_2_bound"].passed
  assert by_id["covariance/closed_form_matches_mc"].passed
  assert json.loads((tmp_path / "timings.json").read_text()).keys() == set(clusterable_gd.PARTS)

  perfect = experiment.load_record(tmp_path / "records" / "perfect")
  fig5 = experiment.load_record(tmp_path / "records" / "fig5")
  np.testing.assert_allclose(perfect["fig5_error_true"], fig5["error_true_SxT"].mean(0))
  sweep = experiment.load_record(tmp_path / "records" / "sweeps")["mnist"]
  assert [r["rate"] for r in sweep] == [0.0, 0.3, 0.5]
  for r in sweep:  # each rate: its own label draw, 300 training images, early stopping on
    noisy = NoisyLabels.load(tmp_path / f"mnist_noise{r['rate']:g}" / "noise.npz")
    assert len(noisy.labels) == 300 and np.array_equal(noisy.is_noisy, r["is_noisy"])
    assert r["early"] == early_stopping.point(r["history"])  # the noisy held-out split
    assert r["history"][0]["distance"] == 0 and r["history"][-1]["relative_distance"] > 0
    metrics = (tmp_path / f"mnist_noise{r['rate']:g}" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(m)["epoch"] for m in metrics] == [0, 1, 2]
  assert 0.3 < sweep[2]["realized"] < 0.6  # half the labels redrawn uniformly over 10 classes
  jac = by_id["jacobian/few_large_singular_values"].measured
  assert jac["n"] == 40 and 1 <= jac["init"] <= 40

  (tmp_path / "claims.json").unlink()
  for name in FIGURES:
    (tmp_path / name).unlink()
  replotted = experiment.execute("clusterable_gd", config, tmp_path, clusterable_gd.PARTS,
                                 replot=True, validate=clusterable_gd.validate)
  assert replotted == claims
  assert all((tmp_path / name).exists() for name in FIGURES)


def test_experiment_specific_config_errors_are_one_line(tmp_path):
  config = clusterable_gd.get_config("tiny")
  config.fig5.early_step = 25
  with pytest.raises(ConfigError, match="fig5.early_step"):
    experiment.execute("clusterable_gd", config, tmp_path, clusterable_gd.PARTS,
                       validate=clusterable_gd.validate)
  config = clusterable_gd.get_config("tiny")
  config.jacobian.data.classes = (3, 5, 7)
  with pytest.raises(ConfigError, match="jacobian.data.classes"):
    clusterable_gd.validate(config)
  config = clusterable_gd.get_config("tiny")
  config.sweeps.mnist.figures = ("fig2",)
  with pytest.raises(ConfigError, match="sweeps.mnist.figures"):
    clusterable_gd.validate(config)
  assert not any(tmp_path.iterdir())  # nothing ran
