"""The diagnostic train step: an update plus sample-wise gradient diagnostics in one pass."""

import functools

import jax
import jax.numpy as jnp
import optax

from noisejax.persample._base import GradStats, check_method, residuals
from noisejax.persample._grads import sample_grad_stats
from noisejax.persample._subsets import class_subset_weights, pair_angle, ratio, subset_angle


def _diagnostic_cotangents(loss_fn, labels_B, true_labels_B):
  """Cotangents of the diagnostic pass: set 0 r_i = ∂l_i/∂h_i (→ ∇l_i); for K > 1 outputs
  also set 1 r_{i,t_i} e_{t_i} (→ ∇l_{t_i,i}, eq. 13, t_i the sample's true class)."""
  def cotangent_fn(outputs_BxK):
    losses_B = loss_fn(outputs_BxK, labels_B)
    r_BxK = residuals(outputs_BxK, labels_B, loss_fn)
    k = outputs_BxK.shape[-1]
    if k == 1:
      return r_BxK[None], losses_B
    own_BxK = jax.nn.one_hot(true_labels_B, k, dtype=r_BxK.dtype)
    return jnp.stack([r_BxK, r_BxK * own_BxK]), losses_B
  return cotangent_fn


def diagnostics(stats: GradStats, true_labels_B, given_labels_B, num_classes: int) -> dict:
  """Per-sample and per-class numbers of one diagnostic pass (clean-priority §3.2, §5).

  grad_norms_B = ‖∇l_i‖; the "sample gradient" v_i of the subset statistics is ∇l_i for
  one output and the single-logit ∇l_{t_i,i} of the true class t_i otherwise (eq. 13;
  norms in logit_grad_norms_B). Per class c: clean_norm_C = ‖g_clean^(c)‖, noise_norm_C,
  clean_noise_ratio_C (eq. 8 / 14), clean_noise_angle_C = θ(g_clean^(c), g_noise^(c)), and
  per sample angle_to_clean_B = θ(v_i, g_clean^(t_i)) (Figs. 4, 10), noisy_B. Ratios and
  angles involving a subset absent from the batch are NaN. `stats` has the subsets of
  `class_subset_weights` as columns.
  """
  m = stats.sq_norms_MxB.shape[0] - 1
  gram_SxS = stats.gram_MxSxS[m]
  norms_S = jnp.sqrt(jnp.clip(jnp.diagonal(gram_SxS), 0.0))
  clean_C, noise_C = norms_S[0::2], norms_S[1::2]
  cross_C = jnp.diagonal(gram_SxS[0::2, 1::2])
  logit_norms_B = jnp.sqrt(jnp.clip(stats.sq_norms_MxB[m], 0.0))
  true_B = jnp.asarray(true_labels_B)
  inner_B = jnp.take_along_axis(stats.inner_MxBxS[m], 2 * true_B[:, None], axis=1)[:, 0]
  return {
      "grad_norms_B": jnp.sqrt(jnp.clip(stats.sq_norms_MxB[0], 0.0)),
      "logit_grad_norms_B": logit_norms_B,
      "angle_to_clean_B": subset_angle(inner_B, logit_norms_B, clean_C[true_B]),
      "noisy_B": true_B != jnp.asarray(given_labels_B),
      "clean_norm_C": clean_C,
      "noise_norm_C": noise_C,
      "clean_noise_ratio_C": ratio(clean_C, noise_C),
      "clean_noise_angle_C": pair_angle(cross_C, clean_C, noise_C),
  }


def diagnostic_step(params, opt_state, x_B, labels_B, true_labels_B, *, apply_fn, loss_fn,
                    tx, num_classes: int, method: str = "auto"):
  """One optimizer step on the mean loss plus sample-wise gradient diagnostics.

  w ← w − tx(1/B Σ_i ∇l_i); the update and every number of `diagnostics` come from one
  forward and one (batched) backward pass. labels_B are the given (noisy) labels,
  true_labels_B the clean ones; apply_fn(params, x_B) a per-sample model (BatchNorm in
  eval mode: `eval_apply_fn`). Returns (params, opt_state, metrics) with metrics["loss"]
  the mean loss before the step. Jit with apply_fn, loss_fn, tx, num_classes static.
  """
  weights_BxS = class_subset_weights(true_labels_B, labels_B, num_classes)
  cotangent_fn = _diagnostic_cotangents(loss_fn, labels_B, true_labels_B)
  stats, _, losses_B = sample_grad_stats(apply_fn, params, x_B, cotangent_fn, weights_BxS,
                                         method=method)
  b = losses_B.shape[0]
  grads = jax.tree.map(lambda g: g / b, stats.grad_sum)
  updates, opt_state = tx.update(grads, opt_state, params)
  params = optax.apply_updates(params, updates)
  metrics = diagnostics(stats, true_labels_B, labels_B, num_classes)
  metrics["loss"] = jnp.mean(losses_B)
  return params, opt_state, metrics


def make_diagnostic_step(apply_fn, loss_fn, tx, num_classes: int, *, method: str = "auto",
                         donate: bool = False):
  """`step(params, opt_state, x_B, labels_B, true_labels_B) -> (params, opt_state, metrics)`,
  jitted once (see `diagnostic_step`)."""
  fn = functools.partial(diagnostic_step, apply_fn=apply_fn, loss_fn=loss_fn, tx=tx,
                         num_classes=num_classes, method=check_method(method))
  return jax.jit(fn, donate_argnums=(0, 1) if donate else ())
