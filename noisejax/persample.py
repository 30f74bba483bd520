"""Sample-wise gradients, Jacobians, the empirical NTK and subset-gradient diagnostics.

Conventions. A model enters as `apply_fn(params, x_B) -> outputs_BxK`, the pre-activation
outputs h (logits) of a batch; it must treat samples independently (models with
BatchNorm are called in eval mode, with running statistics: `eval_apply_fn`). A
per-sample loss is the foundation's `loss_fn(outputs_BxK, labels_B) -> losses_B`.

What is computed (clean-priority §2–§5, early-stopping §3):
  ∇l_i = J_iᵀ r_i with r_i = ∂l_i/∂h_i (= f − y for softmax-CE and logistic, eq. 5);
  single-logit gradients ∇l_{c,i} = r_{i,c} ∇h_c(x_i) (eq. 13, Σ_c ∇l_{c,i} = ∇l_i);
  model derivatives ∇h(x_i) (rows of the Jacobian J), the NTK Gram J Jᵀ in blocks and the
  singular values of J; subset gradients g_k^(c) = Σ_{i ∈ D_k^(c)} ∇l_i for k ∈ {clean,
  noise, other} (§3.2), their norms, the ratio ‖g_clean‖/‖g_noise‖ (eq. 8, eq. 14) and
  the angles θ_g between sample gradients and subset gradients (Figs. 4, 10).

Two routes give the same numbers:
  "vmap"  — `vmap` of a per-sample `vjp`: any model, materializes B×P gradients.
  "taps"  — one batched forward and one batched backward pass. The per-sample program is
            traced to a jaxpr; every equation where a parameter meets an activation (a
            "tap": dense/conv contractions, bias adds, BatchNorm scales, …) gets a zero
            perturbation ε added to its output. The backward pass w.r.t. ε gives each
            sample's output gradient g_i at every tap, and with the tap's input a_i the
            sample's parameter gradient follows without `vmap(grad)`:
              dense (x·W, one position):  ∇W_i = a_i g_iᵀ is never formed; inner products
                come from ⟨∇W_i, ∇W_j⟩ = (a_i·a_j)(g_i·g_j) (Goodfellow 2015);
              convolution:  ∇W_i = Σ_t patch_t(a_i) g_{i,t}ᵀ, one batched matmul per kernel
                offset (XLA's conv weight-gradient under vmap is several times slower);
              anything else (bias, scales): a `vmap`ped `vjp` of that one equation.
            Subset gradients are weighted sums over samples (weights_BxS), so norms, ratios
            and angles need only  ‖∇l_i‖²,  ⟨∇l_i, g_s⟩  and  ⟨g_s, g_t⟩.
            The M cotangent sets (e.g. ∇l_i and eq. 13's ∇l_{t_i,i}) share the forward
            pass and get one backward pass each. Inside the tap forward, max-pools whose
            windows tile the input run as reshape + max with the same first-maximum
            gradient as XLA's select-and-scatter (several times slower on CPU).
            Memory: conv contractions run over chunks of samples (~64 MB of shifted
            windows each); the clean-priority CNN at B = 512 needs < 0.5 GB.
            NTK Gram blocks are built from the same factors: a dense layer contributes
            (a_i·a_j)(g_ik·g_jl) and its Jacobian rows are never formed.
  "auto" uses "taps" and falls back to "vmap" for programs it cannot split (a parameter
  used inside a scan, a custom_jvp rule, …).

Several devices: all functions are pure and jit-able; place the batch with
`shard_batch` (NamedSharding over a 1-D mesh of all devices) and the same code runs
data-parallel, XLA inserting the collectives. Caveat (jax 0.10.2): with a sharded batch,
XLA's partitioner miscompiles `vmap(grad)` through a convolution followed by a
nonlinearity (only the first device's samples come out right), so the "vmap" route is
wrong there while "taps" is exact (tests/test_persample_devices.py).
"""

import collections
import dataclasses
import functools
import itertools
import math
from typing import Any, Callable, NamedTuple, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.extend import core as jex_core
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from noisejax.errors import ConfigError

Array = Any
PyTree = Any

METHODS = ("auto", "taps", "vmap")
SUBSETS = ("clean", "noise", "other")
CLEAN, NOISE, OTHER = 0, 1, 2


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
  return _safe_cos(dot, norms)


def angle(u, v, *, degrees: bool = True):
  """θ = arccos cos(u, v) along the last axis, in degrees unless degrees=False."""
  return _arccos(cosine(u, v), degrees)


def _safe_cos(dot, norms):
  tiny = jnp.finfo(jnp.result_type(dot, jnp.float32)).tiny
  return jnp.where(norms > tiny, dot / jnp.maximum(norms, tiny), 0.0)


def _arccos(cos, degrees=True):
  theta = jnp.arccos(jnp.clip(cos, -1.0, 1.0))
  return jnp.degrees(theta) if degrees else theta


# ----------------------------------------------------------------------------
# Models as per-sample functions.


def eval_apply_fn(model, batch_stats=None) -> Callable:
  """`apply_fn(params, x_B)` of a Flax model in eval mode (BatchNorm: running statistics).

  Eval mode makes output i a function of x_i alone, which sample-wise gradients need
  (with batch statistics every output depends on the whole batch).
  """
  def apply_fn(params, x_B):
    variables = {"params": params}
    if batch_stats is not None:
      variables["batch_stats"] = batch_stats
    return model.apply(variables, x_B, train=False)
  return apply_fn


def _single(apply_fn):
  """The per-sample function x ↦ h(w; x) ∈ R^K of a batched apply_fn."""
  return lambda params, x: apply_fn(params, x[None])[0]


def _map(fn, xs, chunk_size=None):
  """vmap of fn over the leading axis, evaluated `chunk_size` samples at a time."""
  if chunk_size is None:
    return jax.vmap(fn)(xs)
  return jax.lax.map(fn, xs, batch_size=chunk_size)


def _chunk_size(b, most):
  """A chunk of at most `most` samples, preferably dividing b (no ragged remainder)."""
  most = max(1, min(b, most))
  divisor = max(d for d in range(1, most + 1) if b % d == 0)
  return divisor if 4 * divisor >= most else most


def _residuals(loss_fn, outputs_BxK, labels_B):
  """r_i = ∂l_i/∂h_i (B×K) and the losses; r = f − y for softmax-CE / logistic (eq. 5)."""
  losses_B, vjp = jax.vjp(lambda h: loss_fn(h, labels_B), outputs_BxK)
  (r_BxK,) = vjp(jnp.ones_like(losses_B))
  return losses_B, r_BxK


# ----------------------------------------------------------------------------
# Reference transforms (any model; materialize what they return).


def per_sample_grads(loss_fn, params, batch, *, chunk_size=None) -> PyTree:
  """∇_w l(w; x_i, y_i) for every sample: pytree like params with leading axis B.

  `loss_fn(params, *sample) -> scalar` on ONE sample; `batch` a tuple of arrays with a
  leading axis B (e.g. (x_B, labels_B)). Evaluated `chunk_size` samples at a time.
  """
  grad_fn = jax.grad(loss_fn)
  return _map(lambda sample: grad_fn(params, *sample), tuple(batch), chunk_size)


def _link(outputs_BxK):
  """f = softmax(h) for K > 1 outputs, f = sigmoid(h) for one output."""
  if outputs_BxK.shape[-1] == 1:
    return jax.nn.sigmoid(outputs_BxK)
  return jax.nn.softmax(outputs_BxK, axis=-1)


def single_logit_grads(apply_fn, params, x_B, targets_BxC, logit=None, *,
                       chunk_size=None) -> PyTree:
  """Single-logit sample-wise gradients ∇l_{c,i} = (f_c − y_c) ∇h_c(w; x_i).

  Clean-priority eq. 13, f = softmax(h) (sigmoid for one output), y one-hot targets
  (B×C, or B×1 / B for a binary model). `logit=c` gives leading axis B; `logit=None`
  gives all logits, leading axes (B, C); Σ_c over them is the full CE gradient.
  """
  single = _single(apply_fn)
  outputs_BxK = apply_fn(params, x_B)
  targets_BxK = jnp.asarray(targets_BxC, outputs_BxK.dtype).reshape(outputs_BxK.shape)
  resid_BxK = jax.lax.stop_gradient(_link(outputs_BxK) - targets_BxK)
  k = outputs_BxK.shape[-1]

  def one(args):
    x, resid_K = args
    _, vjp = jax.vjp(lambda p: single(p, x), params)
    if logit is not None:
      return vjp(resid_K * jax.nn.one_hot(logit, k, dtype=resid_K.dtype))[0]
    return jax.vmap(lambda cot: vjp(cot)[0])(jnp.diag(resid_K))

  return _map(one, (x_B, resid_BxK), chunk_size)


def model_jacobian(apply_fn, params, x_B, *, chunk_size=None) -> PyTree:
  """Model derivatives ∇h_k(w; x_i): pytree like params with leading axes (B, K)."""
  single = _single(apply_fn)
  return _map(lambda x: jax.jacrev(single)(params, x), x_B, chunk_size)


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
  if method not in METHODS:
    raise ConfigError("persample.method", method, METHODS)
  single = _single(apply_fn)
  if logit is not None:
    single = lambda p, x, f=single: f(p, x)[logit:logit + 1]
    block_apply = lambda p, x: apply_fn(p, x)[:, logit:logit + 1]
  else:
    block_apply = apply_fn
  n = x_N.shape[0]
  k = jax.eval_shape(single, params, x_N[0]).shape[0]
  num_blocks = -(-n // block_size)
  pad = num_blocks * block_size - n
  x_pad = jnp.concatenate([x_N, jnp.zeros((pad,) + x_N.shape[1:], x_N.dtype)]) if pad else x_N
  x_blocks = x_pad.reshape((num_blocks, block_size) + x_N.shape[1:])
  use_taps = method != "vmap"
  if use_taps:
    try:
      _program(block_apply, params, x_N[0])
    except UnsupportedModel:
      if method == "taps":
        raise
      use_taps = False

  if use_taps:
    factors = lambda x_b: _ntk_factors(block_apply, params, x_b, k)
    gram_block = _ntk_block
  else:
    def factors(x_b):  # (block·K)×P
      jac = jax.vmap(jax.jacrev(single), in_axes=(None, 0))(params, x_b)
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


def _ntk_factors(apply_fn, params, x_b, k):
  """Jacobian rows of a block as tap factors: dense taps (A_bxD, G_Kxbxm, scale), the
  rest materialized V_Kxbxp (cotangent set k = e_k gives ∇h_k)."""
  b = x_b.shape[0]
  eye = jnp.eye(k, dtype=x_b.dtype)
  tp = _tap_pass(apply_fn, params, x_b, lambda h: (jnp.broadcast_to(
      eye[:, None, :], (k, b, k)).astype(h.dtype), None))
  leaf_uses = collections.Counter(j for tap in tp.prog.taps for j in tap.tag.leaves)
  dense, materialized = [], {}
  for t, tap in enumerate(tp.prog.taps):
    if tap.kind == "dot" and tap.tag.view is not None and all(
        leaf_uses[j] == 1 for j in tap.tag.leaves):
      a_btd, g_mbtm, _ = _dot_factors(tap, tp.inputs[t][0], tp.grads[t])
      if a_btd.shape[1] == 1:
        dense.append((a_btd[:, 0], g_mbtm[:, :, 0], jnp.asarray(tap.tag.view[1], x_b.dtype)))
        continue
    materialized[t] = _materialize(tp, t)
  v = None
  if materialized:
    per_leaf = _pull_back(tp, materialized)
    v = jnp.stack([jnp.concatenate([g[m].reshape(b, -1) for g in per_leaf.values()], axis=-1)
                   for m in range(k)])
  return dense, v


def _ntk_block(f_i, f_j):
  """⟨∇h_k(x_i), ∇h_l(x_j)⟩ of two factored blocks as a (b·K)×(b·K) matrix."""
  (dense_i, v_i), (dense_j, v_j) = f_i, f_j
  terms = []
  for (a_i, g_i, scale), (a_j, g_j, _) in zip(dense_i, dense_j):
    terms.append((scale * scale) * (a_i @ a_j.T)[:, None, :, None] *
                 jnp.einsum("kbm,lcm->bkcl", g_i, g_j))
  if v_i is not None:
    terms.append(jnp.einsum("kbp,lcp->bkcl", v_i, v_j))
  block = sum(terms)
  b, k = block.shape[:2]
  return block.reshape(b * k, b * k)


def jacobian_singular_values(apply_fn, params, x_N, *, block_size: int = 128,
                             logit=None, method: str = "auto") -> Array:
  """Singular values of J, descending: σ_k = √λ_k(J Jᵀ) (early-stopping Fig. 4c)."""
  gram = ntk_gram(apply_fn, params, x_N, block_size=block_size, logit=logit, method=method)
  eigenvalues = jnp.linalg.eigvalsh(0.5 * (gram + gram.T))
  return jnp.sqrt(jnp.clip(eigenvalues, 0.0))[::-1]


# ----------------------------------------------------------------------------
# Subsets (clean-priority §3.2).


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

  ‖v_i‖ = √(sq_norms_B), ‖g_s‖ = √(gram_ss), θ(v_i, g_s) = arccos(inner_is/(‖v_i‖‖g_s‖)),
  θ(g_s, g_t) likewise (degrees; NaN for an empty subset); ratio = ‖g_0‖/‖g_1‖
  (clean-priority eq. 8; NaN without subset 1).
  """
  norms_S = jnp.sqrt(jnp.clip(jnp.diagonal(gram_SxS), 0.0))
  norms_B = jnp.sqrt(jnp.clip(sq_norms_B, 0.0))
  angles_BxS = _subset_angle(inner_BxS, norms_B[:, None], norms_S[None, :])
  subset_angles_SxS = _subset_angle(gram_SxS, norms_S[:, None], norms_S[None, :])
  out = {"grad_norms_B": norms_B, "subset_norms_S": norms_S, "angles_BxS": angles_BxS,
         "subset_angles_SxS": subset_angles_SxS}
  if norms_S.shape[0] >= 2:
    out["ratio"] = _ratio(norms_S[0], norms_S[1])
  return out


def _subset_angle(dot, norm_u, norm_g):
  """θ in degrees; NaN when the subset gradient g is zero (an empty subset)."""
  return jnp.where(norm_g > 0, _arccos(_safe_cos(dot, norm_u * norm_g)), jnp.nan)


def _ratio(num, den):
  return jnp.where(den > 0, num / jnp.where(den > 0, den, 1.0), jnp.nan)


# ----------------------------------------------------------------------------
# The tap engine: per-sample structure read off the model's jaxpr.


class UnsupportedModel(ValueError):
  """The per-sample program cannot be split into taps (method="taps" only)."""


_CONST, _ACT = "const", "act"
_VIEW_OPS = frozenset({"convert_element_type", "reshape", "transpose", "squeeze",
                       "expand_dims", "copy", "copy_p", "neg"})
_UNROLL_SETS = 4  # cotangent sets whose backward passes are unrolled (else a loop)
_CHUNK_BYTES = 64 * 2**20  # shifted conv windows processed at a time, per conv tap
_INLINE_OPS = frozenset({"jit", "pjit", "closed_call", "core_call", "remat", "checkpoint"})


@dataclasses.dataclass(frozen=True)
class _Param:
  """Tag of a value computed from parameters only; `view` = (leaf, scale) when the value
  is scale · (a reshaped / transposed / cast copy of one leaf)."""
  leaves: frozenset
  view: Optional[tuple] = None


@dataclasses.dataclass(frozen=True)
class _Tap:
  """An equation out = op(…, P, …) where P is parameter-derived and some input is an
  activation. kind: "dot" (dot_general without batch dims), "conv" (P the kernel,
  ungrouped) or "generic"."""
  eqn: Any
  p_pos: int
  tag: _Param
  kind: str
  out_shape: tuple
  out_dtype: Any
  grad_from: Optional[int] = None  # the bias-add tap right after, whose ε gradient is ours


def _inner_jaxpr(eqn):
  inner = eqn.params.get("jaxpr", eqn.params.get("call_jaxpr"))
  if isinstance(inner, jex_core.ClosedJaxpr):
    return inner.jaxpr, inner.consts
  return inner, ()


def _bind(eqn, vals):
  params = eqn.primitive.get_bind_params(eqn.params)
  with eqn.ctx.manager:
    out = eqn.primitive.bind(*vals, **params)
  return list(out) if eqn.primitive.multiple_results else [out]


def _has_subjaxpr(eqn):
  return any(isinstance(v, (jex_core.ClosedJaxpr, jex_core.Jaxpr)) or
             (isinstance(v, (tuple, list)) and v and
              isinstance(v[0], (jex_core.ClosedJaxpr, jex_core.Jaxpr)))
             for v in eqn.params.values())


def _is_tiling_max_pool(eqn):
  """reduce_window_max whose windows tile the input (window = stride, no padding)."""
  if eqn.primitive.name != "reduce_window_max":
    return False
  prm = eqn.params
  shape = eqn.invars[0].aval.shape
  return (tuple(prm["window_dimensions"]) == tuple(prm["window_strides"]) and
          all(p == (0, 0) for p in prm["padding"]) and
          all(d == 1 for d in prm["base_dilation"]) and
          all(d == 1 for d in prm["window_dilation"]) and
          all(n % w == 0 for n, w in zip(shape, prm["window_dimensions"])))


def _tiled_max_pool(x, window):
  """Max over tiling windows as reshape + max; its VJP sends each window's gradient to
  the FIRST maximal element, exactly as XLA's select-and-scatter (whose CPU kernel is
  several times slower) does for reduce_window_max."""
  split = tuple(d for n, w in zip(x.shape, window) for d in (n // w, w))
  win_axes = tuple(range(1, 2 * x.ndim, 2))

  @jax.custom_vjp
  def pool(x):
    return jnp.max(x.reshape(split), axis=win_axes)

  def fwd(x):
    tiles = x.reshape(split)
    return jnp.max(tiles, axis=win_axes), tiles

  def bwd(tiles, g):
    outer = tuple(range(0, 2 * x.ndim, 2))
    flat = jnp.transpose(tiles, outer + win_axes).reshape(
        tuple(tiles.shape[a] for a in outer) + (-1,))
    first = jax.nn.one_hot(jnp.argmax(flat, axis=-1), flat.shape[-1], dtype=g.dtype)
    grad = (first * g[..., None]).reshape(tuple(tiles.shape[a] for a in outer) + window)
    inv = np.argsort(outer + win_axes)
    return (jnp.transpose(grad, inv).reshape(x.shape),)

  pool.defvjp(fwd, bwd)
  return pool(x)


def _param_tag(eqn, tags, p_idx):
  leaves = frozenset().union(*(tags[i].leaves for i in p_idx))
  view = None
  if len(p_idx) == 1 and tags[p_idx[0]].view is not None:
    leaf, scale = tags[p_idx[0]].view
    name = eqn.primitive.name
    if name in _VIEW_OPS and len(eqn.invars) == 1:
      view = (leaf, scale)
    elif name in ("mul", "div") and len(eqn.invars) == 2:
      other = eqn.invars[1 - p_idx[0]]
      if isinstance(other, jex_core.Literal) and np.ndim(other.val) == 0:
        if name == "mul":
          view = (leaf, scale * float(other.val))
        elif p_idx[0] == 0:
          view = (leaf, scale / float(other.val))
  return _Param(leaves, view)


def _tap_kind(eqn, p_pos):
  name = eqn.primitive.name
  if name == "dot_general":
    (_, _), (lhs_batch, rhs_batch) = eqn.params["dimension_numbers"]
    if not lhs_batch and not rhs_batch:
      return "dot"
  if (name == "conv_general_dilated" and p_pos == 1 and
      eqn.params["feature_group_count"] == 1 and eqn.params["batch_group_count"] == 1):
    return "conv"
  return "generic"


class _Walker:
  """Walks a per-sample jaxpr, tagging values as const / parameter / activation.

  mode "analyze": collects the taps (no values); "params": evaluates parameter-only
  values and returns each tap's P; "forward": evaluates activations with P given, adds
  ε to every tap output and records the tap's other inputs.
  """

  def __init__(self, mode, p_values=None, eps=None):
    self.mode, self.p_values, self.eps = mode, p_values, eps
    self.out = []

  def run(self, jaxpr, consts, args, tags):
    env = {}
    uses = collections.Counter(v for eqn in jaxpr.eqns for v in eqn.invars
                               if not isinstance(v, jex_core.Literal))
    uses.update(v for v in jaxpr.outvars if not isinstance(v, jex_core.Literal))
    self._uses, self._tap_of = uses, {}

    def read(v):
      if isinstance(v, jex_core.Literal):
        return v.val, _CONST
      return env[v]

    for v, c in zip(jaxpr.constvars, consts):
      env[v] = (c, _CONST)
    for v, a, t in zip(jaxpr.invars, args, tags):
      env[v] = (a, t)
    for eqn in jaxpr.eqns:
      vals, in_tags = zip(*map(read, eqn.invars)) if eqn.invars else ((), ())
      vals, in_tags = list(vals), list(in_tags)
      has_act = _ACT in in_tags
      p_idx = [i for i, t in enumerate(in_tags) if isinstance(t, _Param)]
      name = eqn.primitive.name
      if has_act and p_idx and name in _INLINE_OPS:
        inner, inner_consts = _inner_jaxpr(eqn)
        saved = self._uses, self._tap_of
        outs = self.run(inner, inner_consts, vals, in_tags)
        self._uses, self._tap_of = saved
      elif has_act and p_idx:
        outs = [(self._tap(eqn, vals, in_tags, p_idx), _ACT)]
      else:
        tag = _ACT if has_act else (_param_tag(eqn, in_tags, p_idx) if p_idx else _CONST)
        skip = (self.mode == "analyze" or (self.mode == "params" and tag == _ACT) or
                (self.mode == "forward" and isinstance(tag, _Param)))
        if skip:
          results = [None] * len(eqn.outvars)
        elif self.mode == "forward" and tag == _ACT and _is_tiling_max_pool(eqn):
          results = [_tiled_max_pool(vals[0], tuple(eqn.params["window_dimensions"]))]
        else:
          results = _bind(eqn, vals)
        outs = [(r, tag) for r in results]
      for v, o in zip(eqn.outvars, outs):
        env[v] = o
    return [read(v) for v in jaxpr.outvars]

  def _tap(self, eqn, vals, tags, p_idx):
    if len(p_idx) != 1 or len(eqn.outvars) != 1 or _has_subjaxpr(eqn):
      raise UnsupportedModel(
          f"parameters enter `{eqn.primitive.name}` in a way the tap engine cannot split")
    p_pos = p_idx[0]
    k = len(self.out)
    if self.mode == "analyze":
      aval = eqn.outvars[0].aval
      self.out.append(_Tap(eqn, p_pos, tags[p_pos], _tap_kind(eqn, p_pos), tuple(aval.shape),
                           aval.dtype))
      # y = dot(a, W) used only by z = y + b: ∂l/∂y = ∂l/∂z, one ε serves both taps.
      self._tap_of[eqn.outvars[0]] = k
      if eqn.primitive.name == "add" and len(eqn.invars) == 2:
        act_var = eqn.invars[1 - p_pos]
        prev = self._tap_of.get(act_var)
        if (prev is not None and self._uses[act_var] == 1 and
            self.out[prev].kind in ("dot", "conv")):
          self.out[prev] = dataclasses.replace(self.out[prev], grad_from=k)
      return None
    if self.mode == "params":
      self.out.append(vals[p_pos])
      return None
    vals[p_pos] = self.p_values[k]
    self.out.append([v for i, v in enumerate(vals) if i != p_pos])
    (y,) = _bind(eqn, vals)
    return y if self.eps[k] is None else y + self.eps[k]


class _Program(NamedTuple):
  jaxpr: Any
  consts: Any
  treedef: Any
  num_leaves: int
  taps: tuple


def _program(apply_fn, params, x_example) -> _Program:
  """Traces the per-sample program h(w; x) and finds its taps."""
  leaves, treedef = jax.tree.flatten(params)
  fn = lambda lv, x: _single(apply_fn)(treedef.unflatten(lv), x)
  closed = jax.make_jaxpr(fn)(leaves, x_example)
  out_tags = None
  walker = _Walker("analyze")
  tags = [_Param(frozenset({j}), (j, 1.0)) for j in range(len(leaves))]
  num_x = len(closed.jaxpr.invars) - len(leaves)
  out_tags = walker.run(closed.jaxpr, closed.consts, [None] * len(closed.jaxpr.invars),
                        tags + [_ACT] * num_x)
  if len(out_tags) != 1 or out_tags[0][1] != _ACT:
    raise UnsupportedModel("the model output must be one array that depends on x")
  return _Program(closed.jaxpr, closed.consts, treedef, len(leaves), tuple(walker.out))


def _tap_param_values(prog: _Program, leaves, which):
  """The parameter-side inputs P_k of the taps `which`, as functions of the leaves."""
  walker = _Walker("params")
  tags = [_Param(frozenset({j}), (j, 1.0)) for j in range(prog.num_leaves)]
  num_x = len(prog.jaxpr.invars) - prog.num_leaves
  walker.run(prog.jaxpr, prog.consts, list(leaves) + [None] * num_x, tags + [_ACT] * num_x)
  return [walker.out[k] for k in which]


def _tap_forward(prog: _Program, p_values, x, eps):
  """One sample: h(w; x) with ε added at every tap, and each tap's other inputs."""
  walker = _Walker("forward", p_values, eps)
  tags = [_Param(frozenset({j}), (j, 1.0)) for j in range(prog.num_leaves)]
  x_leaves = jax.tree.leaves(x)
  ((h, _),) = walker.run(prog.jaxpr, prog.consts, [None] * prog.num_leaves + x_leaves,
                         tags + [_ACT] * len(x_leaves))
  return h, walker.out


# Per-tap sample gradients. `ins` = the tap's other inputs with leading B; g_MxB… the output
# gradients of M cotangent sets.


def _dot_factors(tap: _Tap, act_BxA, g_sets):
  """dot_general tap: A_BxTxD, G_MxBxTxM and how (D, M) maps back onto P's axes.

  g_sets: the M output gradients, each B×out (dense outputs are small; stacked here)."""
  g_MxBxO = jnp.stack(g_sets)
  (lc, rc), _ = tap.eqn.params["dimension_numbers"]
  p_is_rhs = tap.p_pos == 1
  a_contract, p_contract = (lc, rc) if p_is_rhs else (rc, lc)
  a_ndim = act_BxA.ndim - 1
  p_shape = tap.eqn.invars[tap.p_pos].aval.shape
  a_free = [d for d in range(a_ndim) if d not in a_contract]
  p_free = [d for d in range(len(p_shape)) if d not in p_contract]
  a_perm = [0] + [1 + d for d in a_free] + [1 + d for d in a_contract]
  b = act_BxA.shape[0]
  t = math.prod(act_BxA.shape[1 + d] for d in a_free)
  dim = math.prod(p_shape[d] for d in p_contract)
  m = math.prod(p_shape[d] for d in p_free)
  a_btd = jnp.transpose(act_BxA, a_perm).reshape(b, t, dim)
  # out axes: lhs free then rhs free.
  n_af, n_pf = len(a_free), len(p_free)
  if p_is_rhs:
    g_perm = list(range(n_af + n_pf))
  else:
    g_perm = list(range(n_pf, n_pf + n_af)) + list(range(n_pf))
  g = jnp.transpose(g_MxBxO, [0, 1] + [2 + d for d in g_perm])
  g_mbtm = g.reshape(g.shape[0], b, t, m)
  p_order = list(p_contract) + p_free
  inv = np.argsort(p_order)
  to_p_shape = tuple(p_shape[d] for d in p_order)

  def to_p(v_lead_dxm):  # (..., D, M) -> (..., *P shape)
    lead = v_lead_dxm.shape[:-2]
    v = v_lead_dxm.reshape(lead + to_p_shape)
    return jnp.transpose(v, list(range(len(lead))) + [len(lead) + i for i in inv])

  return a_btd, g_mbtm, to_p


def _conv_sample_grads(tap: _Tap, act, g_sets, chunk_bytes=None):
  """conv tap: ∇P_i = Σ_t patch_t(a_i) ⊗ g_{i,t}, one batched matmul per kernel offset.

  Samples are processed in chunks whose shifted input windows take about `chunk_bytes`;
  the M sets' output gradients are joined along channels per chunk (one matmul for all
  sets, no full-size copy). Returns M arrays B×P.
  """
  prm = tap.eqn.params
  dn = prm["dimension_numbers"]
  lhs_spec, rhs_spec, out_spec = dn.lhs_spec, dn.rhs_spec, dn.out_spec
  nsp = len(lhs_spec) - 2
  m_sets, b = len(g_sets), g_sets[0].shape[0]
  lhs_dil = prm["lhs_dilation"] or (1,) * nsp
  rhs_dil = prm["rhs_dilation"] or (1,) * nsp
  strides = prm["window_strides"]
  p_shape = tap.eqn.invars[1].aval.shape
  k_sp = tuple(p_shape[d] for d in rhs_spec[2:])
  # Per-sample arrays carry the sample's own N axis (size 1); lay out as N, spatial…, C
  # (the identity for Flax's NHWC).
  a = jnp.transpose(act, [0] + [1 + d for d in (lhs_spec[0], *lhs_spec[2:], lhs_spec[1])])
  out_perm = [0] + [1 + d for d in (out_spec[0], *out_spec[2:], out_spec[1])]
  gs = tuple(jnp.transpose(g, out_perm) for g in g_sets)
  pads = [(0, 0, 0)] + [(lo, hi, d - 1) for (lo, hi), d in zip(prm["padding"], lhs_dil)] + \
         [(0, 0, 0)]
  out_sp = gs[0].shape[2:-1]
  c_out = gs[0].shape[-1]

  def one(args):  # a_1xHxWxC, M × g_1xH'xW'xO -> k_sp×I×(M·O)
    a_i, g_i = args[0], jnp.concatenate(args[1:], axis=-1)
    a_i = jax.lax.pad(a_i, jnp.zeros((), a_i.dtype), pads)
    per_offset = []
    for offset in itertools.product(*(range(k) for k in k_sp)):
      start = [0] + [o * r for o, r in zip(offset, rhs_dil)] + [0]
      limit = [a_i.shape[0]] + [s + (n - 1) * st + 1 for s, n, st in
                                zip(start[1:-1], out_sp, strides)] + [a_i.shape[-1]]
      window = jax.lax.slice(a_i, start, limit, [1] + list(strides) + [1])
      per_offset.append(jnp.einsum("n...c,n...o->co", window, g_i))
    return jnp.stack(per_offset).reshape(k_sp + per_offset[0].shape)

  window_bytes = math.prod(k_sp) * math.prod(out_sp) * a.shape[-1] * a.dtype.itemsize
  chunk = _chunk_size(b, (chunk_bytes or _CHUNK_BYTES) // max(1, window_bytes))
  v = _map(one, (a,) + gs, None if chunk >= b else chunk)   # B×k_sp×I×(M·O)
  labels = [("s", j) for j in range(nsp)] + [("i",), ("o",)]
  target = {rhs_spec[0]: ("o",), rhs_spec[1]: ("i",)}
  target.update({d: ("s", j) for j, d in enumerate(rhs_spec[2:])})
  perm = [1 + labels.index(target[d]) for d in range(len(p_shape))]
  return tuple(jnp.transpose(v[..., m * c_out:(m + 1) * c_out], [0] + perm)
               for m in range(m_sets))


def _generic_sample_grads(tap: _Tap, p_value, ins, g_sets):
  """Any tap: ∇P_i = vjp of this one equation at (inputs_i, P), vmapped over B, per set."""
  def eqn_of_p(p, others):
    vals = list(others)
    vals.insert(tap.p_pos, p)
    return _bind(tap.eqn, vals)[0]

  def one(others, g):
    return jax.vjp(lambda p: eqn_of_p(p, others), p_value)[1](g)[0]

  return tuple(jax.vmap(one)(ins, g) for g in g_sets)


def _backward(vjp_fn, cot_MxBxK):
  """Output gradients at every tap for M cotangent sets, one plain backward pass each;
  per tap a tuple of M arrays B×out.

  (vmap over the sets would batch max-pool's select-and-scatter into an index scatter,
  several times slower and larger.)
  """
  m_sets = cot_MxBxK.shape[0]
  if m_sets <= _UNROLL_SETS:
    per_set = [vjp_fn(cot_MxBxK[m])[0] for m in range(m_sets)]
    return [None if gs[0] is None else tuple(gs) for gs in zip(*per_set)]
  stacked = jax.lax.map(lambda c: vjp_fn(c)[0], cot_MxBxK)
  return [None if g is None else tuple(g[m] for m in range(m_sets)) for g in stacked]


class GradStats(NamedTuple):
  """Inner products of sample gradients v_i (M cotangent sets) with subset sums g_s = Σ_i w_is v_i.

  sq_norms_MxB = ‖v_i‖², inner_MxBxS = ⟨v_i, g_s⟩, gram_MxSxS = ⟨g_s, g_t⟩, and
  grad_sum = Σ_i v_i of set 0 as a params pytree.
  """
  sq_norms_MxB: Array
  inner_MxBxS: Array
  gram_MxSxS: Array
  grad_sum: PyTree


def _reduce_dense(v_MxBxP, w_BxS):
  """‖v_i‖², ⟨v_i, g_s⟩, ⟨g_s, g_t⟩ of materialized v (M sets, a stacked array or a list)."""
  outs = []
  for v_BxP in v_MxBxP:
    s_SxP = w_BxS.T @ v_BxP
    outs.append((jnp.sum(v_BxP * v_BxP, axis=-1), v_BxP @ s_SxP.T, s_SxP @ s_SxP.T))
  return tuple(jnp.stack(o) for o in zip(*outs))


def _reduce_factored(a_BxD, g_MxBxM, w_BxS, scale):
  """Rank-one taps v_i = scale · a_i ⊗ g_i: K_ij = scale²(a_i·a_j)(g_i·g_j) (Goodfellow).

  K is symmetric: with the batch split in halves only the blocks 11, 21, 22 are formed
  (3/4 of the products), K_12 = K_21ᵀ.
  """
  b = a_BxD.shape[0]
  sq = (scale * scale) * jnp.sum(a_BxD * a_BxD, -1)[None] * jnp.sum(g_MxBxM * g_MxBxM, -1)
  if b % 2:
    k_MxBxB = (scale * scale) * (a_BxD @ a_BxD.T)[None] * jnp.einsum(
        "mbk,mck->mbc", g_MxBxM, g_MxBxM)
    inner = jnp.einsum("mbc,cs->mbs", k_MxBxB, w_BxS)
  else:
    h = b // 2
    a1, a2, g1, g2 = a_BxD[:h], a_BxD[h:], g_MxBxM[:, :h], g_MxBxM[:, h:]
    w1, w2 = w_BxS[:h], w_BxS[h:]
    block = lambda ax, ay, gx, gy: (scale * scale) * (ax @ ay.T)[None] * jnp.einsum(
        "mbk,mck->mbc", gx, gy)
    k11, k21, k22 = block(a1, a1, g1, g1), block(a2, a1, g2, g1), block(a2, a2, g2, g2)
    inner = jnp.concatenate([
        jnp.einsum("mbc,cs->mbs", k11, w1) + jnp.einsum("mcb,cs->mbs", k21, w2),
        jnp.einsum("mbc,cs->mbs", k21, w1) + jnp.einsum("mbc,cs->mbs", k22, w2)], axis=1)
  return sq, inner, jnp.einsum("bs,mbt->mst", w_BxS, inner)


def _use_factored(tap, t, b, d, m, m_sets, s):
  """Gram of a rank-one dense tap (B²(D + M·m)) against materializing (M·B·D·m·(2 + 2S))."""
  if tap.kind != "dot" or t != 1 or tap.tag.view is None or len(tap.tag.leaves) != 1:
    return False
  factored = b * b * (d + m_sets * m + m_sets * s)
  materialized = m_sets * b * d * m * (2 + 2 * s)
  return factored < materialized


class _TapPass(NamedTuple):
  prog: _Program
  leaves: list
  p_values: list
  outputs_BxK: Array
  aux: Any
  inputs: list         # per tap: its other inputs, leading B
  grads: list          # per tap: output gradients, M×B×out


def _tap_pass(apply_fn, params, x_B, cotangent_fn) -> _TapPass:
  """Forward with ε at every tap, then one backward pass per cotangent set w.r.t. ε."""
  prog = _program(apply_fn, params, jax.tree.map(lambda v: v[0], x_B))
  if not prog.taps:
    raise UnsupportedModel("no parameter meets an activation")
  leaves = jax.tree.leaves(params)
  p_values = _tap_param_values(prog, leaves, range(len(prog.taps)))
  b = jax.tree.leaves(x_B)[0].shape[0]
  eps = [None if tap.grad_from is not None else
         jnp.zeros((b,) + tap.out_shape, tap.out_dtype) for tap in prog.taps]

  def forward(eps):
    return jax.vmap(lambda x, e: _tap_forward(prog, p_values, x, e))(x_B, eps)

  outputs_BxK, vjp_fn, inputs = jax.vjp(forward, eps, has_aux=True)
  cot_MxBxK, aux = cotangent_fn(outputs_BxK)
  grads = _backward(vjp_fn, cot_MxBxK)
  grads = [grads[tap.grad_from] if tap.grad_from is not None else g
           for tap, g in zip(prog.taps, grads)]
  return _TapPass(prog, leaves, p_values, outputs_BxK, aux, inputs, grads)


def _materialize(tp: _TapPass, k: int):
  """∇P_k of every sample, per set: a tuple of M arrays B×P_k."""
  tap, ins, g = tp.prog.taps[k], tp.inputs[k], tp.grads[k]
  if tap.kind == "dot":
    a_btd, g_mbtm, to_p = _dot_factors(tap, ins[0], g)
    return tuple(to_p(jnp.einsum("btd,btk->bdk", a_btd, g_btm)) for g_btm in g_mbtm)
  if tap.kind == "conv":
    return _conv_sample_grads(tap, ins[0], g)
  return _generic_sample_grads(tap, tp.p_values[k], ins, g)


def _pull_back(tp: _TapPass, per_tap: dict):
  """Per-sample leaf gradients from per-sample ∇P_k of the taps in `per_tap` (chain rule
  through the parameter-side program P_k = φ_k(w)). Returns {leaf index: M arrays B×leaf}."""
  taps = sorted(per_tap)
  used = sorted(set().union(*(tp.prog.taps[k].tag.leaves for k in taps)))

  def p_of(sub):
    full = list(tp.leaves)
    for j, v in zip(used, sub):
      full[j] = v
    return _tap_param_values(tp.prog, full, taps)

  _, pull = jax.vjp(p_of, [tp.leaves[j] for j in used])
  m_sets = len(per_tap[taps[0]])
  per_set = [jax.vmap(lambda dps: pull(dps)[0])([per_tap[k][m] for k in taps])
             for m in range(m_sets)]
  return {j: tuple(per_set[m][i] for m in range(m_sets)) for i, j in enumerate(used)}


def _taps_stats(apply_fn, params, x_B, cotangent_fn, weights_BxS):
  """GradStats through the tap engine (see module docstring)."""
  tp = _tap_pass(apply_fn, params, x_B, cotangent_fn)
  m_sets, b = len(tp.grads[0]), tp.grads[0][0].shape[0]
  s = weights_BxS.shape[1]
  dtype = tp.outputs_BxK.dtype
  w_BxS = weights_BxS.astype(dtype)
  leaf_uses = collections.Counter(j for tap in tp.prog.taps for j in tap.tag.leaves)
  sq = jnp.zeros((m_sets, b), dtype)
  inner = jnp.zeros((m_sets, b, s), dtype)
  gram = jnp.zeros((m_sets, s, s), dtype)
  sum_p = []        # Σ_i ∇P_k,i of set 0, every tap
  materialized = {}
  for k, tap in enumerate(tp.prog.taps):
    if tap.kind == "dot":
      a_btd, g_mbtm, to_p = _dot_factors(tap, tp.inputs[k][0], tp.grads[k])
      _, t, d = a_btd.shape
      exclusive = all(leaf_uses[j] == 1 for j in tap.tag.leaves)
      if exclusive and _use_factored(tap, t, b, d, g_mbtm.shape[-1], m_sets, s):
        dsq, dinner, dgram = _reduce_factored(a_btd[:, 0], g_mbtm[:, :, 0], w_BxS,
                                              tap.tag.view[1])
        sq, inner, gram = sq + dsq, inner + dinner, gram + dgram
        sum_p.append(to_p(jnp.einsum("btd,btm->dm", a_btd, g_mbtm[0])))
        continue
    materialized[k] = _materialize(tp, k)
    sum_p.append(jnp.sum(materialized[k][0], axis=0))
  if materialized:
    for v in _pull_back(tp, materialized).values():
      dsq, dinner, dgram = _reduce_dense([v_m.reshape(b, -1) for v_m in v], w_BxS)
      sq, inner, gram = sq + dsq, inner + dinner, gram + dgram
  _, pull_all = jax.vjp(lambda lv: _tap_param_values(tp.prog, lv, range(len(sum_p))),
                        tp.leaves)
  grad_sum = tp.prog.treedef.unflatten(pull_all(sum_p)[0])
  return GradStats(sq, inner, gram, grad_sum), tp.outputs_BxK, tp.aux


def _vmap_stats(apply_fn, params, x_B, cotangent_fn, weights_BxS, chunk_size=None):
  """GradStats from materialized sample gradients (vmap of a per-sample vjp)."""
  single = _single(apply_fn)
  outputs_BxK = apply_fn(params, x_B)
  cot_MxBxK, aux = cotangent_fn(outputs_BxK)

  def one(args):
    x, cot_MxK = args
    _, vjp = jax.vjp(lambda p: single(p, x), params)
    return jax.vmap(lambda c: vjp(c)[0])(cot_MxK)

  grads = _map(one, (x_B, jnp.swapaxes(cot_MxBxK, 0, 1)), chunk_size)  # leaves B×M×…
  b = cot_MxBxK.shape[1]
  m_sets = cot_MxBxK.shape[0]
  v_MxBxP = jnp.swapaxes(
      jnp.concatenate([g.reshape(b, m_sets, -1) for g in jax.tree.leaves(grads)], axis=-1), 0, 1)
  sq, inner, gram = _reduce_dense(v_MxBxP, weights_BxS.astype(v_MxBxP.dtype))
  grad_sum = jax.tree.map(lambda g: jnp.sum(g[:, 0], axis=0), grads)
  return GradStats(sq, inner, gram, grad_sum), outputs_BxK, aux


def sample_grad_stats(apply_fn, params, x_B, cotangent_fn, weights_BxS, *,
                      method: str = "auto"):
  """Per-sample gradient geometry for M cotangent sets in one forward/backward pass.

  For set m the sample gradient is v_i = J_iᵀ c_{m,i} with c = cotangent_fn(outputs_BxK)[0]
  (M×B×K; e.g. r_i = ∂l_i/∂h_i gives ∇l_i, r_{i,c} e_c gives eq. 13's ∇l_{c,i}). Subsets
  are columns of weights_BxS: g_s = Σ_i w_is v_i (clean-priority §3.2). Returns
  (GradStats, outputs_BxK, aux) where aux is cotangent_fn's second output.
  """
  if method not in METHODS:
    raise ConfigError("persample.method", method, METHODS)
  if method == "vmap":
    return _vmap_stats(apply_fn, params, x_B, cotangent_fn, weights_BxS)
  try:
    return _taps_stats(apply_fn, params, x_B, cotangent_fn, weights_BxS)
  except UnsupportedModel:
    if method == "taps":
      raise
    return _vmap_stats(apply_fn, params, x_B, cotangent_fn, weights_BxS)


def sample_grads(apply_fn, params, x_B, cotangents_MxBxK, *, method: str = "auto") -> PyTree:
  """Materialized v_{m,i} = J_iᵀ c_{m,i}: pytree like params with leading axes (M, B).

  With method="taps" every tap is materialized (used to test the tap engine against
  `vmap`); prefer `sample_grad_stats` when only inner products are needed.
  """
  if method not in METHODS:
    raise ConfigError("persample.method", method, METHODS)
  if method == "vmap":
    single = _single(apply_fn)

    def one(x, cot_MxK):
      _, vjp = jax.vjp(lambda p: single(p, x), params)
      return jax.vmap(lambda c: vjp(c)[0])(cot_MxK)

    grads = jax.vmap(one)(x_B, jnp.swapaxes(cotangents_MxBxK, 0, 1))
    return jax.tree.map(lambda g: jnp.swapaxes(g, 0, 1), grads)
  tp = _tap_pass(apply_fn, params, x_B, lambda _: (cotangents_MxBxK, None))
  per_leaf = _pull_back(tp, {k: _materialize(tp, k) for k in range(len(tp.prog.taps))})
  return tp.prog.treedef.unflatten([jnp.stack(per_leaf[j]) for j in range(len(tp.leaves))])


# ----------------------------------------------------------------------------
# The diagnostic train step (clean-priority Figs. 4, 6, 8, 10).


def class_subset_weights(true_labels_B, given_labels_B, num_classes: int) -> Array:
  """weights_Bx2C: column 2c marks D_clean^(c), column 2c + 1 marks D_noise^(c) (§3.2)."""
  masks_BxCx3 = subset_masks(true_labels_B, given_labels_B, num_classes)
  return masks_BxCx3[..., :2].reshape(masks_BxCx3.shape[0], 2 * num_classes)


def _diagnostic_cotangents(loss_fn, labels_B, true_labels_B):
  """Cotangents of the diagnostic pass: set 0 r_i (→ ∇l_i); for K > 1 outputs also set 1
  r_{i,t_i} e_{t_i} (→ ∇l_{t_i,i}, eq. 13, t_i the sample's true class)."""
  def cotangent_fn(outputs_BxK):
    losses_B, r_BxK = _residuals(loss_fn, outputs_BxK, labels_B)
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
  angles involving a subset absent from the batch are NaN.
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
      "angle_to_clean_B": _subset_angle(inner_B, logit_norms_B, clean_C[true_B]),
      "noisy_B": true_B != jnp.asarray(given_labels_B),
      "clean_norm_C": clean_C,
      "noise_norm_C": noise_C,
      "clean_noise_ratio_C": _ratio(clean_C, noise_C),
      "clean_noise_angle_C": _subset_angle(cross_C, clean_C, noise_C) + jnp.where(
          clean_C > 0, 0.0, jnp.nan),
  }


def diagnostic_step(params, opt_state, x_B, labels_B, true_labels_B, *, apply_fn, loss_fn,
                    tx, num_classes: int, method: str = "auto"):
  """One optimizer step on the mean loss plus sample-wise gradient diagnostics.

  w ← w − tx(1/B Σ_i ∇l_i); the update and every number of `diagnostics` come from one
  forward and one (batched) backward pass. labels_B are the given (noisy) labels,
  true_labels_B the clean ones. Returns (params, opt_state, metrics) with metrics["loss"]
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
  if method not in METHODS:
    raise ConfigError("persample.method", method, METHODS)
  fn = functools.partial(diagnostic_step, apply_fn=apply_fn, loss_fn=loss_fn, tx=tx,
                         num_classes=num_classes, method=method)
  return jax.jit(fn, donate_argnums=(0, 1) if donate else ())


def diagnostic_train_step(state, x_B, labels_B, true_labels_B, *, loss_fn, num_classes: int,
                          method: str = "auto"):
  """`diagnostic_step` on a flax TrainState (noisejax.train.TrainState); jit-able.

  Without BatchNorm one pass gives update and diagnostics. With BatchNorm the
  diagnostics use eval mode (running statistics, samples independent) and the update a
  separate train-mode pass that also updates the statistics, as `train.fit` does.
  """
  batch_stats = getattr(state, "batch_stats", None)
  apply_fn = _state_eval_apply(state.apply_fn, batch_stats)
  if batch_stats is None:
    params, opt_state, metrics = diagnostic_step(
        state.params, state.opt_state, x_B, labels_B, true_labels_B, apply_fn=apply_fn,
        loss_fn=loss_fn, tx=state.tx, num_classes=num_classes, method=method)
    return state.replace(step=state.step + 1, params=params, opt_state=opt_state), metrics
  weights_BxS = class_subset_weights(true_labels_B, labels_B, num_classes)
  cotangent_fn = _diagnostic_cotangents(loss_fn, labels_B, true_labels_B)
  stats, _, _ = sample_grad_stats(apply_fn, state.params, x_B, cotangent_fn, weights_BxS,
                                  method=method)
  metrics = diagnostics(stats, true_labels_B, labels_B, num_classes)

  def objective(params):
    outputs, updates = state.apply_fn({"params": params, "batch_stats": batch_stats}, x_B,
                                      train=True, mutable=["batch_stats"])
    return loss_fn(outputs, labels_B).mean(), updates["batch_stats"]

  (loss, new_stats), grads = jax.value_and_grad(objective, has_aux=True)(state.params)
  metrics["loss"] = loss
  return state.apply_gradients(grads=grads, batch_stats=new_stats), metrics


def _state_eval_apply(fn, batch_stats):
  def apply_fn(params, x_B):
    variables = {"params": params}
    if batch_stats is not None:
      variables["batch_stats"] = batch_stats
    return fn(variables, x_B, train=False)
  return apply_fn


def logit_subset_stats(apply_fn, params, x_B, labels_B, true_labels_B, num_classes: int, *,
                       loss_fn=None, method: str = "auto") -> dict:
  """θ_g histograms and subset gradients of every logit c (clean-priority Figs. 4, 10).

  For each c the sample gradients are ∇l_{c,i} = r_{i,c} ∇h_c(x_i) (eq. 13; r = f − y of
  the given labels unless loss_fn is given, then r = ∂l/∂h); a one-output model has the
  single gradient ∇l_i, shared by its classes c ∈ {0, 1}. Subsets clean / noise / other
  of class c as in `subset_masks`. Returns, leading axis C: angles_CxBx3 = θ(∇l_{c,i},
  g_k^(c)) in degrees, subset_norms_Cx3, subset_angles_Cx3x3, ratio_C = ‖g_clean‖/‖g_noise‖,
  grad_norms_CxB; and masks_BxCx3. One backward pass per logit.
  """
  masks_BxCx3 = subset_masks(true_labels_B, labels_B, num_classes)
  k = jax.eval_shape(apply_fn, params, x_B).shape[-1]

  def cotangent_fn(outputs_BxK):
    if loss_fn is None:
      onehot = labels_B[:, None] if k == 1 else jax.nn.one_hot(labels_B, k)
      r_BxK = _link(outputs_BxK) - onehot.astype(outputs_BxK.dtype)
    else:
      _, r_BxK = _residuals(loss_fn, outputs_BxK, labels_B)
    if k == 1:
      return r_BxK[None], None
    return jnp.einsum("bk,kc->cbk", r_BxK, jnp.eye(k, dtype=r_BxK.dtype)[:, :num_classes]), None

  # All 3C subset columns go in; set c (or the one set) is compared with class c's three.
  weights_Bx3C = masks_BxCx3.reshape(masks_BxCx3.shape[0], 3 * num_classes)
  stats, _, _ = sample_grad_stats(apply_fn, params, x_B, cotangent_fn, weights_Bx3C,
                                  method=method)
  c_idx = jnp.arange(num_classes)
  m_idx = c_idx if k > 1 else jnp.zeros_like(c_idx)
  cols = 3 * c_idx[:, None] + jnp.arange(3)                     # C×3
  inner_CxBx3 = jnp.take_along_axis(stats.inner_MxBxS[m_idx], cols[:, None, :], axis=2)
  gram_Cx3x3 = stats.gram_MxSxS[m_idx[:, None, None], cols[:, :, None], cols[:, None, :]]
  out = jax.vmap(geometry)(stats.sq_norms_MxB[m_idx], inner_CxBx3, gram_Cx3x3)
  return {"angles_CxBx3": out["angles_BxS"], "subset_norms_Cx3": out["subset_norms_S"],
          "subset_angles_Cx3x3": out["subset_angles_SxS"], "ratio_C": out["ratio"],
          "grad_norms_CxB": out["grad_norms_B"], "masks_BxCx3": masks_BxCx3}


# ----------------------------------------------------------------------------
# Several devices: the batch axis sharded over a 1-D mesh.


def batch_mesh(devices: Optional[Sequence] = None) -> Mesh:
  """A 1-D mesh named "batch" over `devices` (default: all devices)."""
  devices = jax.devices() if devices is None else list(devices)
  return Mesh(np.asarray(devices), ("batch",))


def shard_batch(tree, mesh: Optional[Mesh] = None):
  """Places every leaf with its leading (batch) axis split over the mesh."""
  mesh = batch_mesh() if mesh is None else mesh
  return jax.device_put(tree, NamedSharding(mesh, PartitionSpec("batch")))


def replicate(tree, mesh: Optional[Mesh] = None):
  """Places every leaf (params, optimizer state) whole on every device of the mesh."""
  mesh = batch_mesh() if mesh is None else mesh
  return jax.device_put(tree, NamedSharding(mesh, PartitionSpec()))
