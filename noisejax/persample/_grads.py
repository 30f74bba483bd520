"""Sample-wise gradients, Jacobians and the empirical NTK, by `vmap` or by the tap engine."""

import functools

import jax
import jax.numpy as jnp

from noisejax.persample import _taps
from noisejax.persample._base import (Array, PyTree, check_method, link,
                                      materialized_grad_stats, single, vmap_chunked)

# ----------------------------------------------------------------------------
# Reference transforms (any model; materialize what they return).


def per_sample_grads(loss_fn, params, batch, *, chunk_size=None) -> PyTree:
  """∇_w l(w; x_i, y_i) for every sample: pytree like params with leading axis B.

  `loss_fn(params, *sample) -> scalar` on ONE sample; `batch` a tuple of arrays with a
  leading axis B (e.g. (x_B, labels_B)). Evaluated `chunk_size` samples at a time.
  """
  grad_fn = jax.grad(loss_fn)
  return vmap_chunked(lambda sample: grad_fn(params, *sample), tuple(batch), chunk_size)


def single_logit_grads(apply_fn, params, x_B, targets_BxC, logit=None, *,
                       chunk_size=None) -> PyTree:
  """Single-logit sample-wise gradients ∇l_{c,i} = (f_c − y_c) ∇h_c(w; x_i).

  Clean-priority eq. 13, f = softmax(h) (sigmoid for one output), y one-hot targets
  (B×C, or B×1 / B for a binary model). `logit=c` gives leading axis B; `logit=None`
  gives all logits, leading axes (B, C); Σ_c over them is the full CE gradient.
  """
  one_sample = single(apply_fn)
  outputs_BxK = apply_fn(params, x_B)
  targets_BxK = jnp.asarray(targets_BxC, outputs_BxK.dtype).reshape(outputs_BxK.shape)
  resid_BxK = jax.lax.stop_gradient(link(outputs_BxK) - targets_BxK)
  k = outputs_BxK.shape[-1]

  def one(args):
    x, resid_K = args
    _, vjp = jax.vjp(lambda p: one_sample(p, x), params)
    if logit is not None:
      return vjp(resid_K * jax.nn.one_hot(logit, k, dtype=resid_K.dtype))[0]
    return jax.vmap(lambda cot: vjp(cot)[0])(jnp.diag(resid_K))

  return vmap_chunked(one, (x_B, resid_BxK), chunk_size)


def model_jacobian(apply_fn, params, x_B, *, chunk_size=None) -> PyTree:
  """Model derivatives ∇h_k(w; x_i): pytree like params with leading axes (B, K)."""
  return vmap_chunked(lambda x: jax.jacrev(single(apply_fn))(params, x), x_B, chunk_size)


def flat_jacobian(apply_fn, params, x_B, *, chunk_size=None) -> Array:
  """The Jacobian J as a (B·K)×P matrix; row i·K + k is ∇h_k(w; x_i) flattened."""
  jac = model_jacobian(apply_fn, params, x_B, chunk_size=chunk_size)
  leaves = jax.tree.leaves(jac)
  b, k = leaves[0].shape[:2]
  return jnp.concatenate([leaf.reshape(b * k, -1) for leaf in leaves], axis=1)


def jvp_inner_products(apply_fn, params, x_B, direction, residuals_BxK=None) -> Array:
  """⟨∇h_k(x_i), v⟩ = (J v)_{i,k} for every sample with ONE batched jvp along v.

  With residuals r (B×K) returns ⟨∇l_i, v⟩ = Σ_k r_ik (J v)_ik (B), e.g. v = g_clean for
  the angles θ_g of clean-priority Fig. 4 without materializing any ∇l_i.
  """
  _, jv_BxK = jax.jvp(lambda p: apply_fn(p, x_B), (params,), (direction,))
  if residuals_BxK is None:
    return jv_BxK
  return jnp.sum(residuals_BxK * jv_BxK, axis=-1)


# ----------------------------------------------------------------------------
# Inner products of sample gradients: the tap route or the vmap route.


def _vmap_grads(apply_fn, params, x_B, cot_MxBxK, chunk_size=None):
  """v_{m,i} = J_iᵀ c_{m,i} by vmap of a per-sample vjp: leaves with leading (B, M)."""
  one_sample = single(apply_fn)

  def one(args):
    x, cot_MxK = args
    _, vjp = jax.vjp(lambda p: one_sample(p, x), params)
    return jax.vmap(lambda c: vjp(c)[0])(cot_MxK)

  return vmap_chunked(one, (x_B, jnp.swapaxes(cot_MxBxK, 0, 1)), chunk_size)


def _vmap_stats(apply_fn, params, x_B, cotangent_fn, weights_BxS, chunk_size=None):
  """GradStats from materialized sample gradients (vmap of a per-sample vjp)."""
  outputs_BxK = apply_fn(params, x_B)
  cot_MxBxK, aux = cotangent_fn(outputs_BxK)
  grads = _vmap_grads(apply_fn, params, x_B, cot_MxBxK, chunk_size)  # leaves B×M×…
  m_sets, b = cot_MxBxK.shape[:2]
  v_MxBxP = jnp.swapaxes(jnp.concatenate(
      [g.reshape(b, m_sets, -1) for g in jax.tree.leaves(grads)], axis=-1), 0, 1)
  grad_sum = jax.tree.map(lambda g: jnp.sum(g[:, 0], axis=0), grads)
  return materialized_grad_stats(v_MxBxP, weights_BxS, grad_sum), outputs_BxK, aux


def sample_grad_stats(apply_fn, params, x_B, cotangent_fn, weights_BxS, *,
                      method: str = "auto"):
  """Per-sample gradient geometry for M cotangent sets in one forward/backward pass.

  For set m the sample gradient is v_i = J_iᵀ c_{m,i} with c = cotangent_fn(outputs_BxK)[0]
  (M×B×K; e.g. r_i = ∂l_i/∂h_i gives ∇l_i, r_{i,c} e_c gives eq. 13's ∇l_{c,i}). Subsets
  are columns of weights_BxS: g_s = Σ_i w_is v_i (clean-priority §3.2). Returns
  (GradStats, outputs_BxK, aux) where aux is cotangent_fn's second output.
  method: "taps" (the tap engine), "vmap", or "auto" (taps, vmap for programs the tap
  engine cannot split).
  """
  if check_method(method) == "vmap":
    return _vmap_stats(apply_fn, params, x_B, cotangent_fn, weights_BxS)
  try:
    return _taps.tap_stats(apply_fn, params, x_B, cotangent_fn, weights_BxS)
  except _taps.UnsupportedModel:
    if method == "taps":
      raise
    return _vmap_stats(apply_fn, params, x_B, cotangent_fn, weights_BxS)


def sample_grads(apply_fn, params, x_B, cotangents_MxBxK, *, method: str = "auto") -> PyTree:
  """Materialized v_{m,i} = J_iᵀ c_{m,i}: pytree like params with leading axes (M, B).

  With method="taps" every tap is materialized (used to test the tap engine against
  `vmap`); prefer `sample_grad_stats` when only inner products are needed.
  """
  if check_method(method) == "vmap":
    grads = _vmap_grads(apply_fn, params, x_B, cotangents_MxBxK)
    return jax.tree.map(lambda g: jnp.swapaxes(g, 0, 1), grads)
  return _taps.tap_sample_grads(apply_fn, params, x_B, cotangents_MxBxK)


# ----------------------------------------------------------------------------
# The empirical NTK.


@functools.partial(jax.jit, static_argnames=("apply_fn", "block_size", "logit", "method"))
def ntk_gram(apply_fn, params, x_N, *, block_size: int = 128, logit=None,
             method: str = "auto") -> Array:
  """Empirical NTK Gram J Jᵀ = [⟨∇h_k(x_i), ∇h_l(x_j)⟩], built block by block.

  Never holds J (n = 10,000 samples of a 270k-parameter ResNet-20 give a 10.8 GB J;
  early-stopping Fig. 4c): only two blocks of block_size samples live at a time, and with
  the tap route a dense layer's block is (a_i·a_j)(g_ik·g_jl) from its inputs and output
  gradients, its Jacobian rows never formed. One output or `logit=c`: N×N; otherwise
  (N·K)×(N·K), rows ordered i·K + k like `flat_jacobian`. Upper block triangle computed,
  then mirrored.
  """
  check_method(method)
  one_sample = single(apply_fn)
  if logit is not None:
    one_sample = lambda p, x, f=one_sample: f(p, x)[logit:logit + 1]
    block_apply = lambda p, x: apply_fn(p, x)[:, logit:logit + 1]
  else:
    block_apply = apply_fn
  n = x_N.shape[0]
  k = jax.eval_shape(one_sample, params, x_N[0]).shape[0]
  num_blocks = -(-n // block_size)
  pad = num_blocks * block_size - n
  x_pad = jnp.concatenate([x_N, jnp.zeros((pad,) + x_N.shape[1:], x_N.dtype)]) if pad else x_N
  x_blocks = x_pad.reshape((num_blocks, block_size) + x_N.shape[1:])
  use_taps = method != "vmap"
  if use_taps:
    try:
      _taps.program(block_apply, params, x_N[0])
    except _taps.UnsupportedModel:
      if method == "taps":
        raise
      use_taps = False

  if use_taps:
    factors = lambda x_b: _taps.ntk_factors(block_apply, params, x_b, k)
    gram_block = _taps.ntk_block
  else:
    def factors(x_b):  # (block·K)×P
      jac = jax.vmap(jax.jacrev(one_sample), in_axes=(None, 0))(params, x_b)
      leaves = jax.tree.leaves(jac)
      rows = leaves[0].shape[0] * leaves[0].shape[1]
      return jnp.concatenate([leaf.reshape(rows, -1) for leaf in leaves], axis=1)
    gram_block = lambda f_i, f_j: f_i @ f_j.T

  size = block_size * k
  gram = jnp.zeros((num_blocks * size, num_blocks * size), x_N.dtype)

  def row(i, gram):
    f_i = factors(x_blocks[i])

    def col(j, gram):
      block = gram_block(f_i, factors(x_blocks[j]))
      gram = jax.lax.dynamic_update_slice(gram, block, (i * size, j * size))
      return jax.lax.dynamic_update_slice(gram, block.T, (j * size, i * size))

    return jax.lax.fori_loop(i, num_blocks, col, gram)

  gram = jax.lax.fori_loop(0, num_blocks, row, gram)
  return gram[:n * k, :n * k]


def jacobian_singular_values(apply_fn, params, x_N, *, block_size: int = 128,
                             logit=None, method: str = "auto") -> Array:
  """Singular values of J, descending: σ_k = √λ_k(J Jᵀ) (early-stopping Fig. 4c)."""
  gram = ntk_gram(apply_fn, params, x_N, block_size=block_size, logit=logit, method=method)
  eigenvalues = jnp.linalg.eigvalsh(0.5 * (gram + gram.T))
  return jnp.sqrt(jnp.clip(eigenvalues, 0.0))[::-1]
