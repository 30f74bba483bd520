"""Tests of noisejax.persample: every route against explicit per-sample jax.grad loops."""

import functools

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from noisejax import losses, models, noise, persample as ps, synthetic
from noisejax.persample import _taps

# ----------------------------------------------------------------------------
# Tiny models (the paper models are exercised by experiments/bench_persample.py).


class TinyMLP(nn.Module):
  outputs: int = 3

  @nn.compact
  def __call__(self, x, train=False):
    h = nn.relu(nn.Dense(16)(x.reshape(x.shape[0], -1)))
    h = nn.tanh(nn.Dense(12)(h))
    return nn.Dense(self.outputs)(h)


class TinyCNN(nn.Module):
  """Odd padding, strides, dilation, max-pool, LayerNorm: every conv path of the taps."""
  outputs: int = 3

  @nn.compact
  def __call__(self, x, train=False):
    h = nn.relu(nn.Conv(4, (3, 3), padding=((1, 0), (0, 2)), strides=(1, 2))(x))
    h = nn.relu(nn.Conv(5, (2, 2), padding="VALID", kernel_dilation=(2, 1))(h))
    h = nn.max_pool(h, (2, 2), strides=(1, 1))
    h = nn.LayerNorm()(h.reshape(h.shape[0], -1))
    return nn.Dense(self.outputs)(h)


class TinyBN(nn.Module):
  """BatchNorm (eval mode in the per-sample code) and a tiling 2×2 max-pool."""

  @nn.compact
  def __call__(self, x, train=False):
    h = nn.Conv(4, (3, 3))(x)
    h = nn.relu(nn.BatchNorm(use_running_average=not train)(h))
    h = nn.max_pool(h, (2, 2), strides=(2, 2))
    return nn.Dense(3)(h.reshape(h.shape[0], -1))


class Shared(nn.Module):
  """One Dense used twice (weight sharing), a Dense on B×T×D, a param-scaled kernel."""

  @nn.compact
  def __call__(self, x, train=False):
    dense = nn.Dense(6)
    h = jnp.tanh(dense(jnp.tanh(dense(x[..., :6]))))           # B×T×6, shared twice
    w = self.param("w", nn.initializers.normal(1.0), (6, 3))
    return jnp.mean(h, axis=1) @ (0.5 * w)


class Scanned(nn.Module):
  """Parameters used inside lax.scan: outside the tap engine, handled by vmap."""

  @nn.compact
  def __call__(self, x, train=False):
    w = self.param("w", nn.initializers.normal(0.3), (x.shape[-1], x.shape[-1]))
    h, _ = jax.lax.scan(lambda h, _: (jnp.tanh(h @ w), None), x, None, length=3)
    return h[:, :2]


def _init(model, x, seed=0):
  """Variables of `model` filled from a NumPy RNG (shapes by eval_shape: no RNG compiles).

  Weights ~ N(0, 1/fan_in), biases and scales ~ N(0, 0.1²) + (1 for scales), BatchNorm
  running means ~ N(0, 0.1²), variances ~ U[0.5, 1.5].
  """
  rng = np.random.default_rng(seed)
  shapes = jax.eval_shape(model.init, jax.random.key(0), x)

  def fill(path, s):
    name = jax.tree_util.keystr(path)
    if "var" in name:
      return rng.uniform(0.5, 1.5, s.shape).astype(np.float32)
    if len(s.shape) >= 2:
      return (rng.normal(size=s.shape) / np.sqrt(np.prod(s.shape[:-1]))).astype(np.float32)
    base = 1.0 if "scale" in name else 0.0
    return (base + 0.1 * rng.normal(size=s.shape)).astype(np.float32)

  return jax.tree_util.tree_map_with_path(fill, shapes)


def _setup(model, x_shape, seed=0):
  """Inputs, params and the eval-mode apply_fn, all from NumPy (no eager compiles)."""
  x = np.random.default_rng(seed).normal(size=x_shape).astype(np.float32)
  variables = _init(model, x, seed)
  return x, variables["params"], ps.eval_apply_fn(model, variables.get("batch_stats"))


def _normal(seed, shape):
  return np.random.default_rng(seed).normal(size=shape).astype(np.float32)


def _close(a, b, rtol=1e-5, atol=1e-6):
  """Trees equal within tolerance, compared in NumPy."""
  jax.tree.map(lambda u, v: np.testing.assert_allclose(np.asarray(u), np.asarray(v), rtol=rtol,
                                                       atol=atol), a, b)


def _np(tree):
  return jax.tree.map(np.asarray, tree)


def _flat(tree_with_leading_b):
  """NumPy flatten_tree."""
  leaves = [np.asarray(v) for v in jax.tree.leaves(tree_with_leading_b)]
  return np.concatenate([v.reshape(v.shape[0], -1) for v in leaves], axis=1)


def _reference(apply_fn):
  """v_i = ∇_w ⟨c_i, h(w; x_i)⟩ for every sample, by vmap of jax.grad (checked against a
  Python loop of jax.grad in test_per_sample_grads_equal_a_loop_of_grad)."""
  grad_fn = jax.grad(lambda p, xi, ci: jnp.sum(ci * apply_fn(p, xi[None])[0]))
  return jax.jit(lambda p, x, cot_BxK: ps.flatten_tree(
      jax.vmap(grad_fn, in_axes=(None, 0, 0))(p, x, cot_BxK)))


def _jit(fn, **static):
  """fn jitted with keyword arguments bound (apply_fn closures are not jit arguments)."""
  return jax.jit(functools.partial(fn, **static))


# ----------------------------------------------------------------------------
# Vectors.


def test_cosine_and_angle_on_hand_made_vectors():
  e1, e2 = jnp.array([1.0, 0.0]), jnp.array([0.0, 2.0])
  np.testing.assert_allclose(ps.angle(e1, e2), 90.0, atol=1e-5)
  np.testing.assert_allclose(ps.angle(e1, -3 * e1), 180.0, atol=1e-3)
  np.testing.assert_allclose(ps.angle(jnp.array([1.0, 1.0]), e1), 45.0, atol=1e-4)
  np.testing.assert_allclose(ps.angle(e1, e1, degrees=False), 0.0, atol=1e-3)
  np.testing.assert_allclose(ps.cosine(jnp.array([3.0, 4.0]), jnp.array([4.0, 3.0])), 24 / 25,
                             rtol=1e-6)
  assert float(ps.cosine(jnp.zeros(2), e1)) == 0.0        # zero vector: cosine 0
  np.testing.assert_allclose(ps.angle(jnp.stack([e1, e2]), e1), [0.0, 90.0], atol=1e-3)


def test_flatten_tree():
  tree = {"a": jnp.arange(6.0).reshape(2, 3), "b": jnp.ones((2, 2, 2))}
  flat = ps.flatten_tree(tree)
  assert flat.shape == (2, 7)
  np.testing.assert_array_equal(flat[1], [3, 4, 5, 1, 1, 1, 1])


# ----------------------------------------------------------------------------
# Reference transforms.


def test_per_sample_grads_equal_a_loop_of_grad():
  model = TinyMLP()
  x, params, apply_fn = _setup(model, (5, 4))
  y = np.array([0, 2, 1, 1, 0])
  loss = lambda p, xi, yi: losses.cross_entropy(apply_fn(p, xi[None]), yi[None])[0]
  grads = _np(jax.jit(lambda p, b: ps.per_sample_grads(loss, p, b))(params, (x, y)))
  chunked = jax.jit(lambda p, b: ps.per_sample_grads(loss, p, b, chunk_size=2))(params, (x, y))
  grad_fn = jax.jit(jax.grad(loss))
  for i in range(5):
    _close(jax.tree.map(lambda g: g[i], grads), grad_fn(params, x[i], y[i]), atol=1e-6)
  _close(chunked, grads, atol=1e-6)


def test_single_logit_grads_sum_to_the_sample_gradient():
  model = TinyMLP(outputs=4)
  x, params, apply_fn = _setup(model, (3, 4))
  y = np.array([0, 3, 1])
  onehot = np.eye(4, dtype=np.float32)[y]
  all_c = _np(_jit(ps.single_logit_grads, apply_fn=apply_fn)(params=params, x_B=x,
                                                            targets_BxC=onehot))  # (B, C, …)
  full = jax.jit(lambda p: ps.per_sample_grads(
      lambda p, xi, yi: losses.cross_entropy(apply_fn(p, xi[None]), yi[None])[0], p, (x, y)))(params)
  _close(jax.tree.map(lambda g: g.sum(1), all_c), full, atol=1e-5)
  one = _np(_jit(ps.single_logit_grads, apply_fn=apply_fn, logit=2)(params=params, x_B=x,
                                                                    targets_BxC=onehot))
  _close(one, jax.tree.map(lambda g: g[:, 2], all_c), atol=1e-6)
  # eq. 13: ∇l_{c,i} = (f_c − y_c)∇h_c
  f = np.asarray(jax.jit(lambda p: jax.nn.softmax(apply_fn(p, x)))(params))
  dh = _np(jax.jit(jax.grad(lambda p: apply_fn(p, x[1:2])[0, 2]))(params))
  _close(jax.tree.map(lambda g: g[1], one),
         jax.tree.map(lambda g: (f[1, 2] - onehot[1, 2]) * g, dh), atol=1e-6)


def test_flat_jacobian_rows_are_model_derivatives():
  x, params, apply_fn = _setup(TinyMLP(), (3, 4))
  jac = np.asarray(_jit(ps.flat_jacobian, apply_fn=apply_fn)(params=params, x_B=x))
  assert jac.shape == (9, sum(v.size for v in jax.tree.leaves(params)))
  row = jax.jit(jax.grad(lambda p: apply_fn(p, x[2:3])[0, 1]))(params)
  np.testing.assert_allclose(jac[2 * 3 + 1], _flat(jax.tree.map(lambda v: v[None], row))[0],
                             atol=1e-6)


@pytest.mark.parametrize("model,x_shape", [(TinyMLP(), (4,)), (TinyBN(), (6, 6, 1))])
def test_ntk_gram_blocks_equal_explicit_jjt(model, x_shape):
  block_size = 3
  x, params, apply_fn = _setup(model, (7,) + x_shape)           # 7 samples: ragged blocks
  jac = np.asarray(_jit(ps.flat_jacobian, apply_fn=apply_fn)(params=params, x_B=x))
  gram = ps.ntk_gram(apply_fn, params, x, block_size=block_size)  # tap factors
  np.testing.assert_allclose(gram, jac @ jac.T, rtol=1e-4, atol=1e-4)
  jac1 = jac.reshape(7, 3, -1)[:, 1]
  gram1 = ps.ntk_gram(apply_fn, params, x, block_size=block_size, logit=1, method="vmap")
  np.testing.assert_allclose(gram1, jac1 @ jac1.T, rtol=1e-4, atol=1e-4)
  sv = ps.jacobian_singular_values(apply_fn, params, x, block_size=block_size, logit=1)
  np.testing.assert_allclose(sv, np.linalg.svd(jac1, compute_uv=False), rtol=2e-3, atol=2e-3)


def test_jvp_inner_products_equal_explicit_dot_products():
  x, params, apply_fn = _setup(TinyMLP(), (4, 4))
  v = jax.tree.map(lambda p: _normal(7, p.shape), params)
  jac = np.asarray(_jit(ps.flat_jacobian, apply_fn=apply_fn)(params=params, x_B=x)).reshape(4, 3, -1)
  v_flat = _flat(jax.tree.map(lambda a: a[None], v))[0]
  inner = _jit(ps.jvp_inner_products, apply_fn=apply_fn)
  np.testing.assert_allclose(inner(params=params, x_B=x, direction=v), jac @ v_flat,
                             rtol=1e-5, atol=1e-5)
  r = _normal(8, (4, 3))
  np.testing.assert_allclose(inner(params=params, x_B=x, direction=v, residuals_BxK=r),
                             np.einsum("bk,bkp,p->b", r, jac, v_flat), rtol=1e-5, atol=1e-5)


def test_tiled_max_pool_routes_gradients_like_select_and_scatter():
  x = np.random.default_rng(0).integers(0, 3, size=(2, 4, 6, 3)).astype(np.float32)  # ties
  g = _normal(1, (2, 2, 3, 3))
  pool = lambda x: nn.max_pool(x, (2, 2), strides=(2, 2))
  out_ref, vjp_ref = jax.vjp(pool, x)
  out, vjp = jax.vjp(lambda x: _taps._tiled_max_pool(x, (1, 2, 2, 1)), x)
  np.testing.assert_array_equal(out, out_ref)
  np.testing.assert_array_equal(vjp(g)[0], vjp_ref(g)[0])
  (eqn,) = jax.make_jaxpr(pool)(x).jaxpr.eqns
  assert _taps._is_tiling_max_pool(eqn)


# ----------------------------------------------------------------------------
# Subsets.


def test_subset_masks_follow_the_paper_definitions():
  true = np.array([0, 0, 1, 1, 2])
  given = np.array([0, 1, 1, 0, 2])
  m = np.asarray(jax.jit(ps.subset_masks, static_argnums=2)(true, given, 3))  # B×C×3
  np.testing.assert_array_equal(m[:, 0], [[1, 0, 0], [0, 1, 0], [0, 0, 1], [0, 0, 0], [0, 0, 1]])
  np.testing.assert_array_equal(m[:, 1], [[0, 0, 1], [0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]])
  w = jax.jit(ps.class_subset_weights, static_argnums=2)(true, given, 3)
  np.testing.assert_array_equal(w[:, :2], m[:, 0, :2])


def test_subset_stats_on_hand_made_vectors():
  grads = np.array([[1.0, 0.0], [1.0, 0.0], [1.0, 0.0], [-1.0, 0.0], [0.0, 1.0]], np.float32)
  masks = np.array([[1, 0, 0], [1, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]])
  subset_stats = jax.jit(ps.subset_stats)
  out = _np(subset_stats(grads, masks))
  np.testing.assert_allclose(out["subset_norms_S"], [3.0, 1.0, 1.0], rtol=1e-6)
  np.testing.assert_allclose(out["ratio"], 3.0, rtol=1e-6)        # eq. 8: (1 − δ)/δ
  np.testing.assert_allclose(out["subset_angles_SxS"][0, 1], 180.0, atol=1e-3)
  np.testing.assert_allclose(out["subset_angles_SxS"][0, 2], 90.0, atol=1e-4)
  np.testing.assert_allclose(out["angles_BxS"][:, 0], [0, 0, 0, 180, 90], atol=1e-3)
  np.testing.assert_allclose(out["grad_norms_B"], [1, 1, 1, 1, 1], rtol=1e-6)
  masks[:, 1] = 0
  assert np.isnan(subset_stats(grads, masks)["ratio"])              # empty noise subset


def test_geometry_angle_to_an_empty_subset_is_nan_in_both_orders():
  """Issue 10: with the FIRST subset empty, θ(g_1, g_0) was 90° while θ(g_0, g_1) was NaN."""
  out = _np(jax.jit(ps.geometry)(np.ones(2, np.float32), np.array([[1, 0], [1, 0]], np.float32),
                                 np.array([[4, 0], [0, 0]], np.float32)))
  np.testing.assert_allclose(out["subset_angles_SxS"][0, 0], 0.0, atol=1e-3)
  assert np.isnan(out["subset_angles_SxS"][[0, 1, 1], [1, 0, 1]]).all()
  np.testing.assert_allclose(out["angles_BxS"][:, 0], [60.0, 60.0], atol=1e-3)  # cos = 1/2
  assert np.isnan(out["angles_BxS"][:, 1]).all()
  assert np.isnan(out["ratio"])


@pytest.mark.parametrize("outputs,loss_name", [(4, "cross_entropy"), (1, "logistic")])
def test_residuals_are_f_minus_y_for_cross_entropy_and_logistic(outputs, loss_name):
  h = _normal(0, (6, outputs))
  y = np.array([0, 1, 1, 0, 1, 0]) if outputs == 1 else np.array([0, 3, 1, 2, 2, 0])
  f_minus_y = ps.link(h) - (y[:, None] if outputs == 1 else np.eye(outputs)[y])
  np.testing.assert_allclose(jax.jit(ps.residuals)(h, y), f_minus_y, atol=1e-6)
  loss_fn = losses.make_loss(loss_name, max(outputs, 2))
  np.testing.assert_allclose(jax.jit(lambda h, y: ps.residuals(h, y, loss_fn))(h, y),
                             f_minus_y, atol=1e-6)
  squared = losses.make_loss("squared", 4)
  if outputs == 4:  # any other loss: ∂l/∂h, not f − y
    np.testing.assert_allclose(ps.residuals(h, y, squared), h - np.eye(4)[y], atol=1e-6)


# ----------------------------------------------------------------------------
# The tap engine against the vmap route and against per-sample jax.grad.


@pytest.mark.parametrize("model,x_shape,b", [
    (TinyMLP(), (4,), 6),
    (TinyCNN(), (6, 9, 2), 5),
    (TinyBN(), (6, 6, 1), 4),
    (Shared(), (3, 8), 4),
    (models.TwoConvCNN(3, (2, 3), 5), (8, 9, 1), 4),  # im2col convs: dot taps over positions
])
def test_tap_sample_grads_equal_per_sample_grad(model, x_shape, b):
  x, params, apply_fn = _setup(model, (b,) + x_shape)
  k = jax.eval_shape(apply_fn, params, x).shape[-1]
  cot = _normal(3, (2, b, k))
  run = lambda method: _np(_jit(ps.sample_grads, apply_fn=apply_fn, method=method)(
      params=params, x_B=x, cotangents_MxBxK=cot))
  grads = run("taps")
  reference = _reference(apply_fn)
  for m in range(2):
    np.testing.assert_allclose(_flat(jax.tree.map(lambda g, m=m: g[m], grads)),
                               reference(params, x, cot[m]), rtol=1e-4, atol=1e-5)
  _close(grads, run("vmap"), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("b", [8, 7])                                # even: half blocks
def test_tap_stats_equal_materialized_stats(b):
  x, params, apply_fn = _setup(TinyMLP(), (b, 4))
  cot = _normal(4, (2, b, 3))
  w = (_normal(5, (b, 3)) > 0).astype(np.float32)
  prog = _taps.program(apply_fn, params, x[0])
  assert any(t.kind == "dot" and _taps._use_factored(t, 1, b, 16, 12, 2, 3) for t in prog.taps)
  stats, outputs, aux = _np(_jit(ps.sample_grad_stats, apply_fn=apply_fn, method="taps",
                                 cotangent_fn=lambda h: (cot, h.sum()))(
                                     params=params, x_B=x, weights_BxS=w))
  h = np.asarray(jax.jit(apply_fn)(params, x))
  np.testing.assert_allclose(outputs, h, rtol=1e-6)
  np.testing.assert_allclose(aux, h.sum(), rtol=1e-5)
  reference = _reference(apply_fn)
  for m in range(2):
    v = np.asarray(reference(params, x, cot[m]))
    s = w.T @ v
    np.testing.assert_allclose(stats.sq_norms_MxB[m], np.sum(v * v, 1), rtol=1e-4)
    np.testing.assert_allclose(stats.inner_MxBxS[m], v @ s.T, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(stats.gram_MxSxS[m], s @ s.T, rtol=1e-4, atol=1e-5)
  np.testing.assert_allclose(_flat(jax.tree.map(lambda g: g[None], stats.grad_sum))[0],
                             np.asarray(reference(params, x, cot[0])).sum(0), rtol=1e-4, atol=1e-5)


def test_unsupported_programs_fall_back_to_vmap():
  x, params, apply_fn = _setup(Scanned(), (3, 4))
  cot = np.ones((1, 3, 2), np.float32)
  w = np.ones((3, 1), np.float32)
  stats = lambda method: _jit(ps.sample_grad_stats, apply_fn=apply_fn, method=method,
                              cotangent_fn=lambda h: (cot, None))(params=params, x_B=x,
                                                                  weights_BxS=w)
  with pytest.raises(ps.UnsupportedModel):
    stats("taps")
  auto, _, _ = stats("auto")
  v = np.asarray(_reference(apply_fn)(params, x, cot[0]))
  np.testing.assert_allclose(auto.sq_norms_MxB[0], np.sum(v * v, 1), rtol=1e-4)
  with pytest.raises(ValueError, match="persample.method"):
    ps.sample_grad_stats(apply_fn, params, x, lambda h: (cot, None), w, method="fast")


# ----------------------------------------------------------------------------
# The diagnostic train step.


def _noisy_batch(b, c, seed=0):
  true = np.random.default_rng(seed).integers(0, c, size=b).astype(np.int32)
  given = np.where(np.arange(b) % 3 == 0, (true + 1) % c, true).astype(np.int32)
  return true, given


def _reference_diagnostics(apply_fn, loss_fn, params, x, given, true, num_outputs):
  """Residuals r = ∂l/∂h, full and own-class single-logit sample gradients (NumPy)."""
  r = np.asarray(jax.jit(lambda p: jax.grad(
      lambda h: loss_fn(h, given).sum())(apply_fn(p, x)))(params))
  own = r if num_outputs == 1 else r * np.eye(num_outputs, dtype=np.float32)[true]
  reference = _reference(apply_fn)
  return np.asarray(reference(params, x, r)), np.asarray(reference(params, x, own))


@pytest.mark.parametrize("outputs,loss_name", [(3, "cross_entropy"), (1, "logistic")])
def test_diagnostic_step_matches_materialized_gradients(outputs, loss_name):
  b, c = 9, max(outputs, 2)
  x, params, apply_fn = _setup(TinyMLP(outputs=outputs), (b, 4))
  true, given = _noisy_batch(b, c)
  loss_fn = losses.make_loss(loss_name, c)
  tx = optax.sgd(0.1)
  opt_state = tx.init(params)
  new = {method: _np(ps.make_diagnostic_step(apply_fn, loss_fn, tx, c, method=method)(
      params, opt_state, x, given, true)) for method in ("taps", "vmap")}
  _close(new["taps"], new["vmap"], rtol=2e-4, atol=1e-4)
  params1, _, metrics = new["taps"]
  # The update is one SGD step on the mean loss.
  objective = lambda p: loss_fn(apply_fn(p, x), given).mean()
  loss, grads = jax.jit(jax.value_and_grad(objective))(params)
  _close(params1, jax.tree.map(lambda p, g: p - 0.1 * g, _np(params), _np(grads)), atol=1e-6)
  np.testing.assert_allclose(metrics["loss"], loss, rtol=1e-6)
  # Subset statistics against materialized sample gradients (single-logit for K > 1).
  v_full, v = _reference_diagnostics(apply_fn, loss_fn, params, x, given, true, outputs)
  np.testing.assert_allclose(metrics["grad_norms_B"], np.linalg.norm(v_full, axis=1), rtol=1e-4)
  np.testing.assert_allclose(metrics["logit_grad_norms_B"], np.linalg.norm(v, axis=1), rtol=1e-4)
  for cls in range(c):
    clean = (true == cls) & (given == cls)
    noise = (true == cls) & (given != cls)
    g_clean, g_noise = v[clean].sum(0), v[noise].sum(0)
    np.testing.assert_allclose(metrics["clean_norm_C"][cls], np.linalg.norm(g_clean), rtol=1e-4)
    np.testing.assert_allclose(metrics["noise_norm_C"][cls], np.linalg.norm(g_noise), rtol=1e-4)
    in_c = true == cls
    expected = [_angle_np(vi, g_clean) if clean.any() else np.nan for vi in v[in_c]]
    np.testing.assert_allclose(metrics["angle_to_clean_B"][in_c], expected, atol=0.05)
    if noise.any() and clean.any():
      np.testing.assert_allclose(metrics["clean_noise_ratio_C"][cls],
                                 np.linalg.norm(g_clean) / np.linalg.norm(g_noise), rtol=1e-4)
      np.testing.assert_allclose(metrics["clean_noise_angle_C"][cls],
                                 _angle_np(g_clean, g_noise), atol=0.05)
    else:                                              # a subset absent from the batch
      assert np.isnan(metrics["clean_noise_angle_C"][cls])
      assert np.isnan(metrics["clean_noise_ratio_C"][cls]) == (not noise.any())
  np.testing.assert_array_equal(metrics["noisy_B"], true != given)


def _angle_np(u, v):
  cos = np.dot(u, v) / (np.linalg.norm(u) * np.linalg.norm(v))
  return np.degrees(np.arccos(np.clip(cos, -1, 1)))


def test_diagnostic_step_compiles_once():
  b, c = 6, 3
  x, params, apply_fn = _setup(TinyMLP(outputs=c), (b, 4))
  true, given = _noisy_batch(b, c)
  tx = optax.sgd(0.5)
  loss_fn = losses.make_loss("cross_entropy", c)

  @jax.jit
  @chex.assert_max_traces(n=1)
  def step(params, opt_state, x, given, true):
    return ps.diagnostic_step(params, opt_state, x, given, true, apply_fn=apply_fn,
                              loss_fn=loss_fn, tx=tx, num_classes=c)

  opt_state = tx.init(params)
  losses_seen = []
  for i in range(3):
    params, opt_state, metrics = step(params, opt_state, x + np.float32(0.01 * i), given, true)
    losses_seen.append(float(metrics["loss"]))
  assert losses_seen[-1] < losses_seen[0]


# ----------------------------------------------------------------------------
# Subset gradients of a model on a noisy set (clean-priority §3.2, Figs. 4, 6, 8, 10).


@pytest.mark.parametrize("model,x_shape,outputs", [
    (TinyMLP(outputs=3), (4,), 3), (TinyMLP(outputs=1), (4,), 1), (TinyBN(), (6, 6, 1), 3)])
def test_subset_gradient_stats_match_single_logit_gradients(model, x_shape, outputs):
  b, c = 10, max(outputs, 2)
  x = _normal(0, (b,) + x_shape)
  variables = _init(model, x)
  apply_fn = ps.eval_apply_fn(model, variables.get("batch_stats"))  # BN: running statistics
  true, given = _noisy_batch(b, c, seed=2)
  out = _np(ps.subset_gradient_stats(model, variables, x, given, true, num_classes=c))
  onehot = np.eye(c, dtype=np.float32)[given] if outputs > 1 else given[:, None]
  grads = _np(_jit(ps.single_logit_grads, apply_fn=apply_fn)(
      params=variables["params"], x_B=x, targets_BxC=onehot))
  for cls in range(c):
    g_c = _flat(grads if outputs == 1 else jax.tree.map(lambda g: g[:, cls], grads))
    masks = out["masks_BxCx3"][:, cls]
    subsets = [g_c[masks[:, k]].sum(0) for k in range(3)]
    np.testing.assert_allclose(out["norms_Cx3"][cls], np.linalg.norm(subsets, axis=1),
                               rtol=1e-4)
    np.testing.assert_allclose(out["angles_CxB"][cls], [_angle_np(g, subsets[0]) for g in g_c],
                               atol=0.05)
    np.testing.assert_allclose(out["subset_angles_Cx3"][cls][1:],
                               [_angle_np(subsets[k], subsets[0]) for k in (1, 2)], atol=0.05)
    np.testing.assert_allclose(out["ratio_C"][cls],
                               np.linalg.norm(subsets[0]) / np.linalg.norm(subsets[1]), rtol=1e-4)


def _multiclass_setup(num_classes=4, n=24, seed=0):
  model = models.get_model("mlp", num_classes, hidden=(8,))
  x = jax.random.normal(jax.random.key(seed), (n, 5))
  true = jnp.arange(n) % num_classes
  given = jnp.where(jnp.arange(n) % 3 == 0, (true + 1) % num_classes, true)
  variables = model.init(jax.random.key(seed + 1), x[:1])
  return model, variables, x, given, true


def test_single_logit_gradients_sum_to_the_full_gradient_and_give_the_subset_norms():
  model, variables, x, given, true = _multiclass_setup()
  apply_fn = ps.eval_apply_fn(model)
  params = variables["params"]
  onehot = jax.nn.one_hot(given, 4)
  per_logit = np.asarray(jax.jit(lambda p: ps.flatten_tree(jax.tree.map(
      lambda g: g.reshape((-1,) + g.shape[2:]),
      ps.single_logit_grads(apply_fn, p, x, onehot))))(params)).reshape(24, 4, -1)
  ce = losses.make_loss("cross_entropy", 4)
  full = jax.jit(lambda p: ps.flatten_tree(ps.per_sample_grads(
      lambda p, xi, yi: ce(apply_fn(p, xi[None]), yi[None])[0], p, (x, given))))(params)
  np.testing.assert_allclose(per_logit.sum(1), full, atol=1e-5)

  stats = ps.subset_gradient_stats(model, variables, x, given, true, num_classes=4)
  masks = np.asarray(ps.subset_masks(true, given, 4))
  for c in range(4):
    sums = [(per_logit[:, c] * masks[:, c, k][:, None]).sum(0) for k in range(3)]
    np.testing.assert_allclose(stats["norms_Cx3"][c], np.linalg.norm(sums, axis=1), rtol=1e-4)
    cos = sums[1] @ sums[0] / (np.linalg.norm(sums[1]) * np.linalg.norm(sums[0]))
    np.testing.assert_allclose(np.cos(np.radians(stats["subset_angles_Cx3"][c, 1])), cos,
                               atol=1e-4)


@pytest.mark.parametrize("num_classes", [2, 4])
def test_by_class_route_equals_the_full_computation(num_classes):
  model, variables, x, given, true = _multiclass_setup(num_classes)
  if num_classes == 2:
    model = models.get_model("mlp", 1, hidden=(8,))
    variables = model.init(jax.random.key(1), x[:1])
  full = ps.subset_gradient_stats(model, variables, x, given, true, num_classes=num_classes)
  idx, valid = ps.group_by_true_class(np.asarray(true), num_classes, 24 // num_classes,
                                      jax.random.key(0))
  assert valid.all() and all((np.asarray(true)[idx[c]] == c).all() for c in range(num_classes))
  norms, cos = ps.clean_noise_stats_by_class(
      model, variables, x[idx], given[idx], (given == true)[idx], jnp.asarray(valid))
  np.testing.assert_allclose(norms, full["norms_Cx3"][:, :2], rtol=1e-4)
  np.testing.assert_allclose(cos, np.cos(np.radians(full["subset_angles_Cx3"][:, 1])), atol=1e-4)
  # A class without noisy samples: its clean/noise cosine is undefined (NaN), not 0.
  _, cos = ps.clean_noise_stats_by_class(
      model, variables, x[idx], given[idx], jnp.ones_like(given[idx], bool), jnp.asarray(valid))
  assert np.isnan(cos).all()


def test_group_by_true_class_pads_small_classes():
  idx, valid = ps.group_by_true_class(np.array([0, 0, 0, 1]), 2, 3, jax.random.key(0))
  assert idx.shape == (2, 3) and valid.sum(1).tolist() == [3, 1]
  assert (idx[1] == 3).all()


def test_eq8_ratio_and_opposite_subset_gradients_when_f_is_one_half():
  """§3.2 / eq. 8: with f(w0; x) = 1/2 everywhere, g_noise^(c) ≈ −(δ/(1 − δ)) g_clean^(c).

  The output layer is zeroed so that f = σ(0) = 1/2 exactly: residuals are ±1/2, and on the
  tight Fig. 3 clusters ∇h barely varies within a cluster, so the ratio is the population
  ratio 140/60 and the angle ≈ 180°.
  """
  x, y = synthetic.two_clusters_2d(jax.random.key(0), 200, spread=0.1)
  noisy = noise.corrupt(jax.random.key(1), np.asarray(y), 2, "symmetric", 0.3)
  model = models.get_model("mlp", 1, hidden=(64,))
  variables = model.init(jax.random.key(2), x[:1])
  variables["params"]["output"] = jax.tree.map(jnp.zeros_like, variables["params"]["output"])
  stats = ps.subset_gradient_stats(
      model, variables, x, jnp.asarray(noisy.labels), jnp.asarray(noisy.clean_labels),
      num_classes=2)
  assert np.all(stats["subset_angles_Cx3"][:, 1] > 178)
  np.testing.assert_allclose(stats["ratio_C"], 0.7 / 0.3, rtol=0.02)
  clean = stats["masks_BxCx3"][:, :, 0]
  noisy_mask = stats["masks_BxCx3"][:, :, 1]
  for c in (0, 1):  # per-sample θ_g: clean samples along g_clean, noisy ones against it
    assert np.all(stats["angles_CxB"][c][clean[:, c]] < 30)
    assert np.all(stats["angles_CxB"][c][noisy_mask[:, c]] > 150)


def test_full_gradient_cosine_equals_the_cosine_of_two_mean_loss_gradients():
  """Prop. 4.2: cos(∇L(D), ∇L(D̂)) from one forward and two vjps, against jax.grad."""
  model, variables, x, given, true = _multiclass_setup()
  ce = losses.make_loss("cross_entropy", 4)
  apply_fn = ps.eval_apply_fn(model)
  grad = lambda y: ps.flatten_tree(jax.tree.map(lambda g: g[None], jax.grad(
      lambda p: ce(apply_fn(p, x), y).sum())(variables["params"])))[0]
  g_given, g_true = grad(given), grad(true)
  expected = float(g_given @ g_true / (jnp.linalg.norm(g_given) * jnp.linalg.norm(g_true)))
  cos = float(ps.full_gradient_cosine(model, variables, x, given, true))
  assert cos == pytest.approx(expected, abs=1e-5) and cos < 0.999  # some labels differ
  assert float(ps.full_gradient_cosine(model, variables, x, true, true)) == pytest.approx(1.0)
