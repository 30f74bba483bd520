"""Clean-priority subset-gradient diagnostics (§3.2, §4, §5) and the experiment on tiny data."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from noisejax import experiment, losses, models, noise, persample, synthetic
from noisejax.theory import ntk_angles


def _multiclass_setup(num_classes=4, n=24, seed=0):
  model = models.get_model("mlp", num_classes, hidden=(8,))
  x = jax.random.normal(jax.random.key(seed), (n, 5))
  true = jnp.arange(n) % num_classes
  given = jnp.where(jnp.arange(n) % 3 == 0, (true + 1) % num_classes, true)
  variables = model.init(jax.random.key(seed + 1), x[:1])
  return model, variables, x, given, true


def test_predicted_ratios_eq8_eq14():
  assert ntk_angles.predicted_ratio(0.4, 2, num_outputs=1) == pytest.approx(1.5)
  assert ntk_angles.predicted_ratio(0.3, 10, num_outputs=10) == pytest.approx(21.0)


def test_single_logit_gradients_sum_to_the_full_gradient_and_give_the_subset_norms():
  model, variables, x, given, true = _multiclass_setup()
  apply_fn = persample.eval_apply_fn(model)
  params = variables["params"]
  onehot = jax.nn.one_hot(given, 4)
  per_logit = persample.flatten_tree(jax.tree.map(
      lambda g: g.reshape((-1,) + g.shape[2:]),
      persample.single_logit_grads(apply_fn, params, x, onehot))).reshape(24, 4, -1)
  ce = losses.make_loss("cross_entropy", 4)
  full = persample.flatten_tree(persample.per_sample_grads(
      lambda p, xi, yi: ce(apply_fn(p, xi[None]), yi[None])[0], params, (x, given)))
  np.testing.assert_allclose(per_logit.sum(1), full, atol=1e-5)

  stats = ntk_angles.subset_gradient_stats(model, variables, x, given, true, num_classes=4)
  masks = np.asarray(persample.subset_masks(true, given, 4))
  for c in range(4):
    sums = [(per_logit[:, c] * masks[:, c, k][:, None]).sum(0) for k in range(3)]
    np.testing.assert_allclose(stats["norms_Cx3"][c], [jnp.linalg.norm(s) for s in sums],
                               rtol=1e-4)
    cos = sums[1] @ sums[0] / (jnp.linalg.norm(sums[1]) * jnp.linalg.norm(sums[0]))
    np.testing.assert_allclose(np.cos(np.radians(stats["subset_angles_Cx3"][c, 1])), cos,
                               atol=1e-4)


@pytest.mark.parametrize("num_classes", [2, 4])
def test_by_class_route_equals_the_full_computation(num_classes):
  model, variables, x, given, true = _multiclass_setup(num_classes)
  if num_classes == 2:
    model = models.get_model("mlp", 1, hidden=(8,))
    variables = model.init(jax.random.key(1), x[:1])
  full = ntk_angles.subset_gradient_stats(model, variables, x, given, true,
                                          num_classes=num_classes)
  idx, valid = ntk_angles.group_by_true_class(np.asarray(true), num_classes, 24 // num_classes,
                                              jax.random.key(0))
  assert valid.all() and all((np.asarray(true)[idx[c]] == c).all() for c in range(num_classes))
  norms, cos = ntk_angles.clean_noise_stats_by_class(
      model, variables, x[idx], given[idx], (given == true)[idx], jnp.asarray(valid))
  np.testing.assert_allclose(norms, full["norms_Cx3"][:, :2], rtol=1e-4)
  np.testing.assert_allclose(cos, np.cos(np.radians(full["subset_angles_Cx3"][:, 1])), atol=1e-4)


def test_group_by_true_class_pads_small_classes():
  idx, valid = ntk_angles.group_by_true_class(np.array([0, 0, 0, 1]), 2, 3, jax.random.key(0))
  assert idx.shape == (2, 3) and valid.sum(1).tolist() == [3, 1]
  assert (idx[1] == 3).all()


def test_eq8_ratio_and_opposite_subset_gradients_when_f_is_one_half():
  """§3.2 / eq. 8: with f(w0; x) = 1/2 everywhere, g_noise^(c) ≈ −(δ/(1 − δ)) g_clean^(c).

  The output layer is zeroed so that f = σ(0) = 1/2 exactly: residuals are ±1/2, and on the
  tight Fig. 3 clusters ∇h barely varies within a cluster, so the ratio is the population
  ratio 140/60 and the angle ≈ 180°.
  """
  x, y = synthetic.two_clusters_2d(jax.random.key(0), 200, spread=0.1)
  noisy = noise.corrupt(jax.random.key(1), np.asarray(y), 2, "symmetric", 0.3)
  model = models.get_model("mlp", 1, hidden=(64,))
  variables = model.init(jax.random.key(2), x[:1])
  variables["params"]["output"] = jax.tree.map(jnp.zeros_like, variables["params"]["output"])
  stats = ntk_angles.subset_gradient_stats(
      model, variables, x, jnp.asarray(noisy.labels), jnp.asarray(noisy.clean_labels),
      num_classes=2)
  assert np.all(stats["subset_angles_Cx3"][:, 1] > 178)
  np.testing.assert_allclose(stats["ratio_C"], 0.7 / 0.3, rtol=0.02)
  clean = stats["masks_BxCx3"][:, :, 0]
  noisy_mask = stats["masks_BxCx3"][:, :, 1]
  for c in (0, 1):  # per-sample θ_g: clean samples along g_clean, noisy ones against it
    assert np.all(stats["angles_CxB"][c][clean[:, c]] < 30)
    assert np.all(stats["angles_CxB"][c][noisy_mask[:, c]] > 150)


def _history(ratios, test_errors, cos=-0.99):
  h = []
  for t, (ratio, test) in enumerate(zip(ratios, test_errors)):
    h.append(dict(step=t, epoch=float(t), test_error=test, clean_error=0.5 - 0.05 * t,
                  noisy_error=0.5 + 0.05 * t, noisy_residual=0.5 + 0.01 * t, ratio_mean=ratio,
                  ratio_c0=ratio, ratio_c1=ratio, cos_c0=cos, cos_c1=cos, cos_mean=cos,
                  alpha_mean=1 / ratio))
  return h


def test_run_claims_pass_and_fail_on_hand_made_histories():
  from experiments import clean_priority as module
  th = module.get_config("quick").thresholds
  good = module.Result("x", 0.4, 2, 1, _history([1.5, 1.3, 1.1, 1.0, 0.9], [0.5, 0.3, 0.2, 0.3, 0.35]))
  claims = {c.id.split("/")[1]: c for c in module.run_claims(good, th)}
  assert all(c.passed for c in claims.values()), [c for c in claims.values() if not c.passed]
  bad = module.Result("x", 0.4, 2, 1, _history([1.5, 1.6, 1.7, 1.8, 1.9], [0.5, 0.45, 0.42, 0.41, 0.4],
                                               cos=-0.5))
  claims = {c.id.split("/")[1]: c for c in module.run_claims(bad, th)}
  for name in ("init_angle_noise_clean", "ratio_falls_to_about_1", "ratio_decreases_before_es",
               "assumption_4_1", "best_test_below_noise_and_final"):
    assert not claims[name].passed, name
  above = module.Result("x", 0.6, 2, 1, _history([0.6, 0.6], [0.5, 0.7]))
  (claim,) = module.run_claims(above, th)
  assert claim.id == "x/majority_noise_is_learned" and claim.passed


@pytest.mark.slow
def test_clean_priority_experiment_tiny(tmp_path):
  from experiments import clean_priority as module
  cfg = module.get_config("quick")
  cfg.parts = ("histograms", "binary", "multiclass")
  cfg.histograms.width = 16
  cfg.histograms.clusters.n_per_cluster = 10
  cfg.histograms.mnist.limit = 40
  cfg.binary.data.limit = 80
  cfg.binary.rates = (0.3,)
  cfg.binary.model.hidden = (16, 16)
  cfg.binary.optim.update(batch_size=40, epochs=1)
  cfg.multiclass.data.limit = 100
  cfg.multiclass.model = {"name": "mlp", "hidden": (16,)}  # the CNN's code path, a small net
  cfg.multiclass.optim.update(batch_size=50, epochs=1)
  cfg.multiclass.diag_per_class = 6
  cfg.method = "vmap"  # compiles faster than the tap route on these tiny nets
  claims = experiment.execute("clean_priority", cfg, tmp_path, module.run)
  ids = {c.id for c in claims}
  for tag in ("binary_d0.3", "multiclass_d0.3"):
    assert {f"{tag}/init_ratio", f"{tag}/assumption_4_1", f"{tag}/clean_priority_before_es",
            f"{tag}/best_test_below_noise_and_final"} <= ids
  assert sum(c.id.startswith("fig4/") for c in claims) == 3
  for name in ("fig4_theta_g_histograms.png", "fig5_binary_dynamics_d0.3.png",
               "fig6_binary_ratio_assumption41.png", "fig10_single_logit_histograms.png",
               "fig8left_multiclass_ratio.png", "fig11_subset_losses.png"):
    assert (tmp_path / name).exists(), name
  records = experiment.Run("r", cfg, tmp_path / "multiclass_d0.3").read_metrics()
  assert "ratio_c9" in records[0] and "noisy_residual_l2" in records[0]
