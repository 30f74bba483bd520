"""metrics: rank correlation, loss separation, distances."""

import jax.numpy as jnp
import numpy as np
import pytest

from noisejax import metrics


def test_separation_auc_by_hand():
  assert metrics.separation_auc([0.1, 0.2], [0.3, 0.5]) == 1.0
  assert metrics.separation_auc([0.1, 0.4], [0.3]) == 0.5
  assert metrics.separation_auc([1.0], [0.0, 1.0]) == 0.25  # a tie counts one half
  assert np.isnan(metrics.separation_auc([], [1.0]))


def test_spearman():
  assert metrics.spearman([1, 2, 3, 4], [10, 20, 25, 40]) == pytest.approx(1.0)
  assert metrics.spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
  assert np.isnan(metrics.spearman([1, 2], [1, 2]))          # fewer than 3 points
  assert np.isnan(metrics.spearman([1, 2, 3], [5, 5, 5]))    # a constant sequence
  # Ties take their average rank: ranks (0, 1.5, 1.5, 3) against (0, 1, 2, 3).
  expected = np.corrcoef([0, 1.5, 1.5, 3], [0, 1, 2, 3])[0, 1]
  assert metrics.spearman([1, 2, 2, 3], [1, 2, 3, 4]) == pytest.approx(expected)


def test_parameter_distance_and_norm():
  a = {"w": jnp.array([3.0, 0.0]), "b": jnp.array([0.0])}
  b = {"w": jnp.array([0.0, 0.0]), "b": jnp.array([4.0])}
  assert metrics.parameter_distance(a, b) == pytest.approx(5.0)
  assert metrics.parameter_norm(a) == pytest.approx(3.0)
