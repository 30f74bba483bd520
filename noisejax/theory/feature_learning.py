"""Label noise in the feature-learning process (Han et al., ICML 2025, arXiv 2505.18909).

A two-layer ReLU CNN on signal–noise patches, trained by full-batch gradient descent
on the logistic loss of the noisy labels, and the exact signal / noise decomposition of
its weights:

  x = [y·μ, ξ],  F_j(W_j, x) = (1/m) Σ_r [σ(⟨w_{j,r}, y·μ⟩) + σ(⟨w_{j,r}, ξ⟩)],  f = F₊₁ − F₋₁,
  w_{j,r}⁽ᵗ⁾ = w_{j,r}⁽⁰⁾ + j·γ_{j,r}⁽ᵗ⁾·‖μ‖⁻²μ + Σ_i ρ_{j,r,i}⁽ᵗ⁾·‖ξ_i‖⁻²ξ_i.

Weights are one array W_2xMxD: W[0] holds the filters w_{+1,r}, W[1] the filters w_{−1,r}
(the layout of `noisejax.models.PatchCNN`). Only this first layer trains; the second is
fixed at ±1/m. A whole run is one jitted `lax.scan` that records γ, ρ, the training
outputs and the test error at chosen iterations; runs over seeds (and over signal
strengths) are one `vmap` of it.

Every gradient step adds a combination of μ and the ξ_i to each filter, so w⁽ᵗ⁾ − w⁽⁰⁾
lies in span{μ, ξ_1..ξ_n}. With n + 1 ≤ d these vectors are linearly independent, the
coefficients are unique, and `decompose` recovers them exactly by solving the Gram
system of the (normalized) basis. They then equal the coefficients of the paper's
iterative updates (`coefficient_updates`), so ρ_{j,r,i} ≥ 0 when j = ỹ_i (ρ̄) and ≤ 0
when j ≠ ỹ_i (ρ̲).

`run_seeds` draws, trains and analyzes S seeds at one regime n·SNR² (each seed with a
held-out split whose labels are flipped like the training labels, for the early-stopping
point of `noisejax.early_stopping`); `summarize_run`, `summarize_seeds`,
`signal_beats_memorization` (Thm 4.1 filter by filter), `loss_derivative_stages` (the
|ℓ'_i| mechanism) and `min_accuracy_after_fit` turn its analyses into the numbers the
paper's claims are about (Stage I window, T₁, memorization, the log 2 selection);
`signal_threshold` is the n·SNR² = 2/(1 − 2τ) above which the signal wins the start; and
`memorization_epochs` does the same for the real-data check on a training history.
"""

import functools
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from noisejax import losses

J_2 = np.array([1.0, -1.0], np.float32)  # the class sign j of W[0] and W[1]
LOG2 = float(np.log(2.0))


# ----------------------------------------------------------------------------- model

def snr(mu_norm, sigma_xi, d):
  """Signal-to-noise ratio of the data (paper §3): SNR = ‖μ‖ / (σ_ξ·√d)."""
  return mu_norm / (sigma_xi * np.sqrt(d))


def n_snr2(n, mu_norm, sigma_xi, d):
  """The paper's regime parameter n·SNR² = n‖μ‖² / (σ_ξ² d); Θ(1) gives two stages."""
  return n * snr(mu_norm, sigma_xi, d) ** 2


def signal_norm(regime, n, d, sigma_xi):
  """The ‖μ‖ of a regime n·SNR² = n‖μ‖²/(σ_ξ²d): ‖μ‖ = √(n·SNR²·d/n)·σ_ξ."""
  return math.sqrt(regime * d / n) * sigma_xi


def signal_threshold(tau):
  """The n·SNR² above which the signal outgrows memorization at the start: 2/(1 − 2τ).

  With every |ℓ'_i| = ½ at initialization one GD step adds η(1 − 2τ)‖μ‖²/(4m) to γ_{j,r}
  (clean samples push, noisy ones pull) and ησ_ξ²d/(2nm) to ρ̄_{ỹ_i,r,i}: their ratio
  (1 − 2τ)·n·SNR²/2 exceeds 1 iff n·SNR² > 2/(1 − 2τ).
  """
  return 2.0 / (1.0 - 2.0 * tau)


def time_unit(n, m, eta, sigma_xi, d):
  """The paper's time unit nm/(ησ_ξ²d) in GD iterations: T₁ = Θ(nm/(ησ_ξ²d)) (Thm 4.1)."""
  return n * m / (eta * sigma_xi ** 2 * d)


def init_weights(key, m, d, sigma0):
  """First-layer filters at initialization: w_{j,r}⁽⁰⁾ ~ N(0, σ₀² I_d), shape 2×m×d."""
  return sigma0 * jax.random.normal(key, (2, m, d))


def patch_cnn(W_2xMxD, x_Nx2xD):
  """Output of the two-layer patch CNN (paper §3): f = F₊₁ − F₋₁.

  F_j(x) = (1/m) Σ_r Σ_{p=1,2} ReLU(⟨w_{j,r}, x⁽ᵖ⁾⟩). Returns f_N.
  """
  pre_Nx2xMx2 = jnp.einsum("jmd,npd->njmp", W_2xMxD, x_Nx2xD)
  F_Nx2 = jax.nn.relu(pre_Nx2xMx2).sum(-1).mean(-1)
  return F_Nx2[:, 0] - F_Nx2[:, 1]


def logistic_losses(f_N, y_N):
  """Per-sample logistic loss ℓ(f, ỹ) = log(1 + exp(−ỹ·f)) (paper §3), ỹ ∈ {±1}."""
  return losses.logistic(f_N[:, None], (y_N + 1) // 2)


def empirical_risk(W_2xMxD, x_Nx2xD, y_N):
  """Training objective L_S(W) = (1/n) Σ_i ℓ(f(W, x_i), ỹ_i)."""
  return logistic_losses(patch_cnn(W_2xMxD, x_Nx2xD), y_N).mean()


def gd_step(W_2xMxD, x_Nx2xD, y_N, eta):
  """One full-batch gradient step: w_{j,r}⁽ᵗ⁺¹⁾ = w_{j,r}⁽ᵗ⁾ − η·∇_{w_{j,r}} L_S(W⁽ᵗ⁾)."""
  return W_2xMxD - eta * jax.grad(empirical_risk)(W_2xMxD, x_Nx2xD, y_N)


def coefficient_updates(W_2xMxD, x_Nx2xD, y_true_N, y_noisy_N, eta):
  """One step of the paper's coefficient recursions (the increments Δγ, Δρ of one GD step).

  γ_{j,r} += −(η/nm) Σ_i ℓ'_i σ'(⟨w_{j,r}, y_iμ⟩) ỹ_i y_i ‖μ‖²,
  ρ_{j,r,i} += −(η/nm) ℓ'_i σ'(⟨w_{j,r}, ξ_i⟩) j ỹ_i ‖ξ_i‖²,  ℓ'_i = −1/(1 + exp(ỹ_i f_i)).
  Returns (dgamma_2xM, drho_2xMxN); summed over steps they equal `decompose` exactly.
  """
  n, m = x_Nx2xD.shape[0], W_2xMxD.shape[1]
  f_N = patch_cnn(W_2xMxD, x_Nx2xD)
  dloss_N = -jax.nn.sigmoid(-y_noisy_N * f_N)  # ℓ'_i
  pre_Nx2xMx2 = jnp.einsum("jmd,npd->njmp", W_2xMxD, x_Nx2xD)
  active_Nx2xMx2 = (pre_Nx2xMx2 > 0).astype(W_2xMxD.dtype)
  mu_sq = jnp.sum(x_Nx2xD[0, 0] ** 2)  # ‖y_0μ‖² = ‖μ‖²
  xi_sq_N = jnp.sum(x_Nx2xD[:, 1] ** 2, axis=-1)
  scale = -eta / (n * m)
  dgamma_2xM = scale * jnp.einsum("n,njm->jm", dloss_N * y_noisy_N * y_true_N,
                                  active_Nx2xMx2[..., 0]) * mu_sq
  drho_2xMxN = scale * jnp.einsum("n,njm->jmn", dloss_N * y_noisy_N * xi_sq_N,
                                  active_Nx2xMx2[..., 1]) * J_2[:, None, None]
  return dgamma_2xM, drho_2xMxN


# ----------------------------------------------------------------------------- decomposition

class Basis(NamedTuple):
  """The normalized basis {μ/‖μ‖, ξ_i/‖ξ_i‖} (K = n + 1 rows), its norms and Gram inverse."""
  u_KxD: jax.Array
  norms_K: jax.Array
  gram_inv_KxK: jax.Array


def make_basis(mu_D, xi_NxD):
  """Precomputes the Gram system of span{μ, ξ_1..ξ_n} used by `decompose`.

  G = U Uᵀ with U the unit-norm basis rows; needs n + 1 ≤ d (linearly independent rows).
  """
  v_KxD = jnp.concatenate([mu_D[None], xi_NxD], axis=0)
  norms_K = jnp.linalg.norm(v_KxD, axis=-1)
  u_KxD = v_KxD / norms_K[:, None]
  gram_KxK = u_KxD @ u_KxD.T
  return Basis(u_KxD, norms_K, jnp.linalg.inv(gram_KxK))


def decompose(W_2xMxD, W0_2xMxD, basis: Basis):
  """Exact signal–noise decomposition (paper eq. "signal-noise decomposition").

  Solves w_{j,r} − w_{j,r}⁽⁰⁾ = j·γ_{j,r}‖μ‖⁻²μ + Σ_i ρ_{j,r,i}‖ξ_i‖⁻²ξ_i through the Gram
  matrix of the basis. Returns (gamma_2xM, rho_2xMxN).
  """
  delta_2xMxD = W_2xMxD - W0_2xMxD
  a_2xMxK = jnp.einsum("kl,jml->jmk", basis.gram_inv_KxK,
                       jnp.einsum("ld,jmd->jml", basis.u_KxD, delta_2xMxD))
  coef_2xMxK = a_2xMxK * basis.norms_K  # in the paper's scaling (‖μ‖⁻²μ, ‖ξ_i‖⁻²ξ_i)
  gamma_2xM = J_2[:, None] * coef_2xMxK[..., 0]
  return gamma_2xM, coef_2xMxK[..., 1:]


def reconstruct(gamma_2xM, rho_2xMxN, W0_2xMxD, basis: Basis):
  """w⁽⁰⁾ + j·γ‖μ‖⁻²μ + Σ_i ρ_i‖ξ_i‖⁻²ξ_i, the inverse of `decompose`."""
  coef_2xMxK = jnp.concatenate([(J_2[:, None] * gamma_2xM)[..., None], rho_2xMxN], axis=-1)
  a_2xMxK = coef_2xMxK / basis.norms_K
  return W0_2xMxD + jnp.einsum("jmk,kd->jmd", a_2xMxK, basis.u_KxD)


def split_rho(rho_2xMxN, y_noisy_N):
  """ρ̄_{j,r,i} = ρ_{j,r,i}·1[j = ỹ_i] (≥ 0) and ρ̲_{j,r,i} = ρ_{j,r,i}·1[j ≠ ỹ_i] (≤ 0)."""
  same_2x1xN = (J_2[:, None, None] == y_noisy_N[None, None, :])
  return jnp.where(same_2x1xN, rho_2xMxN, 0.0), jnp.where(same_2x1xN, 0.0, rho_2xMxN)


# ----------------------------------------------------------------------------- training run

class Trace(NamedTuple):
  """What one run records at each of its R recorded iterations (leading axis R)."""
  gamma_Rx2xM: jax.Array
  rho_Rx2xMxN: jax.Array
  f_RxN: jax.Array          # training outputs f(W⁽ᵗ⁾, x_i)
  test_error_R: jax.Array   # P̂(sign f(x) ≠ y) on clean test samples (true labels)
  val_error_R: jax.Array    # P̂(sign f(x) ≠ ỹ) on the held-out split (noisy labels)
  residual_R: jax.Array     # max relative error of the reconstruction from (γ, ρ)


def record_steps(total_steps, num_records):
  """Iterations to record: 0, then log-spaced up to `total_steps` (unique, increasing)."""
  steps = np.unique(np.round(np.geomspace(1, total_steps, num_records - 1)).astype(int))
  return tuple(int(s) for s in np.concatenate([[0], steps]))


def _error(W, x_Nx2xD, y_N):
  return jnp.mean(jnp.sign(patch_cnn(W, x_Nx2xD)) != y_N)


def _record(W, W0, basis, x_train, x_test, y_test, x_val, y_val):
  gamma, rho = decompose(W, W0, basis)
  delta = W - W0
  residual = jnp.linalg.norm(reconstruct(gamma, rho, W0, basis) - W) / jnp.maximum(
      jnp.linalg.norm(delta), 1e-30)
  return Trace(gamma, rho, patch_cnn(W, x_train), _error(W, x_test, y_test),
               _error(W, x_val, y_val), residual)


@functools.partial(jax.jit, static_argnames=("steps",))
def simulate(W0_2xMxD, mu_D, x_Nx2xD, y_noisy_N, x_test_Tx2xD, y_test_T, x_val_Vx2xD,
             y_val_V, eta, *, steps):
  """Full-batch GD on the logistic loss, recorded at the iterations `steps` (one lax.scan).

  w⁽ᵗ⁺¹⁾ = w⁽ᵗ⁾ − η∇L_S(w⁽ᵗ⁾); at each t in `steps` records γ⁽ᵗ⁾, ρ⁽ᵗ⁾ (exact
  decomposition), f(W⁽ᵗ⁾, x_i), the clean test error and the error on the held-out split
  (its own labels, noisy like the training labels). Returns (W_final, Trace). The
  iterations between records run in a device-resident fori_loop; pure in all array
  arguments, so `jax.vmap` runs seeds (or signal strengths) in one program.
  """
  basis = make_basis(mu_D, x_Nx2xD[:, 1])
  increments = np.diff(np.asarray((0,) + tuple(steps)))

  def advance(W, count):
    W = jax.lax.fori_loop(0, count, lambda _, w: gd_step(w, x_Nx2xD, y_noisy_N, eta), W)
    return W, _record(W, W0_2xMxD, basis, x_Nx2xD, x_test_Tx2xD, y_test_T, x_val_Vx2xD,
                      y_val_V)

  return jax.lax.scan(advance, W0_2xMxD, jnp.asarray(increments, jnp.int32))


def simulate_seeds(W0_Sx2xMxD, mu_SxD, x_SxNx2xD, y_noisy_SxN, x_test_SxTx2xD, y_test_SxT,
                   x_val_SxVx2xD, y_val_SxV, eta, *, steps):
  """`simulate` vmapped over a leading seed axis S of every array (η shared)."""
  run = functools.partial(simulate, steps=steps)
  return jax.vmap(run, in_axes=(0,) * 8 + (None,))(
      W0_Sx2xMxD, mu_SxD, x_SxNx2xD, y_noisy_SxN, x_test_SxTx2xD, y_test_SxT, x_val_SxVx2xD,
      y_val_SxV, eta)


class Problem(NamedTuple):
  """Training and test data and initial weights of S independent runs (leading axis S)."""
  W0_Sx2xMxD: jax.Array
  mu_SxD: jax.Array
  x_SxNx2xD: jax.Array
  y_SxN: jax.Array          # true labels ±1
  y_noisy_SxN: jax.Array    # observed labels ±1
  is_noisy_SxN: jax.Array
  x_test_SxTx2xD: jax.Array
  y_test_SxT: jax.Array     # true labels ±1
  x_val_SxVx2xD: jax.Array  # held-out split drawn like the training set
  y_val_SxV: jax.Array      # its observed (noisy) labels ±1


def make_problem(key, num_seeds, *, n, d, m, mu_norm, sigma_xi, sigma0, tau_pos, tau_neg,
                 n_test, n_val=200):
  """Draws S = num_seeds independent data sets and initializations (paper §3 data model).

  Training data: `noisejax.synthetic.signal_noise` with class-conditional Bernoulli flips
  (τ₊, τ₋); test data: fresh ξ with the same μ and clean labels; a held-out split of
  n_val samples drawn like the training data, noisy labels included (for early stopping).
  """
  from noisejax import synthetic  # pylint: disable=g-import-not-at-top
  runs = []
  for seed_key in jax.random.split(key, num_seeds):
    key_train, key_test, key_init = jax.random.split(seed_key, 3)
    train = synthetic.signal_noise(key_train, n, d, mu_norm, sigma_xi, tau_pos, tau_neg)
    test = synthetic.signal_noise(key_test, n_test, d, mu_norm, sigma_xi, 0.0, 0.0)
    val = synthetic.signal_noise(jax.random.fold_in(seed_key, 3), n_val, d, mu_norm,
                                 sigma_xi, tau_pos, tau_neg)
    runs.append(Problem(init_weights(key_init, m, d, sigma0), train.mu_D, train.x_Nx2xD,
                        train.y.astype(jnp.float32), train.y_noisy.astype(jnp.float32),
                        train.is_noisy, test.x_Nx2xD, test.y.astype(jnp.float32),
                        val.x_Nx2xD, val.y_noisy.astype(jnp.float32)))
  return Problem(*(jnp.stack(parts) for parts in zip(*runs)))


def run_problem(problem: Problem, eta, steps):
  """Trains every run of `problem` (one vmapped scan). Returns (W_final, Trace), axis S first."""
  return simulate_seeds(problem.W0_Sx2xMxD, problem.mu_SxD, problem.x_SxNx2xD,
                        problem.y_noisy_SxN, problem.x_test_SxTx2xD, problem.y_test_SxT,
                        problem.x_val_SxVx2xD, problem.y_val_SxV, eta, steps=tuple(steps))


# ----------------------------------------------------------------------------- analysis

def _first_window(ok_R):
  """(start, end) indices of the first maximal run of True in ok_R, or None."""
  idx = np.flatnonzero(ok_R)
  if idx.size == 0:
    return None
  start = int(idx[0])
  end = start
  while end + 1 < ok_R.size and ok_R[end + 1]:
    end += 1
  return start, end


def signal_beats_memorization(gamma_Rx2xM, rho_Rx2xMxN, y_noisy_N, is_noisy_N):
  """Thm 4.1's per-filter condition γ_{j,r} > ρ̄_{ỹ_i,r,i}, for every j, r and noisy i.

  Returns the fraction of the 2·m·|S_f| triples (j, r, i ∈ S_f) where it holds, per record
  (R,); 1 where it holds for every filter. NaN without noisy samples.
  """
  noisy = np.asarray(is_noisy_N, bool)
  if not noisy.any():
    return np.full(len(gamma_Rx2xM), np.nan)
  own_class_1x1x1xF = (np.asarray(y_noisy_N)[noisy] < 0).astype(int)[None, None, None]
  rho_bar_Rx1xMxF = np.take_along_axis(np.asarray(rho_Rx2xMxN)[..., noisy], own_class_1x1x1xF,
                                       axis=1)  # ρ̄_{ỹ_i,r,i} = ρ_{ỹ_i,r,i} (≥ 0)
  wins_Rx2xMxF = np.asarray(gamma_Rx2xM)[..., None] > rho_bar_Rx1xMxF
  return wins_Rx2xMxF.mean(axis=(1, 2, 3))


def analyze(steps, trace, y_N, y_noisy_N, is_noisy_N, es_window=None):
  """Curves and stage boundaries of ONE run (numpy; no seed axis).

  Stage I window: the first run of recorded iterations at which every training sample is
  classified by its TRUE label (all clean samples fitted, every noisy sample predicted
  as its true class, i.e. not fitted); right after its end the first noisy sample is
  memorized (Stage II). T₁ (Thm 4.1): the last iteration of the window at which also the
  signal beats memorization filter by filter, γ_{j,r} > ρ̄_{ỹ_i,r,i} for every j, r and
  noisy i (`signal_beats_memorization`); None if no such iteration. The early-stopping
  record `es_index` is `noisejax.early_stopping.index` of the held-out (noisy-label)
  error. |ℓ'_i| = 1/(1 + exp(ỹ_i f_i)) = 1 − exp(−ℓ_i). Returns a dict of arrays and scalars.
  """
  from noisejax import early_stopping  # pylint: disable=g-import-not-at-top
  steps = np.asarray(steps)
  y, y_noisy, noisy = (np.asarray(a) for a in (y_N, y_noisy_N, is_noisy_N))
  noisy = noisy.astype(bool)
  f = np.asarray(trace.f_RxN)
  gamma = np.asarray(trace.gamma_Rx2xM)
  rho = np.asarray(trace.rho_Rx2xMxN)
  rho_bar = np.where(np.array([1.0, -1.0])[None, :, None, None] == y_noisy[None, None, None, :],
                     rho, 0.0)
  sample_losses = np.logaddexp(0.0, -y_noisy * f)
  dloss = 1.0 / (1.0 + np.exp(np.clip(y_noisy * f, -80.0, 80.0)))  # |ℓ'_i|
  correct_given = np.sign(f) == y_noisy
  correct_true = np.sign(f) == y
  mean_or_nan = lambda a, mask: a[:, mask].mean(1) if mask.any() else np.full(len(a), np.nan)
  rho_max_RxN = rho.max(axis=(1, 2))  # max_{j,r} ρ_{j,r,i}
  rho_bar_max_RxN = rho_bar.max(axis=(1, 2))  # max_r ρ̄_{ỹ_i,r,i}
  gamma_max_R = gamma.max(axis=(1, 2))
  val_error = np.asarray(trace.val_error_R)
  out = {
      "steps": steps,
      "acc_train": correct_given.mean(1),
      "acc_clean": mean_or_nan(correct_given, ~noisy),
      "acc_noisy": mean_or_nan(correct_given, noisy),        # against the noisy labels
      "acc_noisy_true": mean_or_nan(correct_true, noisy),    # against the true labels
      "acc_true": correct_true.mean(1),
      "test_error": np.asarray(trace.test_error_R),
      "val_error": val_error,
      "es_index": early_stopping.index(val_error, es_window or early_stopping.WINDOW),
      "gamma_max": gamma_max_R,
      "gamma_min": gamma.min(axis=(1, 2)),
      "gamma_mean": gamma.mean(axis=(1, 2)),
      "rho_max_clean": rho_max_RxN[:, ~noisy].max(1) if (~noisy).any() else np.zeros(len(f)),
      "rho_max_noisy": rho_max_RxN[:, noisy].max(1) if noisy.any() else np.zeros(len(f)),
      "rho_mean_clean": mean_or_nan(rho_max_RxN, ~noisy),
      "rho_mean_noisy": mean_or_nan(rho_max_RxN, noisy),
      "rho_bar_max_noisy": (rho_bar_max_RxN[:, noisy].max(1) if noisy.any()
                            else np.zeros(len(f))),
      "signal_wins_per_filter": signal_beats_memorization(gamma, rho, y_noisy, noisy),
      "losses": sample_losses,
      "dloss": dloss,
      "dloss_mean_clean": mean_or_nan(dloss, ~noisy),
      "dloss_mean_noisy": mean_or_nan(dloss, noisy),
      "is_noisy": noisy,
      # f_i = 0 exactly: every ReLU of sample i is off, its gradient is 0 from then on.
      "dead_end": int(np.sum(f[-1] == 0.0)),
      "residual": float(np.max(np.asarray(trace.residual_R)[1:])) if len(f) > 1 else 0.0,
  }
  # Fraction of noisy samples whose own noise coefficient beats the signal of their class:
  # max_r ρ̄_{ỹ_i,r,i} > max_r γ_{y_i,r}.
  gamma_true_RxN = np.where(y[None, :] > 0, gamma[:, 0].max(-1)[:, None],
                            gamma[:, 1].max(-1)[:, None])
  out["frac_noisy_rho_over_gamma"] = (mean_or_nan(rho_bar_max_RxN > gamma_true_RxN, noisy))
  window = _first_window(out["acc_true"] == 1.0) if noisy.any() else None
  out["window"] = None if window is None else (int(steps[window[0]]), int(steps[window[1]]))
  out["window_end_index"] = None if window is None else window[1]
  out["t1_index"] = None
  if window is not None:
    signal_wins = out["signal_wins_per_filter"][window[0]:window[1] + 1] == 1.0
    inside = np.flatnonzero(signal_wins)
    out["signal_wins_fraction"] = float(signal_wins.mean())
    if inside.size:
      out["t1_index"] = int(window[0] + inside[-1])
  return out


def loss_derivative_stages(a, small):
  """The loss-derivative mechanism of one run (an `analyze` result with noisy samples).

  Stage I: min_i |ℓ'_i| over the records 0..T₁ (bounded below by a constant). Stage II:
  the first record after T₁ at which the clean samples' mean |ℓ'_i| is ≤ `small` (→ 0),
  and there the noisy samples' mean |ℓ'_i| and the ratio noisy / clean of the means.
  NaN / None where T₁ or such a record does not exist.
  """
  i = a["t1_index"]
  out = {"stage1_min": float("nan"), "stage2_step": None, "stage2_clean_mean": float("nan"),
         "stage2_noisy_mean": float("nan"), "stage2_ratio": float("nan")}
  if i is None:
    return out
  out["stage1_min"] = float(a["dloss"][:i + 1].min())
  clean_R, noisy_R = a["dloss_mean_clean"], a["dloss_mean_noisy"]
  later = np.flatnonzero(clean_R[i + 1:] <= small)
  if later.size:
    k = i + 1 + int(later[0])
    out.update(stage2_step=int(a["steps"][k]), stage2_clean_mean=float(clean_R[k]),
               stage2_noisy_mean=float(noisy_R[k]), stage2_ratio=float(noisy_R[k] / clean_R[k]))
  return out


def separation_at(losses_RxN, is_noisy_N, index):
  """Sample selection by the log 2 threshold at record `index` (Prop. 4.3).

  Returns the fractions of clean samples with ℓ ≤ log 2 and of noisy samples with ℓ ≥ log 2.
  """
  losses_N = np.asarray(losses_RxN)[index]
  noisy = np.asarray(is_noisy_N, bool)
  clean_below = float(np.mean(losses_N[~noisy] <= LOG2)) if (~noisy).any() else float("nan")
  noisy_above = float(np.mean(losses_N[noisy] >= LOG2)) if noisy.any() else float("nan")
  return {"clean_below_log2": clean_below, "noisy_above_log2": noisy_above}




# ----------------------------------------------------------------------------- runs and summaries

def run_seeds(key, *, seeds, n, d, m, n_snr2, sigma_xi, sigma0, tau_pos, tau_neg, n_test,
              eta, steps, records, n_val=200):  # pylint: disable=redefined-outer-name
  """Draws `seeds` problems at the regime `n_snr2` (‖μ‖ = `signal_norm`), trains each by
  full-batch GD for `steps` iterations (one vmapped scan, `records` log-spaced records)
  and analyzes every run. The keyword names are those of the experiment's `synthetic`
  config, so `run_seeds(key, **config.synthetic)` runs it.

  The same key gives the same μ, ξ, true labels and initializations at any τ: only the
  flips differ (τ = 0: the noiseless twin). Returns (problem, [analyze(...) per seed]).
  """
  steps_R = record_steps(steps, records)
  problem = make_problem(key, seeds, n=n, d=d, m=m, mu_norm=signal_norm(n_snr2, n, d, sigma_xi),
                         sigma_xi=sigma_xi, sigma0=sigma0, tau_pos=tau_pos, tau_neg=tau_neg,
                         n_test=n_test, n_val=n_val)
  _, trace = run_problem(problem, eta, steps_R)
  trace = jax.device_get(trace)
  analyses = [analyze(steps_R, jax.tree.map(lambda a, k=k: a[k], trace), problem.y_SxN[k],
                      problem.y_noisy_SxN[k], problem.is_noisy_SxN[k])
              for k in range(seeds)]
  return problem, analyses


def summarize_run(a, unit, small=0.01):
  """The numbers of one run (an `analyze` result) at T₁, at the end of its Stage I
  window, at the early-stopping record and at its last record; times also in units of
  `unit` = `time_unit(...)`; `small` is the |ℓ'| counted as → 0 (`loss_derivative_stages`)."""
  noisy = np.asarray(a["is_noisy"], bool)
  es = a["es_index"]
  out = {"window": a["window"], "final": {
      "acc_clean": a["acc_clean"][-1], "acc_noisy": a["acc_noisy"][-1],
      "test_error": a["test_error"][-1], "gamma_max": a["gamma_max"][-1],
      "rho_bar_max_noisy": a["rho_bar_max_noisy"][-1],
      "frac_noisy_rho_over_gamma": a["frac_noisy_rho_over_gamma"][-1],
      "train_loss": float(a["losses"][-1].mean()), "dead_samples": a["dead_end"],
      "dloss_max_clean": float(a["dloss"][-1, ~noisy].max()) if (~noisy).any() else 0.0,
      **separation_at(a["losses"], a["is_noisy"], -1)},
      "es": {"step": int(a["steps"][es]), "test_error": a["test_error"][es],
             "val_error": a["val_error"][es], **separation_at(a["losses"], a["is_noisy"], es)}}
  end = a["window_end_index"]
  if end is not None:
    out["signal_wins_fraction_of_window"] = a["signal_wins_fraction"]
    out["at_window_end"] = {"gamma_max": a["gamma_max"][end],
                            "rho_bar_max_noisy": a["rho_bar_max_noisy"][end],
                            "signal_wins_per_filter": a["signal_wins_per_filter"][end]}
  i = a["t1_index"]
  if i is not None:
    out["t1"] = int(a["steps"][i])
    out["t1_in_time_units"] = a["steps"][i] / unit
    out["at_t1"] = {"test_error": a["test_error"][i], "gamma_max": a["gamma_max"][i],
                    "gamma_min": a["gamma_min"][i],
                    "rho_bar_max_noisy": a["rho_bar_max_noisy"][i],
                    "signal_wins_per_filter": a["signal_wins_per_filter"][i],
                    **separation_at(a["losses"], a["is_noisy"], i)}
    out["gamma_min_after_t1"] = float(np.min(a["gamma_min"][i:]))
  if noisy.any():
    out["loss_derivative"] = loss_derivative_stages(a, small)
  return out


def first_fit_time(a, key, unit):
  """First recorded iteration (in units of `unit`) with accuracy 1 on curve `key`, or inf."""
  hit = np.flatnonzero(a[key] == 1.0)
  return float(a["steps"][hit[0]] / unit) if hit.size else float("inf")


def summarize_seeds(analyses, unit):
  """One sweep point: over the seeds' `analyze` results, the fraction with a Stage I
  window (and with T₁), per seed the samples with every ReLU off at the end (f = 0,
  stuck), the mean test error at T₁, at its minimum and at the end, the
  mean rise end − T₁ (over seeds with T₁; NaN if none), and per seed the times (in
  units of `unit`) when Stage I ends and when every noisy sample is fitted."""
  t1 = [a for a in analyses if a["t1_index"] is not None]
  test_t1 = [a["test_error"][a["t1_index"]] for a in t1]
  return {"frac_window": float(np.mean([a["window"] is not None for a in analyses])),
          "frac_t1": len(t1) / len(analyses),
          "noisy_memorized_end": float(np.mean([a["acc_noisy"][-1] for a in analyses])),
          "dead_samples_end": [a["dead_end"] for a in analyses],
          "test_error_t1": float(np.mean(test_t1)) if test_t1 else float("nan"),
          "test_error_min": float(np.mean([a["test_error"].min() for a in analyses])),
          "test_error_end": float(np.mean([a["test_error"][-1] for a in analyses])),
          "rise": (float(np.mean([a["test_error"][-1] - a["test_error"][a["t1_index"]]
                                  for a in t1])) if t1 else float("nan")),
          "all_noisy_fitted_time_units": [first_fit_time(a, "acc_noisy", unit)
                                          for a in analyses],
          "window_end_time_units": [
              None if a["window_end_index"] is None
              else float(a["steps"][a["window_end_index"]] / unit) for a in analyses],
          "t1_in_time_units": [None if a["t1_index"] is None
                               else float(a["steps"][a["t1_index"]] / unit)
                               for a in analyses]}


def min_accuracy_after_fit(a):
  """Lowest training accuracy from the first record with every sample fitted on (0 if
  never fitted): 1 means no sample is lost again (Thm 4.4, noiseless)."""
  fitted = np.flatnonzero(a["acc_train"] == 1.0)
  return float(a["acc_train"][fitted[0]:].min()) if fitted.size else 0.0


def memorization_epochs(history, *, fit_threshold, memorize_threshold):
  """Real-data check on a training history (`train.train_classifier`'s records): the
  first epoch at which the clean samples reach accuracy `fit_threshold` on their labels
  and the first at which the flipped samples reach `memorize_threshold` against their
  flipped labels (inf if never), the flipped accuracy when the clean ones are fitted,
  the final accuracies and the best test accuracy. The record before training (epoch
  0, chance) is left out."""
  history = [h for h in history if h["epoch"] > 0]
  epochs = np.array([h["epoch"] for h in history])
  clean = 1 - np.array([h["clean_error"] for h in history])
  memorized = 1 - np.array([h["noisy_error"] for h in history])
  test = 1 - np.array([h["test_error"] for h in history])
  first = lambda ok: float(epochs[np.argmax(ok)]) if ok.any() else float("inf")
  fitted = clean >= fit_threshold
  return {"clean_fitted_epoch": first(fitted),
          "flipped_memorized_epoch": first(memorized >= memorize_threshold),
          "flipped_acc_when_clean_fitted": (float(memorized[np.argmax(fitted)])
                                            if fitted.any() else None),
          "final": {"clean_acc": float(clean[-1]), "flipped_acc_vs_noisy": float(memorized[-1]),
                    "test_acc": float(test[-1])},
          "best_test_acc": float(test.max()), "best_test_epoch": float(epochs[np.argmax(test)])}
