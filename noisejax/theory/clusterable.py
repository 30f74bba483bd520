"""Theory of Li, Soltanolkotabi & Oymak (early stopping is robust to label noise).

The one-hidden-layer network f(W, x) = vᵀφ(Wx) with fixed output weights v = ±1/√k
(eq. 2), trained by full-batch gradient descent on L(W) = ½ Σ_i (y_i − f(W, x_i))²
(eqs. 3–4); the neural-net cluster covariance Σ(C) and λ(C) (Def. 2.1); the signal
subspace S₊ of cluster-constant vectors and Theorem 9.2's entrywise bound; the
fraction of a vector lying in the top singular subspace of a Jacobian (Section 4).

What experiments/clusterable_gd.py computes, callable from a Colab cell:
  simulate / Setup.simulate   S such networks on S clusterable data sets
                              (synthetic.clusterable) in one compiled program
  fig5_simulation, perfect_clusters_simulation, distance_simulation, covariance_table
                              the records of Fig. 5, Thms 7.1 / 9.2 / 10.8, Thms 2.2–2.3,
                              Def. 2.1 (held-out points to stop on: Setup.held_out)
  corrupt_per_cluster, loss_histogram_overlap, fitted_for
                              a corruption ρ_ℓ per cluster; Fig. 5c's overlap; its late point
  TrainingProbe               an eval_fn for train.train_classifier: a CNN's distance
                              from θ0, true-label error, per-sample losses and
                              early_stopping.ValidationError's "val_error"
  corruption_sweep            Figs. 1, 3, 4a–b: one CNN training per corruption rate
  jacobian_spectrum, jacobian_before_after
                              Fig. 4c: σ(J) of a one-output model via persample.ntk_gram
Activations φ are models.ACTIVATIONS (models.activation_fn).
"""

import dataclasses
import functools
import math
import pathlib
from typing import Callable, NamedTuple, Union

import flax
import jax
import jax.numpy as jnp
import numpy as np

from noisejax import data as data_lib
from noisejax import distributed, early_stopping
from noisejax import metrics, models
from noisejax import noise as noise_lib
from noisejax import persample, synthetic, train
from noisejax.errors import ConfigError


def _elementwise_derivative(activation: Union[str, Callable]) -> Callable:
  """z ↦ φ'(z) applied entrywise to an array of any shape."""
  if activation == "relu":
    return lambda z: (z > 0).astype(z.dtype)
  phi = models.activation_fn(activation) if isinstance(activation, str) else activation
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


@jax.jit
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

  Any φ in models.ACTIVATIONS; samples are drawn in batches of `batch_size` to bound memory.
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


def covariance_table(key, num_clusters, d: int, *, mc_samples: int, mc_batch: int,
                     smooth_activations=()) -> list[dict]:
  """Σ(C) of K random unit-norm centers in R^d for each K in `num_clusters` (Def. 2.1).

  Row per K: max |Σ_closed − Σ_MC| (ReLU), λ(C) in closed form and by Monte-Carlo, the
  smallest center distance ν and the ReLU lower bound λ(C) ≥ ν/(100K²) (Section 2), and
  λ(C) by Monte-Carlo for each smooth φ in `smooth_activations`.
  """
  rows = []
  for i, k in enumerate(num_clusters):
    c_KxD = jax.random.normal(jax.random.fold_in(key, i), (k, d))
    c_KxD = c_KxD / jnp.linalg.norm(c_KxD, axis=1, keepdims=True)
    mc = functools.partial(cluster_covariance_mc, centers_KxD=c_KxD, num_samples=mc_samples,
                           batch_size=mc_batch)
    exact_KxK, mc_KxK = cluster_covariance(c_KxD), mc(jax.random.fold_in(key, 1000 + i))
    nu = float(jnp.min(jnp.linalg.norm(c_KxD[:, None] - c_KxD[None], axis=-1)
                       + 10 * jnp.eye(k)))
    row = {"K": k, "max_abs_diff": float(jnp.max(jnp.abs(exact_KxK - mc_KxK))),
           "lambda_closed_form": min_eigenvalue(exact_KxK), "lambda_mc": min_eigenvalue(mc_KxK),
           "min_center_distance": nu, "relu_lower_bound": nu / (100 * k ** 2)}
    for name in smooth_activations:
      row[f"lambda_{name}_mc"] = min_eigenvalue(mc(jax.random.fold_in(key, 2000 + i),
                                                   activation=name))
    rows.append(row)
  return rows


# ----------------------------------------------------------------------------
# Signal subspace S₊ of perfectly clustered data and Theorem 9.2.


@functools.partial(jax.jit, static_argnames=("num_clusters",))
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


@jax.jit
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
  return models.activation_fn(activation)(x_NxD @ w_KxD.T) @ v_K


def squared_loss(w_KxD, v_K, x_NxD, y_N, activation: str = "relu") -> jnp.ndarray:
  """L(W) = ½ Σ_i (y_i − f(W, x_i))² (eq. 3; a sum, not a mean)."""
  return 0.5 * jnp.sum((y_N - network(w_KxD, v_K, x_NxD, activation)) ** 2)


@functools.partial(jax.jit, static_argnames=("activation",))
def one_hidden_layer_gram(w_KxD, v_K, x_NxD, activation: str = "relu") -> jnp.ndarray:
  """J Jᵀ of f(W, ·) = vᵀφ(W ·) in closed form: (X Xᵀ) ⊙ (φ'(XWᵀ) diag(v²) φ'(XWᵀ)ᵀ)
  (Section 4, eq. 8).

  Row i of J is vec(diag(v) φ'(W x_i) x_iᵀ); its singular values are √eig(J Jᵀ). The
  empirical NTK `persample.ntk_gram` of any model gives the same matrix for this one.
  """
  a_NxK = _elementwise_derivative(activation)(x_NxD @ w_KxD.T) * v_K
  return (x_NxD @ x_NxD.T) * (a_NxK @ a_NxK.T)


def step_size(w_KxD, v_K, x_NxD, scale: float = 1.0, activation: str = "relu") -> float:
  """η = scale / ‖J(W0)‖², the constant step (Theorem 9.2 asks η ≤ 1/(2β²), β ≈ ‖J‖)."""
  top = jnp.linalg.eigvalsh(one_hidden_layer_gram(w_KxD, v_K, x_NxD, activation))[-1]
  return float(scale / top)


class GDTrace(NamedTuple):
  """Iterates τ = 0, r, 2r, …, T of full-batch gradient descent (r = record_every).

  outputs_TxN: f(W_τ, x_i); distance_T: ‖W_τ − W_0‖_F; loss_T: L(W_τ); w_final: W_T;
  eval_outputs_TxM: f(W_τ, x) at M held-out points (M = 0 without them).
  """
  outputs_TxN: jnp.ndarray
  distance_T: jnp.ndarray
  loss_T: jnp.ndarray
  w_final: jnp.ndarray
  eval_outputs_TxM: jnp.ndarray


@functools.partial(jax.jit, static_argnames=("num_steps", "record_every", "activation"))
def gradient_descent(w0_KxD, v_K, x_NxD, y_N, lr, x_eval_MxD=None, *, num_steps: int,
                     record_every: int = 1, activation: str = "relu") -> GDTrace:
  """W_{τ+1} = W_τ − η ∇L(W_τ), L(W) = ½ Σ_i (y_i − vᵀφ(W x_i))² (eqs. 3–4), one lax.scan.

  Only W is trained; vmap over w0/x/y/lr to run several seeds or corruption levels at once.
  x_eval_MxD: held-out points whose outputs are recorded too (a validation split).
  """
  if x_eval_MxD is None:
    x_eval_MxD = x_NxD[:0]
  if num_steps % record_every:
    raise ConfigError("num_steps", num_steps,
                      reason=f"must be a multiple of record_every={record_every}")
  grad_fn = jax.grad(squared_loss)

  def record(w_KxD):
    outputs_N = network(w_KxD, v_K, x_NxD, activation)
    return (outputs_N, jnp.linalg.norm(w_KxD - w0_KxD), 0.5 * jnp.sum((y_N - outputs_N) ** 2),
            network(w_KxD, v_K, x_eval_MxD, activation))

  def step(w_KxD, _):
    return w_KxD - lr * grad_fn(w_KxD, v_K, x_NxD, y_N, activation), None

  def chunk(w_KxD, _):
    stats = record(w_KxD)
    w_KxD, _ = jax.lax.scan(step, w_KxD, None, length=record_every)
    return w_KxD, stats

  w_final, stats = jax.lax.scan(chunk, w0_KxD, None, length=num_steps // record_every)
  (outputs, distance, loss, evals), last = stats, record(w_final)
  return GDTrace(jnp.concatenate([outputs, last[0][None]]), jnp.append(distance, last[1]),
                 jnp.append(loss, last[2]), w_final, jnp.concatenate([evals, last[3][None]]))


@functools.partial(jax.jit, static_argnames=("num_steps", "record_every", "activation"))
def gradient_descent_batch(w0_SxKxD, v_K, x_SxNxD, y_SxN, lr_S, x_eval_SxMxD=None, *,
                           num_steps: int, record_every: int = 1,
                           activation: str = "relu") -> GDTrace:
  """`gradient_descent` for S runs at once (seeds or corruption levels), vmapped over runs."""
  run = functools.partial(gradient_descent, num_steps=num_steps, record_every=record_every,
                          activation=activation)
  if x_eval_SxMxD is None:
    x_eval_SxMxD = x_SxNxD[:, :0]
  return jax.vmap(run, in_axes=(0, None, 0, 0, 0, 0))(w0_SxKxD, v_K, x_SxNxD, y_SxN,
                                                       jnp.asarray(lr_S, jnp.float32),
                                                       x_eval_SxMxD)


# ----------------------------------------------------------------------------
# Batches of GD runs on clusterable data (Fig. 5, Thms 7.1 / 9.2, distance from W0).


@dataclasses.dataclass
class ClusterableRuns:
  """S clusterable data sets of one shape (synthetic.ClusterData) and their GD runs.

  y_SxN / y_true_SxN: the given / true labels as class values α (eqs. 5–6); w0_SxKxD:
  the initial hidden weights; lr_S: each run's step; trace: the runs' GDTrace (outputs
  S×T×N, distance S×T, loss S×T, w_final S×K×D, eval_outputs S×T×M on `val_datasets`:
  held-out points of the same clusters with labels corrupted alike, or none).
  """
  datasets: list
  alphas: jnp.ndarray
  x_SxNxD: jnp.ndarray
  y_SxN: jnp.ndarray
  y_true_SxN: jnp.ndarray
  w0_SxKxD: jnp.ndarray
  v_K: jnp.ndarray
  lr_S: np.ndarray
  trace: GDTrace
  activation: str = "relu"
  val_datasets: list = None

  def stack(self, field: str) -> np.ndarray:
    """One field of every data set (e.g. "is_noisy", "clean_labels"), S×N."""
    return np.stack([np.asarray(getattr(d, field)) for d in self.datasets])

  def predictions(self) -> np.ndarray:
    """The nearest-class prediction (eqs. 5–6) of every sample at every record, S×T×N."""
    return np.asarray(nearest_class(self.trace.outputs_TxN, self.alphas))

  def errors(self) -> tuple[np.ndarray, np.ndarray]:
    """(true-label error, given-label error), each S×T, of the nearest-class prediction."""
    pred_SxTxN = self.predictions()
    return (np.mean(pred_SxTxN != self.stack("clean_labels")[:, None], -1),
            np.mean(pred_SxTxN != self.stack("labels")[:, None], -1))

  def val_errors(self) -> tuple[np.ndarray, np.ndarray]:
    """(true-label error, given-label error), each S×T, on the held-out `val_datasets`."""
    pred_SxTxM = np.asarray(nearest_class(self.trace.eval_outputs_TxM, self.alphas))
    stack = lambda f: np.stack([np.asarray(getattr(d, f)) for d in self.val_datasets])[:, None]
    return (np.mean(pred_SxTxM != stack("clean_labels"), -1),
            np.mean(pred_SxTxM != stack("labels"), -1))

  def early_stop_index(self) -> np.ndarray:
    """Per run, the record t* = early_stopping.index of the held-out given-label error."""
    return np.array([early_stopping.index(e_T) for e_T in self.val_errors()[1]])

  def losses(self, t: int) -> np.ndarray:
    """The per-sample losses ½(f(W_τ, x_i) − y_i)² against the given labels at record t, S×N."""
    return 0.5 * np.asarray(self.trace.outputs_TxN[:, t] - self.y_SxN) ** 2

  def kept_true_label(self, t: int) -> np.ndarray:
    """Per run, the share of corrupted samples whose nearest-class prediction at record t
    is their true label (Fig. 5a: early on GD classifies by the true labels)."""
    noisy_SxN, pred_SxN = self.stack("is_noisy"), self.predictions()[:, t]
    clean_SxN = self.stack("clean_labels")
    return np.array([np.mean(p[m] == c[m]) for p, m, c in zip(pred_SxN, noisy_SxN, clean_SxN)])

  def loss_auc(self, t: int) -> np.ndarray:
    """Per run, the separation AUC of corrupted against clean samples' losses at record t
    (metrics.separation_auc): 1 = separated histograms (Fig. 5b)."""
    losses_SxN, noisy_SxN = self.losses(t), self.stack("is_noisy")
    return np.array([metrics.separation_auc(l[~m], l[m]) for l, m in zip(losses_SxN, noisy_SxN)])

  def jacobian_shares(self, s: int = 0, num_top: int = None) -> dict:
    """Section 4 at W0 of run s: the shares of the clean residual f(W0) − ỹ and of the
    corruption e = y − ỹ in the top-`num_top` (default K) singular subspace of J(W0)
    (`top_subspace_fractions`), with the leading singular values ("sigma_top")."""
    num_top = num_top or len(self.datasets[s].centers)
    gram_NxN = one_hidden_layer_gram(self.w0_SxKxD[s], self.v_K, self.x_SxNxD[s], self.activation)
    shares = top_subspace_fractions(gram_NxN, {
        "clean_residual": self.trace.outputs_TxN[s, 0] - self.y_true_SxN[s],
        "corruption": self.y_SxN[s] - self.y_true_SxN[s]}, num_top=num_top)
    shares["sigma_top"] = singular_values_from_gram(gram_NxN)[:num_top + 2].tolist()
    return shares

  def distance_table(self, steps, fit_error: float) -> list[dict]:
    """Per run: the first record where the given labels are fitted (error ≤ fit_error)
    and ‖W − W0‖_F there; the early-stopping point (`early_stop_index`, on the held-out
    noisy labels) with its distance, training and held-out true-label errors (Thm 2.2 on
    points of the ε0-balls not trained on); the final distance (Thm 2.3, Lemma 8.1)."""
    err_true_SxT, err_given_SxT = self.errors()
    val_true_SxT = self.val_errors()[0]
    dist_SxT = np.asarray(self.trace.distance_T)
    rows = []
    for s, (ds, best) in enumerate(zip(self.datasets, self.early_stop_index())):
      fitted = np.flatnonzero(err_given_SxT[s] <= fit_error)
      rows.append({"flip_rate": ds.rate,
                   "fit_step": int(steps[fitted[0]]) if fitted.size else None,
                   "fit_distance": float(dist_SxT[s, fitted[0]]) if fitted.size else None,
                   "early_stop_step": int(steps[best]),
                   "early_stop_distance": float(dist_SxT[s, best]),
                   "early_stop_error_true": float(err_true_SxT[s, best]),
                   "early_stop_val_error_true": float(val_true_SxT[s, best]),
                   "final_distance": float(dist_SxT[s, -1])})
    return rows


def simulate(datasets, alphas, key, *, hidden: int, num_steps: int, record_every: int,
             activation: str = "relu", lr_scale: float = 1.0, same_init: bool = False,
             val_datasets=None) -> ClusterableRuns:
  """Full-batch GD (eqs. 3–4) of the net of eq. (2) on each data set, in one program.

  Labels are the class values y_i = α[label_i]; v = ±1/√k; run s starts from
  W0 = init_hidden(fold_in(key, s)) (with `same_init`, W0 = init_hidden(key) for every
  run: the same start at every corruption level) with step η_s = lr_scale / ‖J(W0_s)‖²
  (Thm 9.2 asks η ≤ 1/(2β²): lr_scale ≤ 1/2 with β ≈ ‖J(W0)‖). The outputs on
  `val_datasets` (one per data set, held out) are recorded too.
  """
  d = datasets[0].x.shape[1]
  v_K = output_weights(hidden)
  w0 = [init_hidden(key if same_init else jax.random.fold_in(key, s), hidden, d)
        for s in range(len(datasets))]
  x_SxNxD = jnp.stack([ds.x for ds in datasets])
  lr_S = np.array([step_size(w, v_K, x, lr_scale, activation) for w, x in zip(w0, x_SxNxD)])
  y_SxN = alphas[jnp.stack([ds.labels for ds in datasets])]
  x_eval = None if val_datasets is None else jnp.stack([ds.x for ds in val_datasets])
  trace = gradient_descent_batch(jnp.stack(w0), v_K, x_SxNxD, y_SxN, lr_S, x_eval,
                                 num_steps=num_steps, record_every=record_every,
                                 activation=activation)
  return ClusterableRuns(datasets, alphas, x_SxNxD, y_SxN,
                         alphas[jnp.stack([ds.clean_labels for ds in datasets])],
                         jnp.stack(w0), v_K, lr_S, trace, activation, val_datasets)


def cluster_flip_rate(cluster_id_N, is_noisy_N, num_clusters: int) -> float:
  """ρ realized: the largest fraction of flipped labels in any one cluster (Def. 1.2)."""
  cluster_id_N = np.asarray(cluster_id_N)
  counts_K = np.bincount(cluster_id_N, minlength=num_clusters)
  flipped_K = np.bincount(cluster_id_N, weights=np.asarray(is_noisy_N), minlength=num_clusters)
  return float(np.max(flipped_K / counts_K))


def corrupt_per_cluster(key, data: synthetic.ClusterData, max_rate: float,
                        num_classes: int) -> synthetic.ClusterData:
  """`data` with a different corruption in each cluster: cluster ℓ flips exactly
  round(ρ_ℓ n_ℓ) labels to another class, ρ_ℓ ~ U[0, max_rate] (Def. 1.2, ρ = max_ℓ ρ_ℓ)."""
  key_rates, key_pick, key_class = jax.random.split(key, 3)
  cluster_N, clean_N = np.asarray(data.cluster_id), np.asarray(data.clean_labels)
  rates_K = np.asarray(jax.random.uniform(key_rates, (len(data.centers),))) * max_rate
  score_N = np.asarray(jax.random.uniform(key_pick, cluster_N.shape))
  flip_N = np.zeros(len(cluster_N), bool)
  for ell, rate in enumerate(rates_K):
    members = np.flatnonzero(cluster_N == ell)
    flip_N[members[np.argsort(score_N[members])[:int(round(rate * len(members)))]]] = True
  shift_N = np.asarray(jax.random.randint(key_class, cluster_N.shape, 1, num_classes))
  labels_N = np.where(flip_N, (clean_N + shift_N) % num_classes, clean_N).astype(np.int32)
  return dataclasses.replace(data, labels=jnp.asarray(labels_N), is_noisy=jnp.asarray(flip_N),
                             is_resampled=jnp.asarray(flip_N))


def theorem_bounds(runs: ClusterableRuns, steps) -> list[dict]:
  """Per run: ‖f(W_T) − ỹ‖_∞ against Thm 9.2's 2‖Π_{S₊}(e)‖_∞ and Thm 7.1's 4ρ, with ρ
  realized (`cluster_flip_rate`), δ, λ(C) and ‖W_T − W0‖_F; the largest true-label error
  over the second half of the records (Thm 7.1: none); and Thm 9.2's other quantities:
  α = σ_K(J) and β = σ_1(J) at W0 and W_T (at ε0 = 0, J's row space is S₊, rank K),
  r0 = f(W0) − y, the distance bound 4‖r0‖/α against max_τ ‖W_τ − W0‖_F, the iteration
  count τ₀ = 5/(ηα²)·log(‖r0‖/ν), ν = ‖Π_{S₊}(e)‖_∞, against the first recorded step
  from which ‖f(W_τ) − ỹ‖_∞ ≤ 2ν holds, and η·2β² (Thm 9.2: ≤ 1); Thm 10.8's
  σ_min(J(W0), S₊) = σ_K(J(W0)) against √(nλ(C)/(2K)) and ‖J(W0)‖ against √(n/K)·‖C‖
  (Γ = 1 for ReLU, the unspecified constants c_low = c_up = 1)."""
  delta = float(runs.alphas[1] - runs.alphas[0])
  err_true_SxT = runs.errors()[0]
  steps = np.asarray(steps)
  rows = []
  for s, ds in enumerate(runs.datasets):
    k = len(ds.centers)
    rho = cluster_flip_rate(ds.cluster_id, ds.is_noisy, k)
    sigma0, sigma_t = (singular_values_from_gram(one_hidden_layer_gram(
        w, runs.v_K, runs.x_SxNxD[s], runs.activation)) for w in
        (runs.w0_SxKxD[s], runs.trace.w_final[s]))
    alpha, beta = min(sigma0[k - 1], sigma_t[k - 1]), max(sigma0[0], sigma_t[0])
    r0 = float(jnp.linalg.norm(runs.trace.outputs_TxN[s, 0] - runs.y_SxN[s]))
    nu = theorem92_bound(runs.y_SxN[s], runs.y_true_SxN[s], ds.cluster_id, k) / 2
    sup_T = np.asarray(jnp.max(jnp.abs(runs.trace.outputs_TxN[s] - runs.y_true_SxN[s]), -1))
    within_T = sup_T <= 2 * nu + 1e-4
    holds_from = next((int(steps[t]) for t in range(len(steps)) if within_T[t:].all()), None)
    lr, lambda_c = float(runs.lr_S[s]), min_eigenvalue(cluster_covariance(ds.centers))
    rows.append({
        "rho_per_cluster": np.bincount(np.asarray(ds.cluster_id), np.asarray(ds.is_noisy),
                                       k) / np.bincount(np.asarray(ds.cluster_id), None, k),
        "alpha": float(alpha), "beta": float(beta), "r0_norm": r0,
        "distance_bound": 4 * r0 / float(alpha),
        "max_distance": float(np.max(np.asarray(runs.trace.distance_T[s]))),
        "iteration_bound": (float(5 / (lr * alpha ** 2) * np.log(r0 / nu)) if nu > 0
                            else None),
        "bound_holds_from": holds_from, "lr_times_2beta2": 2 * lr * float(beta) ** 2,
        "sigma_min_S_plus_init": float(sigma0[k - 1]), "sigma_max_init": float(sigma0[0]),
        "thm108_sigma_min_bound": math.sqrt(len(ds.cluster_id) * lambda_c / (2 * k)),
        "thm108_sigma_max_bound": math.sqrt(len(ds.cluster_id) / k) * float(
            np.linalg.norm(np.asarray(ds.centers), 2)),
        "K": k, "rho_realized": rho, "delta": delta, "rho_within_delta_over_8": rho <= delta / 8,
        "lambda_C": lambda_c,
        "sup_error": float(jnp.max(jnp.abs(runs.trace.outputs_TxN[s, -1] - runs.y_true_SxN[s]))),
        "thm92_bound": theorem92_bound(runs.y_SxN[s], runs.y_true_SxN[s], ds.cluster_id, k),
        "thm71_bound": 4 * rho,
        "max_true_error_second_half": float(err_true_SxT[s, err_true_SxT.shape[1] // 2:].max()),
        "final_true_error": float(err_true_SxT[s, -1]),
        "distance_final": float(runs.trace.distance_T[s, -1])})
  return rows


# ----------------------------------------------------------------------------
# The paper's simulations: Fig. 5, perfectly clustered data (Thms 7.1 / 9.2), distance.


@dataclasses.dataclass(frozen=True)
class Setup:
  """Fig. 5's data and network: n points in R^d on `num_clusters` clusters of radius
  eps0 (synthetic.clusterable), `num_classes` classes with values α evenly spaced in
  [label_low, label_high], a share `corruption` of labels redrawn; k = hidden neurons,
  φ = activation, step η = lr_scale / ‖J(W0)‖²."""
  n: int = 400
  d: int = 20
  num_clusters: int = 2
  num_classes: int = 2
  eps0: float = 0.5
  corruption: float = 0.3
  hidden: int = 1000
  activation: str = "relu"
  lr_scale: float = 1.0
  label_low: float = 0.0
  label_high: float = 1.0

  @classmethod
  def of(cls, fields) -> "Setup":
    """The setup held by a mapping with (at least) these fields, e.g. a config node."""
    return cls(**{f.name: fields[f.name] for f in dataclasses.fields(cls) if f.name in fields})

  def data(self, key, corruption=None) -> synthetic.ClusterData:
    return synthetic.clusterable(key, self.n, self.d, self.num_clusters, self.num_classes,
                                 self.eps0, corruption=self.corruption if corruption is None
                                 else corruption)

  def held_out(self, key, train: synthetic.ClusterData, n: int,
               corruption=None) -> synthetic.ClusterData:
    """n more points of `train`'s clusters (on their ε0-spheres), labels corrupted alike."""
    return synthetic.clusterable(key, n, self.d, self.num_clusters, self.num_classes, self.eps0,
                                 corruption=self.corruption if corruption is None
                                 else corruption, centers=train.centers)

  def simulate(self, datasets, key, *, num_steps, record_every, hidden=None,
               same_init=False, val_datasets=None) -> ClusterableRuns:
    return simulate(datasets, class_values(self.num_classes, self.label_low, self.label_high),
                    key, hidden=hidden or self.hidden, num_steps=num_steps,
                    record_every=record_every, activation=self.activation,
                    lr_scale=self.lr_scale, same_init=same_init, val_datasets=val_datasets)


def loss_histogram_overlap(losses_N, is_noisy_N, bins: int = 40) -> float:
  """Σ_b min(p_b, q_b): the shared mass of the clean (p) and corrupted (q) loss histograms on
  the bins Figs. 5b–c draw (plots.loss_histograms: `bins` edges spaced evenly on [0, max]);
  0 = separated, 1 = identical."""
  losses_N, mask = np.asarray(losses_N, np.float64), np.asarray(is_noisy_N, bool)
  edges = np.linspace(0, max(float(losses_N.max()), 1e-6), bins)
  p, q = (np.histogram(losses_N[m], edges)[0] / max(m.sum(), 1) for m in (~mask, mask))
  return float(np.minimum(p, q).sum())


def fitted_for(error_T, records: int):
  """The first record t at which error_T has been 0 at the `records` + 1 records t − records,
  …, t (the given labels interpolated for that long), or None."""
  zero_T = np.asarray(error_T) == 0
  return next((t for t in range(records, len(zero_T)) if zero_T[t - records:t + 1].all()), None)


def fig5_simulation(key, *, num_seeds: int, num_steps: int, record_every: int, early_step: int,
                    late_fit_steps: int, **setup) -> dict:
  """Fig. 5 on `num_seeds` data sets (seed s: data fold_in(k_data, s), W0 fold_in(k_w, s));
  `setup`: the fields of `Setup`.

  Returns the S×T training errors against the true and the given labels ("error_true_SxT",
  "error_given_SxT", at "steps"), ‖W_τ − W0‖_F, the realized flip rate and the steps η;
  "early" (at early_step) and "late" (per seed, the first iteration at which the given-label
  error has been 0 for late_fit_steps iterations, `fitted_for`; "fitted": whether every
  seed got there): every seed's errors, loss separation AUC, `loss_histogram_overlap` and
  corrupted/clean median loss ratio there, the per-sample losses (S×N, with
  "is_noisy_SxN") and the mean distance; at early_step every seed's share of corrupted
  samples predicted with their true label; Section 4's shares in J(W0)'s top-K subspace
  for seed 0 ("jacobian_at_init"), with η·‖J(W0)‖² ("lr_times_top_sq").
  """
  setup = Setup(**setup)
  key_data, key_w = jax.random.split(key)
  datasets = [setup.data(jax.random.fold_in(key_data, s)) for s in range(num_seeds)]
  runs = setup.simulate(datasets, key_w, num_steps=num_steps, record_every=record_every)
  err_true_SxT, err_given_SxT = runs.errors()
  distance_SxT, steps = np.asarray(runs.trace.distance_T), np.arange(0, num_steps + 1,
                                                                      record_every)
  late = [fitted_for(e_T, late_fit_steps // record_every) for e_T in err_given_SxT]
  fitted = None not in late
  late_T = np.array([t if t is not None else len(steps) - 1 for t in late])

  def at(t_S):
    seeds = np.arange(num_seeds)
    losses_SxN = 0.5 * np.asarray(runs.trace.outputs_TxN[seeds, t_S] - runs.y_SxN) ** 2
    noisy_SxN = runs.stack("is_noisy")
    return {"step_S": steps[t_S], "error_true_S": err_true_SxT[seeds, t_S],
            "error_given_S": err_given_SxT[seeds, t_S], "losses_SxN": losses_SxN,
            "auc_S": np.array([metrics.separation_auc(l[~m], l[m])
                               for l, m in zip(losses_SxN, noisy_SxN)]),
            "overlap_S": np.array([loss_histogram_overlap(l, m)
                                   for l, m in zip(losses_SxN, noisy_SxN)]),
            "median_ratio_S": np.array([np.median(l[m]) / np.median(l[~m])
                                        for l, m in zip(losses_SxN, noisy_SxN)]),
            "distance": float(distance_SxT[seeds, t_S].mean())}
  early = np.full(num_seeds, early_step // record_every)
  shares = runs.jacobian_shares(0)
  shares["lr_times_top_sq"] = float(runs.lr_S[0] * shares["sigma_top"][0] ** 2)
  return {"steps": steps, "error_true_SxT": err_true_SxT, "error_given_SxT": err_given_SxT,
          "distance_SxT": distance_SxT, "flip_rate": float(np.mean([d.rate for d in datasets])),
          "lr": runs.lr_S, "is_noisy_SxN": runs.stack("is_noisy"),
          "early": {**at(early), "step": early_step,
                    "corrupted_predicted_true_label_S": runs.kept_true_label(early[0])},
          "late": {**at(late_T), "fitted": fitted}, "jacobian_at_init": shares}


def perfect_clusters_simulation(key, *, num_clusters, num_classes: int, rho: float, n: int,
                                d: int, hidden: int, num_steps: int, record_every: int,
                                lr_scale: float = 0.5) -> dict:
  """ε0 = 0 (every point on its center) with K clusters for each K in `num_clusters` and a
  different corruption per cluster (`corrupt_per_cluster`, ρ_ℓ ≤ rho); ReLU,
  η = lr_scale/‖J(W0)‖².

  Returns the true-label errors ("error_true_SxT" at "steps") and `theorem_bounds` rows.
  """
  key_data, key_w, key_noise = jax.random.split(key, 3)
  datasets = [corrupt_per_cluster(jax.random.fold_in(key_noise, k), synthetic.clusterable(
      jax.random.fold_in(key_data, k), n, d, k, num_classes, 0.0), rho, num_classes)
              for k in num_clusters]
  runs = simulate(datasets, class_values(num_classes), key_w, hidden=hidden,
                  num_steps=num_steps, record_every=record_every, lr_scale=lr_scale)
  steps = np.arange(0, num_steps + 1, record_every)
  return {"steps": steps, "error_true_SxT": runs.errors()[0], "rows": theorem_bounds(runs, steps)}


def distance_by_width(setup: Setup, datasets, key, hidden_sizes, step: int,
                      num_steps: int) -> list[dict]:
  """For each width k: ‖W_τ − W0‖_F and the true-label error at iteration `step`, and the
  distance at `num_steps`, means over the data sets (`Setup.simulate` from one key)."""
  every = math.gcd(step, num_steps)
  rows = []
  for k in hidden_sizes:
    runs = setup.simulate(datasets, key, num_steps=num_steps, record_every=every, hidden=k)
    distance_SxT = np.asarray(runs.trace.distance_T)
    rows.append({"hidden": k, "lr": runs.lr_S.tolist(),
                 "distance_at_early_step": float(distance_SxT[:, step // every].mean()),
                 "error_true_at_early_step": float(runs.errors()[0][:, step // every].mean()),
                 "distance_at_end": float(distance_SxT[:, -1].mean())})
  return rows


def distance_simulation(setup: Setup, key, *, corruptions, num_steps: int, record_every: int,
                        fit_error: float, early_step: int, hidden_sizes, width_steps: int,
                        width_seeds: int, val_n: int) -> dict:
  """‖W_τ − W0‖_F against the corruption (Thm 2.3, Lemma 8.1) and the width.

  One data set with its labels redrawn at each level of `corruptions`, one W0 for all, and
  `val_n` held-out points of the same clusters corrupted alike (the early-stopping split):
  "rows" (`ClusterableRuns.distance_table`, with "corruption") and the S×T curves
  "distance_SxT", "error_true_SxT", "error_given_SxT", "val_error_SxT" (held-out, given
  labels) at "steps". Over `width_seeds` data sets of `setup.corruption`: "width"
  (`distance_by_width` at early_step).
  """
  key_data, key_w = jax.random.split(key)
  train_sets = [setup.data(key_data, c) for c in corruptions]
  val_sets = [setup.held_out(jax.random.fold_in(key_data, 10_000 + i), ds, val_n, c)
              for i, (ds, c) in enumerate(zip(train_sets, corruptions))]
  runs = setup.simulate(train_sets, key_w, num_steps=num_steps, record_every=record_every,
                        same_init=True, val_datasets=val_sets)
  steps = np.arange(0, num_steps + 1, record_every)
  rows = [{"corruption": c, **row}
          for c, row in zip(corruptions, runs.distance_table(steps, fit_error))]
  width_data = [setup.data(jax.random.fold_in(key_data, 1 + s)) for s in range(width_seeds)]
  width = distance_by_width(setup, width_data, key_w, hidden_sizes, early_step, width_steps)
  err_true_SxT, err_given_SxT = runs.errors()
  return {"steps": steps, "distance_SxT": np.asarray(runs.trace.distance_T),
          "error_true_SxT": err_true_SxT, "error_given_SxT": err_given_SxT,
          "val_error_SxT": runs.val_errors()[1], "rows": rows, "width": width}


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


def jacobian_spectrum(spec, variables, x_N, targets_N, corruption_N, *,
                      relative_threshold: float = 0.1, block_size: int = 128):
  """(σ, shares) of a one-output model (`train.Spec` and its variables) on x_N, Fig. 4c.

  σ: the singular values of its Jacobian J, largest first, from the blockwise NTK Gram
  J Jᵀ (persample.ntk_gram); shares: `top_subspace_fractions` of the clean residual
  f(x) − targets and of the label corruption e in J's top singular subspace
  (σ_i > relative_threshold·σ_1), Section 4.
  """
  x_N = jnp.asarray(x_N)
  outputs_N = np.asarray(train.predict(spec, variables, x_N))[:, 0]
  apply_fn = persample.eval_apply_fn(spec.model, variables.get("batch_stats"))
  gram_NxN = np.asarray(persample.ntk_gram(apply_fn, variables["params"], x_N,
                                           block_size=block_size))
  return singular_values_from_gram(gram_NxN), top_subspace_fractions(
      gram_NxN, {"clean_residual": outputs_N - np.asarray(targets_N),
                 "corruption": np.asarray(corruption_N)}, relative_threshold=relative_threshold)


# ----------------------------------------------------------------------------
# Measurements of a trained network (Figs. 1, 3, 4a–b).


class TrainingProbe:
  """An `eval_fn` for train.train_classifier measuring Figs. 1, 3 and 4a–b at every
  evaluation of one run.

  Returns "distance" ‖θ − θ0‖₂ and "relative_distance" ‖θ − θ0‖/‖θ0‖ (Fig. 3),
  "train_error_true" (training error against the true labels, Fig. 1) and, given a
  held-out split with (equally corrupted) labels, "val_error"
  (early_stopping.ValidationError, the early-stopping criterion); keeps the per-sample
  training losses against the given labels by step (`losses(step)`, Fig. 4a–b). θ0
  (`initial_variables()`) and the losses are kept in memory and, by process 0 only, in
  `directory`, so a training resumed from a checkpoint still has them.
  """

  def __init__(self, directory, x_val=None, y_val=None):
    self.directory = pathlib.Path(directory)
    self.writes = distributed.is_main_process()
    if self.writes:
      self.directory.mkdir(parents=True, exist_ok=True)
    self.validation = (early_stopping.ValidationError(x_val, y_val)
                       if x_val is not None and len(x_val) else None)
    self._initial = None
    self._losses = {}

  def initial_variables(self) -> dict:
    """The variables at step 0 (numpy arrays)."""
    if self._initial is None:
      self._initial = flax.serialization.msgpack_restore(
          (self.directory / "initial_variables.msgpack").read_bytes())
    return self._initial

  def losses(self, step: int) -> np.ndarray:
    """The per-sample training losses (given labels) at evaluation step `step`."""
    if int(step) not in self._losses:
      self._losses[int(step)] = np.load(self.directory / f"losses_step{int(step)}.npy")
    return self._losses[int(step)]

  def early_stopped(self, history, is_noisy_N) -> dict:
    """The early-stopping point (early_stopping.point of "val_error", or of "test_error"
    without a held-out split: the paper's Fig. 4a–b), the per-sample losses there, their
    clean-vs-noisy separation AUC and the mean clean and noisy losses."""
    early = early_stopping.point(history, early_stopping.KEY if self.validation else
                                 "test_error")
    losses_N, mask = self.losses(early["step"]), np.asarray(is_noisy_N, bool)
    return {"early": early, "losses_early": losses_N, "is_noisy": mask,
            "auc_early": metrics.separation_auc(losses_N[~mask], losses_N[mask]),
            "clean_loss_early": float(np.mean(losses_N[~mask])) if (~mask).any() else None,
            "noisy_loss_early": float(np.mean(losses_N[mask])) if mask.any() else None}

  def __call__(self, snapshot) -> dict:
    if snapshot.step == 0:
      self._initial = jax.tree.map(np.array, snapshot.variables)
      if self.writes:
        (self.directory / "initial_variables.msgpack").write_bytes(
            flax.serialization.msgpack_serialize(self._initial))
    params0, params = self.initial_variables()["params"], snapshot.variables["params"]
    noisy = snapshot.splits.noisy
    outputs = snapshot.train_outputs()
    losses_N = snapshot.spec.loss_fn()(jnp.asarray(outputs), jnp.asarray(noisy.labels))
    self._losses[int(snapshot.step)] = np.asarray(losses_N)
    if self.writes:
      np.save(self.directory / f"losses_step{int(snapshot.step)}.npy", np.asarray(losses_N))
    predicted = np.asarray(train.classify(outputs)[0])
    distance = metrics.parameter_distance(params, params0)
    record = {"distance": distance, "relative_distance": distance / metrics.parameter_norm(params0),
              "train_error_true": float(np.mean(predicted != np.asarray(noisy.clean_labels)))}
    if self.validation:
      record.update(self.validation(snapshot))
    return record


# ----------------------------------------------------------------------------
# The CNN experiments: Figs. 1, 3, 4a–b (a corruption sweep) and Fig. 4c (the Jacobian).


def _train_here(config, splits, *, subdir=None, **kwargs):
  """train.train_classifier, ignoring the `subdir` a runner's train_fn would log to."""
  del subdir
  return train.train_classifier(config, splits, **kwargs)


def corruption_sweep(config, key, *, workdir, name: str = "sweep", train_fn=None) -> list[dict]:
  """Figs. 1, 3, 4a–b: one training of `config` per rate in config.noise.rates.

  config: a training config (model, loss, optim) with `data` (val_size images are held
  out, their labels corrupted alike: the early-stopping split) and `noise` (kind, rates).
  Every rate trains from the same key (the same θ0 and data order), with a
  `TrainingProbe` in `workdir/<name>_noise<rate>/probe` (and the label draw, noise.npz).
  train_fn(config, splits, key=, subdir=, eval_fn=, num_classes=) trains (default:
  train.train_classifier; experiment.Run.train_classifier adds logs and checkpoints).
  Per rate: "rate", "realized" (share of labels changed), "history" and
  `TrainingProbe.early_stopped`.
  """
  train_fn = train_fn or _train_here
  key_split, key_noise, key_train = jax.random.split(key, 3)
  pool, test = data_lib.load_splits(config.data)
  val_size = config.data.get("val_size") or 0
  train_idx, val_idx = (early_stopping.holdout(key_split, len(pool.y), val_size) if val_size
                        else (np.arange(len(pool.y)), np.arange(0)))
  runs = []
  for j, rate in enumerate(config.noise.rates):
    noisy, val_noisy = (noise_lib.corrupt(jax.random.fold_in(key_noise, k), pool.y[idx],
                                          pool.num_classes, config.noise.kind, rate)
                        for k, idx in ((j, train_idx), (1000 + j, val_idx)))
    subdir = f"{name}_noise{rate:g}"
    probe = TrainingProbe(pathlib.Path(workdir) / subdir / "probe", pool.x[val_idx],
                          val_noisy.labels)
    noisy.save(pathlib.Path(workdir) / subdir / "noise.npz")
    history = train_fn(config, train.Splits(pool.x[train_idx], noisy, test.x, test.y),
                       key=key_train, subdir=subdir, eval_fn=probe,
                       num_classes=pool.num_classes).history
    runs.append({"rate": rate, "realized": noisy.rate, "history": history,
                 **probe.early_stopped(history, noisy.is_noisy)})
  return runs


def jacobian_before_after(config, key, *, workdir, subdir: str = "jacobian_training",
                          train_fn=None) -> dict:
  """Fig. 4c: `jacobian_spectrum` of a one-output model at θ0 and after training.

  config: a training config (model with num_outputs=1, squared loss on ±1 targets,
  optim) with a two-class `data`, `probe_rate`, `relative_threshold` and `block_size`;
  training uses the clean labels; the corruption e flips a share probe_rate of the labels
  (noise "symmetric"). train_fn as in `corruption_sweep`; the TrainingProbe keeping θ0
  lives in `workdir/subdir/probe`. "large": the number of σ_i > relative_threshold·σ_1
  at "init" and "trained".
  """
  relative_threshold = config.relative_threshold
  train_fn = train_fn or _train_here
  key_probe, key_train = jax.random.split(key)
  train_set, test_set = data_lib.load_splits(config.data)
  y_N = 2.0 * train_set.y - 1.0
  probe = noise_lib.corrupt(key_probe, train_set.y, 2, "symmetric", config.probe_rate)
  clean = noise_lib.corrupt(key_probe, train_set.y, 2, "none", 0.0)
  splits = train.Splits(train_set.x, clean, test_set.x, test_set.y)
  tracker = TrainingProbe(pathlib.Path(workdir) / subdir / "probe")
  result = train_fn(config, splits, key=key_train, subdir=subdir, eval_fn=tracker)
  (sigma0, shares0), (sigma1, shares1) = (jacobian_spectrum(
      result.spec, v, train_set.x, y_N, 2.0 * probe.labels - 1.0 - y_N,
      relative_threshold=relative_threshold, block_size=config.block_size)
      for v in (tracker.initial_variables(), result.snapshot(0, splits).variables))
  large = {w: int(np.sum(sigma > relative_threshold * sigma[0]))
           for w, sigma in (("init", sigma0), ("trained", sigma1))}
  return {"n": len(y_N), "num_params": models.count_params(result.state.params), "large": large,
          "sigma_init": sigma0, "sigma_trained": sigma1, "shares_init": shares0,
          "shares_trained": shares1, "final_test_error": result.history[-1]["test_error"],
          "probe_flip_rate": probe.rate}
