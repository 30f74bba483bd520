"""Models: exact parameter counts worked out by hand, shapes, NTK scale, activations, BN."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from noisejax import models
from noisejax.errors import ConfigError

# "rbg" keys: threefry compiles a kernel per parameter shape, which makes initializing a
# ResNet take seconds on a CPU; the tests only need some random numbers.
KEY = jax.random.key(0, impl="rbg")


def _shape_init(model, shape):
  """Variables' shapes without computing anything (fast even for WRN-28-2)."""
  return jax.eval_shape(lambda x: model.init(KEY, x), jnp.zeros(shape))


def conv(k, cin, cout, bias=True):
  return k * k * cin * cout + (cout if bias else 0)


def dense(fan_in, fan_out, bias=True):
  return fan_in * fan_out + (fan_out if bias else 0)


def bn(c):
  return 2 * c  # scale and bias; running statistics are not parameters


# ----------------------------------------------------------------------------
# Exact parameter counts.


def test_param_count_clean_priority_cnn():
  # 28 → 26 → 24 (3×3 valid) → max-pool 12: 12·12·64 = 9216 features.
  expected = conv(3, 1, 32) + conv(3, 32, 64) + dense(12 * 12 * 64, 64) + dense(64, 10)
  assert expected == 320 + 18_496 + 589_888 + 650 == 609_354
  v = _shape_init(models.get_model("clean_priority_cnn", 10), (1, 28, 28, 1))
  assert models.count_params(v) == expected


def test_param_count_early_stop_cnn_is_the_papers_4_8_million():
  expected = conv(3, 1, 64) + conv(3, 64, 128) + dense(12 * 12 * 128, 256) + dense(256, 10)
  assert expected == 4_795_914  # "Overall, there are 4.8 million trainable parameters."
  v = _shape_init(models.get_model("early_stop_cnn", 10), (1, 28, 28, 1))
  assert models.count_params(v) == expected


def test_param_count_lenet5():
  # 28 (pad 2) → 28 → pool 14 → 10 (5×5 valid) → pool 5: 5·5·16 = 400 features.
  expected = (conv(5, 1, 6) + conv(5, 6, 16) + dense(400, 120) + dense(120, 84)
              + dense(84, 10))
  assert expected == 61_706
  v = _shape_init(models.get_model("lenet5", 10), (1, 28, 28, 1))
  assert models.count_params(v) == expected


def test_param_count_resnet9():
  block = lambda cin, cout: conv(3, cin, cout) + bn(cout)
  expected = (block(3, 64) + block(64, 128) + 2 * block(128, 128) + block(128, 256)
              + block(256, 256) + 2 * block(256, 256) + dense(2 * 2 * 256, 10))
  assert expected == 2_449_418
  v = _shape_init(models.get_model("resnet9", 10), (1, 32, 32, 3))
  assert models.count_params(v) == expected
  assert "batch_stats" in v


def test_param_count_resnet20():
  def stage(cin, cout):  # 3 basic blocks, bias-free convs, option-A (parameter-free) shortcut
    first = conv(3, cin, cout, False) + bn(cout) + conv(3, cout, cout, False) + bn(cout)
    rest = 2 * (2 * (conv(3, cout, cout, False) + bn(cout)))
    return first + rest
  expected = (conv(3, 3, 16, False) + bn(16) + stage(16, 16) + stage(16, 32) + stage(32, 64)
              + dense(64, 10))
  assert expected == 269_722  # "≈0.27M"
  v = _shape_init(models.get_model("resnet20", 10), (1, 32, 32, 3))
  assert models.count_params(v) == expected
  bn_params = bn(16) + 6 * bn(16) + 6 * bn(32) + 6 * bn(64)
  v_none = _shape_init(models.get_model("resnet20", 10, norm="none"), (1, 32, 32, 3))
  assert models.count_params(v_none) == expected - bn_params
  assert "batch_stats" not in v_none


def test_param_count_wrn28_2():
  def block(cin, cout):  # pre-activation wide block, convs with bias, 1×1 conv shortcut
    shortcut = conv(1, cin, cout) if cin != cout else 0
    return bn(cin) + conv(3, cin, cout) + bn(cout) + conv(3, cout, cout) + shortcut
  def group(cin, cout):
    return block(cin, cout) + 3 * block(cout, cout)
  expected = (conv(3, 3, 16) + group(16, 32) + group(32, 64) + group(64, 128) + bn(128)
              + dense(128, 10))
  assert expected == 1_469_642  # "≈1.47M"
  v = _shape_init(models.get_model("wrn28_2", 10), (1, 32, 32, 3))
  assert models.count_params(v) == expected


@pytest.mark.parametrize("name", ["vgg11", "vgg16"])
def test_param_count_vgg(name):
  widths = [w for w in models.VGG_CONFIGS[name] if w != "M"]
  convs = sum(conv(3, cin, cout) + bn(cout) for cin, cout in zip([3] + widths, widths))
  expected = convs + dense(512, 4096) + dense(4096, 4096) + dense(4096, 2)
  assert expected == {"vgg11": 28_116_738, "vgg16": 33_613_890}[name]
  v = _shape_init(models.get_model(name, 2), (1, 32, 32, 3))
  assert models.count_params(v) == expected
  assert "batch_stats" in v
  assert models.get_model(name, 2) == models.VGG(name, 2)


def test_param_count_mlp_fixed_output_and_patch_cnn():
  v = _shape_init(models.get_model("mlp", 1, hidden=(512, 512)), (1, 784))
  assert models.count_params(v) == dense(784, 512) + dense(512, 512) + dense(512, 1)
  v = _shape_init(models.get_model("mlp", 1, hidden=(64,), use_bias=False), (1, 30))
  assert models.count_params(v) == 30 * 64 + 64
  # Only W (k×d) is a parameter: the output layer is a constant.
  v = _shape_init(models.get_model("fixed_output_net", 1, hidden=40), (1, 20))
  assert models.count_params(v) == 40 * 20
  assert jax.tree.leaves(v["params"])[0].shape == (40, 20)
  v = _shape_init(models.get_model("patch_cnn", 1, width=7), (1, 2, 50))
  assert models.count_params(v) == 2 * 7 * 50


# ----------------------------------------------------------------------------
# Forward passes.


@pytest.mark.parametrize("name,shape,num_outputs", [
    ("mlp", (3, 5, 5, 1), 4),
    ("clean_priority_cnn", (3, 28, 28, 1), 10),
    ("early_stop_cnn", (2, 28, 28, 1), 10),
    ("lenet5", (3, 28, 28, 1), 10),
    ("resnet9", (2, 32, 32, 3), 10),
    ("resnet20", (2, 32, 32, 3), 10),
    ("wrn28_2", (2, 32, 32, 3), 100),
    ("fixed_output_net", (3, 12), 1),
    ("patch_cnn", (3, 2, 12), 1),
])
def test_output_shapes(name, shape, num_outputs):
  model = models.get_model(name, num_outputs)
  v = _shape_init(model, shape)
  out = jax.eval_shape(lambda v, x: model.apply(v, x, train=False), v, jnp.zeros(shape))
  assert out.shape == (shape[0], num_outputs)


def _unit_inputs(n, d, seed=1):
  x = jax.random.normal(jax.random.key(seed), (n, d))
  return x / jnp.linalg.norm(x, axis=1, keepdims=True)


def _rms(a):
  return float(jnp.sqrt(jnp.mean(a ** 2)))


def test_ntk_parameterization_gives_order_one_outputs_at_width_4096():
  x = _unit_inputs(64, 8)
  rms = {}
  for width in (256, 4096):  # eq. 7: h = vᵀσ(Ax)/√m
    model = models.get_model("mlp", 1, hidden=(width,), parameterization="ntk", use_bias=False)
    v = model.init(KEY, x[:1])
    rms[width] = _rms(model.apply(v, x))
    acts = models.hidden_activations(model, v, x)
    # E[ReLU(a·x)²] = ‖x‖²/2 = 1/2 for a ~ N(0, I), whatever the width.
    np.testing.assert_allclose(float(jnp.mean(acts["hidden_0"] ** 2)), 0.5, rtol=0.1)
  # Output variance E[v²]·‖x‖²/2: RMS ≈ 0.71, independent of the width.
  assert 0.3 < rms[4096] < 1.5, rms
  assert 0.5 < rms[4096] / rms[256] < 2.0, rms
  # Deeper: every hidden-to-hidden layer carries 1/√m, each ReLU halves E[h²]: RMS ≈ 0.35.
  deep = models.get_model("mlp", 1, hidden=(4096, 1024, 1024), parameterization="ntk",
                          use_bias=False)
  assert 0.15 < _rms(deep.apply(deep.init(KEY, x[:1]), x)) < 0.8
  # Without the 1/√m multiplier the same N(0, 1) weights blow up with the width.
  standard = models.get_model("mlp", 1, hidden=(4096,), parameterization="standard",
                              weight_init="normal", use_bias=False)
  assert _rms(standard.apply(standard.init(KEY, x[:1]), x)) > 20.0


def test_ntk_two_layer_matches_eq_7_by_hand():
  # h(x) = vᵀσ(Ax)/√m, with no multiplier on the input layer (clean-priority eq. 7).
  model = models.get_model("mlp", 1, hidden=(16,), parameterization="ntk", use_bias=False)
  x = _unit_inputs(4, 3)
  v = model.init(KEY, x)
  a_DxM = v["params"]["dense_0"]["kernel"]
  v_Mx1 = v["params"]["output"]["kernel"]
  expected = np.maximum(np.asarray(x) @ np.asarray(a_DxM), 0.0) @ np.asarray(v_Mx1) / 4.0
  np.testing.assert_allclose(model.apply(v, x), expected, rtol=1e-5, atol=1e-6)
  # ntk_scale_input adds 1/√d on the input layer (Jacot et al.): O(1) on raw 784-d inputs.
  raw = jax.random.normal(KEY, (64, 784))
  scaled = models.get_model("mlp", 1, hidden=(1024,), parameterization="ntk",
                            ntk_scale_input=True)
  assert 0.2 < _rms(scaled.apply(scaled.init(KEY, raw), raw)) < 3.0


def test_init_schemes_have_the_stated_scale():
  x = jnp.zeros((1, 784))
  params = models.get_model("mlp", 1, hidden=(512,), init="uniform_sqrt3").init(KEY, x)["params"]
  w = np.asarray(params["dense_0"]["kernel"])
  # U[−√3, √3] has unit variance and no fan-in scaling (misclassification §6).
  assert np.abs(w).max() <= math.sqrt(3.0) and np.abs(w).max() > 1.7
  np.testing.assert_allclose(w.var(), 1.0, rtol=0.02)
  assert np.abs(np.asarray(params["dense_0"]["bias"])).max() > 1.0
  params = models.get_model("mlp", 1, hidden=(512,)).init(KEY, x)["params"]  # "torch"
  w = np.asarray(params["dense_0"]["kernel"])
  assert np.abs(w).max() <= 1 / math.sqrt(784)
  np.testing.assert_allclose(w.var(), 1 / (3 * 784), rtol=0.02)


def test_fixed_output_net_by_hand():
  model = models.get_model("fixed_output_net", 1, hidden=4)
  x = jnp.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
  w_KxD = jnp.array([[1.0, 2.0], [-1.0, 3.0], [2.0, -5.0], [0.5, 0.5]])
  v = {"params": {"W": w_KxD}}
  # φ(Wx) for x = e1: [1, 0, 2, 0.5]; v = (½, ½, −½, −½): ½(1 + 0 − 2 − 0.5) = −0.75.
  # x = e2: [2, 3, 0, 0.5] → ½(5 − 0.5) = 2.25. x = (1, 1): [3, 2, 0, 1] → ½(5 − 1) = 2.
  np.testing.assert_allclose(model.apply(v, x), [[-0.75], [2.25], [2.0]], rtol=1e-6)
  pm_one = models.get_model("fixed_output_net", 1, hidden=4, output="pm_one")
  np.testing.assert_allclose(pm_one.apply(v, x), [[-1.5], [4.5], [4.0]], rtol=1e-6)
  acts = models.hidden_activations(model, v, x)
  np.testing.assert_allclose(acts["hidden"][0], [1.0, 0.0, 2.0, 0.5])
  # W₀ ~ U[−1, 1] (misclassification Thm 4).
  w0 = models.get_model("fixed_output_net", 1, hidden=200, init="uniform_pm1").init(
      KEY, jnp.zeros((1, 30)))["params"]["W"]
  assert float(jnp.abs(w0).max()) <= 1.0 and float(jnp.abs(w0).max()) > 0.95
  # Fan-in schemes use d (the input size), not k: lecun_normal has variance 1/d.
  w0 = models.get_model("fixed_output_net", 1, hidden=2000, init="lecun_normal").init(
      KEY, jnp.zeros((1, 50)))["params"]["W"]
  assert w0.shape == (2000, 50)
  np.testing.assert_allclose(float(jnp.var(w0)), 1 / 50, rtol=0.05)
  with pytest.raises(ConfigError, match=r"config\.model\.hidden=3"):
    models.get_model("fixed_output_net", 1, hidden=3).init(KEY, jnp.zeros((1, 2)))


def test_patch_cnn_by_hand():
  model = models.get_model("patch_cnn", 1, width=2)
  # W[0] = w_{+1,r}, W[1] = w_{−1,r}; m = 2 filters per class, D = 2.
  w = jnp.array([[[1.0, 0.0], [0.0, 1.0]], [[-1.0, 0.0], [1.0, 1.0]]])
  x = jnp.array([[[2.0, -1.0], [0.5, 3.0]]])  # one sample, patches (2, −1) and (0.5, 3)
  # F₊₁ = ½[ReLU(2) + ReLU(0.5) + ReLU(−1) + ReLU(3)] = ½·5.5 = 2.75
  # F₋₁ = ½[ReLU(−2) + ReLU(−0.5) + ReLU(1) + ReLU(3.5)] = ½·4.5 = 2.25
  out = model.apply({"params": {"W": w}}, x)
  np.testing.assert_allclose(out, [[0.5]], rtol=1e-6)
  acts = models.hidden_activations(model, {"params": {"W": w}}, x)
  assert acts["hidden"].shape == (1, 2, 2, 2)  # B × class × filter × patch
  w0 = models.get_model("patch_cnn", 1, width=50, sigma0=0.1).init(
      KEY, jnp.zeros((1, 2, 100)))["params"]["W"]
  np.testing.assert_allclose(float(jnp.std(w0)), 0.1, rtol=0.05)


# ----------------------------------------------------------------------------
# Hidden activations.


def test_hidden_activations_mlp_are_the_layers_of_the_forward_pass():
  model = models.get_model("mlp", 3, hidden=(5, 4), activation="leaky_relu")
  x = jax.random.normal(KEY, (6, 7))
  v = model.init(KEY, x)
  acts = models.hidden_activations(model, v, x)
  assert list(acts) == ["hidden_0", "hidden_1"]
  p = v["params"]
  pre0 = x @ p["dense_0"]["kernel"] + p["dense_0"]["bias"]
  np.testing.assert_allclose(acts["hidden_0"], np.where(pre0 > 0, pre0, 0.01 * pre0),
                             rtol=1e-5, atol=1e-6)
  assert acts["hidden_1"].shape == (6, 4)
  out = acts["hidden_1"] @ p["output"]["kernel"] + p["output"]["bias"]
  np.testing.assert_allclose(out, model.apply(v, x), rtol=1e-5, atol=1e-6)
  assert "intermediates" not in v  # init does not keep them


def test_hidden_activations_cnn_and_resnet20_layers():
  cnn = models.get_model("clean_priority_cnn", 10)
  x = jax.random.normal(KEY, (2, 28, 28, 1))
  v = cnn.init(KEY, x)
  acts = models.hidden_activations(cnn, v, x)
  assert {k: a.shape for k, a in acts.items()} == {
      "conv1_act": (2, 26, 26, 32), "conv2_act": (2, 24, 24, 64), "dense1_act": (2, 64)}
  assert all(float(a.min()) >= 0.0 for a in acts.values())  # post-ReLU
  p = v["params"]["output"]
  np.testing.assert_allclose(acts["dense1_act"] @ p["kernel"] + p["bias"], cnn.apply(v, x),
                             rtol=1e-4, atol=1e-5)
  resnet = models.get_model("resnet20", 10)
  x = jnp.zeros((2, 32, 32, 3))
  acts = jax.eval_shape(lambda v, x: models.hidden_activations(resnet, v, x),
                        _shape_init(resnet, x.shape), x)
  # stem + 9 blocks × (act1, out) + pooled features.
  assert len(acts) == 1 + 18 + 1
  # misclassification §6.4: the 4096-neuron penultimate layer is the last block's output.
  assert acts["stage3_block2/out"].shape == (2, 8, 8, 64)
  assert acts["features"].shape == (2, 64)
  wrn = models.get_model("wrn28_2", 10)
  acts = jax.eval_shape(lambda v, x: models.hidden_activations(wrn, v, x),
                        _shape_init(wrn, x.shape), x)
  assert len(acts) == 12 * 2 + 2 and acts["features"].shape == (2, 128)
  resnet9 = models.get_model("resnet9", 10)
  acts = jax.eval_shape(lambda v, x: models.hidden_activations(resnet9, v, x),
                        _shape_init(resnet9, x.shape), x)
  assert acts["res2b/act"].shape == (2, 4, 4, 256) and acts["features"].shape == (2, 1024)


# ----------------------------------------------------------------------------
# BatchNorm: eval mode is a per-sample function, train mode mixes the batch.


def test_eval_mode_batchnorm_is_per_sample():
  model = models.get_model("resnet20", 10)
  x = jax.random.normal(KEY, (3, 8, 8, 3))
  v = model.init(KEY, x)
  assert "batch_stats" in v
  # Non-trivial running statistics, as after training.
  v = dict(v, batch_stats=jax.tree.map(lambda s: s + 0.3, v["batch_stats"]))
  x_changed = x.at[0].set(x[0] * 3.0 + 1.0)  # another sample 0, same samples 1 and 2
  evaluate = lambda x: model.apply(v, x, train=False)  # eager: init compiled these ops
  out, out_changed = evaluate(x), evaluate(x_changed)
  np.testing.assert_allclose(out[1:], out_changed[1:], rtol=1e-5, atol=1e-6)
  assert not np.allclose(out[0], out_changed[0], atol=1e-3)
  # Train mode uses the batch's statistics: samples 1 and 2 change with sample 0.
  train = lambda x: model.apply(v, x, train=True, mutable=["batch_stats"])[0]
  assert not np.allclose(train(x)[1], train(x_changed)[1], atol=1e-3)


# ----------------------------------------------------------------------------
# Activations: one registry for models, theory modules and experiments.


def test_activation_registry_values():
  z = jnp.array([-2.0, 0.0, 3.0])
  np.testing.assert_allclose(models.activation_fn("leaky_relu")(z), [-0.02, 0, 3], rtol=1e-6)
  np.testing.assert_allclose(models.activation_fn("leaky_relu_0.1")(z), [-0.2, 0, 3], rtol=1e-6)
  np.testing.assert_allclose(models.activation_fn("linear")(z), z)
  np.testing.assert_allclose(models.activation_fn("softplus")(z), np.log1p(np.exp(z)), rtol=1e-6)
  np.testing.assert_allclose(models.activation_fn("gelu")(z), jax.nn.gelu(z))
  # The names the theory modules use (clusterable, pure_noise, ntk_angles) all exist.
  assert {"relu", "softplus", "tanh", "gelu", "leaky_relu_0.1", "linear"} <= set(models.ACTIVATIONS)
  with pytest.raises(ConfigError, match="model.activation"):
    models.activation_fn("swish")


# ----------------------------------------------------------------------------
# Registry errors.


def test_get_model_errors_name_the_field():
  with pytest.raises(ConfigError, match=r"config\.model\.name='resnet50'"):
    models.get_model("resnet50", 10)
  with pytest.raises(ConfigError, match=r"config\.model\.activation='swish'"):
    models.get_model("mlp", 10, activation="swish")
  with pytest.raises(ConfigError, match=r"config\.model\.config="):
    models.get_model("vgg16", 2, config="vgg11")     # the name fixes the configuration
  with pytest.raises(ConfigError, match=r"config\.model\.norm='layer'"):
    models.get_model("resnet20", 10, norm="layer")
  with pytest.raises(ConfigError, match=r"config\.model\.init='xavier'"):
    models.get_model("mlp", 10, init="xavier")
  with pytest.raises(ConfigError, match=r"config\.model\.depth=3"):
    models.get_model("lenet5", 10, depth=3)
  with pytest.raises(ConfigError, match=r"config\.model\.num_outputs=10"):
    models.get_model("patch_cnn", 10)
  assert set(models.MODELS) == {"mlp", "clean_priority_cnn", "resnet9", "resnet20", "wrn28_2",
                                "lenet5", "early_stop_cnn", "fixed_output_net", "patch_cnn",
                                "vgg11", "vgg13", "vgg16"}


def test_max_pool_matches_flax_values_and_gradients():
  import flax.linen as nn
  x = jax.random.normal(jax.random.key(0), (3, 25, 26, 4))  # odd sizes drop the last row
  flax_pool = lambda a: nn.max_pool(a, (2, 2), strides=(2, 2), padding="VALID")
  np.testing.assert_array_equal(models._max_pool(x), flax_pool(x))
  weights = jax.random.normal(jax.random.key(1), flax_pool(x).shape)
  grad = lambda pool: jax.grad(lambda a: jnp.sum(weights * pool(jax.nn.relu(a))))(x)
  np.testing.assert_array_equal(grad(models._max_pool), grad(flax_pool))


@pytest.mark.parametrize("kernel,strides,padding", [(3, 1, (0, 0)), (5, 2, (2, 1)), (2, 3, (1, 0))])
def test_conv_as_matmul_matches_lax_conv_values_and_gradients(kernel, strides, padding):
  x = jax.random.normal(jax.random.key(0), (2, 11, 10, 3))
  w = jax.random.normal(jax.random.key(1), (kernel, kernel, 3, 4))
  pads = (padding, padding[::-1])
  lax_conv = lambda x, w: jax.lax.conv_general_dilated(
      x, w, (strides, strides), pads, dimension_numbers=("NHWC", "HWIO", "NHWC"))
  ours = lambda x, w: models.conv_as_matmul(x, w, (strides, strides), pads)
  np.testing.assert_allclose(ours(x, w), lax_conv(x, w), rtol=1e-5, atol=1e-5)
  weights = jax.random.normal(jax.random.key(2), lax_conv(x, w).shape)
  grad = lambda conv: jax.grad(lambda x, w: jnp.sum(weights * conv(x, w)), (0, 1))(x, w)
  for ours_g, lax_g in zip(grad(ours), grad(lax_conv)):
    np.testing.assert_allclose(ours_g, lax_g, rtol=1e-4, atol=1e-4)
  with pytest.raises(ValueError, match="dilation"):
    models.conv_as_matmul(x, w, (1, 1), pads, rhs_dilation=(2, 2))


def test_two_conv_cnn_is_the_same_function_with_either_convolution():
  x = jax.random.normal(KEY, (4, 28, 28, 1))
  ours, xla = (models.get_model("clean_priority_cnn", 10, conv_as_matmul=m) for m in (True, False))
  v = ours.init(KEY, x[:1])
  assert jax.tree.map(jnp.shape, v) == jax.tree.map(jnp.shape, xla.init(KEY, x[:1]))
  np.testing.assert_allclose(ours.apply(v, x), xla.apply(v, x), rtol=1e-4, atol=1e-5)
