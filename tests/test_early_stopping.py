"""The one early-stopping rule: a smoothed argmin on a held-out split with noisy labels."""

import jax
import numpy as np
import pytest

from noisejax import early_stopping


def test_smoothed_is_a_centered_mean_shrunk_at_the_ends():
  np.testing.assert_allclose(early_stopping.smoothed([1, 2, 3, 4, 5], window=3),
                             [1.5, 2, 3, 4, 4.5])
  np.testing.assert_allclose(early_stopping.smoothed([3, 1], window=1), [3, 1])


def test_a_single_lucky_dip_does_not_move_the_point():
  # A flat valley over 5..15 with one low outlier at 2: the raw argmin picks the outlier.
  err = np.r_[0.5, 0.4, 0.05, 0.4, 0.3, np.full(11, 0.12), np.linspace(0.15, 0.4, 10)]
  assert int(np.argmin(err)) == 2
  t = early_stopping.index(err)
  assert 5 <= t <= 15


def test_point_returns_the_history_record_and_the_first_on_ties():
  history = [{"step": s, "val_error": e} for s, e in enumerate([0.5, 0.2, 0.2, 0.2, 0.5])]
  assert early_stopping.point(history, window=1)["step"] == 1


def test_holdout_is_a_disjoint_cover_and_rejects_bad_sizes():
  train_idx, val_idx = early_stopping.holdout(jax.random.key(0), 10, 3)
  assert len(val_idx) == 3 and sorted(np.r_[train_idx, val_idx]) == list(range(10))
  with pytest.raises(ValueError, match="validation size"):
    early_stopping.holdout(jax.random.key(0), 10, 10)
