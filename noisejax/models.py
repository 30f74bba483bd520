"""The papers' networks as Flax Linen modules: pure functions of explicit variables.

Every model is called as `model.apply(variables, x, train=False)` on a batch `x` (leading
batch axis B, always present) and returns the pre-activation outputs h of shape
B×num_outputs (binary models: B×1). Every post-activation hidden layer is recorded with
`self.sow("intermediates", name, act)`; `hidden_activations(model, variables, x)` returns
them as a flat dict `{"<module path>/<name>": array}` from the same forward pass.

Which architecture comes from where:
  MLP               clean-priority §3.1 eq. 6–7 (NTK parameterization), App. B (2×512 FCN);
                    misclassification §6 (U[−√3, √3] init, bias on/off).
  CleanPriorityCNN  clean-priority App. B (MNIST CNN).
  ResNet9           clean-priority App. B, footnote 4 (cbenitez81/Resnet9, model_rn.py).
  ResNet20          misclassification §6.4 (He et al. 2016 CIFAR ResNet-20, Idelbayev 2020).
  WRN28_2           stochastic-label-noise App. B.1 (the authors' networks/wideresnet.py).
  EarlyStopCNN      early-stopping Fig. 1 and 3 (the 4-layer CNN with 4.8M parameters).
  LeNet5            LeCun et al. 1998, ReLU/max-pool variant (a small reference CNN).
  FixedOutputNet    early-stopping eq. 2 (v = ±1/√k); misclassification Thms 3–4 (V = ±1).
  PatchCNN          label-noise feature learning (ICML 2025): two-layer ReLU patch CNN.
  VGG               label-noise feature learning, real-data check (the paper's public
                    code: VGG-11/13/16 with BatchNorm for 32×32 images).

BatchNorm and per-sample gradients. ResNet9, ResNet20, WRN28_2 and VGG have BatchNorm
(`norm="batch"`, the papers' architecture) and keep running statistics in
`variables["batch_stats"]`. With `train=False` BatchNorm normalizes with those running
statistics, so the network is a per-sample function: output i depends on x_i only, and
`vmap(grad)` over samples gives true sample-wise gradients. With `train=True` it uses the
batch's own mean and variance, which couples the samples: a "per-sample" gradient taken
through train-mode BN is not the gradient of that sample's loss. Per-sample gradient,
Jacobian and NTK code must therefore call models with `train=False`. The alternatives
`norm="group"` (GroupNorm, 8 groups, per-sample in both modes) and `norm="none"` change
the architecture and are for ablations only.

Initialization follows each paper's reference code (PyTorch defaults unless noted), see
`INITS`: "torch" is PyTorch's default for Linear/Conv (weight and bias U(±1/√fan_in)).
"""

import math
from typing import Any, Callable, Optional, Sequence

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from noisejax.errors import ConfigError

Array = Any

def _linear(z):
  return z


def _leaky_relu_0_1(z):
  return jax.nn.leaky_relu(z, negative_slope=0.1)


# The one registry of elementwise nonlinearities (models, theory modules, experiments).
ACTIVATIONS = {
    "relu": nn.relu,
    "leaky_relu": nn.leaky_relu,  # negative slope 0.01 (the Flax / PyTorch default)
    "leaky_relu_0.1": _leaky_relu_0_1,  # slope 0.1: misclassification (pure-noise) Sec. 3
    "linear": _linear,
    "softplus": nn.softplus,
    "tanh": jnp.tanh,
    "gelu": jax.nn.gelu,
    "mish": jax.nn.mish,  # x·tanh(softplus(x)), used by the clean-priority ResNet-9
}

INITS = ("torch", "lecun_normal", "he_normal", "glorot_uniform", "normal", "uniform_sqrt3",
         "uniform_pm1")
NORMS = ("batch", "group", "none")
PARAMETERIZATIONS = ("standard", "ntk")
FIXED_OUTPUTS = ("pm_inv_sqrt_k", "pm_one")

_TORCH_BN_EPS = 1e-5
_GROUPS = 8  # GroupNorm groups for norm="group"; divides every channel count used here


# ----------------------------------------------------------------------------
# Small helpers.


def activation_fn(name: str) -> Callable[[Array], Array]:
  """Returns the elementwise nonlinearity `name`; raises ConfigError if unknown."""
  if name not in ACTIVATIONS:
    raise ConfigError("model.activation", name, tuple(ACTIVATIONS))
  return ACTIVATIONS[name]


def _uniform(bound: float):
  def init(key, shape, dtype=jnp.float32):
    return jax.random.uniform(key, shape, dtype, -bound, bound)
  return init


def initializers(init: str, fan_in: int):
  """Returns (kernel_init, bias_init) of scheme `init` for a layer with this fan-in.

  torch: W, b ~ U(±1/√fan_in) (PyTorch Linear/Conv2d default); lecun_normal: Flax default,
  b = 0; he_normal: W ~ N(0, 2/fan_in), b = 0; glorot_uniform: Keras default, b = 0;
  normal: W, b ~ N(0, 1) (NTK parameterization, early-stopping W₀); uniform_sqrt3:
  W, b ~ U[−√3, √3] (misclassification §6, unit variance, no fan-in scaling; the bias is
  a column of W there, eq. 2); uniform_pm1: W, b ~ U[−1, 1] (misclassification Thm 4).
  """
  zeros = nn.initializers.zeros
  if init == "torch":
    u = _uniform(1.0 / math.sqrt(fan_in))
    return u, u
  if init == "lecun_normal":
    return nn.initializers.lecun_normal(), zeros
  if init == "he_normal":
    return nn.initializers.variance_scaling(2.0, "fan_in", "normal"), zeros
  if init == "glorot_uniform":
    return nn.initializers.glorot_uniform(), zeros
  if init == "normal":
    return nn.initializers.normal(1.0), nn.initializers.normal(1.0)
  if init == "uniform_sqrt3":
    return _uniform(math.sqrt(3.0)), _uniform(math.sqrt(3.0))
  if init == "uniform_pm1":
    return _uniform(1.0), _uniform(1.0)
  raise ConfigError("model.init", init, INITS)


def _check(field: str, value, choices):
  if value not in choices:
    raise ConfigError(f"model.{field}", value, choices)
  return value


def conv_as_matmul(lhs, rhs, window_strides, padding, *, lhs_dilation=None,
                   rhs_dilation=None, dimension_numbers=None, feature_group_count=1,
                   precision=None):
  """`lax.conv_general_dilated` for nn.Conv's NHWC × HWIO layout, as one matmul of the
  stacked shifted windows ("im2col") with the kernel reshaped to (kh·kw·C_in) × C_out.

  The same values up to float rounding. Measured on XLA CPU (2 cores), one SGD step:
  clean-priority CNN at batch 128 1.8× faster (XLA CPU's conv backward is slow), the
  early-stopping CNN 1.6×, LeNet-5 1.1×, ResNet-20 1.7× slower (thin 16-channel,
  padded convs): TwoConvCNN uses it."""
  del dimension_numbers  # nn.Conv's: NHWC inputs, HWIO kernel, NHWC outputs
  if any(d != 1 for d in (*(lhs_dilation or ()), *(rhs_dilation or ()))) or (
      feature_group_count != 1):
    raise ValueError("conv_as_matmul: no dilation, one feature group")
  kh, kw, c_in, c_out = rhs.shape
  x = jnp.pad(lhs, ((0, 0), *padding, (0, 0)))
  (sh, sw), (h, w) = window_strides, x.shape[1:3]
  ho, wo = (h - kh) // sh + 1, (w - kw) // sw + 1
  windows = [x[:, i:i + sh * (ho - 1) + 1:sh, j:j + sw * (wo - 1) + 1:sw, :]
             for i in range(kh) for j in range(kw)]  # (i, j, c) order: the kernel's
  return jax.lax.dot_general(jnp.concatenate(windows, axis=-1),
                             rhs.reshape(kh * kw * c_in, c_out), (((3,), (0,)), ((), ())),
                             precision=precision)


def _conv(x, features, kernel, *, name, init="torch", padding=0, strides=1, use_bias=True,
          as_matmul=False):
  """Conv2d with PyTorch-style symmetric integer padding (NHWC); `as_matmul`: computed by
  `conv_as_matmul` (same parameters, same values up to float rounding)."""
  fan_in = kernel * kernel * x.shape[-1]
  kernel_init, bias_init = initializers(init, fan_in)
  return nn.Conv(features, (kernel, kernel), strides=(strides, strides),
                 padding=((padding, padding), (padding, padding)), use_bias=use_bias,
                 kernel_init=kernel_init, bias_init=bias_init, name=name,
                 conv_general_dilated=conv_as_matmul if as_matmul else None)(x)


def _dense(x, features, *, name, init="torch", use_bias=True):
  kernel_init, bias_init = initializers(init, x.shape[-1])
  return nn.Dense(features, use_bias=use_bias, kernel_init=kernel_init,
                  bias_init=bias_init, name=name)(x)


def _norm(x, kind, train, *, name, momentum=0.9):
  """BatchNorm (PyTorch eps, Flax momentum = 1 − torch momentum), GroupNorm or identity."""
  _check("norm", kind, NORMS)
  if kind == "batch":
    return nn.BatchNorm(use_running_average=not train, momentum=momentum,
                        epsilon=_TORCH_BN_EPS, name=name)(x)
  if kind == "group":
    return nn.GroupNorm(num_groups=_GROUPS, epsilon=_TORCH_BN_EPS, name=name)(x)
  return x


def _max_pool(x, size=2):
  """size×size max-pool, stride size, VALID: nn.max_pool's values, as a max over reshaped
  windows, whose backward pass is a select where reduce_window's is a select_and_scatter
  (XLA CPU: an 18% faster training step of the clean-priority CNN). In exact arithmetic
  the gradients are nn.max_pool's wherever a window's maximum is unique (after a ReLU,
  ties are zeros, whose gradient the ReLU stops); compiled into a whole model they differ
  by float rounding (≤ 3e-6 relative, clean-priority CNN and LeNet-5), which moves long
  trainings' trajectories as any change of fusion does."""
  b, h, w, c = x.shape
  x = x[:, :h // size * size, :w // size * size]
  return x.reshape(b, h // size, size, w // size, size, c).max(axis=(2, 4))


def _flatten(x):
  return x.reshape(x.shape[0], -1)


def _check_single_output(model_name, num_outputs):
  if num_outputs != 1:
    raise ConfigError("model.num_outputs", num_outputs,
                      reason=f"{model_name} has one scalar output f; use num_outputs=1")


# ----------------------------------------------------------------------------
# Fully connected networks.


class _Linear(nn.Module):
  """h = c·W x + b with c = 1/√fan_in (NTK parameterization) or c = 1 (standard)."""
  features: int
  use_bias: bool
  weight_init: str
  ntk_multiplier: bool

  @nn.compact
  def __call__(self, x_BxD):
    fan_in = x_BxD.shape[-1]
    kernel_init, bias_init = initializers(self.weight_init, fan_in)
    kernel_DxF = self.param("kernel", kernel_init, (fan_in, self.features))
    h_BxF = x_BxD @ kernel_DxF
    if self.ntk_multiplier:
      h_BxF = h_BxF / math.sqrt(fan_in)
    if self.use_bias:
      h_BxF = h_BxF + self.param("bias", bias_init, (self.features,))
    return h_BxF


class MLP(nn.Module):
  """Fully connected net x ↦ W_L σ(… σ(W_1 x + b_1) …) + b_L of any depth and width.

  parameterization="ntk" is clean-priority §3.1: every parameter ~ N(0, 1) and an explicit
  1/√m on each layer whose input is a hidden layer of width m, e.g. eq. 7
  h(x) = vᵀσ(Ax)/√m. As in eq. 6–7 the input layer carries no multiplier (the paper feeds
  unit-norm x); set `ntk_scale_input=True` for Jacot et al.'s 1/√d on the input layer as
  well (needed for O(1) outputs on raw high-dimensional inputs). With parameterization=
  "standard" there is no multiplier and `weight_init` alone sets the scale (default "torch";
  misclassification §6 uses "uniform_sqrt3"). Inputs are flattened to B×D.
  Hidden activations are sown as "hidden_0", "hidden_1", ….
  """
  num_outputs: int = 10
  hidden: Sequence[int] = (512, 512)
  activation: str = "relu"
  use_bias: bool = True
  parameterization: str = "standard"
  weight_init: Optional[str] = None  # None: "normal" for ntk, "torch" for standard
  ntk_scale_input: bool = False

  @nn.compact
  def __call__(self, x, train: bool = False):
    del train
    _check("parameterization", self.parameterization, PARAMETERIZATIONS)
    act = activation_fn(self.activation)
    ntk = self.parameterization == "ntk"
    init = self.weight_init or ("normal" if ntk else "torch")
    h = _flatten(x)
    for i, width in enumerate(self.hidden):
      h = _Linear(width, self.use_bias, init, ntk and (i > 0 or self.ntk_scale_input),
                  name=f"dense_{i}")(h)
      h = act(h)
      self.sow("intermediates", f"hidden_{i}", h)
    ntk_out = ntk and (len(self.hidden) > 0 or self.ntk_scale_input)
    return _Linear(self.num_outputs, self.use_bias, init, ntk_out, name="output")(h)


class FixedOutputNet(nn.Module):
  """One hidden layer, only W trains: f(W, x) = vᵀφ(Wx), v a fixed constant (not a param).

  output="pm_inv_sqrt_k": v = (1/√k, …, 1/√k, −1/√k, …) (early-stopping eq. 2, W₀ ~ N(0,1));
  output="pm_one": V = (1, …, 1, −1, …, −1) (misclassification Thms 3–4, W₀ ~ U[−1, 1]).
  The param "W" has shape k×d (rows = neurons, as in the papers); no biases.
  k = `hidden` must be even. Hidden activations φ(Wx) are sown as "hidden".
  """
  hidden: int = 1000
  output: str = "pm_inv_sqrt_k"
  activation: str = "relu"
  weight_init: str = "normal"
  num_outputs: int = 1

  @nn.compact
  def __call__(self, x, train: bool = False):
    del train
    _check_single_output("FixedOutputNet", self.num_outputs)
    _check("output", self.output, FIXED_OUTPUTS)
    if self.hidden <= 0 or self.hidden % 2:
      raise ConfigError("model.hidden", self.hidden, reason="must be a positive even number")
    x_BxD = _flatten(x)
    kernel_init, _ = initializers(self.weight_init, x_BxD.shape[-1])
    # Fan-in based schemes read the fan-in from axis −2, so draw Wᵀ (d×k) and transpose.
    init_t = lambda key, shape, dtype=jnp.float32: kernel_init(key, shape[::-1], dtype).T
    w_KxD = self.param("W", init_t, (self.hidden, x_BxD.shape[-1]))
    hidden_BxK = activation_fn(self.activation)(x_BxD @ w_KxD.T)
    self.sow("intermediates", "hidden", hidden_BxK)
    return (hidden_BxK @ fixed_output_weights(self.hidden, self.output))[:, None]


def fixed_output_weights(k: int, output: str = "pm_inv_sqrt_k"):
  """The constant output layer of FixedOutputNet: first k/2 entries +c, last k/2 −c."""
  c = 1.0 / math.sqrt(k) if _check("output", output, FIXED_OUTPUTS) == "pm_inv_sqrt_k" else 1.0
  return jnp.concatenate([jnp.full((k // 2,), c), jnp.full((k - k // 2,), -c)])


class PatchCNN(nn.Module):
  """Two-layer ReLU CNN on patches: f = F₊₁ − F₋₁, F_j = (1/m)Σ_r Σ_p ReLU(⟨w_{j,r}, x_p⟩).

  Label-noise feature learning (ICML 2025, details.md "Model"). Input B×P×D (P = 2
  patches: x⁽¹⁾ = yμ, x⁽²⁾ = ξ); filters shared across patches; the param "W" has shape
  2×m×D with W[0] = w_{+1,r} and W[1] = w_{−1,r}, init N(0, σ₀²); the second layer
  (±1/m) is fixed. Output B×1. Sown "hidden": ReLU(⟨w_{j,r}, x_p⟩), shape B×2×m×P.
  """
  width: int = 20  # m, filters per class
  sigma0: float = 0.01
  num_outputs: int = 1

  @nn.compact
  def __call__(self, x_BxPxD, train: bool = False):
    del train
    _check_single_output("PatchCNN", self.num_outputs)
    if x_BxPxD.ndim != 3:
      raise ValueError(f"PatchCNN expects B×P×D patches, got shape {x_BxPxD.shape}")
    d = x_BxPxD.shape[-1]
    w_2xMxD = self.param("W", nn.initializers.normal(self.sigma0), (2, self.width, d))
    hidden_Bx2xMxP = nn.relu(jnp.einsum("jmd,bpd->bjmp", w_2xMxD, x_BxPxD))
    self.sow("intermediates", "hidden", hidden_Bx2xMxP)
    f_Bx2 = hidden_Bx2xMxP.sum(axis=(2, 3)) / self.width
    return (f_Bx2[:, 0] - f_Bx2[:, 1])[:, None]


# ----------------------------------------------------------------------------
# Small CNNs for MNIST.


class TwoConvCNN(nn.Module):
  """conv → conv (3×3 valid, stride 1, ReLU) → 2×2 max-pool → dense (ReLU) → outputs.

  conv_as_matmul: the convolutions as im2col matmuls (`conv_as_matmul`, faster on XLA
  CPU); False: XLA's convolution (e.g. cuDNN's on a GPU). The same parameters either way."""
  num_outputs: int = 10
  conv_features: tuple = (32, 64)
  dense_features: int = 64
  weight_init: str = "torch"
  conv_as_matmul: bool = True

  @nn.compact
  def __call__(self, x, train: bool = False):
    del train
    h = x
    for i, features in enumerate(self.conv_features, start=1):
      h = nn.relu(_conv(h, features, 3, name=f"conv{i}", init=self.weight_init,
                        as_matmul=self.conv_as_matmul))
      self.sow("intermediates", f"conv{i}_act", h)
    h = nn.relu(_dense(_flatten(_max_pool(h)), self.dense_features, name="dense1",
                       init=self.weight_init))
    self.sow("intermediates", "dense1_act", h)
    return _dense(h, self.num_outputs, name="output", init=self.weight_init)


class CleanPriorityCNN(TwoConvCNN):
  """Clean-priority App. B MNIST CNN: conv32 → conv64 (3×3, stride 1) → max-pool → 64 → 10.

  The paper gives channels, kernel, stride, one max-pool, dense 64 and 10; unstated
  details follow the standard PyTorch MNIST example it matches: no padding, ReLU, 2×2
  max-pool after both convs, PyTorch default init. On 28×28×1: 609,354 parameters.
  """
  conv_features: tuple = (32, 64)
  dense_features: int = 64
  weight_init: str = "torch"


class EarlyStopCNN(TwoConvCNN):
  """Early-stopping Fig. 1 CNN: conv64 → conv128 → max-pool → 256 → 10 (4.8M parameters).

  The paper gives widths 64, 128, 256, 10 and "4.8 million trainable parameters";
  3×3 valid convolutions with one 2×2 max-pool (the Keras MNIST CNN it trains with
  Adadelta) give exactly 4,795,914 on 28×28×1 (5×5 kernels would give 3.5M, padded
  3×3 kernels 6.5M). ReLU, Keras default init (Glorot uniform, zero bias); no dropout.
  """
  conv_features: tuple = (64, 128)
  dense_features: int = 256
  weight_init: str = "glorot_uniform"


class LeNet5(nn.Module):
  """LeNet-5 (LeCun et al. 1998) for 28×28 inputs: conv6 5×5 (pad 2) → pool → conv16 5×5
  → pool → 120 → 84 → 10, with ReLU and max-pooling. 61,706 parameters on 28×28×1.

  Note: the early-stopping paper's Fig. 3 "LENET" is "the same model used in Figure 1",
  i.e. EarlyStopCNN; this class is the classic LeNet-5.
  """
  num_outputs: int = 10
  weight_init: str = "torch"

  @nn.compact
  def __call__(self, x, train: bool = False):
    del train
    h = nn.relu(_conv(x, 6, 5, padding=2, name="conv1", init=self.weight_init))
    self.sow("intermediates", "conv1_act", h)
    h = nn.relu(_conv(_max_pool(h), 16, 5, name="conv2", init=self.weight_init))
    self.sow("intermediates", "conv2_act", h)
    h = _flatten(_max_pool(h))
    for name, width in (("dense1", 120), ("dense2", 84)):
      h = nn.relu(_dense(h, width, name=name, init=self.weight_init))
      self.sow("intermediates", f"{name}_act", h)
    return _dense(h, self.num_outputs, name="output", init=self.weight_init)


# ----------------------------------------------------------------------------
# ResNets for CIFAR.


class _ConvBlock(nn.Module):
  """ResNet-9 conv_block: conv 3×3 (pad 1, bias) → norm → activation [→ max-pool 2]."""
  features: int
  pool: bool
  norm: str
  activation: str

  @nn.compact
  def __call__(self, x, train):
    h = _conv(x, self.features, 3, padding=1, name="conv")
    h = activation_fn(self.activation)(_norm(h, self.norm, train, name="norm"))
    self.sow("intermediates", "act", h)
    return _max_pool(h) if self.pool else h


class ResNet9(nn.Module):
  """Clean-priority CIFAR-10 ResNet-9 (App. B, footnote 4: cbenitez81/Resnet9 model_rn.py).

  conv64 → conv128+pool → res(128, 128) → conv256+pool → conv256+pool → res(256, 256)
  → max-pool 2 → flatten (2·2·256 = 1024 on 32×32) → linear. Each conv is 3×3, pad 1,
  with bias, BatchNorm and Mish, PyTorch default init. This is the paper's reference, not
  the Page (2018) DAWNBench net (ReLU, no conv bias, 512 channels, pooling head).
  2,449,418 parameters (10 classes, 32×32×3).
  """
  num_outputs: int = 10
  norm: str = "batch"
  activation: str = "mish"

  @nn.compact
  def __call__(self, x, train: bool = False):
    def block(h, features, pool, name):
      return _ConvBlock(features, pool, self.norm, self.activation, name=name)(h, train)

    h = block(x, 64, False, "conv1")
    h = block(h, 128, True, "conv2")
    h = block(block(h, 128, False, "res1a"), 128, False, "res1b") + h
    h = block(h, 256, True, "conv3")
    h = block(h, 256, True, "conv4")
    h = block(block(h, 256, False, "res2a"), 256, False, "res2b") + h
    features = _flatten(_max_pool(h))
    self.sow("intermediates", "features", features)
    return _dense(features, self.num_outputs, name="classifier")


class _BasicBlock(nn.Module):
  """He et al. CIFAR basic block, option A shortcut (strided identity + zero channels)."""
  features: int
  strides: int
  norm: str

  @nn.compact
  def __call__(self, x, train):
    h = _conv(x, self.features, 3, padding=1, strides=self.strides, use_bias=False,
              init="he_normal", name="conv1")
    h = nn.relu(_norm(h, self.norm, train, name="norm1"))
    self.sow("intermediates", "act1", h)
    h = _conv(h, self.features, 3, padding=1, use_bias=False, init="he_normal", name="conv2")
    h = _norm(h, self.norm, train, name="norm2")
    shortcut = x
    if self.strides != 1 or x.shape[-1] != self.features:
      pad = (self.features - x.shape[-1]) // 2
      shortcut = jnp.pad(x[:, ::self.strides, ::self.strides, :],
                         ((0, 0), (0, 0), (0, 0), (pad, self.features - x.shape[-1] - pad)))
    h = nn.relu(h + shortcut)
    self.sow("intermediates", "out", h)
    return h


class ResNet20(nn.Module):
  """He et al. (2016) CIFAR ResNet-20 as in Idelbayev (2020), used by misclassification §6.4.

  conv16 → 3 stages × 3 basic blocks (16, 32, 64 channels, stride 2 at stages 2–3, option A
  shortcuts) → global average pool → linear. Convs without bias, Kaiming-normal init
  (fan-in); 269,722 parameters (10 classes). The last block's output ("stage3_block2/out",
  8·8·64 = 4096 units on 32×32) is the paper's 4096-neuron "penultimate layer".
  """
  num_outputs: int = 10
  norm: str = "batch"

  @nn.compact
  def __call__(self, x, train: bool = False):
    h = _conv(x, 16, 3, padding=1, use_bias=False, init="he_normal", name="stem")
    h = nn.relu(_norm(h, self.norm, train, name="stem_norm"))
    self.sow("intermediates", "stem_act", h)
    for stage, features in enumerate((16, 32, 64)):
      for i in range(3):
        strides = 2 if (stage > 0 and i == 0) else 1
        h = _BasicBlock(features, strides, self.norm,
                        name=f"stage{stage + 1}_block{i}")(h, train)
    features = h.mean(axis=(1, 2))
    self.sow("intermediates", "features", features)
    kernel_init, _ = initializers("he_normal", features.shape[-1])
    _, bias_init = initializers("torch", features.shape[-1])
    return nn.Dense(self.num_outputs, kernel_init=kernel_init, bias_init=bias_init,
                    name="classifier")(features)


class _WideBasic(nn.Module):
  """Pre-activation wide block: norm → ReLU → conv3×3 → norm → ReLU → conv3×3(stride) + sc."""
  features: int
  strides: int
  norm: str

  @nn.compact
  def __call__(self, x, train):
    h = nn.relu(_norm(x, self.norm, train, name="norm1"))
    self.sow("intermediates", "act1", h)
    h = _conv(h, self.features, 3, padding=1, name="conv1")
    h = nn.relu(_norm(h, self.norm, train, name="norm2"))
    self.sow("intermediates", "act2", h)
    h = _conv(h, self.features, 3, padding=1, strides=self.strides, name="conv2")
    shortcut = x
    if self.strides != 1 or x.shape[-1] != self.features:
      shortcut = _conv(x, self.features, 1, strides=self.strides, name="shortcut")
    return h + shortcut


class WRN28_2(nn.Module):  # pylint: disable=invalid-name
  """Wide-ResNet-28-2 (Zagoruyko & Komodakis 2016) as in the SLN authors' wideresnet.py.

  conv16 → 3 groups × 4 pre-activation wide blocks (32, 64, 128 channels; stride 2 on
  the second conv of the first block of groups 2–3; 1×1 conv shortcut when the shape
  changes) → BN → ReLU → global average pool → linear. All convs have bias; PyTorch
  default init; no dropout. The final BN uses torch momentum 0.9 as in that code (Flax
  momentum 0.1). 1,469,642 parameters (10 classes).
  """
  num_outputs: int = 10
  norm: str = "batch"

  @nn.compact
  def __call__(self, x, train: bool = False):
    h = _conv(x, 16, 3, padding=1, name="stem")
    for group, features in enumerate((32, 64, 128)):
      for i in range(4):
        strides = 2 if (group > 0 and i == 0) else 1
        h = _WideBasic(features, strides, self.norm, name=f"group{group + 1}_block{i}")(h, train)
    h = nn.relu(_norm(h, self.norm, train, name="final_norm", momentum=0.1))
    self.sow("intermediates", "final_act", h)
    features = h.mean(axis=(1, 2))
    self.sow("intermediates", "features", features)
    return _dense(features, self.num_outputs, name="classifier")


# ----------------------------------------------------------------------------
# VGG for CIFAR.

# VGG configurations (Simonyan & Zisserman 2015), CIFAR variant of the feature-learning
# paper's public code: 3×3 convs (pad 1) with BatchNorm and ReLU, 2×2 max-pools ("M"),
# global average pool, then 512 → 4096 → 4096 → outputs.
VGG_CONFIGS = {
    "vgg11": (64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"),
    "vgg13": (64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"),
    "vgg16": (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M",
              512, 512, 512, "M"),
}


class VGG(nn.Module):
  """VGG with BatchNorm for 32×32 images, as in the feature-learning paper's public code.

  Conv 3×3 (pad 1) → BN → ReLU blocks and 2×2 max-pools per `VGG_CONFIGS[config]`, global
  average pool, classifier 512 → 4096 → ReLU → 4096 → ReLU → num_outputs. Init as that
  code: convs Kaiming-normal (fan_out), linears N(0, 0.01²), biases 0. Its classifier's
  dropout layers are left out: `noisejax.train` steps carry no dropout key. Registered as
  "vgg11", "vgg13", "vgg16"; VGG-16: 33,613,890 parameters (2 classes).
  """
  config: str = "vgg16"
  num_outputs: int = 2

  @nn.compact
  def __call__(self, x, train: bool = False):
    _check("config", self.config, tuple(VGG_CONFIGS))
    conv_init = nn.initializers.variance_scaling(2.0, "fan_out", "normal")
    dense_init = nn.initializers.normal(0.01)
    h = x
    conv = 0
    for item in VGG_CONFIGS[self.config]:
      if item == "M":
        h = _max_pool(h)
        continue
      conv += 1
      h = nn.Conv(item, (3, 3), padding=1, kernel_init=conv_init, name=f"conv{conv}")(h)
      h = nn.relu(_norm(h, "batch", train, name=f"bn{conv}"))
      self.sow("intermediates", f"conv{conv}_act", h)
    h = h.mean(axis=(1, 2))
    for k in (1, 2):
      h = nn.relu(nn.Dense(4096, kernel_init=dense_init, name=f"dense{k}")(h))
      self.sow("intermediates", f"dense{k}_act", h)
    return nn.Dense(self.num_outputs, kernel_init=dense_init, name="output")(h)


# ----------------------------------------------------------------------------
# Registry and helpers.

_REGISTRY = {
    "mlp": MLP,
    "clean_priority_cnn": CleanPriorityCNN,
    "resnet9": ResNet9,
    "resnet20": ResNet20,
    "wrn28_2": WRN28_2,
    "lenet5": LeNet5,
    "early_stop_cnn": EarlyStopCNN,
    "fixed_output_net": FixedOutputNet,
    "patch_cnn": PatchCNN,
    **{name: VGG for name in VGG_CONFIGS},
}
MODELS = tuple(_REGISTRY)
_FIXED = {name: {"config": name} for name in VGG_CONFIGS}  # fields the name sets

_CHOICES = {"activation": tuple(ACTIVATIONS), "weight_init": INITS, "norm": NORMS,
            "parameterization": PARAMETERIZATIONS, "output": FIXED_OUTPUTS}


def get_model(name: str, num_outputs: int, **kwargs) -> nn.Module:
  """Builds model `name` with `num_outputs` outputs; kwargs set its other fields.

  `init=` is accepted as an alias of the field `weight_init` (a Linen Module cannot have a
  field named `init`). Raises ConfigError for an unknown name, an option the model does
  not have, or an option value outside its choices.
  """
  if name not in _REGISTRY:
    raise ConfigError("model.name", name, MODELS)
  cls = _REGISTRY[name]
  alias = "init" if "init" in kwargs else "weight_init"
  if "init" in kwargs:
    kwargs["weight_init"] = kwargs.pop("init")
  fixed = _FIXED.get(name, {})
  fields = [f for f in cls.__dataclass_fields__
            if f not in ("parent", "name", "num_outputs", *fixed)]
  for key, value in kwargs.items():
    field = alias if key == "weight_init" else key
    if key not in fields:
      raise ConfigError(f"model.{field}", value, fields, reason=f"not an option of model {name!r}")
    if key in _CHOICES and not (key == "weight_init" and value is None):
      _check(field, value, _CHOICES[key])
  if name in ("fixed_output_net", "patch_cnn"):
    _check_single_output(cls.__name__, num_outputs)
  return cls(num_outputs=num_outputs, **fixed, **kwargs)


def apply_with_activations(model: nn.Module, variables, x, train: bool = False):
  """(outputs, {"<path>/<name>": post-activation array}) of one forward pass.

  Runs the same `model.apply` as training with the "intermediates" collection mutable, so
  the activations are exactly those that produce the outputs. Keys are in layer order.
  """
  variables = {k: v for k, v in variables.items() if k != "intermediates"}
  mutable = ["intermediates"]
  if train and "batch_stats" in variables:
    mutable.append("batch_stats")
  outputs, state = model.apply(variables, x, train=train, mutable=mutable)
  flat = flax.traverse_util.flatten_dict(flax.core.unfreeze(state["intermediates"]), sep="/")
  return outputs, {k: v[0] for k, v in flat.items()}


def hidden_activations(model: nn.Module, variables, x, train: bool = False) -> dict:
  """Post-activation hidden layers of one forward pass: {"<path>/<name>": array}
  (`apply_with_activations` without the outputs)."""
  return apply_with_activations(model, variables, x, train)[1]


def count_params(params) -> int:
  """Number of scalar parameters (accepts `params` or a full `variables` dict)."""
  if isinstance(params, (dict, flax.core.FrozenDict)) and "params" in params:
    params = params["params"]
  return int(sum(np.prod(leaf.shape, dtype=np.int64) for leaf in jax.tree.leaves(params)))
