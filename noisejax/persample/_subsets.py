"""Subsets of a noisy training set and the geometry of their gradients (clean-priority §3.2).

For class c: D_clean^(c) = D^(c) ∩ D_clean, D_noise^(c) = D^(c) ∩ D_noise, D_other^(c) =
D_clean \\ D^(c), D^(c) the samples whose TRUE class is c. Subset gradients
g_k^(c) = Σ_{i ∈ D_k^(c)} ∇l_i, their norms, the ratio ‖g_clean‖/‖g_noise‖ (eq. 8, eq. 14)
and the angles θ_g between sample gradients and subset gradients (Figs. 4, 10) need only
‖∇l_i‖², ⟨∇l_i, g_s⟩ and ⟨g_s, g_t⟩ (`sample_grad_stats`).
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np

from noisejax.persample._base import (Array, arccos, eval_apply_fn, flatten_tree, residuals,
                                      safe_cos)
from noisejax.persample._grads import sample_grad_stats

SUBSETS = ("clean", "noise", "other")   # the last axis of subset_masks


def subset_masks(true_labels_B, given_labels_B, num_classes: int) -> Array:
  """masks_BxCx3: for class c, sample i is clean / noise / other (clean-priority §3.2).

  D_clean^(c) = D^(c) ∩ D_clean, D_noise^(c) = D^(c) ∩ D_noise, D_other^(c) =
  D_clean \\ D^(c), where D^(c) holds the samples whose TRUE class is c.
  """
  true_B = jnp.asarray(true_labels_B)
  given_B = jnp.asarray(given_labels_B)
  is_c_BxC = true_B[:, None] == jnp.arange(num_classes)
  clean_B = (true_B == given_B)[:, None]
  return jnp.stack([is_c_BxC & clean_B, is_c_BxC & ~clean_B, ~is_c_BxC & clean_B], axis=-1)


def class_subset_weights(true_labels_B, given_labels_B, num_classes: int) -> Array:
  """weights_Bx2C: column 2c marks D_clean^(c), column 2c + 1 marks D_noise^(c) (§3.2)."""
  masks_BxCx3 = subset_masks(true_labels_B, given_labels_B, num_classes)
  return masks_BxCx3[..., :2].reshape(masks_BxCx3.shape[0], 2 * num_classes)


def subset_stats(grads_BxP, masks_BxS) -> dict:
  """Subset gradients g_s = Σ_{i ∈ s} v_i of materialized sample gradients and their geometry.

  Clean-priority §3.2: masks_BxS columns are subsets (typically clean, noise, other of
  one class, `subset_masks(...)[:, c]`). Returns subset_grads_SxP, subset_norms_S,
  ratio = ‖g_0‖/‖g_1‖ (clean/noise), subset_angles_SxS and, per sample, grad_norms_B and
  angles_BxS = θ(v_i, g_s) in degrees.
  """
  weights_BxS = jnp.asarray(masks_BxS, grads_BxP.dtype)
  subset_grads_SxP = weights_BxS.T @ grads_BxP
  inner_BxS = grads_BxP @ subset_grads_SxP.T
  gram_SxS = subset_grads_SxP @ subset_grads_SxP.T
  sq_norms_B = jnp.sum(grads_BxP * grads_BxP, axis=1)
  out = geometry(sq_norms_B, inner_BxS, gram_SxS)
  out["subset_grads_SxP"] = subset_grads_SxP
  return out


def geometry(sq_norms_B, inner_BxS, gram_SxS) -> dict:
  """Norms, clean/noise ratio and angles from inner products only.

  ‖v_i‖ = √(sq_norms_B), ‖g_s‖ = √(gram_ss), θ(v_i, g_s) = arccos(inner_is/(‖v_i‖‖g_s‖))
  (NaN for an empty subset s), θ(g_s, g_t) likewise (NaN if s or t is empty); degrees.
  ratio = ‖g_0‖/‖g_1‖ (clean-priority eq. 8; NaN without subset 1).
  """
  norms_S = jnp.sqrt(jnp.clip(jnp.diagonal(gram_SxS), 0.0))
  norms_B = jnp.sqrt(jnp.clip(sq_norms_B, 0.0))
  out = {"grad_norms_B": norms_B, "subset_norms_S": norms_S,
         "angles_BxS": subset_angle(inner_BxS, norms_B[:, None], norms_S[None, :]),
         "subset_angles_SxS": pair_angle(gram_SxS, norms_S[:, None], norms_S[None, :])}
  if norms_S.shape[0] >= 2:
    out["ratio"] = ratio(norms_S[0], norms_S[1])
  return out


def subset_angle(dot, norm_u, norm_g):
  """θ(u, g) in degrees; NaN when the subset gradient g is zero (an empty subset)."""
  return jnp.where(norm_g > 0, arccos(safe_cos(dot, norm_u * norm_g)), jnp.nan)


def pair_cos(dot, norm_s, norm_t):
  """cos(g_s, g_t) of two subset gradients; NaN when either is zero (an empty subset)."""
  return jnp.where((norm_s > 0) & (norm_t > 0), safe_cos(dot, norm_s * norm_t), jnp.nan)


def pair_angle(dot, norm_s, norm_t):
  """θ(g_s, g_t) in degrees; NaN when either subset gradient is zero."""
  return arccos(pair_cos(dot, norm_s, norm_t))


def ratio(num, den):
  """num / den, NaN where den is 0."""
  return jnp.where(den > 0, num / jnp.where(den > 0, den, 1.0), jnp.nan)


# ----------------------------------------------------------------------------
# A model's subset gradients on a noisy set (clean-priority Figs. 4, 6, 8, 10).


@functools.partial(jax.jit, static_argnames=("model", "num_classes", "method"))
def subset_gradient_stats(model, variables, x_B, given_B, true_B, *, num_classes: int,
                          method: str = "auto") -> dict:
  """Geometry of the (single-logit) sample-wise gradients per class c and subset (§3.2).

  Binary (one sigmoid output): ∇l_i = (f_i − y_i)∇h(x_i) (eq. 5), shared by both classes.
  C logits: the single-logit gradient ∇l_{c,i} = (f_c − y_c)∇h_c(x_i) of logit c (eq. 13).
  For each class c the subsets clean^(c), noise^(c), other^(c) (`subset_masks`) give
  g_k^(c) = Σ ∇l; one backward pass per logit, the model in eval mode. Returns
  norms_Cx3 = ‖g_k^(c)‖, ratio_C = ‖g_clean‖/‖g_noise‖, subset_angles_Cx3 = θ(g_k^(c),
  g_clean^(c)) and, per sample, angles_CxB = θ(∇l_{c,i}, g_clean^(c)) (degrees; NaN
  where a subset is empty), with masks_BxCx3 selecting the subsets.
  """
  masks_BxCx3 = subset_masks(true_B, given_B, num_classes)

  def cotangents(outputs_BxK):
    r_BxK = residuals(outputs_BxK, given_B)
    k = outputs_BxK.shape[-1]
    if k == 1:
      return r_BxK[None], None                                         # M = 1
    return jnp.einsum("bk,kc->cbk", r_BxK, jnp.eye(k, dtype=r_BxK.dtype)[:, :num_classes]), None

  # All 3C subset columns go in; set c (or the one set) is compared with class c's three.
  weights_Bx3C = masks_BxCx3.reshape(masks_BxCx3.shape[0], 3 * num_classes)
  stats, _, _ = sample_grad_stats(eval_apply_fn(model, variables.get("batch_stats")),
                                  variables["params"], x_B, cotangents, weights_Bx3C,
                                  method=method)
  c_idx = jnp.arange(num_classes)
  m_idx = c_idx if stats.sq_norms_MxB.shape[0] > 1 else jnp.zeros_like(c_idx)
  cols_Cx3 = 3 * c_idx[:, None] + jnp.arange(3)
  inner_CxBx3 = jnp.take_along_axis(stats.inner_MxBxS[m_idx], cols_Cx3[:, None, :], axis=2)
  gram_Cx3x3 = stats.gram_MxSxS[m_idx[:, None, None], cols_Cx3[:, :, None], cols_Cx3[:, None, :]]
  out = jax.vmap(geometry)(stats.sq_norms_MxB[m_idx], inner_CxBx3, gram_Cx3x3)
  return {"norms_Cx3": out["subset_norms_S"], "ratio_C": out["ratio"],
          "subset_angles_Cx3": out["subset_angles_SxS"][:, :, 0],
          "angles_CxB": out["angles_BxS"][:, :, 0], "masks_BxCx3": masks_BxCx3}


def group_by_true_class(true_N, num_classes: int, per_class: int, key):
  """Indices_Cxk of `per_class` random samples of each true class (k = per_class).

  Classes with fewer samples are padded by repeating their own indices; `valid_Cxk` marks
  the real (first-time) entries.
  """
  true_N = np.asarray(true_N)
  idx = np.zeros((num_classes, per_class), np.int64)
  valid = np.zeros((num_classes, per_class), bool)
  for c in range(num_classes):
    members = np.asarray(jax.random.permutation(jax.random.fold_in(key, c),
                                                np.flatnonzero(true_N == c)))
    k = min(per_class, len(members))
    idx[c] = np.resize(members[:k], per_class) if k else 0
    valid[c, :k] = True
  return idx, valid


@functools.partial(jax.jit, static_argnames=("model", "method"))
def clean_noise_stats_by_class(model, variables, x_CxKx, given_CxK, clean_CxK, valid_CxK, *,
                               method: str = "auto"):
  """‖g_clean^(c)‖, ‖g_noise^(c)‖ and cos(g_noise^(c), g_clean^(c)) for every class c.

  Only samples of true class c enter g_clean^(c) and g_noise^(c) (§3.2), so class c is
  processed alone with its single-logit gradients ∇l_{c,i} = (f_c − y_c)∇h_c (eq. 13; the
  one output of a sigmoid model): one cotangent set per sample instead of C. Inputs come
  grouped by `group_by_true_class`. Returns (norms_Cx2, cos_C); cos is NaN for a class
  without clean or without noisy samples.
  """
  apply_fn = eval_apply_fn(model, variables.get("batch_stats"))

  def one_class(args):
    c, x_Kx, given_K, clean_K, valid_K = args
    weights_Kx2 = jnp.stack([clean_K & valid_K, ~clean_K & valid_K], 1).astype(jnp.float32)

    def cotangents(outputs_KxL):
      r_KxL = residuals(outputs_KxL, given_K)
      if outputs_KxL.shape[-1] == 1:
        return r_KxL[None], None
      return (r_KxL * jax.nn.one_hot(c, outputs_KxL.shape[-1], dtype=r_KxL.dtype))[None], None

    stats, _, _ = sample_grad_stats(apply_fn, variables["params"], x_Kx, cotangents,
                                    weights_Kx2, method=method)
    gram_2x2 = stats.gram_MxSxS[0]
    norms_2 = jnp.sqrt(jnp.clip(jnp.diagonal(gram_2x2), 0.0))
    return norms_2, pair_cos(gram_2x2[0, 1], norms_2[0], norms_2[1])

  classes = jnp.arange(x_CxKx.shape[0])
  return jax.lax.map(one_class, (classes, x_CxKx, given_CxK, clean_CxK, valid_CxK))


@functools.partial(jax.jit, static_argnames=("model",))
def full_gradient_cosine(model, variables, x_B, given_B, true_B):
  """cos(∇L(w; D), ∇L(w; D̂)): the full gradient on the given labels against the one on the
  ground-truth labels of the same inputs (clean-priority Prop. 4.2, eq. 12: equal directions
  under Assumption 4.1). ∇L = Σ_i J_iᵀ r_i (eq. 5); one forward, two vjps, eval mode."""
  apply_fn = eval_apply_fn(model, variables.get("batch_stats"))
  outputs_BxK, vjp = jax.vjp(lambda p: apply_fn(p, x_B), variables["params"])
  grads = [flatten_tree(jax.tree.map(lambda a: a[None], vjp(residuals(outputs_BxK, y))[0]))[0]
           for y in (given_B, true_B)]
  dot = jnp.sum(grads[0] * grads[1])
  return safe_cos(dot, jnp.sqrt(jnp.sum(grads[0] ** 2) * jnp.sum(grads[1] ** 2)))
