"""The tap engine: per-sample gradient structure read off the model's jaxpr (private).

The per-sample program h(w; x) is traced to a jaxpr; every equation where a parameter
meets an activation (a "tap": dense/conv contractions, bias adds, BatchNorm scales, …)
gets a zero perturbation ε added to its output. One batched forward pass and one
backward pass w.r.t. ε per cotangent set give each sample's output gradient g_i at every
tap; with the tap's input a_i the sample's parameter gradient follows without
`vmap(grad)`:
  dense (x·W, one position):  ∇W_i = a_i g_iᵀ is never formed; inner products come from
    ⟨∇W_i, ∇W_j⟩ = (a_i·a_j)(g_i·g_j) (Goodfellow 2015);
  convolution:  ∇W_i = Σ_t patch_t(a_i) g_{i,t}ᵀ, one batched matmul per kernel offset
    (XLA's conv weight-gradient under vmap is several times slower);
  anything else (bias, scales): a `vmap`ped `vjp` of that one equation.
Inside the tap forward, max-pools whose windows tile the input run as reshape + max with
the same first-maximum gradient as XLA's select-and-scatter (several times slower on
CPU). Conv contractions run over chunks of samples (~64 MB of shifted windows each).

Entry points for the package: `tap_stats` (GradStats), `tap_sample_grads` (every tap
materialized), `ntk_factors` / `ntk_block` (NTK Gram blocks), `program` (raises
`UnsupportedModel` for programs the engine cannot split).
"""

import collections
import dataclasses
import itertools
import math
from typing import Any, NamedTuple, Optional

import jax
import jax.numpy as jnp
import numpy as np
from jax.extend import core as jex_core

from noisejax.persample._base import (GradStats, chunk_size_for, reduce_dense, single,
                                      vmap_chunked)

Array = Any

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


def program(apply_fn, params, x_example) -> _Program:
  """Traces the per-sample program h(w; x) and finds its taps."""
  leaves, treedef = jax.tree.flatten(params)
  fn = lambda lv, x: single(apply_fn)(treedef.unflatten(lv), x)
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
  chunk = chunk_size_for(b, (chunk_bytes or _CHUNK_BYTES) // max(1, window_bytes))
  v = vmap_chunked(one, (a,) + gs, None if chunk >= b else chunk)   # B×k_sp×I×(M·O)
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
  prog = program(apply_fn, params, jax.tree.map(lambda v: v[0], x_B))
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


def tap_stats(apply_fn, params, x_B, cotangent_fn, weights_BxS):
  """(GradStats, outputs_BxK, aux) through the tap engine (see the module docstring)."""
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
      dsq, dinner, dgram = reduce_dense([v_m.reshape(b, -1) for v_m in v], w_BxS)
      sq, inner, gram = sq + dsq, inner + dinner, gram + dgram
  _, pull_all = jax.vjp(lambda lv: _tap_param_values(tp.prog, lv, range(len(sum_p))),
                        tp.leaves)
  grad_sum = tp.prog.treedef.unflatten(pull_all(sum_p)[0])
  return GradStats(sq, inner, gram, grad_sum), tp.outputs_BxK, tp.aux



def tap_sample_grads(apply_fn, params, x_B, cotangents_MxBxK):
  """Every tap materialized: v_{m,i} = J_iᵀ c_{m,i}, a pytree like params with leading (M, B)."""
  tp = _tap_pass(apply_fn, params, x_B, lambda _: (cotangents_MxBxK, None))
  per_leaf = _pull_back(tp, {k: _materialize(tp, k) for k in range(len(tp.prog.taps))})
  return tp.prog.treedef.unflatten([jnp.stack(per_leaf[j]) for j in range(len(tp.leaves))])


def ntk_factors(apply_fn, params, x_b, k):
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


def ntk_block(f_i, f_j):
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

