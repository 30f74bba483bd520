"""Reference implementations of the diagnostic step and a side-by-side timer.

What `experiments/bench_persample.py` times against `persample.make_diagnostic_step`, and
how: (a) `plain_step`, a jitted SGD step on the mean loss; (c) `torch_step`, the same
diagnostics with PyTorch `torch.func.vmap(grad)` on the same network with the same
weights (`torch_model`; the optional `bench` extra, `pip install torch==2.13.0`);
(d) `loop_step`, a Python loop of jitted per-sample `jax.grad` followed by the same
reductions. `interleaved_rounds` times several variants round by round in one process, so
ratios are measured side by side on a shared machine; `max_errors` compares their
outputs. Not imported by `noisejax.persample` itself (torch stays optional).
"""

import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

from noisejax.persample._base import materialized_grad_stats, single
from noisejax.persample._diagnostics import diagnostics
from noisejax.persample._subsets import class_subset_weights

# ----------------------------------------------------------------------------
# (a) plain step, (d) Python loop of jax.grad.


def plain_step(apply_fn, loss_fn, tx):
  """`step(params, opt_state, x_B, labels_B) -> (params, opt_state, loss)`, jitted."""
  def step(params, opt_state, x, labels):
    loss, grads = jax.value_and_grad(lambda p: loss_fn(apply_fn(p, x), labels).mean())(params)
    updates, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, loss
  return jax.jit(step)


def loop_step(apply_fn, loss_fn, tx, num_classes: int):
  """The diagnostic step from a Python loop of per-sample jax.grad (full and own-class
  single-logit gradients, eq. 13), then the same reductions and update."""
  one_sample = single(apply_fn)

  @jax.jit
  def grads_one(params, x, label, true):
    h, vjp = jax.vjp(lambda p: one_sample(p, x), params)
    r = jax.grad(lambda h: loss_fn(h[None], label[None])[0])(h)
    own = r if h.shape[0] == 1 else r * jax.nn.one_hot(true, h.shape[0], dtype=r.dtype)
    flat = lambda g: jnp.concatenate([v.ravel() for v in jax.tree.leaves(g)])
    return flat(vjp(r)[0]), flat(vjp(own)[0]), loss_fn(h[None], label[None])[0]

  @jax.jit
  def finish(params, opt_state, v0_BxP, v1_BxP, losses_B, labels, true):
    stats = materialized_grad_stats(jnp.stack([v0_BxP, v1_BxP]),
                                    class_subset_weights(true, labels, num_classes))
    leaves, treedef = jax.tree.flatten(params)
    sizes = np.cumsum([0] + [l.size for l in leaves])
    mean = v0_BxP.mean(0)
    grads = treedef.unflatten([mean[a:b].reshape(l.shape)
                               for a, b, l in zip(sizes[:-1], sizes[1:], leaves)])
    updates, opt_state = tx.update(grads, opt_state, params)
    metrics = diagnostics(stats, true, labels, num_classes)
    metrics["loss"] = losses_B.mean()
    return optax.apply_updates(params, updates), opt_state, metrics

  def step(params, opt_state, x, labels, true):
    rows = [grads_one(params, x[i], labels[i], true[i]) for i in range(len(x))]
    v0, v1, l = (jnp.stack(col) for col in zip(*rows))
    return finish(params, opt_state, v0, v1, l, labels, true)

  return step


# ----------------------------------------------------------------------------
# (c) torch.func on the identical network.


def import_torch():
  """The torch module, or None when it is not installed."""
  try:
    import torch  # pylint: disable=g-import-not-at-top
  except ImportError:
    return None
  return torch


def torch_model(torch, kind: str, params):
  """The clean-priority CNN ("cnn") or the 784-512-512-1 ReLU FCN ("fcn") in PyTorch
  (NCHW inside, flattened in Flax's NHWC order) with the Flax weights: conv HWIO → OIHW,
  dense (in, out) → (out, in). Returns (module, its parameters by name)."""
  nn, F = torch.nn, torch.nn.functional

  class CNN(nn.Module):
    def __init__(self):
      super().__init__()
      self.conv1, self.conv2 = nn.Conv2d(1, 32, 3), nn.Conv2d(32, 64, 3)
      self.dense1, self.output = nn.Linear(9216, 64), nn.Linear(64, 10)

    def forward(self, x_nhwc):
      h = F.relu(self.conv1(x_nhwc.permute(0, 3, 1, 2)))
      h = F.max_pool2d(F.relu(self.conv2(h)), 2)
      h = F.relu(self.dense1(h.permute(0, 2, 3, 1).reshape(h.shape[0], -1)))
      return self.output(h)

  class FCN(nn.Module):
    def __init__(self):
      super().__init__()
      self.dense_0, self.dense_1 = nn.Linear(784, 512), nn.Linear(512, 512)
      self.output = nn.Linear(512, 1)

    def forward(self, x):
      h = F.relu(self.dense_0(x.reshape(x.shape[0], -1)))
      return self.output(F.relu(self.dense_1(h)))

  module = CNN() if kind == "cnn" else FCN()
  weights = {}
  for layer, leaves in params.items():
    weights[f"{layer}.weight"] = torch.from_numpy(np.array(_to_torch_layout(leaves["kernel"])))
    weights[f"{layer}.bias"] = torch.from_numpy(np.array(leaves["bias"]))
  module.load_state_dict(weights)
  return module, {k: v.detach().clone() for k, v in module.named_parameters()}


def _to_torch_layout(kernel):
  kernel = np.asarray(kernel)
  return kernel.transpose(3, 2, 0, 1) if kernel.ndim == 4 else kernel.T


def torch_params_error(torch_params: dict, flax_params) -> float:
  """max |Δ| between the torch parameters and Flax parameters of the same network."""
  flat_t = np.concatenate([torch_params[f"{layer}.{p}"].numpy().ravel()
                           for layer in flax_params for p in ("bias", "weight")])
  flat_j = np.concatenate([(_to_torch_layout(flax_params[layer][p]) if p == "kernel" else
                            np.asarray(flax_params[layer][p])).ravel()
                           for layer in flax_params for p in ("bias", "kernel")])
  return float(np.max(np.abs(flat_t - flat_j)))


def torch_step(torch, module, kind: str, num_classes: int, lr: float):
  """torch.func: vmap(grad) of the per-sample loss (∇l_i) and of ⟨c_i, h(x_i)⟩ with
  c_i = r_{i,t_i} e_{t_i} (∇l_{t_i,i}, eq. 13), then the same reductions and SGD update.
  `step(params, x, labels, true) -> (new params, metrics)`."""
  from torch.func import functional_call, grad, vmap  # pylint: disable=g-import-not-at-top
  F = torch.nn.functional
  binary = kind != "cnn"

  def h_one(p, x):
    return functional_call(module, p, (x[None],))[0]

  def loss_one(p, x, y):
    h = h_one(p, x)
    if binary:
      return F.binary_cross_entropy_with_logits(h[0], y.to(h.dtype))
    return F.cross_entropy(h[None], y[None])

  def surrogate(p, x, c):
    return (c * h_one(p, x)).sum()

  def step(params, x, labels, true):
    with torch.no_grad():
      h = functional_call(module, params, (x,))
      if binary:
        r = torch.sigmoid(h) - labels[:, None].to(h.dtype)
        loss = F.binary_cross_entropy_with_logits(h[:, 0], labels.to(h.dtype))
      else:
        r = torch.softmax(h, -1) - F.one_hot(labels, num_classes).to(h.dtype)
        loss = F.cross_entropy(h, labels)
    b = x.shape[0]
    full = vmap(grad(loss_one), in_dims=(None, 0, 0))(params, x, labels)
    v0 = torch.cat([g.reshape(b, -1) for g in full.values()], 1)
    if binary:
      v1 = v0
    else:
      c = r * F.one_hot(true, num_classes).to(r.dtype)
      own = vmap(grad(surrogate), in_dims=(None, 0, 0))(params, x, c)
      v1 = torch.cat([g.reshape(b, -1) for g in own.values()], 1)
    with torch.no_grad():
      subset = 2 * true + (true != labels).long()
      w = F.one_hot(subset, 2 * num_classes).to(v1.dtype)
      s = w.T @ v1
      inner, gram = v1 @ s.T, s @ s.T
      norms_s = torch.sqrt(torch.clamp(torch.diagonal(gram), min=0))
      clean, noisy = norms_s[0::2], norms_s[1::2]
      norm0, norm1 = v0.norm(dim=1), v1.norm(dim=1)
      nan = torch.tensor(float("nan"), dtype=v1.dtype)
      angle = lambda cos, ok: torch.where(ok, torch.rad2deg(torch.arccos(torch.clamp(cos, -1, 1))), nan)
      inner_own = inner[torch.arange(b), 2 * true]
      metrics = {
          "grad_norms_B": norm0, "logit_grad_norms_B": norm1,
          "angle_to_clean_B": angle(inner_own / (norm1 * clean[true]), clean[true] > 0),
          "clean_norm_C": clean, "noise_norm_C": noisy,
          "clean_noise_ratio_C": torch.where(noisy > 0, clean / noisy, nan),
          "clean_noise_angle_C": angle(torch.diagonal(gram[0::2, 1::2]) / (clean * noisy),
                                       (clean > 0) & (noisy > 0)),
          "loss": loss,
      }
      mean = v0.mean(0)
      new, start = {}, 0
      for name, p in params.items():
        new[name] = p - lr * mean[start:start + p.numel()].reshape(p.shape)
        start += p.numel()
    return new, metrics

  return step


# ----------------------------------------------------------------------------
# Timing and agreement.


def timed(fn, *args):
  """(seconds, output) of one call, waiting for the result."""
  t0 = time.perf_counter()
  out = jax.block_until_ready(fn(*args))
  return time.perf_counter() - t0, out


def compiled(jitted, *args):
  """Compiles `jitted` for `args`; returns (compiled fn, seconds)."""
  t0 = time.perf_counter()
  fn = jitted.lower(*args).compile()
  return fn, time.perf_counter() - t0


def interleaved_rounds(variants: dict, *, min_rounds: int, max_rounds: int,
                       min_sample_seconds: float, budget_seconds: float):
  """Times every variant once per round, round after round, until max_rounds or (after
  min_rounds) the budget. Returns ({name: seconds per call, one per round}, {name: calls
  per round}).

  A variant faster than min_sample_seconds is called `number` times in a row per round
  (timeit-style) and its time divided by `number`, so timer and scheduling noise do not
  dominate millisecond steps.
  """
  numbers = {name: max(1, int(min_sample_seconds / max(timed(fn)[0], 1e-6)))
             for name, fn in variants.items()}
  times = {name: [] for name in variants}
  start = time.perf_counter()
  for r in range(max_rounds):
    if r >= min_rounds and time.perf_counter() - start > budget_seconds:
      break
    for name, fn in variants.items():
      t0 = time.perf_counter()
      for _ in range(numbers[name]):
        jax.block_until_ready(fn())
      times[name].append((time.perf_counter() - t0) / numbers[name])
  return times, numbers


def median_ratio(num, den) -> float:
  """The median of per-round ratios (side by side: both sides saw the same load)."""
  return float(np.median(np.asarray(num) / np.asarray(den)))


def max_errors(a: dict, b: dict) -> dict:
  """Max relative error of norms / ratios / loss and max |Δ cos θ| of the angles.

  Angles are compared through their cosines: near 0° or 180° arccos turns a float32
  rounding of 1e-7 in cos θ into ~0.03° (Δθ ≈ √(2 Δcos)). NaN in one and not the other
  gives infinite errors.
  """
  rel, cos = 0.0, 0.0
  for k in a:
    u, v = np.asarray(a[k], np.float64), np.asarray(b[k], np.float64)
    if np.any(np.isnan(u) != np.isnan(v)):
      return {"rel": float("inf"), "cos": float("inf")}
    u, v = u[~np.isnan(u)], v[~np.isnan(v)]
    if u.size == 0:
      continue
    if "angle" in k:
      cos = max(cos, float(np.max(np.abs(np.cos(np.radians(u)) - np.cos(np.radians(v))))))
    else:
      rel = max(rel, float(np.max(np.abs(u - v) / np.maximum(np.abs(v), 1e-6))))
  return {"rel": rel, "cos": cos}
