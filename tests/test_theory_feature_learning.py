"""The label-noise feature-learning theory (ICML 2025): model, decomposition, simulation,
analysis and the summaries the experiment's claims are made of."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from noisejax import early_stopping, models, synthetic
from noisejax.theory import feature_learning as fl


def _tiny(key=0, n=8, d=64, m=3, mu_norm=3.0, sigma_xi=1.0, tau=0.25, sigma0=0.1):
  data = synthetic.signal_noise(jax.random.PRNGKey(key), n, d, mu_norm, sigma_xi, tau, tau)
  W0 = fl.init_weights(jax.random.PRNGKey(key + 100), m, d, sigma0)
  return data, W0


def test_forward_matches_patch_cnn_module_and_hand_formula():
  data, W = _tiny()
  f = fl.patch_cnn(W, data.x_Nx2xD)
  model = models.PatchCNN(width=W.shape[1])
  np.testing.assert_allclose(f, model.apply({"params": {"W": W}}, data.x_Nx2xD)[:, 0],
                             rtol=1e-5, atol=1e-6)
  x, i = np.asarray(data.x_Nx2xD), 2
  F = [np.mean([sum(max(0.0, float(np.dot(W[j, r], x[i, p]))) for p in (0, 1))
                for r in range(W.shape[1])]) for j in (0, 1)]
  assert float(f[i]) == pytest.approx(F[0] - F[1], rel=1e-5, abs=1e-6)


def test_decomposition_reconstructs_weights_and_matches_paper_recursions():
  data, W0 = _tiny(n=10, d=80)
  y, y_noisy = data.y.astype(jnp.float32), data.y_noisy.astype(jnp.float32)
  basis = fl.make_basis(data.mu_D, data.xi_NxD)
  step, updates = jax.jit(fl.gd_step), jax.jit(fl.coefficient_updates)
  W = W0
  gamma_sum = jnp.zeros(W0.shape[:2])
  rho_sum = jnp.zeros(W0.shape[:2] + (10,))
  for _ in range(25):
    dgamma, drho = updates(W, data.x_Nx2xD, y, y_noisy, 0.5)
    gamma_sum, rho_sum = gamma_sum + dgamma, rho_sum + drho
    W = step(W, data.x_Nx2xD, y_noisy, 0.5)
  gamma, rho = fl.decompose(W, W0, basis)
  assert float(jnp.abs(W - W0).max()) > 1e-2  # the weights moved
  np.testing.assert_allclose(fl.reconstruct(gamma, rho, W0, basis), W, rtol=0, atol=2e-5)
  np.testing.assert_allclose(gamma, gamma_sum, rtol=1e-3, atol=1e-4)
  np.testing.assert_allclose(rho, rho_sum, rtol=1e-3, atol=1e-4)
  rho_bar, rho_under = fl.split_rho(rho, y_noisy)
  assert float(rho_bar.min()) >= -1e-5 and float(rho_under.max()) <= 1e-5
  np.testing.assert_allclose(rho_bar + rho_under, rho)


def test_decomposition_recovers_planted_coefficients():
  data, W0 = _tiny(n=6, d=40)
  basis = fl.make_basis(data.mu_D, data.xi_NxD)
  gamma = jax.random.normal(jax.random.PRNGKey(1), W0.shape[:2])
  rho = jax.random.normal(jax.random.PRNGKey(2), W0.shape[:2] + (6,))
  mu, xi = np.asarray(data.mu_D), np.asarray(data.xi_NxD)
  gamma, rho = np.asarray(gamma), np.asarray(rho)
  W = np.array(W0)
  for j, sign in enumerate((1.0, -1.0)):
    for r in range(W.shape[1]):
      W[j, r] += sign * gamma[j, r] * mu / mu.dot(mu)
      W[j, r] += sum(rho[j, r, i] * xi[i] / xi[i].dot(xi[i]) for i in range(6))
  got_gamma, got_rho = fl.decompose(jnp.asarray(W), W0, basis)
  np.testing.assert_allclose(got_gamma, gamma, atol=1e-4)
  np.testing.assert_allclose(got_rho, rho, atol=1e-4)


def test_gd_step_is_gradient_descent_on_the_mean_logistic_loss():
  data, W = _tiny()
  y = data.y_noisy.astype(jnp.float32)
  loss = lambda w: jnp.mean(jnp.log1p(jnp.exp(-y * fl.patch_cnn(w, data.x_Nx2xD))))
  np.testing.assert_allclose(fl.gd_step(W, data.x_Nx2xD, y, 0.3),
                             W - 0.3 * jax.grad(loss)(W), atol=1e-6)
  assert float(loss(fl.gd_step(W, data.x_Nx2xD, y, 0.3))) < float(loss(W))


def test_signal_noise_flip_rates_are_class_conditional():
  data = synthetic.signal_noise(jax.random.PRNGKey(3), 20000, 4, 1.0, 1.0, 0.1, 0.3)
  y, noisy = np.asarray(data.y), np.asarray(data.is_noisy)
  assert noisy[y == 1].mean() == pytest.approx(0.1, abs=0.015)
  assert noisy[y == -1].mean() == pytest.approx(0.3, abs=0.015)
  np.testing.assert_array_equal(np.asarray(data.y_noisy) != y, noisy)
  np.testing.assert_allclose(data.x_Nx2xD[:, 0], y[:, None] * np.asarray(data.mu_D)[None])


def test_snr_and_regime():
  assert fl.snr(2.0, 0.5, 400) == pytest.approx(0.2)
  assert fl.n_snr2(50, 2.0, 0.5, 400) == pytest.approx(2.0)


def test_simulate_records_and_vmaps_over_seeds():
  problem = fl.make_problem(jax.random.PRNGKey(0), 2, n=12, d=120, m=4, mu_norm=6.0,
                            sigma_xi=1.0, sigma0=0.001, tau_pos=0.2, tau_neg=0.2, n_test=50)
  steps = fl.record_steps(60, 12)
  assert steps[0] == 0 and list(steps) == sorted(set(steps)) and steps[-1] == 60
  W, trace = fl.run_problem(problem, 0.1, steps)
  assert trace.gamma_Rx2xM.shape == (2, len(steps), 2, 4)
  assert trace.rho_Rx2xMxN.shape == (2, len(steps), 2, 4, 12)
  assert float(trace.residual_R[:, 1:].max()) < 1e-4
  # The scan's last record equals an explicit loop of gd_step.
  W_loop = jax.lax.fori_loop(0, 60, lambda _, w: fl.gd_step(
      w, problem.x_SxNx2xD[1], problem.y_noisy_SxN[1], 0.1), problem.W0_Sx2xMxD[1])
  np.testing.assert_allclose(W[1], W_loop, atol=1e-5)
  np.testing.assert_allclose(trace.f_RxN[1, -1], fl.patch_cnn(W_loop, problem.x_SxNx2xD[1]),
                             atol=1e-4)
  out = fl.analyze(steps, jax.tree.map(lambda a: a[0], trace), problem.y_SxN[0],
                   problem.y_noisy_SxN[0], problem.is_noisy_SxN[0])
  assert out["acc_clean"].shape == (len(steps),)
  assert out["gamma_max"][-1] > 0


def test_first_window_and_separation():
  assert fl._first_window(np.array([0, 1, 1, 0, 1], bool)) == (1, 2)
  assert fl._first_window(np.zeros(3, bool)) is None
  losses = np.array([[0.1, 0.2, 1.0, 2.0]])
  sep = fl.separation_at(losses, np.array([0, 0, 1, 1], bool), 0)
  assert sep == {"clean_below_log2": 1.0, "noisy_above_log2": 1.0}


def test_signal_norm_and_time_unit_set_the_regime():
  mu = fl.signal_norm(6.0, 100, 2000, 1.0)
  assert mu == pytest.approx(np.sqrt(120.0))
  assert fl.n_snr2(100, mu, 1.0, 2000) == pytest.approx(6.0)
  assert fl.time_unit(100, 10, 0.02, 1.0, 2000) == pytest.approx(25.0)


def _seeds(tau, **overrides):
  args = dict(seeds=2, n=12, d=120, m=4, n_snr2=6.0, sigma_xi=1.0, sigma0=0.001,
              tau_pos=tau, tau_neg=tau, n_test=50, eta=0.1, steps=80, records=16)
  args.update(overrides)
  return fl.run_seeds(jax.random.PRNGKey(0), **args)


def test_run_seeds_noiseless_twin_shares_data_and_summaries_agree_with_analysis():
  problem, runs = _seeds(0.3)
  clean_problem, clean_runs = _seeds(0.0)
  np.testing.assert_array_equal(problem.x_SxNx2xD, clean_problem.x_SxNx2xD)
  np.testing.assert_array_equal(problem.W0_Sx2xMxD, clean_problem.W0_Sx2xMxD)
  assert not clean_problem.is_noisy_SxN.any() and problem.is_noisy_SxN.any()
  assert len(runs) == 2 and runs[0]["losses"].shape == (len(fl.record_steps(80, 16)), 12)
  unit = fl.time_unit(12, 4, 0.1, 1.0, 120)
  for a in runs:
    st = fl.summarize_run(a, unit)
    assert st["final"]["test_error"] == a["test_error"][-1]
    if a["t1_index"] is not None:
      i = a["t1_index"]
      assert st["window"][0] <= st["t1"] <= st["window"][1]
      assert st["t1_in_time_units"] == pytest.approx(st["t1"] / unit)
      assert st["at_t1"]["gamma_max"] > st["at_t1"]["rho_bar_max_noisy"]
      assert st["gamma_min_after_t1"] == pytest.approx(a["gamma_min"][i:].min())
  point = fl.summarize_seeds(runs, unit)
  assert point["frac_window"] == np.mean([a["window"] is not None for a in runs])
  assert point["test_error_end"] == pytest.approx(np.mean([a["test_error"][-1] for a in runs]))
  assert len(point["window_end_time_units"]) == len(point["t1_in_time_units"]) == 2
  assert fl.min_accuracy_after_fit(clean_runs[0]) == 1.0


def test_first_fit_time_and_min_accuracy_after_fit():
  a = {"steps": np.array([0, 10, 20, 40]), "acc_noisy": np.array([0.0, 0.5, 1.0, 1.0]),
       "acc_train": np.array([0.5, 1.0, 0.9, 1.0])}
  assert fl.first_fit_time(a, "acc_noisy", 10.0) == 2.0
  assert fl.first_fit_time(a, "acc_train", 5.0) == 2.0
  assert fl.first_fit_time({**a, "acc_noisy": np.zeros(4)}, "acc_noisy", 1.0) == np.inf
  assert fl.min_accuracy_after_fit(a) == 0.9
  assert fl.min_accuracy_after_fit({**a, "acc_train": np.full(4, 0.8)}) == 0.0


def test_memorization_epochs_orders_fit_and_memorization():
  history = [{"epoch": e, "clean_error": ce, "noisy_error": ne, "test_error": te}
             for e, ce, ne, te in ((0, 0.5, 0.4, 0.5), (1, 0.05, 0.95, 0.02),
                                   (2, 0.02, 0.7, 0.05), (3, 0.0, 0.3, 0.2))]
  out = fl.memorization_epochs(history, fit_threshold=0.9, memorize_threshold=0.5)
  assert out["clean_fitted_epoch"] == 1 and out["flipped_memorized_epoch"] == 3
  assert out["flipped_acc_when_clean_fitted"] == pytest.approx(0.05)
  assert out["best_test_epoch"] == 1 and out["final"]["flipped_acc_vs_noisy"] == pytest.approx(0.7)
  never = fl.memorization_epochs(history, fit_threshold=1.01, memorize_threshold=0.99)
  assert never["clean_fitted_epoch"] == np.inf and never["flipped_acc_when_clean_fitted"] is None


def test_signal_threshold_is_where_the_initial_growth_rates_meet():
  assert fl.signal_threshold(0.2) == pytest.approx(10 / 3)
  assert fl.signal_threshold(0.0) == 2.0
  # One step from |ℓ'| = ½: Δγ/Δρ̄ = (1 − 2τ)‖μ‖²/(4m) ÷ σ²d/(2nm) = (1 − 2τ)·n·SNR²/2.
  n, d, m, tau = 50, 200, 3, 0.25
  mu = fl.signal_norm(fl.signal_threshold(tau), n, d, 1.0)
  assert ((1 - 2 * tau) * mu ** 2 / (4 * m)) / (d / (2 * n * m)) == pytest.approx(1.0)


def test_signal_beats_memorization_is_judged_filter_by_filter():
  gamma = np.array([[[1.0, 2.0], [1.5, 0.5]]])  # R=1, j=±1, m=2
  rho = np.zeros((1, 2, 2, 3))
  y_noisy, noisy = np.array([1.0, -1.0, 1.0]), np.array([True, True, False])
  rho[0, 0, 1, 0] = 0.4  # ρ̄_{+1,r=1,i=0}: below γ_{±1,1} = 2, 0.5
  rho[0, 1, 0, 1] = 0.4  # ρ̄_{−1,r=0,i=1}: below γ_{±1,0} = 1, 1.5
  rho[0, 0, 0, 2] = 9.0  # a clean sample's ρ: not judged
  np.testing.assert_allclose(fl.signal_beats_memorization(gamma, rho, y_noisy, noisy), [1.0])
  rho[0, 1, 0, 1] = 1.2  # now above γ_{+1,0} = 1: one of 2·2·2 = 8 triples fails
  np.testing.assert_allclose(fl.signal_beats_memorization(gamma, rho, y_noisy, noisy), [7 / 8])
  assert np.isnan(fl.signal_beats_memorization(gamma, rho, y_noisy, np.zeros(3, bool))[0])


def test_analyze_records_heldout_error_early_stopping_and_loss_derivatives():
  problem, runs = _seeds(0.3, steps=400, records=20, n_val=40)
  assert problem.x_val_SxVx2xD.shape == (2, 40, 2, 120)
  for a in runs:
    np.testing.assert_allclose(a["dloss"], 1 - np.exp(-a["losses"]), atol=1e-5)  # |ℓ'|
    assert a["es_index"] == early_stopping.index(a["val_error"])
    assert 0 <= a["val_error"].min() and a["val_error"].max() <= 1
    if a["t1_index"] is not None:
      assert a["signal_wins_per_filter"][a["t1_index"]] == 1.0
      ld = fl.loss_derivative_stages(a, 0.5)
      assert ld["stage1_min"] == pytest.approx(a["dloss"][:a["t1_index"] + 1].min())
      if ld["stage2_step"] is not None:
        k = list(a["steps"]).index(ld["stage2_step"])
        assert k > a["t1_index"] and a["dloss_mean_clean"][k] <= 0.5
        assert ld["stage2_ratio"] == pytest.approx(a["dloss_mean_noisy"][k] /
                                                   a["dloss_mean_clean"][k])


def test_loss_derivative_stages_on_a_handmade_run():
  dloss = np.array([[0.5, 0.5], [0.3, 0.6], [0.05, 0.4], [0.005, 0.2]])
  a = {"t1_index": 1, "is_noisy": np.array([False, True]), "steps": np.array([0, 1, 2, 3]),
       "dloss": dloss, "dloss_mean_clean": dloss[:, 0], "dloss_mean_noisy": dloss[:, 1]}
  out = fl.loss_derivative_stages(a, 0.01)
  assert out["stage1_min"] == 0.3 and out["stage2_step"] == 3
  assert out["stage2_ratio"] == pytest.approx(40.0)
  assert fl.loss_derivative_stages({**a, "t1_index": None}, 0.01)["stage2_step"] is None
