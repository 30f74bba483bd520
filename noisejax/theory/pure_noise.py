"""Pure label noise and misclassified samples (Cornacchia, Hazła, Nachum & Yehudayoff).

"Regularization by misclassification in ReLU neural networks". Everything here is a pure
jnp function of explicit weight arrays; long batch-1 SGD runs are `jax.lax.scan`s and
independent runs (seeds, learning rates, noise levels) one `jax.vmap`. These are theory
simulations (pure noise, hand-written nets); training a classifier on a data set with
the paper's per-step label noise is `train.train_classifier` with method "resample".

  Theorem 1   one SGD step on a misclassified sample lowers every layer's Frobenius norm
              (`theorem1_step`, `check_theorem1`, `theorem1_summary`).
  Theorem 2   a single neuron under pure label noise decays at a linear rate to an
              equilibrium of norm O(dh) (hinge) or O(d√h) (logistic) (`single_neuron_norms`,
              `single_neuron_summary`).
  Figs. 3–4   one hidden layer of ReLU neurons under pure noise, with and without bias
              (`hidden_layer_pure_noise`, `hidden_layer_summary`, `death_time_exponent`).
  Thms. 3–4   data uniform on the standard basis, output weights fixed to (1..1, −1..−1),
              hinge with β = 0 (`standard_basis_pure_noise`, `standard_basis_summary`).

Losses are the paper's 0-1 surrogates L(ξ) applied to ξ = −y·N(x) with y ∈ {±1}:
hinge L(ξ) = ReLU(β + ξ) and logistic L(ξ) = log(1 + e^ξ). Activations come from
`models.ACTIVATIONS` (Theorem 1 uses the homogeneous ones in `HOMOGENEOUS`).
"""

import functools
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from noisejax import models
from noisejax.errors import ConfigError, check_choice

SURROGATES = ("hinge", "logistic")
ARCHITECTURES = ("mlp", "conv")
# The homogeneous activations (σ'(z)·z = σ(z) off a finite set, Sec. 3) Theorem 1 is
# checked with: names in models.ACTIVATIONS, the paper's leaky ReLU has slope 0.1.
LEAKY_RELU = "leaky_relu_0.1"
HOMOGENEOUS = ("relu", LEAKY_RELU)


# ----------------------------------------------------------------------------------------
# Surrogate losses and activations.


def surrogate(name: str, beta: float = 0.0) -> Callable:
  """L(ξ) of Sec. 3: hinge ReLU(β + ξ) or logistic log(1 + e^ξ), with ξ = −y·N(x).

  Both are increasing, convex, with a positive right derivative at 0 (0-1 surrogates).
  """
  if name == "hinge":
    return lambda xi: jax.nn.relu(beta + xi)
  if name == "logistic":
    return jax.nn.softplus
  raise ConfigError("loss", name, SURROGATES)


def activation(name: str) -> Callable:
  """The homogeneous activation `name` of HOMOGENEOUS, from models.ACTIVATIONS."""
  return models.ACTIVATIONS[check_choice("activation", name, HOMOGENEOUS)]


def uniform_sqrt3(key, shape):
  """i.i.d. U[−√3, √3] (unit variance), the paper's initialization (Sec. 6): models'
  "uniform_sqrt3" scheme in the default float dtype (float64 under enable_x64)."""
  init, _ = models.initializers("uniform_sqrt3", 1)
  return init(key, shape, jnp.result_type(float))


# ----------------------------------------------------------------------------------------
# Theorem 1: a misclassified sample shrinks every layer.


def init_homogeneous_net(key, d: int, depth: int, width: int, architecture: str = "mlp"):
  """Weights of the eq. (2) network N(x) = W_k σ(… σ(W_1 x̃)), x̃ = (x, 1).

  Entries U[−√3, √3]/√fan_in (Theorem 1 holds for any weights). "mlp": dense layers of
  `width` units. "conv": a weight-shared first layer (a 1-D convolution of x̃ with
  `width` channels, kernel 3), then dense layers.
  """
  keys = jax.random.split(key, depth)
  if architecture == "mlp":
    dims = [d + 1] + [width] * (depth - 1) + [1]
    return [uniform_sqrt3(k, (n_out, n_in)) / np.sqrt(n_in)
            for k, n_in, n_out in zip(keys, dims[:-1], dims[1:])]
  if architecture == "conv":
    if depth < 2:
      raise ConfigError("depth", depth, reason="a conv net needs depth >= 2")
    kernel = uniform_sqrt3(keys[0], (3, 1, width)) / np.sqrt(3.0)
    dims = [(d + 1) * width] + [width] * (depth - 2) + [1]
    return [kernel] + [uniform_sqrt3(k, (n_out, n_in)) / np.sqrt(n_in)
                       for k, n_in, n_out in zip(keys[1:], dims[:-1], dims[1:])]
  raise ConfigError("architecture", architecture, ARCHITECTURES)


def homogeneous_net(weights, x_D, act: Callable, architecture: str = "mlp"):
  """N(x) of eq. (2), the bias folded into W_1 through x̃ = (x, 1); returns a scalar.

  Every layer enters linearly and σ is homogeneous, so N is 1-homogeneous in each W_l.
  """
  h = jnp.append(x_D, 1.0)
  layers = list(weights)
  if architecture == "conv":
    kernel = layers.pop(0)
    h_1xLx1 = h[None, :, None]
    h = jax.lax.conv_general_dilated(h_1xLx1, kernel, (1,), "SAME",
                                     dimension_numbers=("NWC", "WIO", "NWC"))
    h = act(h).reshape(-1)
  for w in layers[:-1]:
    h = act(w @ h)
  return (layers[-1] @ h)[0]


def theorem1_step(weights, x_D, y, *, loss, act, architecture: str = "mlp",
                  h_fractions=(0.5, 0.1, 0.01)):
  """One SGD step on (x, y): ‖W_l − hG_l‖² − ‖W_l‖² = −2h⟨W_l, G_l⟩ + h²‖G_l‖² per layer.

  Theorem 1 (and Du et al. 2018): ⟨W_l, G_l⟩ = L'(−yN)·(−y N(x)) for every layer l, which
  is > 0 when yN(x) < 0, so every norm drops for h < h_0 = min_l 2⟨W_l, G_l⟩/‖G_l‖².
  `loss` and `act` are names or callables. Returns the margin yN, the inner products,
  h_0 and the norm changes at h = f·h_0 for f in h_fractions.
  """
  sigma = activation(act) if isinstance(act, str) else act
  L = surrogate(loss) if isinstance(loss, str) else loss

  def objective(ws):
    return L(-y * homogeneous_net(ws, x_D, sigma, architecture))

  grads = jax.grad(objective)(weights)
  out = homogeneous_net(weights, x_D, sigma, architecture)
  inner_L = jnp.stack([jnp.vdot(w, g) for w, g in zip(weights, grads)])
  grad_sq_L = jnp.stack([jnp.vdot(g, g) for g in grads])
  h0 = jnp.min(2.0 * inner_L / grad_sq_L)
  # ‖W − hG‖² − ‖W‖² = −⟨hG, 2W − hG⟩, written without the cancellation of the difference.
  change_FxL = jnp.stack([
      jnp.stack([-jnp.vdot(f * h0 * g, 2 * w - f * h0 * g) for w, g in zip(weights, grads)])
      for f in h_fractions])
  predicted = jax.grad(L)(-y * out) * (-y * out)
  return dict(margin=y * out, inner=inner_L, predicted_inner=predicted, h0=h0,
              norm_change=change_FxL)


@functools.partial(jax.jit, static_argnames=("d", "depth", "width", "architecture", "num_nets"))
def _theorem1_grid(key, *, d: int, depth: int, width: int, architecture: str, num_nets: int):
  key_w, key_x = jax.random.split(key)
  acts = [activation(a) for a in HOMOGENEOUS]
  surrogates = [surrogate(name) for name in SURROGATES]

  def one(kw, kx, i_act, i_loss):  # the indices are data: one program for every pair
    act = lambda z: jax.lax.switch(i_act, acts, z)
    loss = lambda xi: jax.lax.switch(i_loss, surrogates, xi)
    weights = init_homogeneous_net(kw, d, depth, width, architecture)
    x_D = jax.random.normal(kx, (d,))
    y = -jnp.sign(homogeneous_net(weights, x_D, act, architecture))
    return theorem1_step(weights, x_D, y, loss=loss, act=act, architecture=architecture)

  nets = lambda i_act, i_loss: jax.vmap(one, in_axes=(0, 0, None, None))(
      jax.random.split(key_w, num_nets), jax.random.split(key_x, num_nets), i_act, i_loss)
  return jax.vmap(lambda i: jax.vmap(lambda j: nets(i, j))(jnp.arange(len(SURROGATES))))(
      jnp.arange(len(HOMOGENEOUS)))


def check_theorem1(key, *, d: int, depth: int, width: int, architecture: str = "mlp",
                   num_nets: int = 64):
  """Theorem 1 on `num_nets` random networks, each with a misclassified Gaussian sample.

  Every activation of HOMOGENEOUS × loss of SURROGATES, in float64 (the identities are
  exact; float32 cancellation in N(x) would blur them). The label is y = −sign N(x), so
  y·N(x) < 0 by construction. Returns {(act, loss): results of `theorem1_step` with a
  leading axis of num_nets}.
  """
  with jax.enable_x64(True):
    grid = _theorem1_grid(key, d=d, depth=depth, width=width, architecture=architecture,
                          num_nets=num_nets)
    grid = jax.tree.map(np.asarray, grid)
  return {(a, l): jax.tree.map(lambda v, i=i, j=j: v[i, j], grid)
          for i, a in enumerate(HOMOGENEOUS) for j, l in enumerate(SURROGATES)}


def theorem1_summary(results) -> list[dict]:
  """One row per (activation, loss) of `check_theorem1`'s results.

  A net whose ReLUs are all off on x outputs N(x) = 0: no sample is misclassified, so it
  is skipped (`dead_nets`). all_layers_shrink: the fraction of the others where every
  layer's norm drops at every h of `h_fractions`; max_balance_error: the largest
  relative deviation of ⟨W_l, G_l⟩ from L'(−yN)·(−yN) over layers and nets.
  """
  rows = []
  for (act, loss), r in results.items():
    valid = r["margin"] < 0
    r = {k: v[valid] for k, v in r.items()}
    balance = np.abs(r["inner"] - r["predicted_inner"][:, None]) / np.abs(
        r["predicted_inner"][:, None])
    rows.append(dict(
        activation=act, loss=loss, misclassified=int(valid.sum()),
        dead_nets=int((~valid).sum()),
        all_layers_shrink=float(np.mean(np.all(r["norm_change"] < 0, axis=(1, 2)))),
        max_balance_error=float(balance.max()), median_h0=float(np.median(r["h0"]))))
  return rows


# ----------------------------------------------------------------------------------------
# Theorem 2 / Fig. 2: a single neuron N(x) = V·x under pure label noise.


def _pure_noise_stream(key, steps: int, d: int):
  """x_t ~ N(0, I_d) and y_t uniform ±1 for `steps` steps (Definition 2)."""
  key_x, key_y = jax.random.split(key)
  x_TxD = jax.random.normal(key_x, (steps, d))
  y_T = jnp.where(jax.random.bernoulli(key_y, 0.5, (steps,)), 1.0, -1.0)
  return x_TxD, y_T


def single_neuron_step(v_D, sample, *, h: float, loss: str):
  """V ← V − h∇_V L(−y V·x) = V + h L'(−y V·x) y x (proof of Theorem 2)."""
  x_D, y = sample
  g = jax.grad(lambda v: surrogate(loss)(-y * jnp.dot(v, x_D)))(v_D)
  return v_D - h * g


@functools.partial(jax.jit, static_argnames=("d", "steps", "record_every", "loss"))
def single_neuron_norms(keys_S, h_H, *, d: int, steps: int, record_every: int, loss: str):
  """‖V_t‖ of one neuron under pure noise (x ~ N(0, I_d), y ~ U{±1}), Theorem 2 / Fig. 2.

  V_0 ~ U[−√3, √3]^d; vmapped over learning rates h_H and seeds keys_S.
  Returns norms_HxSxR at steps 0, record_every, …, steps (R = steps/record_every + 1).
  """
  num_records = steps // record_every

  def one(key, h):
    key_init, key_run = jax.random.split(key)
    v0 = uniform_sqrt3(key_init, (d,))
    step = functools.partial(single_neuron_step, h=h, loss=loss)

    def run_chunk(v, key_c):
      v, _ = jax.lax.scan(lambda p, s: (step(p, s), None), v,
                          _pure_noise_stream(key_c, record_every, d))
      return v, jnp.linalg.norm(v)

    _, norms = jax.lax.scan(run_chunk, v0, jax.random.split(key_run, num_records))
    return jnp.concatenate([jnp.linalg.norm(v0)[None], norms])

  return jax.vmap(lambda h: jax.vmap(lambda k: one(k, h))(keys_S))(h_H)


def single_neuron_rate(norm: float, loss: str, num_points: int = 20001):
  """First-order drift of ‖V‖ per step, divided by h: E_p[L'(−‖V‖p)·p], p ~ N(0, 1).

  p = y·V̂·x ~ N(0, 1) and E[Δ‖V‖] ≈ h·E[c_t] (proof of Theorem 2).
  For hinge this is −1/√(2π) ≈ −0.40 at any norm; logistic tends to it for large ‖V‖.
  """
  g = np.linspace(-8, 8, num_points)
  w = np.exp(-g ** 2 / 2) / np.sqrt(2 * np.pi)
  if loss == "hinge":
    lp = (-norm * g > 0).astype(float)
  else:
    lp = 1.0 / (1.0 + np.exp(norm * g))
  return float(np.trapezoid(lp * g * w, g))


def single_neuron_equilibrium(d: int, h: float, loss: str) -> float:
  """Stationary ‖V‖ of the small-h balance E[2hL'·yV·x] + h²E[L'²‖x‖²] = 0.

  Hinge: 2h‖V‖/√(2π) = h²d/2, so ‖V‖ = √(2π)·dh/4 ∝ dh (Theorem 2 (a)).
  Logistic (L' ≈ ½ + ξ/4): 2h‖V‖²/4 = h²d/4, so ‖V‖ = √(dh/2) ≤ d√h (Theorem 2 (b)).
  """
  if loss == "hinge":
    return float(np.sqrt(2 * np.pi) * d * h / 4)
  return float(np.sqrt(d * h / 2))


def linear_rate(norms_T, steps_T, start: float, stop: float):
  """Least-squares slope of ‖V‖ over the steps where start ≥ ‖V‖ ≥ stop (per step)."""
  norms_T, steps_T = np.asarray(norms_T), np.asarray(steps_T)
  mask = (norms_T <= start) & (norms_T >= stop)
  if mask.sum() < 3:
    return float("nan")
  return float(np.polyfit(steps_T[mask], norms_T[mask], 1)[0])


def single_neuron_summary(norms_HxSxR, steps_R, h_H, *, d: int, loss: str,
                          base: int) -> dict:
  """Theorem 2's quantities from `single_neuron_norms`' output, for one loss.

  equilibrium: mean ‖V‖ over seeds and the last quarter of the records, per h; its
  log-log slope in h (1 for hinge, ½ for logistic); the early linear rate (slope of the
  seed-mean ‖V‖ while 0.8√d ≥ ‖V‖ ≥ 0.3√d) at h_H[base], over h, with its prediction
  `single_neuron_rate(0.5√d)`.
  """
  h_H = np.asarray(h_H, np.float64)
  tail = norms_HxSxR[:, :, -len(steps_R) // 4:]
  eq = tail.mean(axis=(1, 2))
  rate = linear_rate(norms_HxSxR[base].mean(0), steps_R, 0.8 * np.sqrt(d), 0.3 * np.sqrt(d))
  return dict(
      h=h_H.tolist(), equilibrium=eq.tolist(),
      equilibrium_over_dh=(eq / (d * h_H)).tolist(),
      equilibrium_over_d_sqrt_h=(eq / (d * np.sqrt(h_H))).tolist(),
      predicted=[single_neuron_equilibrium(d, h, loss) for h in h_H],
      slope_in_h=float(np.polyfit(np.log(h_H), np.log(eq), 1)[0]),
      early_rate_over_h=float(rate / h_H[base]),
      predicted_early_rate_over_h=single_neuron_rate(0.5 * np.sqrt(d), loss))


# ----------------------------------------------------------------------------------------
# Figs. 3–4: one hidden layer N(x) = V·ReLU(Wx + b) + c.


def init_one_hidden_layer(key, d: int, width: int, num_outputs: int = 1, bias: bool = True):
  """Weights of N(x) = V·ReLU(Wx + b) + c, every entry i.i.d. U[−√3, √3] (Sec. 6).

  w: width×d, v: num_outputs×width; b (width) and c (num_outputs) only with `bias`.
  """
  k1, k2, k3, k4 = jax.random.split(key, 4)
  params = {"w": uniform_sqrt3(k1, (width, d)), "v": uniform_sqrt3(k2, (num_outputs, width))}
  if bias:
    params["b"] = uniform_sqrt3(k3, (width,))
    params["c"] = uniform_sqrt3(k4, (num_outputs,))
  return params


def hidden_preactivations(params, x_BxD):
  """Wx + b for a batch, B×width (the b only when the net has biases)."""
  z = x_BxD @ params["w"].T
  return z + params["b"] if "b" in params else z


def one_hidden_layer(params, x_BxD):
  """N(x) = V·ReLU(Wx + b) + c for a batch: outputs B×num_outputs (eq. (1), k = 2)."""
  out = jax.nn.relu(hidden_preactivations(params, x_BxD)) @ params["v"].T
  return out + params["c"] if "c" in params else out


def gaussian_active_fraction(params):
  """E_x A_N(x)/width for x ~ N(0, I): mean_i Φ(b_i/‖w_i‖) (Definition 1, in closed form).

  w_i·x + b_i ~ N(b_i, ‖w_i‖²), so neuron i fires with probability Φ(b_i/‖w_i‖).
  """
  norms = jnp.linalg.norm(params["w"], axis=1)
  if "b" not in params:
    return jnp.mean(jnp.where(norms > 0, 0.5, 0.0))
  z = params["b"] / jnp.maximum(norms, 1e-30)
  return jnp.mean(jax.scipy.stats.norm.cdf(z))


LAYERS = (("w", "b"), ("v", "c"))  # the two layers of one_hidden_layer, with their biases


def layer_norm_changes(params, grads, h: float):
  """‖W_l − hG_l‖² − ‖W_l‖² = −⟨hG_l, 2W_l − hG_l⟩ for each layer of LAYERS (Theorem 1),
  written without the cancellation of the difference: changes_L."""
  return jnp.stack([sum(-jnp.vdot(h * grads[k], 2 * params[k] - h * grads[k])
                        for k in layer if k in params) for layer in LAYERS])


def _binary_step(params, sample, *, h: float, loss: str):
  """One batch-1 step on L(−y N(x)), x a single input, y ∈ {±1}; also returns Theorem 1's
  test on it: (misclassified y·N(x) < 0, misclassified and every layer's norm dropped)."""
  x_D, y = sample
  margin, grads = jax.value_and_grad(
      lambda p: y * one_hidden_layer(p, x_D[None])[0, 0])(params)
  grads = jax.tree.map(lambda g: -jax.grad(surrogate(loss))(-margin) * g, grads)
  misclassified = margin < 0
  shrinks = misclassified & jnp.all(layer_norm_changes(params, grads, h) < 0)
  return jax.tree.map(lambda p, g: p - h * g, params, grads), (misclassified, shrinks)


def _hidden_record(params, num_tracked: int):
  record = {
      "w_norm": jnp.linalg.norm(params["w"]),
      "v_norm": jnp.linalg.norm(params["v"]),
      "active_fraction": gaussian_active_fraction(params),
      "misclassified_steps": jnp.int32(0), "shrinking_steps": jnp.int32(0),
  }
  if "b" in params:
    record["b_norm"] = jnp.linalg.norm(params["b"])
    record["b_mean"] = jnp.mean(params["b"])
    record["b_tracked"] = params["b"][:num_tracked]
    record["c"] = params["c"][0]
  return record


@functools.partial(jax.jit, static_argnames=(
    "d", "width", "bias", "loss", "steps", "record_every", "num_tracked"))
def hidden_layer_pure_noise(keys_S, h, *, d: int, width: int, bias: bool, loss: str,
                            steps: int, record_every: int, num_tracked: int = 8):
  """One hidden layer of ReLU neurons under pure label noise on N(0, I_d) (Figs. 3–4).

  Batch-1 SGD, V, W (and b, c with `bias`) all trained; vmapped over seeds keys_S.
  Returns (final params, records) with records[name] of shape S×R (R = steps/record_every
  + 1, record 0 the initialization): ‖W‖_F, ‖V‖, the Gaussian active fraction, the numbers
  of misclassified steps and of those on which every layer's norm dropped (Theorem 1 on
  the trained SGD, counted over the steps since the last record) and, with bias, ‖b‖,
  mean b, the first `num_tracked` biases and the output bias c.
  """
  num_records = steps // record_every

  def one(key):
    key_init, key_run = jax.random.split(key)
    params = init_one_hidden_layer(key_init, d, width, 1, bias)
    step = functools.partial(_binary_step, h=h, loss=loss)

    def run_chunk(p, key_c):
      p, (mis_T, shrinks_T) = jax.lax.scan(step, p, _pure_noise_stream(key_c, record_every, d))
      return p, {**_hidden_record(p, num_tracked), "misclassified_steps": jnp.sum(mis_T),
                 "shrinking_steps": jnp.sum(shrinks_T)}

    first = jax.tree.map(lambda a: a[None], _hidden_record(params, num_tracked))
    final, records = jax.lax.scan(run_chunk, params, jax.random.split(key_run, num_records))
    records = jax.tree.map(lambda a, b: jnp.concatenate([a, b]), first, records)
    return final, records, params

  final, records, initial = jax.vmap(one)(keys_S)
  return final, records, initial


def first_below(values_R, steps_R, threshold) -> float:
  """The first step at which values_R < threshold (inf if never)."""
  below = np.flatnonzero(np.asarray(values_R) < threshold)
  return float(np.asarray(steps_R)[below[0]]) if below.size else float("inf")


def hidden_layer_summary(final, records, initial, steps_R) -> dict:
  """Figs. 3–4's quantities from `hidden_layer_pure_noise`' output (numpy), seed means.

  Norm ratios final/initial, the first step with ‖W‖ < 10% of its initial value, the
  final Gaussian active fraction and, with bias, the fraction of biases below their
  initial value and the final mean bias.
  """
  w, v = records["w_norm"].mean(0), records["v_norm"].mean(0)
  summary = dict(
      w_norm_init=float(w[0]), w_norm_final=float(w[-1]), v_norm_init=float(v[0]),
      v_norm_final=float(v[-1]), w_ratio=float(w[-1] / w[0]), v_ratio=float(v[-1] / v[0]),
      steps_to_w_below_10pct=first_below(w, steps_R, 0.1 * w[0]),
      active_fraction_final=float(records["active_fraction"][:, -1].mean()))
  summary.update(theorem1_along_sgd(records))
  if "b" in final:
    summary["fraction_biases_decreased"] = float(np.mean(final["b"] < initial["b"]))
    summary["b_mean_final"] = float(records["b_mean"][:, -1].mean())
  return summary


def theorem1_along_sgd(records) -> dict:
  """Theorem 1 on the trained SGD of `hidden_layer_pure_noise` (numpy records): the
  fraction of misclassified steps on which every layer's norm dropped, per seed (S) and
  pooled, and pooled over the first tenth of the records (the decay phase)."""
  mis_SxR, shrink_SxR = records["misclassified_steps"], records["shrinking_steps"]
  tenth = max(2, mis_SxR.shape[1] // 10)
  return dict(shrink_fraction=float(shrink_SxR.sum() / max(mis_SxR.sum(), 1)),
              shrink_fraction_per_seed=(shrink_SxR.sum(1) / np.maximum(mis_SxR.sum(1), 1)
                                        ).tolist(),
              shrink_fraction_first_tenth=float(shrink_SxR[:, :tenth].sum()
                                                / max(mis_SxR[:, :tenth].sum(), 1)),
              misclassified_steps=int(mis_SxR.sum()))


def death_time(keys_S, h: float, *, d: int, width: int, budget: float,
               threshold: float = 0.1, records: int = 200) -> dict:
  """Steps until < `threshold` of a biased logistic hidden layer fires under pure noise.

  Runs budget/h² steps (logistic needs ≈27/h² at d = 30, measured), recording the
  seed-mean Gaussian active fraction `records` times.
  """
  steps = int(round(budget / h**2))
  every = max(1, steps // records)
  _, rec, _ = hidden_layer_pure_noise(keys_S, float(h), d=d, width=width, bias=True,
                                      loss="logistic", steps=steps, record_every=every)
  frac = np.asarray(rec["active_fraction"]).mean(0)
  t_death = first_below(frac, np.arange(len(frac)) * every, threshold)
  theorem1 = theorem1_along_sgd(jax.tree.map(np.asarray, rec))
  return dict(h=float(h), steps=steps, steps_to_death=t_death, steps_times_h2=t_death * h**2,
              active_fraction_final=float(frac[-1]),
              theorem1_shrink_fraction=theorem1["shrink_fraction"])


def death_time_exponent(rows, d: int):
  """(α, steps at h = 1/d², max |relative residual|): the log-log least-squares slope of
  `death_time` rows' steps in 1/h, the steps to death extrapolated from the smallest h
  measured, and how far the worst h lies off the fit ((nan, None, nan) if any run never
  died or there are fewer than 2 h)."""
  times = np.asarray([r["steps_to_death"] for r in rows])
  inv_h = 1.0 / np.asarray([r["h"] for r in rows])
  if not (np.all(np.isfinite(times)) and len(times) > 1):
    return float("nan"), None, float("nan")
  exponent, offset = np.polyfit(np.log(inv_h), np.log(times), 1)
  residual = float(np.max(np.abs(np.exp(offset) * inv_h**exponent / times - 1)))
  return float(exponent), float(times[-1] * (d**2 / inv_h[-1]) ** exponent), residual


# ----------------------------------------------------------------------------------------
# Theorems 3–4: data uniform on {e_1, …, e_d}, N(x) = V·ReLU(Wx), V = (1..1, −1..−1) fixed.


def basis_outputs(w_2kxD):
  """N(e_i) = V·ReLU(W e_i) = V·ReLU(W[:, i]) for every i: outputs_D.

  V = (1, …, 1, −1, …, −1) ∈ R^{2k}, models.FixedOutputNet's "pm_one" output.
  """
  return models.fixed_output_weights(w_2kxD.shape[0], "pm_one") @ jax.nn.relu(w_2kxD)


def standard_basis_step(w_2kxD, sample, *, h: float):
  """Hinge (β = 0) SGD step on (e_i, y), only W trained (Theorems 3–4): `fixed_output_step`
  at x = e_i. Misclassified (y·N(e_i) < 0): W[:, i] += h·y·V ⊙ 1[W[:, i] > 0]; else
  nothing. Other columns never move (the e_j are orthogonal)."""
  i, y = sample
  e_i = (jnp.arange(w_2kxD.shape[1]) == i).astype(w_2kxD.dtype)
  return fixed_output_step(w_2kxD, (e_i, y), h=h)[0]


def standard_basis_pure_noise(keys_S, h_H, *, k: int, d: int, steps: int, record_every: int):
  """Theorems 3–4: `fixed_output_pure_noise` on the data U{e_1, …, e_d}, evaluated on every
  e_i: returns (W_init, W_final) of shape H×S×2k×d and records (H×S×R) of max_i |N(e_i)|,
  the fraction of positive entries of W (active units over inputs), the fraction of
  inputs with every unit dead and the number of updates."""
  eye_DxD = jnp.eye(d)
  return fixed_output_pure_noise(keys_S, h_H, eye_DxD, eye_DxD, k=k, steps=steps,
                                 record_every=record_every)


def zero_coordinates(w_2kxD):
  """Number of zero coordinates of ReLU(W e_i) for each i: counts_D (Theorem 4)."""
  return jnp.sum(w_2kxD <= 0, axis=0)


def standard_basis_summary(k: int, h_H, num_small: int, w0_HxSx2kxD, w_HxSx2kxD,
                           records) -> list[dict]:
  """One row per h of `standard_basis_pure_noise`' output (numpy) for one k.

  The first `num_small` h are Theorem 4.2's h ≤ 1/k ("small"), h ≥ 1 is Theorem 4.1's
  ("large"). max_output_over_2kh: max_i |N(e_i)|/(2kh) at the end and over the last
  three records (Theorem 3 is about "eventually"); the zero coordinates of ReLU(W e_i):
  the fraction of inputs with all 2k dead, (max_i #zeros − k)/k after training and at
  initialization, and the mean fraction of zeros.
  """
  outs_HxSxD = np.abs(np.asarray(jax.vmap(jax.vmap(basis_outputs))(w_HxSx2kxD)))
  zeros_HxSxD = np.asarray(jax.vmap(jax.vmap(zero_coordinates))(w_HxSx2kxD))
  zeros0_HxSxD = np.asarray(jax.vmap(jax.vmap(zero_coordinates))(w0_HxSx2kxD))
  rows = []
  for j, h in enumerate(h_H):
    tail_max = records["max_abs_output"][j, :, -3:].max()
    rows.append(dict(
        k=k, h=float(h), regime=("small" if j < num_small else
                                 "large" if h >= 1 else "middle"),
        max_output_over_2kh=float(max(outs_HxSxD[j].max(), tail_max) / (2 * k * h)),
        fraction_inputs_all_dead=float(np.mean(zeros_HxSxD[j] == 2 * k)),
        max_excess_zeros_over_k=float((zeros_HxSxD[j].max() - k) / k),
        mean_zero_fraction=float(zeros_HxSxD[j].mean() / (2 * k)),
        init_max_excess_zeros_over_k=float((zeros0_HxSxD[j].max() - k) / k)))
  return rows


# ----------------------------------------------------------------------------------------
# Corollary 1: gradient flow with hinge (β = 0) never raises a layer's norm.


@functools.partial(jax.jit, static_argnames=("d", "depth", "width", "n", "steps",
                                             "record_every"))
def gradient_flow_norms(key, h: float, *, d: int, depth: int, width: int, n: int,
                        steps: int, record_every: int):
  """‖W_l(t)‖ under Ẇ = −∇_W E L (Cor. 1), hinge β = 0, Euler steps of size h (full batch).

  An eq. (2) MLP (`init_homogeneous_net`) on a fixed set of n points x ~ N(0, I_d) with
  uniform ±1 labels (pure noise: many stay misclassified). Run under enable_x64 for
  float64. Returns norms_RxL at t = 0, record_every·h, … and the per-step norm increases
  (max over steps of ‖W_l(t+1)‖ − ‖W_l(t)‖, per layer L).
  """
  key_w, key_x, key_y = jax.random.split(key, 3)
  weights = init_homogeneous_net(key_w, d, depth, width)
  x_NxD = jax.random.normal(key_x, (n, d))
  y_N = jnp.where(jax.random.bernoulli(key_y, 0.5, (n,)), 1.0, -1.0)
  act, L = activation("relu"), surrogate("hinge")

  def risk(ws):
    out_N = jax.vmap(lambda x: homogeneous_net(ws, x, act))(x_NxD)
    return jnp.mean(L(-y_N * out_N))

  norms = lambda ws: jnp.stack([jnp.linalg.norm(w) for w in ws])

  def step(carry, _):
    ws, worst_L = carry
    new = [w - h * g for w, g in zip(ws, jax.grad(risk)(ws))]
    return (new, jnp.maximum(worst_L, norms(new) - norms(ws))), None

  def chunk(carry, _):
    carry, _ = jax.lax.scan(step, carry, None, length=record_every)
    return carry, norms(carry[0])

  start = (weights, jnp.full((depth,), -jnp.inf))
  (_, worst_L), norms_RxL = jax.lax.scan(chunk, start, None, length=steps // record_every)
  return jnp.concatenate([norms(weights)[None], norms_RxL]), worst_L


# ----------------------------------------------------------------------------------------
# §6.3: the hand-built sparse network of the hypercube-boundary function.


def hypercube_sparse_net(d: int, eps: float):
  """§6.3's N(x) = W_2 ReLU(W_1 x + B) + b: W_1 = (I; −I) (2d×d), B = −(1 − ε/2),
  W_2 = 1 (2d), b = −0.5. Unit i fires iff x_i > 1 − ε/2, unit d + i iff −x_i > 1 − ε/2."""
  w1 = np.concatenate([np.eye(d), -np.eye(d)]).astype(np.float32)
  return dict(w1=w1, b1=np.full(2 * d, -(1 - eps / 2), np.float32),
              w2=np.ones(2 * d, np.float32), b2=np.float32(-0.5))


def sparse_net_outputs(net, x_NxD):
  """(N(x)_N, A_N(x)_N): the outputs and active-unit counts of `hypercube_sparse_net`."""
  hidden_Nx2d = jax.nn.relu(x_NxD @ net["w1"].T + net["b1"])
  return hidden_Nx2d @ net["w2"] + net["b2"], jnp.sum(hidden_Nx2d > 0, axis=1)


def hypercube_expected_active(d: int, eps: float) -> float:
  """E_x A_N(x) of `hypercube_sparse_net` on U(C_1): the face unit plus each of the other
  2(d − 1) units with P(x_j > 1 − ε/2) = ε/4, x_j ~ U[−1, 1]: 1 + (d − 1)ε/2 (0 on C_−1,
  where ‖x‖_∞ = 1 − ε < 1 − ε/2). The paper states dε."""
  return 1.0 + (d - 1) * eps / 2



# ----------------------------------------------------------------------------------------
# §5 after Theorem 4: MNIST under pure noise (W ~ U[−1, 1], V = (1..1, −1..−1) fixed).


def fixed_output_step(w_2kxD, sample, *, h: float):
  """Hinge (β = 0) step on (x, y), only W trained (Theorems 3–4 on any input): if
  y·N(x) < 0, W_j += h·y·V_j·x for every unit j with W_j·x > 0. Returns (W, updated)."""
  x_D, y = sample
  z = w_2kxD @ x_D
  v = models.fixed_output_weights(w_2kxD.shape[0], "pm_one")
  misclassified = y * (v @ jax.nn.relu(z)) < 0
  delta = jnp.where(misclassified, h * y, 0.0) * v * (z > 0)
  return w_2kxD + delta[:, None] * x_D[None, :], misclassified


@functools.partial(jax.jit, static_argnames=("k", "steps", "record_every"))
def fixed_output_pure_noise(keys_S, h_H, x_NxD, x_eval_ExD, *, k: int, steps: int,
                            record_every: int):
  """Theorem 4's network N(x) = V·ReLU(Wx) on data x_NxD (one sample drawn uniformly per
  step), pure noise ±1 labels.

  W_0 ~ U[−1, 1]^{2k×D} (the same per seed for every h), hinge β = 0; vmapped over h_H
  and seeds. Returns (W_init, W_final), H×S×2k×D, and records H×S×R (R =
  steps/record_every) on x_eval_ExD: max |N(x)|, the active fraction E_x A_N(x)/2k, the
  fraction of inputs on which every unit is dead ("dead_inputs") and the number of
  updates (misclassified steps) since the last record.
  """
  n = x_NxD.shape[0]
  v = models.fixed_output_weights(2 * k, "pm_one")

  def record(w):
    z_Ex2k = x_eval_ExD @ w.T
    return {"max_abs_output": jnp.max(jnp.abs(jax.nn.relu(z_Ex2k) @ v)),
            "active_fraction": jnp.mean(z_Ex2k > 0),
            "dead_inputs": jnp.mean(~jnp.any(z_Ex2k > 0, axis=1))}

  def one(key, h):
    key_init, key_run = jax.random.split(key)
    w0 = jax.random.uniform(key_init, (2 * k, x_NxD.shape[1]), minval=-1.0, maxval=1.0)

    def chunk(w, key_c):
      key_i, key_y = jax.random.split(key_c)
      i_T = jax.random.randint(key_i, (record_every,), 0, n)
      y_T = jnp.where(jax.random.bernoulli(key_y, 0.5, (record_every,)), 1.0, -1.0)
      w, updated_T = jax.lax.scan(
          lambda q, s: fixed_output_step(q, (x_NxD[s[0]], s[1]), h=h), w, (i_T, y_T))
      return w, {**record(w), "updates": jnp.sum(updated_T)}

    w_final, records = jax.lax.scan(chunk, w0, jax.random.split(key_run, steps // record_every))
    return w0, w_final, records

  return jax.vmap(lambda h: jax.vmap(lambda key: one(key, h))(keys_S))(h_H)
