"""What every route shares: vectors, models as per-sample functions, residuals, GradStats."""

import functools
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp

from noisejax.errors import ConfigError

Array = Any
PyTree = Any

METHODS = ("auto", "taps", "vmap")


def check_method(method: str) -> str:
  if method not in METHODS:
    raise ConfigError("persample.method", method, METHODS)
  return method


# ----------------------------------------------------------------------------
# Vectors: flattening, cosines, angles.


def flatten_tree(tree_with_leading_b: PyTree) -> Array:
  """Concatenates every leaf of a pytree with leading axis B into one B×P matrix."""
  leaves = jax.tree.leaves(tree_with_leading_b)
  b = leaves[0].shape[0]
  return jnp.concatenate([leaf.reshape(b, -1) for leaf in leaves], axis=1)


def cosine(u, v):
  """cos θ = ⟨u, v⟩ / (‖u‖‖v‖) along the last axis (broadcasting); 0 if either is 0."""
  dot = jnp.sum(u * v, axis=-1)
  norms = jnp.sqrt(jnp.sum(u * u, axis=-1) * jnp.sum(v * v, axis=-1))
  return safe_cos(dot, norms)


def angle(u, v, *, degrees: bool = True):
  """θ = arccos cos(u, v) along the last axis, in degrees unless degrees=False."""
  return arccos(cosine(u, v), degrees)


def safe_cos(dot, norms):
  """dot / norms, 0 where norms is 0."""
  tiny = jnp.finfo(jnp.result_type(dot, jnp.float32)).tiny
  return jnp.where(norms > tiny, dot / jnp.maximum(norms, tiny), 0.0)


def arccos(cos, degrees=True):
  theta = jnp.arccos(jnp.clip(cos, -1.0, 1.0))
  return jnp.degrees(theta) if degrees else theta


# ----------------------------------------------------------------------------
# Models as per-sample functions.


def eval_apply_fn(model, batch_stats=None) -> Callable:
  """`apply_fn(params, x_B)` of a Flax model in eval mode (BatchNorm: running statistics).

  Eval mode makes output i a function of x_i alone, which sample-wise gradients need
  (with batch statistics every output depends on the whole batch).
  """
  if batch_stats is None:
    return _params_only_apply_fn(model)

  def apply_fn(params, x_B):
    return model.apply({"params": params, "batch_stats": batch_stats}, x_B, train=False)
  return apply_fn


@functools.lru_cache(maxsize=None)
def _params_only_apply_fn(model) -> Callable:
  """One function object per model, so jitted callers keyed on it compile once."""
  return lambda params, x_B: model.apply({"params": params}, x_B, train=False)


def single(apply_fn):
  """The per-sample function x ↦ h(w; x) ∈ R^K of a batched apply_fn."""
  return lambda params, x: apply_fn(params, x[None])[0]


def vmap_chunked(fn, xs, chunk_size=None):
  """vmap of fn over the leading axis, evaluated `chunk_size` samples at a time."""
  if chunk_size is None:
    return jax.vmap(fn)(xs)
  return jax.lax.map(fn, xs, batch_size=chunk_size)


def chunk_size_for(b, most):
  """A chunk of at most `most` samples, preferably dividing b (no ragged remainder)."""
  most = max(1, min(b, most))
  divisor = max(d for d in range(1, most + 1) if b % d == 0)
  return divisor if 4 * divisor >= most else most


def link(outputs_BxK):
  """f = softmax(h) for K > 1 outputs, f = sigmoid(h) for one output."""
  if outputs_BxK.shape[-1] == 1:
    return jax.nn.sigmoid(outputs_BxK)
  return jax.nn.softmax(outputs_BxK, axis=-1)


def residuals(outputs_BxK, labels_B, loss_fn=None):
  """r_i = ∂l_i/∂h_i (B×K), the factor with ∇l_i = J_iᵀ r_i.

  loss_fn=None: softmax cross-entropy (K > 1) or logistic loss (one output, labels 0/1),
  whose residual is r = f − y in closed form (clean-priority eq. 5, f = `link(h)`, y the
  one-hot labels). Otherwise any per-sample `loss_fn(outputs_BxK, labels_B) -> losses_B`,
  differentiated with one vjp (equal to f − y for those two losses up to rounding).
  """
  if loss_fn is None:
    k = outputs_BxK.shape[-1]
    y_BxK = (labels_B[:, None] if k == 1 else jax.nn.one_hot(labels_B, k))
    return link(outputs_BxK) - jnp.asarray(y_BxK, outputs_BxK.dtype)
  losses_B, vjp = jax.vjp(lambda h: loss_fn(h, labels_B), outputs_BxK)
  return vjp(jnp.ones_like(losses_B))[0]


# ----------------------------------------------------------------------------
# Inner products of sample gradients, whatever route computed them.


class GradStats(NamedTuple):
  """Inner products of sample gradients v_i (M cotangent sets) with subset sums g_s = Σ_i w_is v_i.

  sq_norms_MxB = ‖v_i‖², inner_MxBxS = ⟨v_i, g_s⟩, gram_MxSxS = ⟨g_s, g_t⟩, and
  grad_sum = Σ_i v_i of set 0 as a params pytree (None when not computed).
  """
  sq_norms_MxB: Array
  inner_MxBxS: Array
  gram_MxSxS: Array
  grad_sum: PyTree


def reduce_dense(v_MxBxP, w_BxS):
  """‖v_i‖², ⟨v_i, g_s⟩, ⟨g_s, g_t⟩ of materialized v (M sets, a stacked array or a list)."""
  outs = []
  for v_BxP in v_MxBxP:
    s_SxP = w_BxS.T @ v_BxP
    outs.append((jnp.sum(v_BxP * v_BxP, axis=-1), v_BxP @ s_SxP.T, s_SxP @ s_SxP.T))
  return tuple(jnp.stack(o) for o in zip(*outs))


def materialized_grad_stats(grads_MxBxP, weights_BxS, grad_sum=None) -> GradStats:
  """GradStats of materialized sample gradients (M sets of B×P rows), e.g. from a loop of
  per-sample `jax.grad`; the tap engine gives the same numbers without forming them."""
  sq, inner, gram = reduce_dense(grads_MxBxP, jnp.asarray(weights_BxS, grads_MxBxP[0].dtype))
  return GradStats(sq, inner, gram, grad_sum)
