"""Kernel machines trained by gradient descent (clean-priority paper, Fig. 9).

Laplacian and Gaussian kernels as plain jitted JAX functions, and two iterations for
the square loss L(α) = ‖Kα − y‖²/(2n) over f(·) = Σ_i α_i k(·, x_i):
  gradient descent     α ← α − (η/λ₁)(Kα − y),
  EigenPro (Ma & Belkin 2017)  α ← α − (η/λ_{k+1}) P(Kα − y),
      P = I − Σ_{i≤k} (1 − λ_{k+1}/λ_i) e_i e_iᵀ,
with λ_i, e_i the eigenpairs of K. Both are the functional gradient flow
f_t = Σ_i (1 − (1 − η_i λ_i)ᵗ) (e_iᵀy) e_i run at different speeds per eigen-direction,
so the iteration count plays the role of training time.
"""

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from noisejax.errors import ConfigError

KERNELS = ("laplacian", "gaussian")
METHODS = ("gd", "eigenpro")


def _sq_distances(x_NxD, z_MxD):
  """‖x_i − z_j‖² for all pairs, clipped at 0 against round-off."""
  sq_NxM = (jnp.sum(x_NxD**2, axis=1)[:, None] + jnp.sum(z_MxD**2, axis=1)[None, :]
            - 2 * x_NxD @ z_MxD.T)
  return jnp.maximum(sq_NxM, 0.0)


@jax.jit
def laplacian_kernel(x_NxD, z_MxD, bandwidth):
  """Laplacian kernel k(x, z) = exp(−‖x − z‖/σ)."""
  return jnp.exp(-jnp.sqrt(_sq_distances(x_NxD, z_MxD)) / bandwidth)


@jax.jit
def gaussian_kernel(x_NxD, z_MxD, bandwidth):
  """Gaussian kernel k(x, z) = exp(−‖x − z‖²/(2σ²))."""
  return jnp.exp(-_sq_distances(x_NxD, z_MxD) / (2 * bandwidth**2))


def get_kernel(name: str):
  """The kernel function `fn(x_NxD, z_MxD, bandwidth) -> K_NxM` called `name`."""
  kernels = {"laplacian": laplacian_kernel, "gaussian": gaussian_kernel}
  if name not in kernels:
    raise ConfigError("kernel.name", name, KERNELS)
  return kernels[name]


def kernel_matrix(name: str, x_NxD, z_MxD, bandwidth, *, block_size: int = 2048):
  """K_NxM = k(x_i, z_j), built `block_size` rows at a time to bound memory."""
  fn = get_kernel(name)
  blocks = [fn(x_NxD[i:i + block_size], z_MxD, bandwidth)
            for i in range(0, x_NxD.shape[0], block_size)]
  return jnp.concatenate(blocks, axis=0)


def median_distance(x_NxD, *, max_points: int = 2000):
  """Median pairwise Euclidean distance among the first `max_points` rows (bandwidth scale)."""
  x = x_NxD[:max_points]
  dist = jnp.sqrt(_sq_distances(x, x))
  upper = jnp.triu_indices(x.shape[0], k=1)
  return jnp.median(dist[upper])


@functools.partial(jax.jit, static_argnames=("k", "iters"))
def top_eigenpairs(k_NxN, key, *, k: int, iters: int = 30):
  """Top-k eigenpairs of a symmetric PSD matrix by randomized subspace iteration.

  Q ← orth(K Q) repeated `iters` times, then Rayleigh-Ritz on QᵀKQ. Returns (λ_k desc, E_Nxk).
  """
  q_NxK, _ = jnp.linalg.qr(jax.random.normal(key, (k_NxN.shape[0], k), k_NxN.dtype))

  def body(_, q):
    return jnp.linalg.qr(k_NxN @ q)[0]

  q_NxK = jax.lax.fori_loop(0, iters, body, q_NxK)
  small_KxK = q_NxK.T @ k_NxN @ q_NxK
  evals_K, evecs_KxK = jnp.linalg.eigh((small_KxK + small_KxK.T) / 2)
  order = jnp.argsort(-evals_K)
  return evals_K[order], q_NxK @ evecs_KxK[:, order]


class Preconditioner(NamedTuple):
  """EigenPro preconditioner P = I − E diag(scale) Eᵀ and the step size it allows."""
  evecs_Nxk: jax.Array
  scale_k: jax.Array      # 1 − λ_{k+1}/λ_i
  step_size: jax.Array    # η/λ_{k+1} (or η/λ₁ for plain gradient descent)


def make_preconditioner(k_NxN, key, *, method: str, top_k: int, lr: float = 1.0):
  """Step size (and EigenPro directions) for `kernel_gd` on the train kernel matrix."""
  if method not in METHODS:
    raise ConfigError("kernel.method", method, METHODS)
  if not 0 < lr < 2:
    raise ConfigError("kernel.lr", lr, reason="must lie in (0, 2) for a stable iteration")
  n = k_NxN.shape[0]
  if method == "gd":
    evals, _ = top_eigenpairs(k_NxN, key, k=1)
    return Preconditioner(jnp.zeros((n, 0), k_NxN.dtype), jnp.zeros((0,), k_NxN.dtype),
                          lr / evals[0])
  if not 0 < top_k < n:
    raise ConfigError("kernel.top_k", top_k, reason=f"must lie in (0, n={n})")
  evals, evecs = top_eigenpairs(k_NxN, key, k=top_k + 1)
  scale = 1.0 - evals[top_k] / evals[:top_k]
  return Preconditioner(evecs[:, :top_k], scale, lr / evals[top_k])


@jax.jit
def kernel_gd_steps(alpha_N, k_NxN, y_N, precond: Preconditioner, num_steps):
  """`num_steps` (a traced int) iterations α ← α − η P(Kα − y); jitted once for all lengths."""

  def body(_, alpha):
    residual_N = k_NxN @ alpha - y_N
    direction_N = residual_N - precond.evecs_Nxk @ (precond.scale_k * (precond.evecs_Nxk.T @ residual_N))
    return alpha - precond.step_size * direction_N

  return jax.lax.fori_loop(0, num_steps, body, alpha_N)


def log_spaced_steps(max_steps: int, num: int):
  """Sorted unique evaluation steps 0, 1, …, max_steps, roughly evenly spaced in log scale."""
  steps = np.unique(np.round(np.logspace(0, np.log10(max_steps), num)).astype(int))
  return [0] + [int(s) for s in steps if s > 0]


def fit_kernel_machine(k_train_NxN, y_N, k_test_MxN, eval_steps, precond: Preconditioner,
                       *, callback=None):
  """Runs the iteration from α = 0 and returns predictions at each step of `eval_steps`.

  Returns (train predictions S×N, test predictions S×M); `callback(step, f_train, f_test)`
  is called at each evaluation (e.g. to log metrics).
  """
  alpha_N = jnp.zeros_like(y_N)
  done = 0
  preds_train, preds_test = [], []
  for step in eval_steps:
    alpha_N = kernel_gd_steps(alpha_N, k_train_NxN, y_N, precond, step - done)
    done = step
    f_train, f_test = k_train_NxN @ alpha_N, k_test_MxN @ alpha_N
    preds_train.append(f_train)
    preds_test.append(f_test)
    if callback is not None:
      callback(step, f_train, f_test)
  return jnp.stack(preds_train), jnp.stack(preds_test)
