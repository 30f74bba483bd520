"""Activation sparsity of hidden layers: who fires, how often, and for which class.

Misclassification paper, Definition 1: the number of active neurons of a layer on input x
is A_N(x) = |{i : unit i of the layer is > 0 on x}|, and the typical number of active
neurons is E_x A_N(x) over the inputs. For convolutional layers every (position, channel)
is one unit, so ResNet-20's last block has 8·8·64 = 4096 units (§6.4). `layer_sparsity`
is the one place this is measured; every experiment calls it with the activations of its
own model (`activations_fn(model, variables)`: `models.hidden_activations`, compiled) on
training or test inputs; during training, evaluation reports one layer's E_x A_N(x)
from its own forward passes (`config.training(..., eval_activity=layer)`).

Appendix F: a neuron is digit (class) associated when it fires at least twice as often
for one class as for any other (`class_associated`).
"""

import functools
from typing import Callable, Mapping

import jax
import jax.numpy as jnp
import numpy as np

from noisejax import models


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


_hidden_activations = jax.jit(models.hidden_activations, static_argnames=("model", "train"))


def activations_fn(model, variables) -> Callable:
  """x_B -> {layer: post-activations} of `model` (eval mode), compiled once per model."""
  return functools.partial(_hidden_activations, model, variables)


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


def dataset_firing_counts(activations_fn_: Callable, x, labels_N, num_classes: int, *,
                          layer: str = "hidden_0", batch_size: int = 1000):
  """`firing_counts` of one layer over a whole input set, in chunks: counts_UxC (numpy)."""
  total = 0
  for start in range(0, len(x), batch_size):
    acts = activations_fn_(x[start:start + batch_size])[layer]
    total = total + np.asarray(firing_counts(acts, labels_N[start:start + batch_size],
                                             num_classes))
  return total


def class_activity(activations_fn_: Callable, x, labels_N, num_classes: int, *,
                   ratio: float = 2.0, layer: str = "hidden_0", batch_size: int = 1000):
  """Appendix F for one layer over a whole input set: {"active_fraction": E_x A(x)/units,
  "firing_counts": counts_UxC, "associated": the number of class-associated units
  (`class_associated`), "never_fire": the number of units that fire on no input}."""
  counts_UxC = dataset_firing_counts(activations_fn_, x, labels_N, num_classes, layer=layer,
                                     batch_size=batch_size)
  mask, _ = class_associated(counts_UxC, ratio)
  return {"active_fraction": dataset_sparsity(activations_fn_, x, batch_size)[layer],
          "firing_counts": counts_UxC, "associated": int(np.sum(mask)),
          "never_fire": int(np.sum(counts_UxC.sum(1) == 0))}


def class_associated(counts_UxC, ratio: float = 2.0):
  """Units that fire at least `ratio` times as often for one class as for any other.

  Appendix F's "digit associated" neurons: max_c counts ≥ ratio · (second largest) and the
  unit fires at all. Returns (mask_U bool, class_U int: the associated class, −1 if none).
  """
  counts_UxC = jnp.asarray(counts_UxC)
  top2 = jax.lax.top_k(counts_UxC, 2)[0]
  mask = (top2[:, 0] > 0) & (top2[:, 0] >= ratio * top2[:, 1])
  return mask, jnp.where(mask, jnp.argmax(counts_UxC, axis=1), -1)


def trained_activity(snapshot, train_set, test_set, ratio: float = 2.0) -> dict:
  """A trained net's activity (train.Snapshot) on every input of two data.Datasets: active
  fractions, firing counts per class (U×C), class-associated and never-firing units
  (misclassification Appendix F)."""
  hidden = activations_fn(snapshot.model, snapshot.variables)
  activity = class_activity(hidden, train_set.x, train_set.y, train_set.num_classes,
                            ratio=ratio)
  activity["active_test"] = dataset_sparsity(hidden, test_set.x)["hidden_0"]
  return activity
