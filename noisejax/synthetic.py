"""Synthetic data sets of the theory experiments, one generator per paper setting.

Every generator is a function of an explicit `jax.random` key (same key, same data)
and returns jnp arrays. Labels are int32: {0, 1} or class ids where the paper uses
class ids, ±1 where the paper's labels are ±1. Rows are in generation order (grouped
by cluster where there are clusters); shuffle with the caller's key if order matters.
"""

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np

from noisejax.errors import ConfigError, check_range


def _check_count(field, value, minimum=1):
  if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
    raise ConfigError(field, value, reason=f"must be an integer >= {minimum}")
  return int(value)


def _normal(key, shape):
  """N(0, 1) samples drawn flat and reshaped (XLA:CPU compiles multi-dim draws far slower)."""
  return jax.random.normal(key, (int(np.prod(shape)),)).reshape(shape)


def _uniform(key, shape, minval=0.0, maxval=1.0):
  """U[minval, maxval) samples drawn flat and reshaped, as `_normal`."""
  return jax.random.uniform(key, (int(np.prod(shape)),), minval=minval,
                            maxval=maxval).reshape(shape)


def _uniform_sphere(key, shape):
  """Uniform on the unit sphere S^{D−1}: z/‖z‖ with z ~ N(0, I_D); shape (..., D)."""
  z = _normal(key, shape)
  return z / jnp.linalg.norm(z, axis=-1, keepdims=True)


def _rank_within_groups(group_N, score_N):
  """Rank of each element among those of its group, by increasing score (0-based)."""
  order = jnp.lexsort((score_N, group_N))
  sorted_groups = group_N[order]
  n = group_N.shape[0]
  is_start = jnp.concatenate([jnp.ones(1, bool), sorted_groups[1:] != sorted_groups[:-1]])
  start = jax.lax.cummax(jnp.where(is_start, jnp.arange(n), 0))
  return jnp.zeros(n, jnp.int32).at[order].set((jnp.arange(n) - start).astype(jnp.int32))


def _exact_per_group(key, group_N, rate_G):
  """Marks exactly round(rate_g · n_g) uniformly chosen members of each group g."""
  counts_G = jnp.bincount(group_N, length=rate_G.shape[0])
  quota_G = jnp.round(rate_G * counts_G).astype(jnp.int32)
  rank_N = _rank_within_groups(group_N, jax.random.uniform(key, group_N.shape))
  return rank_N < quota_G[group_N]


# ----------------------------------------------------------------------------- clean priority

def two_clusters_2d(key, n_per_cluster, *, separation=4.0, spread=0.5):
  """Two separated Gaussian clusters in R^2 (clean-priority learning, §3.1, Fig. 3 left).

  x = c_y + spread·z, z ~ N(0, I_2), centers c_0 = (−separation/2, 0), c_1 = (separation/2, 0).

  The paper does not give the cluster parameters; these defaults make the two clusters
  well separated (8 standard deviations apart). Returns (x_Nx2 float32, y_N in {0, 1});
  the first n_per_cluster rows are cluster 0.
  """
  n_per_cluster = _check_count("n_per_cluster", n_per_cluster)
  check_range("separation", separation, 0.0, float("inf"), low_open=True)
  check_range("spread", spread, 0.0, float("inf"))
  return _two_clusters_2d(key, n_per_cluster, separation, spread)


@functools.partial(jax.jit, static_argnums=1)
def _two_clusters_2d(key, n_per_cluster, separation, spread):
  y_N = jnp.repeat(jnp.arange(2, dtype=jnp.int32), n_per_cluster)
  centers_2x2 = jnp.array([[-0.5, 0.0], [0.5, 0.0]], jnp.float32) * separation
  z_Nx2 = _normal(key, (2 * n_per_cluster, 2))
  return centers_2x2[y_N] + spread * z_Nx2, y_N


# ----------------------------------------------------------------------------- misclassification

def gaussian_pure_noise(key, n, d):
  """Pure label noise over N(0, I_d) (regularization by misclassification, Def. 2, Thm 2).

  x ~ N(0, I_d) and y ~ U{±1}, independent. Returns (x_NxD float32, y_N int32 in {−1, +1}).
  """
  return _gaussian_pure_noise(key, _check_count("n", n), _check_count("d", d))


@functools.partial(jax.jit, static_argnums=(1, 2))
def _gaussian_pure_noise(key, n, d):
  key_x, key_y = jax.random.split(key)
  return _normal(key_x, (n, d)), _random_signs(key_y, (n,))


def standard_basis(d):
  """The standard basis of R^d as rows e_1..e_d (misclassification, Thms 3–4): x_DxD = I_d."""
  return jnp.eye(_check_count("d", d), dtype=jnp.float32)


def standard_basis_samples(key, n, d):
  """Pure label noise over U{e_1..e_d} (misclassification, Thms 3–4).

  i ~ U{0..d−1}, x = e_i, y ~ U{±1}, independent. Returns (index_N, x_NxD, y_N in {−1, +1}).
  """
  return _standard_basis_samples(key, _check_count("n", n), _check_count("d", d))


@functools.partial(jax.jit, static_argnums=(1, 2))
def _standard_basis_samples(key, n, d):
  key_i, key_y = jax.random.split(key)
  index_N = jax.random.randint(key_i, (n,), 0, d, dtype=jnp.int32)
  return index_N, jax.nn.one_hot(index_N, d, dtype=jnp.float32), _random_signs(key_y, (n,))


def hypercube_boundary(key, n, d, eps):
  """Samples of the hypercube boundary function (misclassification, §6.3, Fig. 1).

  D = ½U(C_1) + ½U(C_−1), C_1 = {‖x‖_∞ = 1}, C_−1 = {‖x‖_∞ = 1 − ε}; y = F(x) = 1_{C_1}(x) − 1_{C_−1}(x).

  U(C_r) is the uniform (surface) measure on the boundary of the cube [−r, r]^d: all 2d
  faces have equal area, so a face (coordinate j, sign s) is drawn uniformly, x_j = s·r
  and the other coordinates are uniform on [−r, r]. The inputs are therefore NOT
  hypercube vertices {±1}^d: only one coordinate sits at ±r. Labels are drawn i.i.d.
  from the ½/½ mixture (the paper samples "a fixed data set according to D").
  Returns (x_NxD float32, y_N int32 in {−1, +1}).
  """
  n, d = _check_count("n", n), _check_count("d", d)
  check_range("eps", eps, 0.0, 1.0, low_open=True, high_open=True)
  return _hypercube_boundary(key, n, d, eps)


@functools.partial(jax.jit, static_argnums=(1, 2))
def _hypercube_boundary(key, n, d, eps):
  key_y, key_face, key_sign, key_u = jax.random.split(key, 4)
  y_N = _random_signs(key_y, (n,))
  radius_N = jnp.where(y_N == 1, 1.0, 1.0 - eps).astype(jnp.float32)
  face_N = jax.random.randint(key_face, (n,), 0, d)
  sign_N = _random_signs(key_sign, (n,)).astype(jnp.float32)
  u_NxD = _uniform(key_u, (n, d), -1.0, 1.0)
  u_NxD = jnp.where(jax.nn.one_hot(face_N, d, dtype=bool), sign_N[:, None], u_NxD)
  return radius_N[:, None] * u_NxD, y_N


def hypercube_boundary_function(x_NxD, eps, atol=1e-5):
  """The target F(x) = 1_{C_1}(x) − 1_{C_−1}(x) of misclassification §6.3.

  1 where ‖x‖_∞ = 1, −1 where ‖x‖_∞ = 1 − ε, 0 off C (within `atol`). Returns int32 N.
  """
  sup_N = jnp.max(jnp.abs(x_NxD), axis=-1)
  on_outer = jnp.abs(sup_N - 1.0) <= atol
  on_inner = jnp.abs(sup_N - (1.0 - eps)) <= atol
  return (on_outer.astype(jnp.int32) - on_inner.astype(jnp.int32))


def _random_signs(key, shape):
  return jnp.where(jax.random.bernoulli(key, 0.5, shape), 1, -1).astype(jnp.int32)


# ----------------------------------------------------------------------------- early stopping

@dataclasses.dataclass(frozen=True, eq=False)
class ClusterData:
  """A (ρ, ε0, δ) corrupted clusterable data set (early stopping, Defs 1.1–1.2).

  x: N×D inputs; clean_labels: ground-truth class of each point's cluster (Def. 1.3);
  labels: the corrupted labels; is_noisy: labels != clean_labels; is_resampled: the
  ρ-fraction whose labels were redrawn (a redraw may land on the true class);
  cluster_id: N cluster of each point; centers: K×D unit-norm cluster centers;
  cluster_classes: K class of each cluster (cluster ℓ has class ℓ mod num_classes).
  """
  x: jax.Array
  clean_labels: jax.Array
  labels: jax.Array
  is_noisy: jax.Array
  cluster_id: jax.Array
  centers: jax.Array
  cluster_classes: jax.Array
  is_resampled: jax.Array

  @property
  def rate(self):
    """Realized fraction of labels that differ from the ground truth."""
    return float(np.mean(np.asarray(self.is_noisy)))


def clusterable(key, n, d, num_clusters, num_classes, eps0, *, corruption=0.0,
                centers=None, min_center_distance=None, on_unit_sphere=False,
                flip_to_other=False, max_tries=100):
  """(ρ, ε0, δ) corrupted clusterable data (early stopping, Defs 1.1–1.2, §3 Fig. 5 setup).

  x = c_ℓ + ε0·u, u uniform on S^{d−1}, so ‖x − c_ℓ‖ = ε0 exactly; each cluster resamples
  exactly round(ρ·n_ℓ) labels uniformly from the num_classes classes.

  Fig. 5 setup: centers uniform on the unit sphere of R^d, points uniform on the sphere of
  radius ε0 around their center, "30% corrupted, on average 15% of labels actually flip"
  for 2 classes, i.e. a corrupted label is redrawn uniformly among ALL classes (set
  `flip_to_other=True` for Def. 1.2's other reading: a uniformly chosen different class).
  Def. 1.1 requires centers of clusters of different classes to be ≥ 2ε0 apart (the
  default `min_center_distance`); center ℓ is the first of `max_tries` uniform draws that
  satisfies it. Def. 1.1 also asks for unit-norm inputs, which the Fig. 5 points are not;
  `on_unit_sphere=True` places them on the unit sphere AND at distance ε0 from the center:
  x = (1 − ε0²/2)·c + ε0·√(1 − ε0²/4)·u⊥, u⊥ a uniform unit vector orthogonal to c.
  Cluster sizes n_ℓ are n // K, the first n mod K clusters one more. The paper's label
  separation δ is |α_r − α_s| between class label values; labels here are class ids
  0..num_classes−1 (Fig. 5 uses 0 and 1). Pass the `centers` of a training set to draw a
  test set from the same clusters.

  Returns a `ClusterData`.
  """
  n, d = _check_count("n", n), _check_count("d", d)
  num_clusters = _check_count("num_clusters", num_clusters)
  num_classes = _check_count("num_classes", num_classes)
  if num_classes > num_clusters:
    raise ConfigError("num_classes", num_classes,
                      reason=f"needs at least one cluster per class (num_clusters={num_clusters})")
  if n < num_clusters:
    raise ConfigError("n", n, reason=f"needs at least one point per cluster ({num_clusters})")
  check_range("eps0", eps0, 0.0, 2.0 if on_unit_sphere else float("inf"), high_open=False)
  check_range("corruption", corruption, 0.0, 1.0, high_open=False)
  if flip_to_other and num_classes < 2:
    raise ConfigError("num_classes", num_classes, reason="flip_to_other needs two classes")

  cluster_classes_K = np.arange(num_clusters, dtype=np.int32) % num_classes
  if centers is None:
    if min_center_distance is None:
      min_center_distance = 2.0 * eps0
    centers_KxD = _separated_centers(key, d, cluster_classes_K, min_center_distance, max_tries)
  else:
    centers_KxD = jnp.asarray(centers, jnp.float32)
    if centers_KxD.shape != (num_clusters, d):
      raise ConfigError("centers", centers_KxD.shape,
                        reason=f"must have shape (num_clusters, d) = {(num_clusters, d)}")
  sizes_K = np.full(num_clusters, n // num_clusters)
  sizes_K[: n % num_clusters] += 1
  cluster_N = np.repeat(np.arange(num_clusters, dtype=np.int32), sizes_K)
  x_NxD, clean_N, labels_N, noisy_N, resampled_N = _clusterable_points(
      key, centers_KxD, cluster_N, cluster_classes_K, eps0, corruption, num_classes,
      on_unit_sphere, flip_to_other)
  return ClusterData(x=x_NxD, clean_labels=clean_N, labels=labels_N,
                     is_noisy=noisy_N, cluster_id=jnp.asarray(cluster_N),
                     centers=centers_KxD, cluster_classes=jnp.asarray(cluster_classes_K),
                     is_resampled=resampled_N)


@functools.partial(jax.jit, static_argnums=(6, 7, 8))
def _clusterable_points(key, centers_KxD, cluster_N, cluster_classes_K, eps0, corruption,
                        num_classes, on_unit_sphere, flip_to_other):
  key_points, key_pick, key_label = jax.random.split(jax.random.fold_in(key, 1), 3)
  n, d = cluster_N.shape[0], centers_KxD.shape[1]
  c_NxD = centers_KxD[cluster_N]
  u_NxD = _uniform_sphere(key_points, (n, d))
  if on_unit_sphere:
    u_NxD = u_NxD - jnp.sum(u_NxD * c_NxD, axis=-1, keepdims=True) * c_NxD
    u_NxD = u_NxD / jnp.linalg.norm(u_NxD, axis=-1, keepdims=True)
    x_NxD = (1.0 - eps0**2 / 2) * c_NxD + eps0 * jnp.sqrt(1.0 - eps0**2 / 4) * u_NxD
  else:
    x_NxD = c_NxD + eps0 * u_NxD
  clean_N = cluster_classes_K[cluster_N]
  rate_K = jnp.full(centers_KxD.shape[0], corruption, jnp.float32)
  resampled_N = _exact_per_group(key_pick, cluster_N, rate_K)
  if flip_to_other:
    drawn_N = (clean_N + jax.random.randint(key_label, (n,), 1, num_classes)) % num_classes
  else:
    drawn_N = jax.random.randint(key_label, (n,), 0, num_classes)
  labels_N = jnp.where(resampled_N, drawn_N, clean_N).astype(jnp.int32)
  return x_NxD, clean_N, labels_N, labels_N != clean_N, resampled_N


@functools.partial(jax.jit, static_argnums=(1, 2, 3))
def _center_pool(key, num_clusters, tries, d):
  return _uniform_sphere(jax.random.fold_in(key, 0), (num_clusters, tries, d))


def _separated_centers(key, d, classes_K, min_distance, max_tries):
  """Uniform unit centers; center ℓ is the first of its `max_tries` candidates lying
  ≥ min_distance from the chosen centers of other classes."""
  num_clusters = len(classes_K)
  pool_KxTxD = np.asarray(_center_pool(key, num_clusters, max_tries, d))
  centers = []
  for ell in range(num_clusters):
    rivals_RxD = np.array([c for c, k in zip(centers, classes_K) if k != classes_K[ell]])
    if len(rivals_RxD) == 0:
      centers.append(pool_KxTxD[ell, 0])
      continue
    dist_TxR = np.linalg.norm(pool_KxTxD[ell][:, None, :] - rivals_RxD[None], axis=-1)
    ok_T = dist_TxR.min(axis=1) >= min_distance
    if not ok_T.any():
      raise ConfigError("min_center_distance", min_distance,
                        reason=f"no {num_clusters} unit centers in R^{d} so far apart found in "
                               f"{max_tries} tries per center; lower eps0 or num_clusters")
    centers.append(pool_KxTxD[ell, np.argmax(ok_T)])
  return jnp.asarray(np.stack(centers), jnp.float32)


def ground_truth_labels(x_NxD, centers_KxD, cluster_classes_K):
  """Ground-truth label function of early stopping Def. 1.3: class of the nearest center.

  ỹ(x) = class of c_ℓ̂, ℓ̂ = argmin_ℓ ‖x − c_ℓ‖₂.
  """
  sq_NxK = jnp.sum((x_NxD[:, None, :] - centers_KxD[None, :, :]) ** 2, axis=-1)
  return jnp.asarray(cluster_classes_K)[jnp.argmin(sq_NxK, axis=1)]


# ----------------------------------------------------------------------------- feature learning

@dataclasses.dataclass(frozen=True, eq=False)
class SignalNoiseData:
  """Signal–noise patch data (label noise in feature learning, ICML 2025, §3 data model).

  x_Nx2xD: patch 0 = y·μ, patch 1 = ξ; y: true labels ±1; y_noisy: observed labels ±1;
  is_noisy: y_noisy != y; mu_D: the signal vector μ = mu_norm·e_1.
  """
  x_Nx2xD: jax.Array
  y: jax.Array
  y_noisy: jax.Array
  is_noisy: jax.Array
  mu_D: jax.Array

  @property
  def mu(self):
    return self.mu_D

  @property
  def xi_NxD(self):
    """The noise patches ξ_i."""
    return self.x_Nx2xD[:, 1]


FLIP_MODES = ("bernoulli", "exact")


def signal_noise(key, n, d, mu_norm, sigma_xi, tau_pos, tau_neg, *, flips="bernoulli"):
  """Signal–noise data with class-conditional label flips (label noise in feature learning).

  x = [y·μ, ξ], μ = mu_norm·e_1, ξ ~ N(0, σ_ξ² I_d); ỹ = −y with prob. τ₊ if y = +1, τ₋ if y = −1.

  True labels are balanced: exactly ⌈n/2⌉ are +1, in random order. flips="bernoulli"
  flips each label independently (the paper's data distribution); flips="exact" flips
  exactly round(τ_y·n_y) uniformly chosen labels of each class (realized rates equal τ).
  SNR = ‖μ‖/(σ_ξ√d); the paper's regime is n·SNR² = Θ(1).
  """
  n, d = _check_count("n", n, minimum=2), _check_count("d", d)
  check_range("mu_norm", mu_norm, 0.0, float("inf"))
  check_range("sigma_xi", sigma_xi, 0.0, float("inf"))
  check_range("tau_pos", tau_pos, 0.0, 1.0, high_open=False)
  check_range("tau_neg", tau_neg, 0.0, 1.0, high_open=False)
  if flips not in FLIP_MODES:
    raise ConfigError("flips", flips, FLIP_MODES)
  x_Nx2xD, y_N, y_noisy_N, flip_N, mu_D = _signal_noise(
      key, n, d, mu_norm, sigma_xi, tau_pos, tau_neg, flips == "exact")
  return SignalNoiseData(x_Nx2xD=x_Nx2xD, y=y_N, y_noisy=y_noisy_N,
                         is_noisy=flip_N, mu_D=mu_D)


@functools.partial(jax.jit, static_argnums=(1, 2, 7))
def _signal_noise(key, n, d, mu_norm, sigma_xi, tau_pos, tau_neg, exact):
  key_y, key_xi, key_flip = jax.random.split(key, 3)
  y_N = jax.random.permutation(key_y, jnp.where(jnp.arange(n) < (n + 1) // 2, 1, -1))
  y_N = y_N.astype(jnp.int32)
  mu_D = jnp.zeros(d, jnp.float32).at[0].set(mu_norm)
  xi_NxD = sigma_xi * _normal(key_xi, (n, d))
  if exact:
    group_N = (y_N == 1).astype(jnp.int32)  # 0: y = −1, 1: y = +1.
    flip_N = _exact_per_group(key_flip, group_N, jnp.stack([tau_neg, tau_pos]).astype(jnp.float32))
  else:
    flip_N = jax.random.uniform(key_flip, (n,)) < jnp.where(y_N == 1, tau_pos, tau_neg)
  y_noisy_N = jnp.where(flip_N, -y_N, y_N).astype(jnp.int32)
  x_Nx2xD = jnp.stack([y_N[:, None] * mu_D[None, :], xi_NxD], axis=1)
  return x_Nx2xD, y_N, y_noisy_N, flip_N, mu_D
