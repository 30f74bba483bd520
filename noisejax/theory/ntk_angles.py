"""Angles between model derivatives at initialization (clean-priority paper, §3.1).

Liu, Abedsoltan & Belkin, "On Emergence of Clean-Priority Learning in Early
Stopped Neural Networks". For two inputs x, z let θ_d be the angle between x and z
and θ_h the angle between the model derivatives ∇h(w0; x) and ∇h(w0; z).

Theorem 3.1 (two-layer networks, NTK parameterization, infinite width m):
  h_1(w; x) = (1/√m) vᵀ A x            (linear, eq. 6):  θ_h = θ_d;
  h_2(w; x) = (1/√m) vᵀ σ(A x), σ=ReLU  (eq. 7):
      cos θ_h = ((π − θ_d)/π) cos θ_d + sin θ_d / (2π).
Corollary 3.2: if 0 ≤ θ_d(x, z) ≤ θ_d(x, z') ≤ π/2 then
  0 ≤ θ_h(x, z) ≤ θ_h(x, z') ≤ π/2 (both networks).

This module holds the closed forms, their extension to any depth through the
infinite-width NTK recursion (which reduces to Theorem 3.1 at depth 2), the
finite-width measurement of θ_h at initialization from the empirical NTK Gram
matrix (Figs. 2 and 3), and the closed-form prediction eq. (8) / (14) of the ratio
‖g_clean^(c)‖/‖g_noise^(c)‖ at initialization. The measured subset gradients of a noisy
training set (§3.2, §4, §5) are computed by `noisejax.persample`
(`subset_gradient_stats`, `clean_noise_stats_by_class`).
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np

from noisejax import models, persample
from noisejax.errors import ConfigError

# The activations with a closed form here (Theorem 3.1 and the NTK recursion); the
# functions themselves come from the one registry, models.ACTIVATIONS.
CLOSED_FORM_ACTIVATIONS = ("linear", "relu")


def theta_h_linear_two_layer(theta_d):
  """Theorem 3.1, eq. (15): two-layer linear NTK net at infinite width.

  θ_h = θ_d.
  """
  return jnp.asarray(theta_d)


def theta_h_relu_two_layer(theta_d):
  """Theorem 3.1, eq. (16): two-layer ReLU NTK net at infinite width.

  cos θ_h = ((π − θ_d)/π)·cos θ_d + sin θ_d/(2π), θ_d ∈ [0, π].
  """
  theta_d = jnp.asarray(theta_d)
  cos_h = (jnp.pi - theta_d) / jnp.pi * jnp.cos(theta_d) + jnp.sin(theta_d) / (2 * jnp.pi)
  return jnp.arccos(jnp.clip(cos_h, -1.0, 1.0))


def theta_h_two_layer(theta_d, activation: str):
  """Theorem 3.1: θ_h as a function of θ_d for the two-layer `activation` net."""
  if activation == "linear":
    return theta_h_linear_two_layer(theta_d)
  if activation == "relu":
    return theta_h_relu_two_layer(theta_d)
  raise ConfigError("activation", activation, CLOSED_FORM_ACTIVATIONS)


def _relu_expectations(sigma_xx, sigma_zz, sigma_xz):
  """Arc-cosine expectations for (u, v) ~ N(0, [[Σxx, Σxz], [Σxz, Σzz]]).

  E[σ(u)σ(v)] = √(ΣxxΣzz)(sin θ + (π − θ)cos θ)/(2π);  E[σ'(u)σ'(v)] = (π − θ)/(2π).
  """
  norm = jnp.sqrt(sigma_xx * sigma_zz)
  theta = jnp.arccos(jnp.clip(sigma_xz / norm, -1.0, 1.0))
  e_act = norm * (jnp.sin(theta) + (jnp.pi - theta) * jnp.cos(theta)) / (2 * jnp.pi)
  e_deriv = (jnp.pi - theta) / (2 * jnp.pi)
  return e_act, e_deriv


def theta_h_infinite_width(theta_d, depth: int, activation: str):
  """θ_h of a bias-free depth-`depth` NTK MLP at infinite width, unit-norm inputs.

  NTK recursion (Jacot et al. 2018): Σ¹ = Θ¹ = xᵀz, Σˡ⁺¹ = E[σσ], Σ̇ˡ⁺¹ = E[σ'σ'],
  Θˡ⁺¹ = Θˡ Σ̇ˡ⁺¹ + Σˡ⁺¹; cos θ_h = Θᴸ(x,z)/√(Θᴸ(x,x)Θᴸ(z,z)). Depth 2 gives Theorem 3.1.
  """
  if activation not in CLOSED_FORM_ACTIVATIONS:
    raise ConfigError("activation", activation, CLOSED_FORM_ACTIVATIONS)
  if depth < 1:
    raise ConfigError("depth", depth, reason="a network has at least one layer")
  theta_d = jnp.asarray(theta_d, dtype=jnp.float32)
  # Entries (x,x), (z,z), (x,z) of Σ and Θ; the diagonal ones are the same for x and z.
  sigma_diag, sigma_off = jnp.ones_like(theta_d), jnp.cos(theta_d)
  ntk_diag, ntk_off = sigma_diag, sigma_off
  for _ in range(depth - 1):
    if activation == "linear":
      continue  # Σ and Θ/l stay xᵀz: Θᴸ = L·xᵀz.
    diag_act, diag_deriv = _relu_expectations(sigma_diag, sigma_diag, sigma_diag)
    off_act, off_deriv = _relu_expectations(sigma_diag, sigma_diag, sigma_off)
    ntk_diag = ntk_diag * diag_deriv + diag_act
    ntk_off = ntk_off * off_deriv + off_act
    sigma_diag, sigma_off = diag_act, off_act
  return jnp.arccos(jnp.clip(ntk_off / ntk_diag, -1.0, 1.0))


def is_monotone_on_quarter(theta_d, theta_h, *, range_tol: float = 0.0) -> bool:
  """Corollary 3.2 on a grid: on θ_d ∈ [0, π/2], θ_h never decreases and lies in [0, π/2].

  `range_tol` widens [0, π/2] by that many radians (finite-width curves at θ_d = π/2
  scatter around π/2); monotonicity is checked exactly.
  """
  theta_d, theta_h = np.asarray(theta_d), np.asarray(theta_h)
  order = np.argsort(theta_d)
  theta_d, theta_h = theta_d[order], theta_h[order]
  keep = theta_d <= np.pi / 2 + 1e-9
  steps = np.diff(theta_h[keep])
  tol = range_tol + 1e-6
  in_range = np.all((theta_h[keep] >= -tol) & (theta_h[keep] <= np.pi / 2 + tol))
  return bool(np.all(steps >= 0) and in_range)


# --- Finite-width measurement at initialization -----------------------------------


def unit_circle(num_points: int):
  """Points on S¹: x_k = (cos φ_k, sin φ_k), φ_k = 2πk/num_points. Returns (x_Nx2, φ_N)."""
  phi_N = 2 * jnp.pi * jnp.arange(num_points) / num_points
  return jnp.stack([jnp.cos(phi_N), jnp.sin(phi_N)], axis=1), phi_N


def angles_from_gram(gram_NxN):
  """Pairwise angles from a Gram matrix: θ_ij = arccos(G_ij / √(G_ii G_jj))."""
  diag_N = jnp.sqrt(jnp.clip(jnp.diag(gram_NxN), 1e-30))
  cos_NxN = gram_NxN / (diag_N[:, None] * diag_N[None, :])
  return jnp.arccos(jnp.clip(cos_NxN, -1.0, 1.0))


def input_angles(x_NxD):
  """θ_d for every pair of rows of x: arccos of their cosine similarity."""
  return angles_from_gram(x_NxD @ x_NxD.T)


def ntk_mlp(depth: int, width: int, activation: str):
  """The bias-free NTK-parameterized MLP of Theorem 3.1 with `depth` layers, one output.

  depth 2 is eq. (6) (activation="linear") or eq. (7) (activation="relu").
  """
  if activation not in CLOSED_FORM_ACTIVATIONS:
    raise ConfigError("activation", activation, CLOSED_FORM_ACTIVATIONS)
  if depth < 2:
    raise ConfigError("depth", depth, reason="needs at least one hidden layer (depth >= 2)")
  return models.get_model("mlp", 1, hidden=(width,) * (depth - 1), activation=activation,
                          use_bias=False, parameterization="ntk")


@functools.partial(jax.jit, static_argnames=("model", "chunk_size"))
def theta_h_at_init(model, key, x_NxD, *, chunk_size: int = 64):
  """θ_h(x_i, x_j) for all pairs at a fresh initialization of `model` drawn with `key`.

  θ_h = ∠(∇h(w0; x_i), ∇h(w0; x_j)), from the empirical NTK Gram matrix at w0
  (persample.ntk_gram, `chunk_size` Jacobian rows per block).
  """
  params = model.init(key, x_NxD[:1])["params"]
  gram_NxN = persample.ntk_gram(persample.eval_apply_fn(model), params, x_NxD,
                                block_size=chunk_size)
  return angles_from_gram(gram_NxN)


def theta_h(model, variables, x_NxD, *, chunk_size: int = 64):
  """θ_h(x_i, x_j) (radians) for all pairs at the weights `variables` of a one-output model:
  the angles of the empirical NTK Gram (Remark 3.3: constant in training at infinite width)."""
  apply_fn = persample.eval_apply_fn(model, variables.get("batch_stats"))
  return angles_from_gram(persample.ntk_gram(apply_fn, variables["params"], x_NxD,
                                             block_size=chunk_size))


def theta_h_change_deg(theta0_NxN, theta_NxN) -> float:
  """Mean |θ_h(w_t) − θ_h(w_0)| over the pairs i < j, in degrees (Remark 3.3)."""
  theta0_NxN, theta_NxN = np.asarray(theta0_NxN), np.asarray(theta_NxN)
  i, j = np.triu_indices(theta0_NxN.shape[0], k=1)
  return float(np.degrees(np.mean(np.abs(theta_NxN[i, j] - theta0_NxN[i, j]))))


def circle_curves(model, key, num_points: int, num_inits: int, *, chunk_size: int = 64):
  """θ_h against θ_d on S¹ for `num_inits` independent initializations of `model`.

  x = (1, 0) against z = (cos θ_d, sin θ_d) on the grid θ_d = 2πk/num_points ∈ [0, π].
  Returns (θ_d_K, θ_h_SxK), one row per initialization.
  """
  x_Nx2, phi_N = unit_circle(num_points)
  k = num_points // 2 + 1
  rows = [theta_h_at_init(model, init_key, x_Nx2, chunk_size=chunk_size)[0, :k]
          for init_key in jax.random.split(key, num_inits)]
  return np.asarray(phi_N[:k]), np.asarray(jnp.stack(rows))


# --- Sample-wise gradients of the noisy training set (§3.2, §4, §5) ----------------


def predicted_ratio(rate: float, num_classes: int, *, num_outputs: int) -> float:
  """‖g_clean^(c)(w0)‖/‖g_noise^(c)(w0)‖ at initialization.

  Eq. (8), one sigmoid output: (1 − δ)/δ; eq. (14), C softmax logits: (C − 1)(1 − δ)/δ.
  """
  if num_outputs == 1:
    return (1 - rate) / rate
  return (num_classes - 1) * (1 - rate) / rate
