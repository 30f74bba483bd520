"""Generic measurements the experiments share: rank correlation, separation, distances.

Small functions of arrays (numpy in, Python floats out), each used by more than one
experiment or figure.
"""

import jax
import jax.numpy as jnp
import numpy as np


def _ranks(v):
  """Ranks 0..n−1 with ties given their average rank."""
  order = np.argsort(v, kind="stable")
  ranks = np.empty(len(v), np.float64)
  ranks[order] = np.arange(len(v))
  _, inverse = np.unique(v, return_inverse=True)
  return np.bincount(inverse, ranks)[inverse] / np.bincount(inverse)[inverse]


def spearman(a, b) -> float:
  """Spearman rank correlation ρ = corr(rank a, rank b), ties ranked by their average (NaN
  for fewer than 3 points or a constant sequence)."""
  a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
  if len(a) < 3:
    return float("nan")
  ra, rb = _ranks(a), _ranks(b)
  if np.std(ra) == 0 or np.std(rb) == 0:
    return float("nan")
  return float(np.corrcoef(ra, rb)[0, 1])


def separation_auc(loss_clean, loss_noisy) -> float:
  """P(ℓ_noisy > ℓ_clean) + ½P(=) over all (clean, noisy) pairs: the ROC AUC of the loss.

  1 means the per-sample losses of noisy samples all exceed those of clean ones
  (separated histograms, early-stopping Figs. 4a–b, 5b); 0.5 means indistinguishable.
  """
  clean = np.sort(np.asarray(loss_clean, np.float64).ravel())
  noisy = np.asarray(loss_noisy, np.float64).ravel()
  if clean.size == 0 or noisy.size == 0:
    return float("nan")
  below = np.searchsorted(clean, noisy, side="left")
  not_above = np.searchsorted(clean, noisy, side="right")
  return float(np.mean((below + not_above) / 2.0) / clean.size)


def parameter_distance(params, params0) -> float:
  """‖θ − θ0‖₂ over all layers combined (distance from initialization)."""
  diffs = jax.tree.leaves(jax.tree.map(lambda a, b: jnp.sum((a - b) ** 2), params, params0))
  return float(jnp.sqrt(sum(diffs)))


def parameter_norm(params) -> float:
  """‖θ‖₂ over all layers combined."""
  return float(jnp.sqrt(sum(jnp.sum(leaf ** 2) for leaf in jax.tree.leaves(params))))
