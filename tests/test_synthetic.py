"""Tests of noisejax.synthetic: determinism under a key and each paper's defining properties."""

import dataclasses
import types

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from noisejax import synthetic
from noisejax.errors import ConfigError

KEY = jax.random.key(0)
OTHER = jax.random.key(1)

GENERATORS = {
    "two_clusters_2d": lambda k: synthetic.two_clusters_2d(k, 50),
    "gaussian_pure_noise": lambda k: synthetic.gaussian_pure_noise(k, 64, 8),
    "standard_basis_samples": lambda k: synthetic.standard_basis_samples(k, 64, 8),
    "hypercube_boundary": lambda k: synthetic.hypercube_boundary(k, 64, 8, 0.3),
    "clusterable": lambda k: synthetic.clusterable(k, 64, 8, 4, 2, 0.3, corruption=0.3),
    "signal_noise": lambda k: synthetic.signal_noise(k, 64, 8, 1.0, 1.0, 0.2, 0.2),
}


def _np(data):
  """A dataclass of jax arrays as a namespace of numpy arrays (keeps tests off eager jax ops)."""
  fields = {f.name: np.asarray(getattr(data, f.name)) for f in dataclasses.fields(data)}
  return types.SimpleNamespace(**fields)


def _leaves(out):
  if dataclasses.is_dataclass(out):
    out = dataclasses.astuple(out)
  return [np.asarray(a) for a in jax.tree.leaves(out)]


@pytest.mark.parametrize("name", sorted(GENERATORS))
def test_same_key_same_data_other_key_other_data(name):
  make = GENERATORS[name]
  first, again, other = _leaves(make(KEY)), _leaves(make(KEY)), _leaves(make(OTHER))
  for a, b in zip(first, again):
    np.testing.assert_array_equal(a, b)
  x_first = first[1] if name == "standard_basis_samples" else first[0]
  x_other = other[1] if name == "standard_basis_samples" else other[0]
  assert not np.array_equal(x_first, x_other)


# ----------------------------------------------------------------------------- clean priority

def test_two_clusters_are_separated_blobs():
  x, y = synthetic.two_clusters_2d(KEY, 500, separation=6.0, spread=0.5)
  assert x.shape == (1000, 2) and y.dtype == jnp.int32
  x, y = np.asarray(x), np.asarray(y)
  np.testing.assert_array_equal(np.bincount(y), [500, 500])
  np.testing.assert_allclose(x[y == 0].mean(0), [-3, 0], atol=0.1)
  np.testing.assert_allclose(x[y == 1].mean(0), [3, 0], atol=0.1)
  np.testing.assert_allclose(x[y == 1].std(0), [0.5, 0.5], rtol=0.1)
  assert np.all((x[:, 0] > 0) == (y == 1))  # 6 standard deviations apart


# ----------------------------------------------------------------------------- misclassification

def test_gaussian_pure_noise_moments_and_labels():
  x, y = map(np.asarray, synthetic.gaussian_pure_noise(KEY, 4000, 5))
  assert x.shape == (4000, 5)
  np.testing.assert_allclose(x.mean(0), 0, atol=0.06)
  np.testing.assert_allclose(np.cov(x.T), np.eye(5), atol=0.08)
  assert set(np.unique(y).tolist()) == {-1, 1}
  assert abs(y.mean()) < 0.05
  assert abs(np.corrcoef(x[:, 0], y)[0, 1]) < 0.05  # labels carry no signal


def test_standard_basis():
  np.testing.assert_array_equal(synthetic.standard_basis(3), np.eye(3))
  index, x, y = map(np.asarray, synthetic.standard_basis_samples(KEY, 2000, 5))
  assert index.shape == (2000,) and x.shape == (2000, 5)
  np.testing.assert_array_equal(x, np.eye(5)[index])
  np.testing.assert_allclose(np.bincount(index) / 2000, 0.2, atol=0.03)
  assert set(np.unique(y).tolist()) == {-1, 1} and abs(y.mean()) < 0.06


def test_hypercube_boundary_matches_the_definition():
  eps, d, n = 0.3, 20, 4000
  x, y = synthetic.hypercube_boundary(KEY, n, d, eps)
  assert x.shape == (n, d)
  np.testing.assert_array_equal(synthetic.hypercube_boundary_function(x, eps), y)
  x, y = np.asarray(x), np.asarray(y)
  sup = np.abs(x).max(axis=1)
  np.testing.assert_allclose(sup, np.where(y == 1, 1.0, 1.0 - eps), atol=1e-6)
  # Exactly one coordinate sits on the face (x_j = ±r exactly): the inputs are not vertices.
  np.testing.assert_array_equal((np.abs(x) == sup[:, None]).sum(1), 1)
  assert abs(y.mean()) < 0.05
  # Free coordinates are uniform on [−r, r]: a fraction ε/2 of those of C_1 exceed 1 − ε/2.
  free = np.abs(x)[y == 1]
  free = free[free < 1.0]
  np.testing.assert_allclose(np.mean(free > 1 - eps / 2), eps / 2, atol=0.01)


def test_hypercube_boundary_function_is_zero_off_the_boundaries():
  x = jnp.array([[1.0, 0.2], [0.7, -0.1], [0.5, 0.5], [0.0, -1.0]])
  np.testing.assert_array_equal(synthetic.hypercube_boundary_function(x, 0.3), [1, -1, 0, 1])


@pytest.mark.parametrize("eps", [0.0, 1.0, -0.2])
def test_hypercube_bad_eps(eps):
  with pytest.raises(ConfigError, match="config.eps"):
    synthetic.hypercube_boundary(KEY, 4, 3, eps)


# ----------------------------------------------------------------------------- early stopping

def test_clusterable_fig5_setup():
  n, d, rho, eps0 = 2000, 20, 0.3, 0.5
  result = synthetic.clusterable(KEY, n, d, 2, 2, eps0, corruption=rho)
  data = _np(result)
  assert data.x.shape == (n, d) and data.centers.shape == (2, d)
  np.testing.assert_allclose(np.linalg.norm(data.centers, axis=1), 1.0, atol=1e-6)
  radius = np.linalg.norm(data.x - data.centers[data.cluster_id], axis=1)
  np.testing.assert_allclose(radius, eps0, atol=1e-5)
  assert np.linalg.norm(data.centers[0] - data.centers[1]) >= 2 * eps0
  np.testing.assert_array_equal(np.bincount(data.cluster_id), [1000, 1000])
  np.testing.assert_array_equal(data.clean_labels, data.cluster_classes[data.cluster_id])
  # Exactly ρ·n_ℓ labels of each cluster are redrawn uniformly over both classes ...
  for ell in range(2):
    assert int(data.is_resampled[data.cluster_id == ell].sum()) == 300
  np.testing.assert_array_equal(data.is_noisy, data.labels != data.clean_labels)
  assert not np.any(data.is_noisy & ~data.is_resampled)
  # ... so about ρ/2 of them actually flip ("30% corrupted, on average 15% flip").
  assert abs(result.rate - rho / 2) < 0.03 and result.rate == data.is_noisy.mean()
  # Def. 1.3: the ground-truth label is the class of the nearest center.
  np.testing.assert_array_equal(
      synthetic.ground_truth_labels(data.x, data.centers, data.cluster_classes), data.clean_labels)


def test_clusterable_many_clusters_unit_sphere_and_flip_to_other():
  eps0 = 0.3
  data = _np(synthetic.clusterable(KEY, 403, 10, 6, 3, eps0, corruption=0.25,
                                   on_unit_sphere=True, flip_to_other=True))
  np.testing.assert_array_equal(np.bincount(data.cluster_id), [68] + [67] * 5)
  np.testing.assert_array_equal(data.cluster_classes, [0, 1, 2, 0, 1, 2])
  np.testing.assert_allclose(np.linalg.norm(data.x, axis=1), 1.0, atol=1e-5)
  radius = np.linalg.norm(data.x - data.centers[data.cluster_id], axis=1)
  np.testing.assert_allclose(radius, eps0, atol=1e-5)
  np.testing.assert_array_equal(data.is_noisy, data.is_resampled)  # always another class
  sizes = np.bincount(data.cluster_id)
  counts = np.bincount(data.cluster_id, weights=data.is_noisy)
  np.testing.assert_array_equal(counts, np.round(0.25 * sizes))
  dist = np.linalg.norm(data.centers[:, None] - data.centers[None], axis=-1)
  other_class = data.cluster_classes[:, None] != data.cluster_classes[None]
  assert dist[other_class].min() >= 2 * eps0


def test_clusterable_test_set_from_given_centers():
  train = synthetic.clusterable(KEY, 40, 8, 4, 2, 0.3, corruption=0.3)
  test = synthetic.clusterable(OTHER, 40, 8, 4, 2, 0.3, centers=train.centers)
  np.testing.assert_array_equal(test.centers, train.centers)
  assert not np.asarray(test.is_noisy).any()
  np.testing.assert_array_equal(
      synthetic.ground_truth_labels(test.x, train.centers, train.cluster_classes), test.labels)


def test_clusterable_rejects_impossible_separation_and_bad_input():
  with pytest.raises(ConfigError, match="min_center_distance"):
    synthetic.clusterable(KEY, 20, 2, 10, 10, 0.9)
  with pytest.raises(ConfigError, match="num_classes"):
    synthetic.clusterable(KEY, 20, 2, 2, 3, 0.1)
  with pytest.raises(ConfigError, match="corruption"):
    synthetic.clusterable(KEY, 20, 2, 2, 2, 0.1, corruption=1.5)


# ----------------------------------------------------------------------------- feature learning

def test_signal_noise_patches():
  n, d, mu_norm, sigma = 2000, 16, 3.0, 0.5
  result = synthetic.signal_noise(KEY, n, d, mu_norm, sigma, 0.1, 0.2)
  data = _np(result)
  assert data.x_Nx2xD.shape == (n, 2, d)
  np.testing.assert_array_equal(data.mu_D, mu_norm * np.eye(d)[0])
  assert result.mu is result.mu_D and result.xi_NxD.shape == (n, d)
  np.testing.assert_array_equal(data.x_Nx2xD[:, 0], data.y[:, None] * data.mu_D[None])
  xi = data.x_Nx2xD[:, 1]
  np.testing.assert_allclose(xi.std(), sigma, rtol=0.03)
  np.testing.assert_allclose(xi.mean(0), 0, atol=0.05)
  assert abs(np.corrcoef(xi[:, 0], data.y)[0, 1]) < 0.06  # ξ ignores y
  assert (data.y == 1).sum() == n // 2  # balanced true labels
  np.testing.assert_array_equal(data.y_noisy, np.where(data.is_noisy, -data.y, data.y))
  # Bernoulli flips: realized class-conditional rates near τ₊ = 0.1 and τ₋ = 0.2.
  assert abs(data.is_noisy[data.y == 1].mean() - 0.1) < 0.03
  assert abs(data.is_noisy[data.y == -1].mean() - 0.2) < 0.03


def test_signal_noise_exact_flips():
  data = _np(synthetic.signal_noise(KEY, 101, 4, 1.0, 1.0, 0.2, 0.1, flips="exact"))
  assert (data.y == 1).sum() == 51 and (data.y == -1).sum() == 50
  assert data.is_noisy[data.y == 1].sum() == round(0.2 * 51)
  assert data.is_noisy[data.y == -1].sum() == round(0.1 * 50)
  with pytest.raises(ConfigError, match="config.flips='coin'.*valid: bernoulli, exact"):
    synthetic.signal_noise(KEY, 10, 4, 1.0, 1.0, 0.2, 0.1, flips="coin")
  with pytest.raises(ConfigError, match="config.tau_pos"):
    synthetic.signal_noise(KEY, 10, 4, 1.0, 1.0, 1.2, 0.1)
