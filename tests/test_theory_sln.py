"""SLN theory (Chen et al. 2021): Props 1–3 exactly and by Monte Carlo, noise energy, landscapes."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from noisejax import models
from noisejax.theory import sln

C, D, HIDDEN = 3, 4, 6   # 4·6 + 6 + 6·3 + 3 = 51 parameters


@pytest.fixture
def x64():
  with jax.enable_x64(True):
    yield


MODELS = {act: models.MLP(num_outputs=C, hidden=(HIDDEN,), activation=act)
          for act in ("tanh", "relu")}


def apply_tanh(params, x_B):  # module-level apply_fns: jitted functions compile once
  return MODELS["tanh"].apply({"params": params}, x_B)


def apply_relu(params, x_B):
  return MODELS["relu"].apply({"params": params}, x_B)


def tiny_net(seed=0, activation="tanh", logit_scale=1.0):
  """A float64 MLP D-HIDDEN-C (MODELS' parameter names, N(0, 1/fan_in) weights, biases
  N(0, 0.1²)), its apply_fn (persample convention), params and 13 inputs (numpy draws:
  nothing to compile)."""
  rng = np.random.default_rng(seed)
  layer = lambda n_in, n_out, scale=1.0: {
      "kernel": jnp.asarray(scale * rng.normal(size=(n_in, n_out)) / np.sqrt(n_in)),
      "bias": jnp.asarray(0.1 * rng.normal(size=n_out))}
  params = {"dense_0": layer(D, HIDDEN), "output": layer(HIDDEN, C, logit_scale)}
  x_NxD = jnp.asarray(rng.normal(size=(13, D)))
  return {"tanh": apply_tanh, "relu": apply_relu}[activation], params, x_NxD


def normal(seed, *shape):
  return jnp.asarray(np.random.default_rng(seed).normal(size=shape))


def per_sample(fn, apply_fn, params, x_NxD):
  """fn(apply_fn, params, x) for every row of x_NxD (one compiled program)."""
  return jax.vmap(lambda x: fn(apply_fn, params, x))(x_NxD)


def random_S(seed, num, c):
  """num softmax vectors from N(0, s²) logits with s from 0.1 (near uniform) to 5 (confident)."""
  logits_KxC = np.geomspace(0.1, 5.0, num)[:, None] * np.random.default_rng(seed).normal(
      size=(num, c))
  e_KxC = np.exp(logits_KxC - logits_KxC.max(axis=1, keepdims=True))
  return jnp.asarray(e_KxC / e_KxC.sum(axis=1, keepdims=True))


@jax.jit
def prop2_checks(S_KxC):
  """Per S: A Aᵀ − M (closed form), tr M, eigenvalues of M (ascending), M·1."""
  A_KxCxC = jax.vmap(sln.prop2_factor)(S_KxC)
  M_KxCxC = jax.vmap(sln.prop2_M)(S_KxC)
  return (A_KxCxC @ jnp.swapaxes(A_KxCxC, 1, 2) - M_KxCxC, jnp.trace(M_KxCxC, axis1=1, axis2=2),
          jnp.linalg.eigvalsh(M_KxCxC), jnp.sum(M_KxCxC, axis=2))


def close(a, b, atol=1e-10):
  np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=atol, rtol=0)


# ----------------------------------------------------------------------------------------
# Exact: the Jacobian of the actual noisy gradient w.r.t. the draw is the proposition's factor.


def test_prop1_eq2_noise_factor_is_sigma_jacobian_and_eq1_is_isotropic(x64):
  apply_fn, params, x_NxD = tiny_net()
  x, y_C, sigma_f = x_NxD[0], jax.nn.one_hot(1, C), 0.7
  J_CxP = sln.output_jacobian(apply_fn, params, x)
  p = J_CxP.shape[1]
  assert J_CxP.shape == (C, 51)
  noisy = lambda z: sln.eq2_noisy_grad(apply_fn, params, x, y_C, z, sigma_f)
  F_PxC = sln.noise_factor(noisy, C)
  close(F_PxC, sigma_f * J_CxP.T)
  close(F_PxC @ F_PxC.T, sln.prop1_covariance(J_CxP, sigma_f))
  close(sln.prop1_std(J_CxP, sigma_f), np.sqrt(np.diag(sln.prop1_covariance(J_CxP, sigma_f))))
  z_C = normal(5, C)
  close(noisy(z_C) - noisy(jnp.zeros(C)), sln.eq2_noise(J_CxP, z_C, sigma_f))  # eq. 4: affine
  # Without noise eq. 2 is the plain CE gradient, which eq. 1 perturbs by σθ I.
  eq1 = lambda z: sln.eq1_noisy_grad(apply_fn, params, x, y_C, z, 0.3)
  close(noisy(jnp.zeros(C)), eq1(jnp.zeros(p)))
  close(sln.noise_factor(eq1, p), 0.3 * np.eye(p))


def test_prop2_logit_noise_factor_and_closed_form(x64):
  f_C = 2 * normal(0, C)
  S_C, y_C, sigma = jax.nn.softmax(f_C), jax.nn.one_hot(0, C), 0.5
  noisy = lambda z: sln.eq3_logit_grad(f_C, y_C, z, sigma)
  F_CxC = sln.noise_factor(noisy, C)
  close(F_CxC, sigma * sln.prop2_factor(S_C))
  close(F_CxC @ F_CxC.T, sigma ** 2 * sln.prop2_M(S_C))
  z_C = normal(1, C)
  close(noisy(z_C) - noisy(jnp.zeros(C)), sln.eq8_noise(S_C, z_C, sigma))       # eq. 8
  close(sln.prop2_std(S_C, sigma), np.sqrt(np.diag(F_CxC @ F_CxC.T)))


@pytest.mark.parametrize("c", [2, 3, 10])
def test_prop2_closed_form_is_A_At_for_random_uniform_and_one_hot_S(x64, c):
  S_KxC = random_S(c, 20, c)
  S_KxC = jnp.concatenate([S_KxC, jnp.full((1, c), 1.0 / c), jnp.eye(c)[:1]])
  residual, _, _, _ = prop2_checks(S_KxC)
  close(residual, np.zeros_like(residual))
  uniform, one_hot = sln.prop2_M(S_KxC[-2]), sln.prop2_M(S_KxC[-1])
  close(uniform, np.eye(c) - 1.0 / c)              # the centring projector
  close(np.diag(uniform), np.full(c, (c - 1) / c))  # the least entry variance
  close(one_hot[0, 0], c - 1)                       # the largest, at S_0 = 1
  close(np.diag(one_hot)[1:], np.ones(c - 1))       # S_i = 0: variance 1
  close(one_hot[0, 1:], -np.ones(c - 1))


@pytest.mark.parametrize("c", [3, 10])
def test_prop2_extremes_trace_bounds_and_spectrum(x64, c):
  s = jnp.linspace(0.0, 1.0, 10001)
  v = sln.prop2_entry_variance(s, c)
  ext = sln.prop2_extremes(c)
  assert abs(float(s[jnp.argmin(v)]) - ext["argmin"]) < 1e-4 and float(s[jnp.argmax(v)]) == 1.0
  close(v.min(), ext["min"], 1e-8)
  close(v.max(), ext["max"])
  lo, hi = sln.prop2_trace_bounds(c)
  S_KxC = random_S(0, 50, c)
  S_KxC = jnp.concatenate([jnp.full((1, c), 1.0 / c), jnp.eye(c)[2:3], S_KxC])
  _, traces, eigenvalues, row_sums = prop2_checks(S_KxC)
  close(traces, jax.vmap(sln.prop2_trace)(S_KxC))
  close(traces[:2], [lo, hi])                       # uniform S, one-hot S
  assert np.all((traces[2:] > lo) & (traces[2:] < hi))
  close(eigenvalues, jax.vmap(sln.prop2_eigenvalues)(S_KxC), 1e-9)
  close(row_sums, np.zeros_like(row_sums))          # M1 = 0: softmax ignores a common shift


def test_prop3_noise_factor_and_grad_log_softmax_identity(x64):
  apply_fn, params, x_NxD = tiny_net()
  x, y_C, sigma = x_NxD[2], jax.nn.one_hot(2, C), 0.4
  J_CxP = sln.output_jacobian(apply_fn, params, x)
  S_C = jax.nn.softmax(apply_fn(params, x[None])[0])
  L_CxP = sln.log_softmax_jacobian(apply_fn, params, x)
  close(L_CxP, sln.jac_log_softmax(J_CxP, S_C), 1e-12)                # (I − 1Sᵀ)J
  softmax_fn = lambda p, x_B: jax.nn.softmax(apply_fn(p, x_B), axis=-1)
  dS_CxP = sln.output_jacobian(softmax_fn, params, x)
  close(L_CxP, dS_CxP / S_C[:, None], 1e-12)                         # the paper's ∇θS/S
  noisy = lambda z: sln.eq3_noisy_grad(apply_fn, params, x, y_C, z, sigma)
  F_PxC = sln.noise_factor(noisy, C)
  close(F_PxC, -sigma * L_CxP.T)                                       # eq. 12
  cov = sln.prop3_covariance(L_CxP, sigma)
  close(F_PxC @ F_PxC.T, cov)
  close(cov, sigma ** 2 * J_CxP.T @ sln.prop2_M(S_C) @ J_CxP)         # Prop 3 = Prop 1 ∘ Prop 2
  close(sln.prop3_std(L_CxP, sigma), np.sqrt(np.diag(cov)))
  z_C = normal(7, C)
  close(noisy(z_C) - noisy(jnp.zeros(C)), sln.eq3_noise(L_CxP, z_C, sigma))
  assert np.abs(cov - sln.prop1_covariance(J_CxP, sigma)).max() > 1e-3  # not eq. 2's noise


@pytest.mark.parametrize("logit_scale", [1.0, 60.0])
def test_prop3_energy_bounded_by_sharpness_even_when_confident(x64, logit_scale):
  """Claim 2 made precise: ‖PJ‖² ≤ ‖∇θlog S‖² ≤ c‖S‖²‖PJ‖², whatever the confidence."""
  apply_fn, params, x_NxD = tiny_net(seed=3, logit_scale=logit_scale)
  S_NxC = jax.nn.softmax(apply_fn(params, x_NxD), axis=-1)
  if logit_scale > 1:
    assert float(S_NxC.min()) < 1e-8   # tiny S_k in Prop 3's denominator
  energy_N = np.sum(per_sample(sln.log_softmax_jacobian, apply_fn, params, x_NxD) ** 2, (1, 2))
  J_NxCxP = per_sample(sln.output_jacobian, apply_fn, params, x_NxD)
  lo_N, hi_N = jax.vmap(sln.prop3_energy_bounds)(J_NxCxP, S_NxC)
  assert np.all(lo_N * (1 - 1e-9) <= energy_N) and np.all(energy_N <= hi_N * (1 + 1e-9))
  assert np.all(hi_N <= C * lo_N * (1 + 1e-9))


# ----------------------------------------------------------------------------------------
# Monte Carlo: many draws of the actual noisy gradients.


def test_monte_carlo_covariance_of_eq2_and_eq3_matches_props_1_and_3(x64):
  apply_fn, params, x_NxD = tiny_net()
  x, y_C, sigma_f, sigma = x_NxD[1], jax.nn.one_hot(0, C), 0.8, 0.5
  J_CxP = sln.output_jacobian(apply_fn, params, x)
  L_CxP = sln.log_softmax_jacobian(apply_fn, params, x)
  p = J_CxP.shape[1]

  def both(z_2C):  # independent draws for eq. 2 and eq. 3: Cov = blockdiag(Prop 1, Prop 3)
    return jnp.concatenate([sln.eq2_noisy_grad(apply_fn, params, x, y_C, z_2C[:C], sigma_f),
                            sln.eq3_noisy_grad(apply_fn, params, x, y_C, z_2C[C:], sigma)])

  n = 20000
  mean, cov = sln.monte_carlo_moments(both, jax.random.key(11), z_dim=2 * C, num_draws=n)
  expected = np.zeros((2 * p, 2 * p))
  expected[:p, :p] = sln.prop1_covariance(J_CxP, sigma_f)
  expected[p:, p:] = sln.prop3_covariance(L_CxP, sigma)
  for block in (np.s_[:p, :p], np.s_[p:, p:], np.s_[:, :]):
    se = float(sln.covariance_rel_stderr(expected[block], n))
    err = np.linalg.norm(cov[block] - expected[block]) / np.linalg.norm(expected[block])
    assert err < 4 * se and err < 0.05, (block, err, se)
  # The mean is the clean gradient (zero-mean noise), within 5 standard errors per entry.
  clean = both(jnp.zeros(2 * C))
  assert np.all(np.abs(mean - clean) <= 5 * np.sqrt(np.diag(expected) / n) + 1e-12)
  # The estimate tells the variants apart: eq. 3's draws do not have eq. 2's covariance.
  wrong = sln.prop1_covariance(J_CxP, sigma)
  assert np.linalg.norm(cov[p:, p:] - wrong) / np.linalg.norm(wrong) > 0.2


# ----------------------------------------------------------------------------------------
# Noise energy through the sample-wise gradient engine.


@pytest.mark.parametrize("method", ["taps", "vmap"])
def test_noise_energy_and_output_sharpness_match_brute_force(x64, method):
  apply_fn, params, x_NxD = tiny_net(seed=4)
  n = x_NxD.shape[0]
  L_NxCxP = np.asarray(per_sample(sln.log_softmax_jacobian, apply_fn, params, x_NxD))
  J_NxCxP = np.asarray(per_sample(sln.output_jacobian, apply_fn, params, x_NxD))
  out = sln.noise_energy(apply_fn, params, x_NxD, chunk_size=5, method=method)  # ragged: 13
  close(out["sq_norms_NxC"], np.sum(L_NxCxP ** 2, axis=2))
  close(out["per_sample_N"], np.trace(jax.vmap(sln.prop3_covariance, (0, None))(L_NxCxP, 1.0),
                                      axis1=1, axis2=2))
  close(out["per_class_C"], np.mean(np.sum(L_NxCxP ** 2, axis=2), axis=0))
  close(out["energy"], np.sum(L_NxCxP ** 2) / n)
  sharp = sln.output_sharpness(apply_fn, params, x_NxD, chunk_size=5, method=method)
  close(sharp["sq_norms_NxC"], np.sum(J_NxCxP ** 2, axis=2))
  close(sharp["sharpness"], np.sum(J_NxCxP ** 2) / n)
  assert abs(float(out["energy"]) - float(sharp["sharpness"])) > 1e-3  # different quantities


# ----------------------------------------------------------------------------------------
# Loss-landscape slices.


def test_filter_normalized_direction_matches_filter_norms_and_zeroes_1d(x64):
  params = {"dense": {"kernel": normal(0, 4, 6), "bias": jnp.arange(6.0)},
            "conv": {"kernel": 3 * normal(1, 3, 3, 2, 5)},
            "bn": {"scale": jnp.linspace(0.5, 2.0, 5)}}
  d = sln.filter_normalized_direction(jax.random.key(2), params)
  for name, axes in (("dense", (0,)), ("conv", (0, 1, 2))):
    theta, dk = params[name]["kernel"], d[name]["kernel"]
    close(np.linalg.norm(np.asarray(dk).reshape(-1, dk.shape[-1]), axis=0),
          np.sqrt(np.sum(np.asarray(theta) ** 2, axis=axes)), 1e-9)
    assert np.abs(dk - theta).max() > 0.1   # a random direction, not θ itself
  close(d["dense"]["bias"], np.zeros(6))
  close(d["bn"]["scale"], np.zeros(5))
  kept = sln.filter_normalized_direction(jax.random.key(2), params, ignore_1d=False)
  close(kept["bn"]["scale"], params["bn"]["scale"])
  close(kept["conv"]["kernel"], d["conv"]["kernel"])
  other = sln.filter_normalized_direction(jax.random.key(3), params)
  assert np.abs(other["dense"]["kernel"] - d["dense"]["kernel"]).max() > 0.1


def _ce_loss(apply_fn, x_NxD, labels_N):
  return lambda p: jnp.mean(-jnp.take_along_axis(
      jax.nn.log_softmax(apply_fn(p, x_NxD)), labels_N[:, None], axis=1))


def test_filter_normalized_slices_are_invariant_to_relu_layer_rescaling(x64):
  """Li et al.'s motivation: θ and its rescaled copy (same function) give the same slice."""
  apply_fn, params, x_NxD = tiny_net(seed=5, activation="relu")
  loss = _ce_loss(apply_fn, x_NxD, jnp.arange(x_NxD.shape[0]) % C)
  scaled = {"dense_0": jax.tree.map(lambda a: 4.0 * a, params["dense_0"]),
            "output": {"kernel": params["output"]["kernel"] / 4.0,
                       "bias": params["output"]["bias"]}}
  close(loss(scaled), loss(params), 1e-12)
  alphas = jnp.linspace(-1.0, 1.0, 9)
  key = jax.random.key(6)
  normalized = [sln.landscape_1d(loss, p, sln.filter_normalized_direction(key, p), alphas)
                for p in (params, scaled)]
  close(normalized[0], normalized[1], 1e-9)
  raw = jax.tree.map(lambda a: normal(8, *a.shape), params)
  plain = [sln.landscape_1d(loss, p, raw, alphas) for p in (params, scaled)]
  assert np.abs(plain[0] - plain[1]).max() > 1e-2


def test_landscape_centre_grid_points_and_1d_slice(x64):
  apply_fn, params, x_NxD = tiny_net(seed=6)
  loss = _ce_loss(apply_fn, x_NxD, jnp.arange(x_NxD.shape[0]) % C)
  d1 = sln.filter_normalized_direction(jax.random.key(0), params)
  d2 = sln.filter_normalized_direction(jax.random.key(1), params)
  alphas, betas = jnp.linspace(-1.0, 1.0, 5), jnp.linspace(-0.5, 1.0, 4)  # 0 at [2], [1]
  grid = sln.landscape_2d(loss, params, d1, d2, alphas, betas, batch_size=3)
  assert grid.shape == (5, 4)
  close(grid[2, 1], loss(params), 1e-12)
  shifted = jax.tree.map(lambda t, u, v: t + alphas[4] * u + betas[3] * v, params, d1, d2)
  close(grid[4, 3], loss(shifted), 1e-12)
  close(sln.landscape_1d(loss, params, d1, alphas), grid[:, 1], 1e-12)
  assert np.ptp(np.asarray(grid)) > 1e-3


def test_sharpness_ranks_quadratic_bowls_by_curvature(x64):
  theta0 = {"w": normal(0, 3, 4), "b": jnp.ones(4)}
  bowl = lambda kappa: (lambda p: 0.5 * kappa * sum(
      jnp.sum((a - b) ** 2) for a, b in zip(jax.tree.leaves(p), jax.tree.leaves(theta0))))
  d1 = sln.filter_normalized_direction(jax.random.key(1), theta0)
  d2 = sln.filter_normalized_direction(jax.random.key(2), theta0)
  alphas = betas = jnp.linspace(-1.0, 1.0, 11)
  values = {}
  for kappa in (1.0, 4.0):
    grid = sln.landscape_2d(bowl(kappa), theta0, d1, d2, alphas, betas)
    values[kappa] = float(sln.sharpness(grid, alphas, betas, radius=0.5))
    line = sln.landscape_1d(bowl(kappa), theta0, d1, alphas)
    # 1-D: mean of ½κa²‖d1‖² over the 0 < |a| ≤ 0.5 points a = ±0.2, ±0.4.
    d1_sq = sum(float(jnp.sum(v ** 2)) for v in jax.tree.leaves(d1))
    close(sln.sharpness(line, alphas, radius=0.5), 0.5 * kappa * d1_sq * (0.04 + 0.16) / 2, 1e-9)
  assert values[4.0] > values[1.0] > 0
  close(values[4.0] / values[1.0], 4.0, 1e-9)
  flat = sln.landscape_2d(lambda p: 0.0 * p["b"][0] + 2.0, theta0, d1, d2, alphas, betas)
  close(sln.sharpness(flat, alphas, betas, radius=0.5), 0.0)
