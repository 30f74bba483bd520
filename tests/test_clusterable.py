"""Tests of noisejax.theory.clusterable (Li, Soltanolkotabi & Oymak)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from noisejax import models, synthetic
from noisejax.errors import ConfigError
from noisejax.theory import clusterable as cl


def _unit_rows(key, k, d):
  c_KxD = jax.random.normal(key, (k, d))
  return c_KxD / jnp.linalg.norm(c_KxD, axis=1, keepdims=True)


def test_relu_closed_form_matches_monte_carlo():
  centers_KxD = _unit_rows(jax.random.PRNGKey(0), 6, 8)
  exact_KxK = cl.cluster_covariance(centers_KxD)
  mc_KxK = cl.cluster_covariance_mc(jax.random.PRNGKey(1), centers_KxD, num_samples=200_000,
                                    batch_size=20_000)
  np.testing.assert_allclose(np.diag(exact_KxK), 0.5, atol=1e-6)  # θ_ii = 0 → ½
  np.testing.assert_allclose(mc_KxK, exact_KxK, atol=6e-3)
  assert cl.min_eigenvalue(exact_KxK) > 0.05
  assert abs(cl.min_eigenvalue(mc_KxK) - cl.min_eigenvalue(exact_KxK)) < 1e-2


def test_relu_kernel_known_angles():
  centers_KxD = jnp.array([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])
  kernel_KxK = cl.relu_derivative_kernel(centers_KxD)
  np.testing.assert_allclose(kernel_KxK[0, 1], 0.25, atol=1e-6)  # orthogonal: (π − π/2)/2π
  np.testing.assert_allclose(kernel_KxK[0, 2], 0.0, atol=1e-6)   # opposite: never both > 0
  sigma_KxK = cl.cluster_covariance(centers_KxD)
  np.testing.assert_allclose(sigma_KxK[0, 2], 0.0, atol=1e-6)


def test_identical_centers_give_zero_lambda_and_smooth_activation_mc():
  c_KxD = _unit_rows(jax.random.PRNGKey(2), 3, 5)
  repeated_KxD = jnp.concatenate([c_KxD, c_KxD[:1]])
  assert abs(cl.min_eigenvalue(cl.cluster_covariance(repeated_KxD))) < 1e-5
  sigma_KxK = cl.cluster_covariance_mc(jax.random.PRNGKey(3), c_KxD, activation="tanh",
                                       num_samples=100_000)
  # E[sech⁴(g)], g ~ N(0, 1), on the diagonal (unit-norm centers).
  g = np.random.default_rng(0).standard_normal(1_000_000)
  np.testing.assert_allclose(np.diag(sigma_KxK), np.mean(np.cosh(g) ** -4.0), atol=5e-3)
  with pytest.raises(ConfigError):
    cl.cluster_covariance_mc(jax.random.PRNGKey(3), c_KxD, activation="swish")


def test_signal_projection_is_projection_onto_cluster_constant_vectors():
  cluster_id_N = jnp.array([0, 0, 1, 2, 2, 2, 1, 0, 2])
  p_NxN = cl.signal_projection_matrix(cluster_id_N, 3)
  np.testing.assert_allclose(p_NxN @ p_NxN, p_NxN, atol=1e-6)
  np.testing.assert_allclose(p_NxN, p_NxN.T, atol=1e-7)
  assert np.isclose(np.trace(p_NxN), 3.0)  # rank K
  v_N = jax.random.normal(jax.random.PRNGKey(4), (9,))
  projected_N = cl.signal_projection(v_N, cluster_id_N, 3)
  np.testing.assert_allclose(projected_N, p_NxN @ v_N, atol=1e-6)
  for ell in range(3):  # constant on each cluster, equal to the cluster mean
    np.testing.assert_allclose(projected_N[cluster_id_N == ell], v_N[cluster_id_N == ell].mean(),
                               atol=1e-6)
  constant_N = jnp.array([5.0, -1.0, 2.0])[cluster_id_N]
  np.testing.assert_allclose(cl.signal_projection(constant_N, cluster_id_N, 3), constant_N, atol=1e-6)
  residual_N = v_N - projected_N  # orthogonal to S₊
  assert abs(float(residual_N @ constant_N)) < 1e-5


def _perfect_clusters(key, num_clusters, n, d, rho):
  """ε0 = 0 data (every x_i is its cluster center), exactly round(ρ n_ℓ) labels flipped per cluster."""
  return synthetic.clusterable(key, n, d, num_clusters, 2, 0.0, corruption=rho, flip_to_other=True)


def test_lemma_10_10_and_diffusedness():
  data = _perfect_clusters(jax.random.PRNGKey(5), 4, 40, 5, 0.2)
  assert int(data.is_noisy.sum()) == 8
  alphas = cl.class_values(2)
  y_N, y_true_N = alphas[data.labels], alphas[data.clean_labels]
  bound = cl.theorem92_bound(y_N, y_true_N, data.cluster_id, 4)
  np.testing.assert_allclose(bound, 2 * 0.2, atol=1e-6)  # |e| = 1, 2 of 10 flipped per cluster
  assert cl.diffusedness(data.cluster_id, 4) == 4.0
  assert bound <= cl.sparse_corruption_bound(y_N, y_true_N, data.cluster_id, 4) + 1e-6


def test_ntk_gram_matches_autodiff_jacobian():
  key_w, key_x = jax.random.split(jax.random.PRNGKey(6))
  w_KxD = cl.init_hidden(key_w, 12, 4)
  v_K = cl.output_weights(12)
  x_NxD = jax.random.normal(key_x, (7, 4))
  for activation in ("relu", "softplus"):
    jac_NxKxD = jax.jacrev(lambda w: cl.network(w, v_K, x_NxD, activation))(w_KxD)
    j_NxP = jac_NxKxD.reshape(7, -1)
    np.testing.assert_allclose(cl.ntk_gram(w_KxD, v_K, x_NxD, activation), j_NxP @ j_NxP.T,
                               rtol=1e-4, atol=1e-5)
  assert float(jnp.sum(v_K)) == pytest.approx(0.0) and float(v_K @ v_K) == pytest.approx(1.0)


def test_gradient_descent_matches_explicit_steps():
  key_w, key_x, key_y = jax.random.split(jax.random.PRNGKey(7), 3)
  w0_KxD = cl.init_hidden(key_w, 16, 3)
  v_K = cl.output_weights(16)
  x_NxD = jax.random.normal(key_x, (5, 3))
  y_N = jax.random.normal(key_y, (5,))
  trace = cl.gradient_descent(w0_KxD, v_K, x_NxD, y_N, 0.05, num_steps=6, record_every=2)
  assert trace.outputs_TxN.shape == (4, 5) and trace.distance_T.shape == (4,)
  w_KxD = w0_KxD
  for _ in range(6):
    w_KxD = w_KxD - 0.05 * jax.grad(cl.squared_loss)(w_KxD, v_K, x_NxD, y_N)
  np.testing.assert_allclose(trace.w_final, w_KxD, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(trace.distance_T[-1], jnp.linalg.norm(w_KxD - w0_KxD), rtol=1e-5)
  assert trace.distance_T[0] == 0.0 and trace.loss_T[-1] < trace.loss_T[0]
  with pytest.raises(ConfigError):
    cl.gradient_descent(w0_KxD, v_K, x_NxD, y_N, 0.05, num_steps=5, record_every=2)


def test_theorem_9_2_bound_on_perfectly_clustered_data():
  """ε0 = 0: after many steps f ≈ Π_{S₊}(y), so ‖f − ỹ‖_∞ ≤ 2‖Π_{S₊}(e)‖_∞ and no sample is misread."""
  num_clusters, n_per, d, k = 3, 8, 6, 200
  key_data, key_w = jax.random.split(jax.random.PRNGKey(8))
  data = _perfect_clusters(key_data, num_clusters, num_clusters * n_per, d, 0.125)
  x_NxD, cluster_id_N = data.x, data.cluster_id
  np.testing.assert_allclose(x_NxD, data.centers[cluster_id_N], atol=1e-6)
  alphas = cl.class_values(2)
  true_class_N, given_class_N = data.clean_labels, data.labels
  assert int(data.is_noisy.sum()) == num_clusters
  y_true_N, y_N = alphas[true_class_N], alphas[given_class_N]
  w0_KxD, v_K = cl.init_hidden(key_w, k, d), cl.output_weights(k)
  lr = cl.step_size(w0_KxD, v_K, x_NxD)
  trace = cl.gradient_descent(w0_KxD, v_K, x_NxD, y_N, lr, num_steps=600, record_every=600)
  outputs_N = trace.outputs_TxN[-1]
  sup_error = float(jnp.max(jnp.abs(outputs_N - y_true_N)))
  bound = cl.theorem92_bound(y_N, y_true_N, cluster_id_N, num_clusters)
  assert sup_error <= bound + 1e-3
  assert sup_error > 0.5 * bound  # the corruption is not fitted away, GD sits at Π_{S₊}(y)
  np.testing.assert_array_equal(cl.nearest_class(outputs_N, alphas), true_class_N)
  np.testing.assert_allclose(outputs_N, cl.signal_projection(y_N, cluster_id_N, num_clusters),
                             atol=1e-3)


def test_top_subspace_fractions():
  u_NxN = np.linalg.qr(np.random.default_rng(1).standard_normal((6, 6)))[0]
  gram_NxN = u_NxN @ np.diag([100.0, 50.0, 1e-4, 1e-4, 1e-4, 1e-4]) @ u_NxN.T
  result = cl.top_subspace_fractions(gram_NxN, {"top": u_NxN[:, 0] + u_NxN[:, 1],
                                                "bottom": u_NxN[:, 4], "mixed": u_NxN[:, 1] + u_NxN[:, 5]})
  assert result["num_top"] == 2
  np.testing.assert_allclose([result["top"], result["bottom"], result["mixed"]], [1.0, 0.0, 0.5],
                             atol=1e-9)
  np.testing.assert_allclose(cl.singular_values_from_gram(gram_NxN)[:2], [10.0, np.sqrt(50)],
                             rtol=1e-9)


def test_network_matches_fixed_output_net_and_separation_auc():
  x_NxD = jax.random.normal(jax.random.PRNGKey(9), (4, 6))
  model = models.get_model("fixed_output_net", 1, hidden=10)
  variables = model.init(jax.random.PRNGKey(10), x_NxD)
  expected_N = model.apply(variables, x_NxD)[:, 0]
  np.testing.assert_allclose(cl.network(variables["params"]["W"], cl.output_weights(10), x_NxD),
                             expected_N, rtol=1e-5, atol=1e-6)
  assert cl.separation_auc([0.1, 0.2], [0.3, 0.5]) == 1.0
  assert cl.separation_auc([0.1, 0.4], [0.3]) == 0.5
  assert cl.separation_auc([1.0], [0.0, 1.0]) == 0.25


def _tiny_config():
  from experiments import clusterable_gd  # pylint: disable=g-import-not-at-top
  config = clusterable_gd.get_config("quick")
  # Equal shapes and step counts across parts share one compiled GD scan.
  config.covariance.update(num_clusters=(3,), mc_samples=20_000, mc_batch=10_000,
                           smooth_activations=("tanh",))
  config.fig5.update(n=40, d=5, hidden=50, num_steps=200, record_every=10, early_step=20,
                     late_step=200, num_seeds=2)
  config.perfect.update(num_clusters=(2, 4), n=40, d=5, hidden=50, num_steps=200,
                        record_every=10)
  config.distance.update(corruptions=(0.0, 0.3), num_steps=200, record_every=10,
                         hidden_sizes=(50, 100), width_steps=40, width_seeds=2)
  config.sweeps.mnist.data.update(limit=120, val_size=20, test_limit=50)
  config.sweeps.mnist.optim.update(epochs=1, checkpoint_every=1)
  config.jacobian.data.limit = 40
  config.jacobian.block_size = 20
  config.jacobian.optim.update(epochs=1, checkpoint_every=1)
  return clusterable_gd, config


def test_tiny_theory_parts_end_to_end(tmp_path):
  from noisejax import experiment  # pylint: disable=g-import-not-at-top
  module, config = _tiny_config()
  config.sweeps.enabled = config.jacobian.enabled = False
  claims = experiment.execute("clusterable_gd", config, tmp_path, module.run)
  by_id = {c.id: c for c in claims}
  assert {"covariance/closed_form_matches_mc", "covariance/lambda_positive",
          "fig5/early_fits_true_labels", "fig5/loss_overlap_late", "perfect/no_overfitting",
          "perfect/theorem_9_2_bound", "distance/fit_needs_more_distance",
          "distance/width_independent"} <= set(by_id)
  for name in ("fig5a_training_error.png", "fig5bc_loss_histograms.png", "perfect_clusters.png",
               "distance_from_init_clusterable.png", "claims.json", "fig5.json"):
    assert (tmp_path / name).exists(), name
  assert by_id["covariance/closed_form_matches_mc"].passed
  for row in by_id["perfect/theorem_9_2_bound"].measured.values():
    # ε0 = 0: every iterate stays cluster-constant, so GD ends at Π_{S₊}(y) within the bound.
    assert row["sup_error"] <= row["thm92"] + 1e-3


def test_tiny_cnn_parts_end_to_end(tmp_path):
  from noisejax import experiment  # pylint: disable=g-import-not-at-top
  module, config = _tiny_config()
  for part in ("covariance", "fig5", "perfect", "distance"):
    config[part].enabled = False
  config.sweeps.mnist.model.name = "mlp"  # the LeNet-5 / ResNet-20 code path, faster to compile
  config.sweeps.mnist.noise.rates = (0.0, 0.5)
  config.sweeps.mnist.hist_rates = (0.0, 0.5)
  config.jacobian.model.name = "mlp"
  claims = experiment.execute("clusterable_gd", config, tmp_path, module.run)
  by_id = {c.id: c for c in claims}
  assert {"fig1/mnist/converged_fits_corruption", "fig1/mnist/early_stopping_robust",
          "fig3/mnist/distance_grows_with_corruption", "fig4ab/mnist/loss_separation",
          "fig4c/few_large_singular_values", "fig4c/residual_vs_corruption_subspace"} <= set(by_id)
  for name in ("fig1_mnist_accuracy_vs_corruption.png", "fig3_mnist_accuracy_vs_distance.png",
               "fig4ab_mnist_loss_histograms.png", "fig4c_jacobian_spectrum.png",
               "mnist_noise0.5/metrics.jsonl", "mnist_noise0.5/per_sample_losses.npz"):
    assert (tmp_path / name).exists(), name
  jac = by_id["fig4c/few_large_singular_values"].measured
  assert jac["n"] == 40 and 1 <= jac["init"] <= 40
  noisy = np.load(tmp_path / "mnist_noise0.5" / "noise.npz")
  assert 0.3 < noisy["rate"] < 0.6  # half the labels redrawn uniformly over 10 classes


def test_bad_nested_config_is_one_line_error(tmp_path):
  from noisejax import experiment  # pylint: disable=g-import-not-at-top
  module, config = _tiny_config()
  config.sweeps.mnist.optim.name = "rmsprop"
  with pytest.raises(ConfigError, match="sweeps.mnist.optim.name"):
    experiment.execute("clusterable_gd", config, tmp_path, module.run)
  config.sweeps.mnist.optim.name = "adadelta"
  config.fig5.early_step = 25
  with pytest.raises(ConfigError, match="fig5.early_step"):
    experiment.execute("clusterable_gd", config, tmp_path / "b", module.run)
