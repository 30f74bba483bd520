"""The shared activation-sparsity measure on hand-made activations and a hand-made net."""

import jax.numpy as jnp
import numpy as np
import pytest

from noisejax import models, sparsity


def test_active_units_and_fraction_count_positive_entries():
  acts = jnp.array([[1.0, 0.0, 2.0, -1.0], [0.0, 0.0, 3.0, 0.0]])
  np.testing.assert_array_equal(sparsity.active_units(acts), [2, 1])
  assert float(sparsity.active_fraction(acts)) == pytest.approx(3 / 8)


def test_conv_units_are_positions_times_channels():
  acts_NxHxWxC = jnp.zeros((2, 2, 2, 3)).at[0, 1, 1, 2].set(1.0).at[1, 0, 0, 0].set(5.0)
  sizes = sparsity.layer_sizes({"conv": acts_NxHxWxC})
  assert sizes == {"conv": 12}
  np.testing.assert_array_equal(sparsity.active_units(acts_NxHxWxC), [1, 1])
  assert float(sparsity.layer_sparsity({"conv": acts_NxHxWxC})["conv"]) == pytest.approx(2 / 24)


def _hand_made_mlp():
  """Three ReLU units u0 = x0, u1 = −x0, u2 = −x1 − 1 and one output."""
  model = models.MLP(num_outputs=1, hidden=(3,))
  params = {"params": {
      "dense_0": {"kernel": jnp.array([[1.0, -1.0, 0.0], [0.0, 0.0, -1.0]]),
                  "bias": jnp.array([0.0, 0.0, -1.0])},
      "output": {"kernel": jnp.ones((3, 1)), "bias": jnp.zeros(1)}}}
  return model, params


def test_layer_sparsity_of_a_hand_made_net_in_chunks():
  model, params = _hand_made_mlp()
  # Active units per input: [1, 0] -> {u0}; [-1, 0] -> {u1}; [0, 1] -> {}; [2, -3] -> {u0, u2}.
  x = jnp.array([[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0], [2.0, -3.0]])
  hidden = lambda xs: models.hidden_activations(model, params, xs)
  assert set(hidden(x)) == {"hidden_0"}
  np.testing.assert_array_equal(sparsity.active_units(hidden(x)["hidden_0"]), [1, 1, 0, 2])
  for batch_size in (1, 3, 4):
    frac = sparsity.dataset_sparsity(hidden, x, batch_size=batch_size)["hidden_0"]
    assert frac == pytest.approx(4 / 12)


def test_firing_counts_per_class():
  acts = jnp.array([[1.0, 0.0], [2.0, 1.0], [0.0, 3.0], [1.0, 1.0]])
  labels = jnp.array([0, 0, 1, 2])
  counts = np.asarray(sparsity.firing_counts(acts, labels, 3))
  np.testing.assert_array_equal(counts, [[2, 0, 1], [1, 1, 1]])


def test_class_associated_needs_twice_every_other_class_and_some_firing():
  counts = jnp.array([[10, 4, 0], [10, 6, 0], [0, 0, 0], [3, 0, 1], [0, 5, 5], [1, 0, 7]])
  mask, assoc = sparsity.class_associated(counts)
  np.testing.assert_array_equal(mask, [True, False, False, True, False, True])
  np.testing.assert_array_equal(assoc, [0, -1, -1, 0, -1, 2])
  mask3, _ = sparsity.class_associated(counts, ratio=3.0)
  np.testing.assert_array_equal(mask3, [False, False, False, True, False, True])


def test_active_units_and_firing_counts_of_a_hand_made_net():
  model, params = _hand_made_mlp()
  x = jnp.array([[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0], [2.0, -3.0]])
  hidden = sparsity.activations_fn(model, params)
  acts = hidden(x)["hidden_0"]
  np.testing.assert_array_equal(sparsity.active_units(acts), [1, 1, 0, 2])
  assert float(sparsity.active_fraction(acts)) == pytest.approx(4 / 12)
  np.testing.assert_array_equal(hidden(x)["hidden_0"],
                                models.hidden_activations(model, params, x)["hidden_0"])
  labels = np.array([0, 1, 1, 0])
  counts = sparsity.dataset_firing_counts(hidden, x, labels, 2, batch_size=3)
  # u0 fires on inputs 0 and 3 (class 0), u1 on input 1 (class 1), u2 on input 3 (class 0).
  np.testing.assert_array_equal(counts, [[2, 0], [0, 1], [1, 0]])


