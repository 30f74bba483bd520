"""Theory of Li, Soltanolkotabi & Oymak (early stopping is robust to label noise).

The one-hidden-layer network f(W, x) = vᵀφ(Wx) with fixed output weights v = ±1/√k
(eq. 2), trained by full-batch gradient descent on L(W) = ½ Σ_i (y_i − f(W, x_i))²
(eqs. 3–4); the neural-net cluster covariance Σ(C) and λ(C) (Def. 2.1); the signal
subspace S₊ of cluster-constant vectors and Theorem 9.2's entrywise bound; the
fraction of a vector lying in the top singular subspace of a Jacobian (Section 4).
"""

import functools
import math
from typing import Callable, NamedTuple, Union

import jax
import jax.numpy as jnp
import numpy as np

from noisejax import models
from noisejax.errors import ConfigError

ACTIVATIONS = {
    "relu": jax.nn.relu,
    "softplus": jax.nn.softplus,
    "tanh": jnp.tanh,
    "gelu": jax.nn.gelu,
}


def activation_fn(name: str) -> Callable:
  """The activation φ called `name` (one of ACTIVATIONS)."""
  if name not in ACTIVATIONS:
    raise ConfigError("activation", name, tuple(ACTIVATIONS))
  return ACTIVATIONS[name]


def _elementwise_derivative(activation: Union[str, Callable]) -> Callable:
  """z ↦ φ'(z) applied entrywise to an array of any shape."""
  if activation == "relu":
    return lambda z: (z > 0).astype(z.dtype)
  phi = activation_fn(activation) if isinstance(activation, str) else activation
  scalar = jax.grad(phi)
  return lambda z: jnp.vectorize(scalar)(z)


# ----------------------------------------------------------------------------
# Neural-net cluster covariance (Definition 2.1).


def relu_derivative_kernel(centers_KxD) -> jnp.ndarray:
  """E_g[φ'(c_i·g) φ'(c_j·g)] for ReLU, g ~ N(0, I_d) (Definition 2.1).

  = P(c_i·g > 0, c_j·g > 0) = (π − θ_ij) / (2π), θ_ij the angle between c_i and c_j.
  """
  c_KxD = jnp.asarray(centers_KxD, jnp.float32)
  unit_KxD = c_KxD / jnp.linalg.norm(c_KxD, axis=1, keepdims=True)
  # θ = 2·atan2(‖u_i − u_j‖, ‖u_i + u_j‖) is accurate near 0 and π, unlike arccos(u_i·u_j).
  minus_KxK = jnp.linalg.norm(unit_KxD[:, None] - unit_KxD[None], axis=-1)
  plus_KxK = jnp.linalg.norm(unit_KxD[:, None] + unit_KxD[None], axis=-1)
  theta_KxK = 2 * jnp.arctan2(minus_KxK, plus_KxK)
  return (jnp.pi - theta_KxK) / (2 * jnp.pi)


def cluster_covariance(centers_KxD) -> jnp.ndarray:
  """Σ(C) = (C Cᵀ) ⊙ E_g[φ'(Cg) φ'(Cg)ᵀ] for ReLU, in closed form (Definition 2.1).

  Uses E[φ'(c_i·g) φ'(c_j·g)] = (π − θ_ij)/(2π); the rows of C are the cluster centers.
  """
  c_KxD = jnp.asarray(centers_KxD, jnp.float32)
  return (c_KxD @ c_KxD.T) * relu_derivative_kernel(c_KxD)


@functools.partial(jax.jit, static_argnames=("activation", "num_samples", "batch_size"))
def cluster_covariance_mc(key, centers_KxD, *, activation="relu", num_samples=100_000,
                          batch_size=10_000) -> jnp.ndarray:
  """Monte-Carlo Σ(C) = (C Cᵀ) ⊙ (1/m) Σ_j φ'(C g_j) φ'(C g_j)ᵀ, g_j ~ N(0, I_d) (Def. 2.1).

  Any φ in ACTIVATIONS; samples are drawn in batches of `batch_size` to bound memory.
  """
  if num_samples % batch_size:
    raise ConfigError("num_samples", num_samples,
                      reason=f"must be a multiple of batch_size={batch_size}")
  dphi = _elementwise_derivative(activation)
  c_KxD = jnp.asarray(centers_KxD, jnp.float32)

  def moment(total_KxK, batch_key):
    g_DxB = jax.random.normal(batch_key, (c_KxD.shape[1], batch_size))
    a_KxB = dphi(c_KxD @ g_DxB)
    return total_KxK + a_KxB @ a_KxB.T, None

  keys = jax.random.split(key, num_samples // batch_size)
  total_KxK, _ = jax.lax.scan(moment, jnp.zeros((c_KxD.shape[0],) * 2), keys)
  return (c_KxD @ c_KxD.T) * total_KxK / num_samples


def min_eigenvalue(sigma_KxK) -> float:
  """λ(C) = λ_min(Σ(C)), the cluster condition number of Definition 2.1."""
  return float(jnp.linalg.eigvalsh(jnp.asarray(sigma_KxK))[0])


# ----------------------------------------------------------------------------
# Signal subspace S₊ of perfectly clustered data and Theorem 9.2.


def signal_projection(v_N, cluster_id_N, num_clusters: int) -> jnp.ndarray:
  """Π_{S₊}(v): each entry replaced by the mean of v over its cluster (Section 9.1).

  S₊ = {v : v_i = v_j whenever x_i, x_j lie in the same cluster}; Π = Σ_ℓ (1/n_ℓ) 1_ℓ 1_ℓᵀ
  (proof of Lemma 10.10).
  """
  v_N = jnp.asarray(v_N, jnp.float32)
  cluster_id_N = jnp.asarray(cluster_id_N)
  sums_K = jax.ops.segment_sum(v_N, cluster_id_N, num_segments=num_clusters)
  counts_K = jax.ops.segment_sum(jnp.ones_like(v_N), cluster_id_N, num_segments=num_clusters)
  return (sums_K / jnp.maximum(counts_K, 1.0))[cluster_id_N]


def signal_projection_matrix(cluster_id_N, num_clusters: int) -> jnp.ndarray:
  """P_NxN = Σ_ℓ (1/n_ℓ) 1_ℓ 1_ℓᵀ, the orthogonal projection onto S₊ (Lemma 10.10)."""
  onehot_NxK = jax.nn.one_hot(jnp.asarray(cluster_id_N), num_clusters)
  counts_K = onehot_NxK.sum(0)
  return (onehot_NxK / jnp.maximum(counts_K, 1.0)) @ onehot_NxK.T


def theorem92_bound(y_N, y_true_N, cluster_id_N, num_clusters: int) -> float:
  """2‖Π_{S₊}(e)‖_∞ with e = y − ỹ: Theorem 9.2's bound on ‖f(θ_τ) − ỹ‖_∞ for large τ.

  Lemma 10.10: for a ρ-corrupted clusterable dataset ‖Π_{S₊}(e)‖_∞ ≤ 2ρ (labels in [−1, 1]).
  """
  e_N = jnp.asarray(y_N, jnp.float32) - jnp.asarray(y_true_N, jnp.float32)
  return float(2 * jnp.max(jnp.abs(signal_projection(e_N, cluster_id_N, num_clusters))))


def diffusedness(cluster_id_N, num_clusters: int) -> float:
  """γ of Definition 9.1 for S₊: ‖v‖_∞ ≤ √(γ/n)‖v‖₂ on S₊ holds with γ = n / min_ℓ n_ℓ."""
  counts = np.bincount(np.asarray(cluster_id_N), minlength=num_clusters)
  return float(len(np.asarray(cluster_id_N)) / counts.min())


def sparse_corruption_bound(y_N, y_true_N, cluster_id_N, num_clusters: int) -> float:
  """γ √s / n · ‖e‖₂, Theorem 9.2's bound for an s-sparse corruption e = y − ỹ (Lemma 10.3)."""
  e_N = np.asarray(y_N, np.float64) - np.asarray(y_true_N, np.float64)
  s = int(np.count_nonzero(e_N))
  gamma = diffusedness(cluster_id_N, num_clusters)
  return float(gamma * math.sqrt(s) / len(e_N) * np.linalg.norm(e_N))


# ----------------------------------------------------------------------------
# Labels of the clusterable model (Definitions 1.1–1.3).


def class_values(num_classes: int, low: float = 0.0, high: float = 1.0) -> jnp.ndarray:
  """The class labels α_1 < … < α_K̄ evenly spaced in [low, high]; δ = (high − low)/(K̄ − 1)."""
  if num_classes < 2:
    raise ConfigError("num_classes", num_classes, reason="needs at least 2 classes")
  return jnp.linspace(low, high, num_classes)


def nearest_class(outputs_N, alphas_C) -> jnp.ndarray:
  """argmin_ℓ |f(W, x_i) − α_ℓ| (eqs. 5–6): the class a scalar output predicts."""
  return jnp.argmin(jnp.abs(jnp.asarray(outputs_N)[..., None] - jnp.asarray(alphas_C)), axis=-1)


# ----------------------------------------------------------------------------
# The one-hidden-layer network of eq. (2) and gradient descent (eqs. 3–4).


def output_weights(k: int) -> jnp.ndarray:
  """v_k with half the entries +1/√k and half −1/√k (Section 1.2, fixed during training).

  The same vector as models.FixedOutputNet(output="pm_inv_sqrt_k").
  """
  return models.fixed_output_weights(k, "pm_inv_sqrt_k")


def init_hidden(key, k: int, d: int) -> jnp.ndarray:
  """W0_kxD with i.i.d. N(0, 1) entries (Theorem 2.2)."""
  return jax.random.normal(key, (k, d))


def network(w_KxD, v_K, x_NxD, activation: str = "relu") -> jnp.ndarray:
  """f(W, x_i) = vᵀφ(W x_i) for every row x_i of x (eq. 2)."""
  return activation_fn(activation)(x_NxD @ w_KxD.T) @ v_K


def squared_loss(w_KxD, v_K, x_NxD, y_N, activation: str = "relu") -> jnp.ndarray:
  """L(W) = ½ Σ_i (y_i − f(W, x_i))² (eq. 3; a sum, not a mean)."""
  return 0.5 * jnp.sum((y_N - network(w_KxD, v_K, x_NxD, activation)) ** 2)


def ntk_gram(w_KxD, v_K, x_NxD, activation: str = "relu") -> jnp.ndarray:
  """J Jᵀ for f(W, ·) = vᵀφ(W ·): (X Xᵀ) ⊙ (φ'(XWᵀ) diag(v²) φ'(XWᵀ)ᵀ) (Section 4, eq. 8).

  Row i of J is vec(diag(v) φ'(W x_i) x_iᵀ); its singular values are √eig(J Jᵀ).
  """
  a_NxK = _elementwise_derivative(activation)(x_NxD @ w_KxD.T) * v_K
  return (x_NxD @ x_NxD.T) * (a_NxK @ a_NxK.T)


def step_size(w_KxD, v_K, x_NxD, scale: float = 1.0, activation: str = "relu") -> float:
  """η = scale / ‖J(W0)‖², the constant step (Theorem 9.2 asks η ≤ 1/(2β²), β ≈ ‖J‖)."""
  top = jnp.linalg.eigvalsh(ntk_gram(w_KxD, v_K, x_NxD, activation))[-1]
  return float(scale / top)


class GDTrace(NamedTuple):
  """Iterates τ = 0, r, 2r, …, T of full-batch gradient descent (r = record_every).

  outputs_TxN: f(W_τ, x_i); distance_T: ‖W_τ − W_0‖_F; loss_T: L(W_τ); w_final: W_T.
  """
  outputs_TxN: jnp.ndarray
  distance_T: jnp.ndarray
  loss_T: jnp.ndarray
  w_final: jnp.ndarray


@functools.partial(jax.jit, static_argnames=("num_steps", "record_every", "activation"))
def gradient_descent(w0_KxD, v_K, x_NxD, y_N, lr, *, num_steps: int, record_every: int = 1,
                     activation: str = "relu") -> GDTrace:
  """W_{τ+1} = W_τ − η ∇L(W_τ), L(W) = ½ Σ_i (y_i − vᵀφ(W x_i))² (eqs. 3–4), one lax.scan.

  Only W is trained; vmap over w0/x/y/lr to run several seeds or corruption levels at once.
  """
  if num_steps % record_every:
    raise ConfigError("num_steps", num_steps, reason=f"must be a multiple of record_every={record_every}")
  grad_fn = jax.grad(squared_loss)

  def record(w_KxD):
    outputs_N = network(w_KxD, v_K, x_NxD, activation)
    return (outputs_N, jnp.linalg.norm(w_KxD - w0_KxD), 0.5 * jnp.sum((y_N - outputs_N) ** 2))

  def step(w_KxD, _):
    return w_KxD - lr * grad_fn(w_KxD, v_K, x_NxD, y_N, activation), None

  def chunk(w_KxD, _):
    stats = record(w_KxD)
    w_KxD, _ = jax.lax.scan(step, w_KxD, None, length=record_every)
    return w_KxD, stats

  w_final, (outputs, distance, loss) = jax.lax.scan(
      chunk, w0_KxD, None, length=num_steps // record_every)
  last_outputs, last_distance, last_loss = record(w_final)
  return GDTrace(jnp.concatenate([outputs, last_outputs[None]]),
                 jnp.append(distance, last_distance), jnp.append(loss, last_loss), w_final)


# ----------------------------------------------------------------------------
# The Jacobian's bimodal spectrum and where the residual lies (Section 4, Fig. 4c).


def singular_values_from_gram(gram_NxN) -> np.ndarray:
  """Singular values of J, largest first, from J Jᵀ: σ_i = √max(λ_i, 0)."""
  eigenvalues = np.linalg.eigvalsh(np.asarray(gram_NxN, np.float64))[::-1]
  return np.sqrt(np.clip(eigenvalues, 0.0, None))


def top_subspace_fractions(gram_NxN, vectors: dict, *, relative_threshold: float = 0.1,
                           num_top: int = None) -> dict:
  """‖U_rᵀ u‖² / ‖u‖² for each vector u: the share of u in J's top-r left singular subspace.

  U_r: eigenvectors of J Jᵀ with σ_i > relative_threshold·σ_1 (or the first `num_top`).
  Section 4: the clean residual should lie mostly in it, the corruption e mostly outside.
  Returns {"num_top": r, "<name>": fraction, "<name>_random": r/n (a random vector's share)}.
  """
  eigenvalues, vectors_NxN = np.linalg.eigh(np.asarray(gram_NxN, np.float64))
  order = np.argsort(eigenvalues)[::-1]
  sigma = np.sqrt(np.clip(eigenvalues[order], 0.0, None))
  if num_top is None:
    num_top = int(np.sum(sigma > relative_threshold * sigma[0]))
  u_NxR = vectors_NxN[:, order[:num_top]]
  result = {"num_top": num_top, "random_vector": num_top / len(sigma)}
  for name, u_N in vectors.items():
    u_N = np.asarray(u_N, np.float64)
    result[name] = float(np.sum((u_NxR.T @ u_N) ** 2) / max(np.sum(u_N ** 2), 1e-30))
  return result


@functools.partial(jax.jit, static_argnames=("num_steps", "record_every", "activation"))
def gradient_descent_batch(w0_SxKxD, v_K, x_SxNxD, y_SxN, lr_S, *, num_steps: int,
                           record_every: int = 1, activation: str = "relu") -> GDTrace:
  """`gradient_descent` for S runs at once (seeds or corruption levels), vmapped over runs."""
  run = functools.partial(gradient_descent, num_steps=num_steps, record_every=record_every,
                          activation=activation)
  return jax.vmap(run, in_axes=(0, None, 0, 0, 0))(w0_SxKxD, v_K, x_SxNxD, y_SxN,
                                                    jnp.asarray(lr_S, jnp.float32))


# ----------------------------------------------------------------------------
# Measurements on a trajectory.


def separation_auc(loss_clean, loss_noisy) -> float:
  """P(ℓ_noisy > ℓ_clean) + ½P(=) over all (clean, corrupted) pairs: the ROC AUC of the loss.

  1 means the per-sample losses of corrupted samples all exceed those of clean ones
  (separated histograms, Figs. 4a–b, 5b); 0.5 means they are indistinguishable.
  """
  clean = np.sort(np.asarray(loss_clean, np.float64).ravel())
  noisy = np.asarray(loss_noisy, np.float64).ravel()
  if clean.size == 0 or noisy.size == 0:
    return float("nan")
  below = np.searchsorted(clean, noisy, side="left")
  not_above = np.searchsorted(clean, noisy, side="right")
  return float(np.mean((below + not_above) / 2.0) / clean.size)


def parameter_distance(params, params0) -> float:
  """‖θ − θ0‖₂ over all layers combined (Fig. 3's distance from initialization)."""
  diffs = jax.tree.leaves(jax.tree.map(lambda a, b: jnp.sum((a - b) ** 2), params, params0))
  return float(jnp.sqrt(sum(diffs)))


def parameter_norm(params) -> float:
  """‖θ‖₂ over all layers combined."""
  return float(jnp.sqrt(sum(jnp.sum(leaf ** 2) for leaf in jax.tree.leaves(params))))
