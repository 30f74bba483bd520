"""Activation sparsity of hidden layers: who fires, how often, and for which class.

Misclassification paper, Definition 1: the number of active neurons of a layer on input x
is A_N(x) = |{i : unit i of the layer is > 0 on x}|, and the typical number of active
neurons is E_x A_N(x) over the inputs. For convolutional layers every (position, channel)
is one unit, so ResNet-20's last block has 8·8·64 = 4096 units (§6.4). `layer_sparsity`
is the one place this is measured; every experiment calls it with the activations of its
own model (e.g. `models.hidden_activations`) on training or test inputs.

Appendix F: a neuron is digit (class) associated when it fires at least twice as often
for one class as for any other (`class_associated`).
"""

from typing import Callable, Mapping

import jax
import jax.numpy as jnp
import numpy as np


def active_units(acts_NxU):
  """Per-input count of active units A_N(x) = |{i : a_i(x) > 0}|: counts_N (Definition 1).

  Any trailing shape counts as units: N×H×W×C is flattened to N×(H·W·C).
  """
  acts_NxU = jnp.reshape(acts_NxU, (acts_NxU.shape[0], -1))
  return jnp.sum(acts_NxU > 0, axis=1)


def active_fraction(acts_NxU):
  """E_x A_N(x) / (number of units): the typical fraction of active units (Definition 1)."""
  acts_NxU = jnp.reshape(acts_NxU, (acts_NxU.shape[0], -1))
  return jnp.mean(acts_NxU > 0)


def layer_sparsity(activations: Mapping[str, jax.Array]) -> dict:
  """Typical fraction of active units per layer, {name: E_x A(x)/units} (Definition 1).

  `activations` maps layer names to post-activation arrays with a leading input axis.
  """
  return {name: active_fraction(acts) for name, acts in activations.items()}


def layer_sizes(activations: Mapping[str, jax.Array]) -> dict:
  """Units per layer (everything but the leading input axis), {name: int}."""
  return {name: int(np.prod(acts.shape[1:])) for name, acts in activations.items()}


def dataset_sparsity(activations_fn: Callable, x, batch_size: int = 1000) -> dict:
  """`layer_sparsity` over a whole input set, in chunks of `batch_size` inputs.

  `activations_fn(x_B) -> {name: acts_Bx…}`, e.g.
  `lambda x: models.hidden_activations(model, variables, x)`. Returns {name: float}.
  """
  totals, count = {}, 0
  for start in range(0, len(x), batch_size):
    x_B = x[start:start + batch_size]
    for name, frac in layer_sparsity(activations_fn(x_B)).items():
      totals[name] = totals.get(name, 0.0) + float(frac) * len(x_B)
    count += len(x_B)
  return {name: total / count for name, total in totals.items()}


def firing_counts(acts_NxU, labels_N, num_classes: int):
  """How often each unit fires on inputs of each class: counts_UxC (Appendix F, Fig. 6).

  counts[u, c] = |{n : labels_n = c and a_u(x_n) > 0}|.
  """
  acts_NxU = jnp.reshape(acts_NxU, (acts_NxU.shape[0], -1))
  onehot_NxC = jax.nn.one_hot(labels_N, num_classes, dtype=jnp.float32)
  return jnp.round((acts_NxU > 0).astype(jnp.float32).T @ onehot_NxC).astype(jnp.int32)


def class_associated(counts_UxC, ratio: float = 2.0):
  """Units that fire at least `ratio` times as often for one class as for any other.

  Appendix F's "digit associated" neurons: max_c counts ≥ ratio · (second largest) and the
  unit fires at all. Returns (mask_U bool, class_U int: the associated class, −1 if none).
  """
  counts_UxC = jnp.asarray(counts_UxC)
  top2 = jax.lax.top_k(counts_UxC, 2)[0]
  mask = (top2[:, 0] > 0) & (top2[:, 0] >= ratio * top2[:, 1])
  return mask, jnp.where(mask, jnp.argmax(counts_UxC, axis=1), -1)
