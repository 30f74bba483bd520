"""noisejax.theory.clusterable (Li, Soltanolkotabi & Oymak): Σ(C), S₊ and Thm 9.2, the
simulator of eq. (2) under GD, the Jacobian spectrum and the CNN training probe."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from noisejax import config as cfg, early_stopping, metrics, models, noise, persample, synthetic
from noisejax import train
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


def test_one_hidden_layer_gram_matches_autodiff_and_the_generic_ntk():
  key_w, key_x = jax.random.split(jax.random.PRNGKey(6))
  w_KxD = cl.init_hidden(key_w, 12, 4)
  v_K = cl.output_weights(12)
  x_NxD = jax.random.normal(key_x, (7, 4))
  for activation in ("relu", "softplus"):
    jac_NxKxD = jax.jacrev(lambda w: cl.network(w, v_K, x_NxD, activation))(w_KxD)
    j_NxP = jac_NxKxD.reshape(7, -1)
    gram_NxN = cl.one_hidden_layer_gram(w_KxD, v_K, x_NxD, activation)
    np.testing.assert_allclose(gram_NxN, j_NxP @ j_NxP.T, rtol=1e-4, atol=1e-5)
    generic_NxN = persample.ntk_gram(lambda w, x: cl.network(w, v_K, x, activation)[:, None],
                                     w_KxD, x_NxD, block_size=4)
    np.testing.assert_allclose(gram_NxN, generic_NxN, rtol=1e-4, atol=1e-5)
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
  # The corruption is not fitted away: GD sits at Π_{S₊}(y), whose sup error ‖Π_{S₊}(e)‖_∞
  # is exactly half the bound (a strict `>` here compared two equal floats).
  assert sup_error == pytest.approx(0.5 * bound, abs=1e-3)
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


def test_network_matches_fixed_output_net():
  x_NxD = jax.random.normal(jax.random.PRNGKey(9), (4, 6))
  model = models.get_model("fixed_output_net", 1, hidden=10)
  variables = model.init(jax.random.PRNGKey(10), x_NxD)
  expected_N = model.apply(variables, x_NxD)[:, 0]
  np.testing.assert_allclose(cl.network(variables["params"]["W"], cl.output_weights(10), x_NxD),
                             expected_N, rtol=1e-5, atol=1e-6)


def test_simulate_runs_every_data_set_like_gradient_descent():
  setup = cl.Setup(n=30, d=4, hidden=40, eps0=0.3)
  datasets = [setup.data(jax.random.PRNGKey(s)) for s in range(2)]
  key = jax.random.PRNGKey(11)
  runs = setup.simulate(datasets, key, num_steps=20, record_every=5)
  assert runs.trace.outputs_TxN.shape == (2, 5, 30) and runs.lr_S.shape == (2,)
  alphas = cl.class_values(2)
  for s, ds in enumerate(datasets):
    w0_KxD = cl.init_hidden(jax.random.fold_in(key, s), 40, 4)
    lr = cl.step_size(w0_KxD, cl.output_weights(40), ds.x)  # η = 1/‖J(W0)‖²
    assert runs.lr_S[s] == pytest.approx(lr, rel=1e-5)
    one = cl.gradient_descent(w0_KxD, cl.output_weights(40), ds.x, alphas[ds.labels], lr,
                              num_steps=20, record_every=5)
    np.testing.assert_allclose(runs.trace.outputs_TxN[s], one.outputs_TxN, rtol=1e-4, atol=1e-5)
  err_true_SxT, err_given_SxT = runs.errors()
  pred_SxTxN = runs.predictions()
  np.testing.assert_allclose(err_given_SxT[1, -1], np.mean(pred_SxTxN[1, -1] != np.asarray(
      datasets[1].labels)))
  assert err_true_SxT.shape == (2, 5) and set(np.unique(pred_SxTxN)) <= {0, 1}
  losses_SxN, noisy_SxN = runs.losses(2), runs.stack("is_noisy")
  np.testing.assert_allclose(losses_SxN, 0.5 * np.asarray(runs.trace.outputs_TxN[:, 2] -
                                                          runs.y_SxN) ** 2)
  assert runs.loss_auc(2) == pytest.approx([metrics.separation_auc(
      l[~m], l[m]) for l, m in zip(losses_SxN, noisy_SxN)])
  same = setup.simulate(datasets, key, num_steps=5, record_every=5, same_init=True)
  np.testing.assert_array_equal(same.w0_SxKxD[0], same.w0_SxKxD[1])
  assert not np.array_equal(runs.w0_SxKxD[0], runs.w0_SxKxD[1])


def test_distance_table_and_perfect_clusters_simulation():
  # Equal shapes (2 runs, n = 48, d = 5, k = 100, 300 steps) share one compiled GD scan.
  record = cl.perfect_clusters_simulation(jax.random.PRNGKey(12), num_clusters=(2, 3),
                                          num_classes=2, rho=0.125, n=48, d=5, hidden=100,
                                          num_steps=300, record_every=100)
  assert record["error_true_SxT"].shape == (2, 4) and list(record["steps"]) == [0, 100, 200, 300]
  for row in record["rows"]:
    assert row["rho_realized"] <= 0.125 and row["rho_within_delta_over_8"]
    assert row["rho_realized"] == pytest.approx(max(row["rho_per_cluster"]))
    assert row["max_true_error_second_half"] == 0  # ε0 = 0: never misclassified (Thm 7.1)
    assert row["sup_error"] <= row["thm92_bound"] + 1e-3 <= row["thm71_bound"] + 1e-3
    assert row["lr_times_2beta2"] <= 1.0 + 1e-4 and 0 < row["alpha"] <= row["beta"]
    assert row["max_distance"] <= row["distance_bound"]  # Thm 9.2: within 4‖r0‖/α
    assert row["bound_holds_from"] is not None and row["iteration_bound"] > 0
  setup = cl.Setup(n=48, d=5, hidden=100)
  out = cl.distance_simulation(setup, jax.random.PRNGKey(13), corruptions=(0.0, 0.5),
                               num_steps=300, record_every=100, fit_error=0.0, early_step=100,
                               hidden_sizes=(100,), width_steps=300, width_seeds=2, val_n=16)
  clean, noisy = out["rows"]
  assert clean["fit_step"] is not None and clean["fit_distance"] > 0
  assert noisy["fit_step"] is None or noisy["fit_distance"] > clean["fit_distance"]
  for s, row in enumerate(out["rows"]):  # stopped on the held-out noisy labels
    t = early_stopping.index(out["val_error_SxT"][s])
    assert row["early_stop_step"] == 100 * t
    assert row["early_stop_distance"] == pytest.approx(out["distance_SxT"][s, t])
    assert 0 <= row["early_stop_val_error_true"] <= 1
  assert out["val_error_SxT"].shape == (2, 4)
  assert out["width"][0]["hidden"] == 100 and out["width"][0]["distance_at_early_step"] > 0


def test_gradient_descent_records_held_out_outputs():
  x_NxD = jax.random.normal(jax.random.PRNGKey(20), (10, 3))
  x_MxD = jax.random.normal(jax.random.PRNGKey(21), (4, 3))
  w0_KxD, v_K = cl.init_hidden(jax.random.PRNGKey(22), 8, 3), cl.output_weights(8)
  trace = cl.gradient_descent(w0_KxD, v_K, x_NxD, jnp.ones(10), 0.01, x_MxD, num_steps=4,
                              record_every=2)
  assert trace.eval_outputs_TxM.shape == (3, 4)
  np.testing.assert_allclose(trace.eval_outputs_TxM[-1], cl.network(trace.w_final, v_K, x_MxD),
                             rtol=1e-5, atol=1e-6)
  plain = cl.gradient_descent(w0_KxD, v_K, x_NxD, jnp.ones(10), 0.01, num_steps=4, record_every=2)
  assert plain.eval_outputs_TxM.shape == (3, 0)
  np.testing.assert_allclose(plain.outputs_TxN, trace.outputs_TxN)


def test_corrupt_per_cluster_flips_a_different_share_in_each_cluster():
  data = synthetic.clusterable(jax.random.PRNGKey(23), 400, 5, 8, 2, 0.0)
  noisy = cl.corrupt_per_cluster(jax.random.PRNGKey(24), data, 0.25, 2)
  cluster_N, flip_N = np.asarray(noisy.cluster_id), np.asarray(noisy.is_noisy)
  rates_K = np.bincount(cluster_N, flip_N, 8) / np.bincount(cluster_N, None, 8)
  assert rates_K.max() <= 0.25 and len(np.unique(rates_K)) > 2
  np.testing.assert_array_equal(flip_N, np.asarray(noisy.labels) != np.asarray(data.labels))
  assert noisy.rate == pytest.approx(flip_N.mean())


def test_loss_histogram_overlap_and_fitted_for():
  mask = np.array([False] * 4 + [True] * 4)
  assert cl.loss_histogram_overlap(np.array([0, 0, 0, 0, 9, 9, 9, 9.0]), mask) == 0
  assert cl.loss_histogram_overlap(np.array([1, 2, 3, 4, 1, 2, 3, 4.0]), mask) == pytest.approx(1)
  assert cl.fitted_for([0.2, 0, 0.1, 0, 0, 0, 0], 2) == 5
  assert cl.fitted_for([0.2, 0, 0.1, 0, 0], 3) is None


def _probe_splits(n=64):
  rng = np.random.default_rng(0)
  x = rng.normal(size=(n + 32, 5)).astype(np.float32)
  y = (x[:, 0] > 0).astype(np.int32)
  noisy = noise.corrupt(jax.random.PRNGKey(14), y[:n], 2, "symmetric", 0.25)
  return train.Splits(x[:n], noisy, x[n:], y[n:])


def test_training_probe_measures_and_survives_a_restart(tmp_path):
  splits = _probe_splits()
  config = cfg.training(cfg.model("mlp", hidden=(16,)), cfg.loss("squared"),
                        cfg.optim("sgd", lr=0.2, batch_size=16, epochs=2))
  probe = cl.TrainingProbe(tmp_path, splits.x_test, splits.y_test)
  result = train.train_classifier(config, splits, key=jax.random.key(0), eval_fn=probe)
  history = result.history
  assert history[0]["distance"] == 0.0 and history[-1]["relative_distance"] > 0
  final = result.snapshot(0, splits)
  theta0 = probe.initial_variables()["params"]
  assert history[-1]["distance"] == pytest.approx(
      metrics.parameter_distance(final.variables["params"], theta0), rel=1e-5)
  outputs = final.predict(splits.x_train)
  np.testing.assert_allclose(probe.losses(history[-1]["step"]), 0.5 * np.sum(
      (outputs - np.eye(2)[splits.noisy.labels]) ** 2, -1), rtol=1e-5, atol=1e-6)
  predicted = outputs.argmax(-1)
  assert history[-1]["train_error_true"] == pytest.approx(
      np.mean(predicted != splits.noisy.clean_labels))
  assert history[-1]["val_error"] == pytest.approx(
      np.mean(final.predict(splits.x_test).argmax(-1) != splits.y_test))
  reopened = cl.TrainingProbe(tmp_path, splits.x_test, splits.y_test)  # a resumed run
  early = reopened.early_stopped(history, splits.noisy.is_noisy)
  assert early["early"] == early_stopping.point(history)
  mask = splits.noisy.is_noisy
  assert early["auc_early"] == metrics.separation_auc(early["losses_early"][~mask],
                                                      early["losses_early"][mask])
  chex_equal = jax.tree.map(np.array_equal, reopened.initial_variables(), probe.initial_variables())
  assert all(jax.tree.leaves(chex_equal))


def test_jacobian_spectrum_of_the_fixed_output_net_is_the_closed_form():
  x_NxD = np.asarray(jax.random.normal(jax.random.PRNGKey(15), (12, 6)))
  labels = noise.corrupt(None, (x_NxD[:, 0] > 0).astype(np.int32), 2, "none", 0.0)
  config = cfg.training(cfg.model("fixed_output_net", hidden=20, num_outputs=1),
                        cfg.loss("squared"), cfg.optim("sgd", lr=0.01, batch_size=4, epochs=1))
  splits = train.Splits(x_NxD, labels, x_NxD, labels.labels)
  result = train.train_classifier(config, splits, key=jax.random.key(16))
  variables = result.snapshot(0, splits).variables
  targets_N, e_N = np.ones(12), np.eye(12)[0]
  sigma, shares = cl.jacobian_spectrum(result.spec, variables, x_NxD, targets_N, e_N,
                                       block_size=5)
  gram_NxN = cl.one_hidden_layer_gram(variables["params"]["W"], cl.output_weights(20), x_NxD)
  np.testing.assert_allclose(sigma, cl.singular_values_from_gram(gram_NxN), rtol=1e-4, atol=1e-5)
  residual_N = np.asarray(result.spec.model.apply(variables, x_NxD))[:, 0] - targets_N
  expected = cl.top_subspace_fractions(gram_NxN, {"clean_residual": residual_N, "corruption": e_N})
  assert shares["num_top"] == expected["num_top"]
  assert shares["clean_residual"] == pytest.approx(expected["clean_residual"], rel=1e-3)
