"""Training a classifier on (noisy) labels: optimizer, state, the step, evaluation, the loop.

`train_classifier(config, splits, key=...)` is the one entry point. It builds the model,
loss, optimizer and training method named in `config` (a training config of
`noisejax.config`: `model`, `loss`, `optim`, optionally `method`), trains and evaluates,
and returns the final state with its history. Given R keys instead of one it trains R
independent runs in one compiled program (vmapped): each run has its own
initialization, data order and step keys, and, where `splits` carry a leading run axis,
its own labels (its own label-noise draw) or inputs. Nothing here knows about workdirs:
logging, checkpoints and progress bars come in as `log_fn`, `checkpoint_dir` and
`progress`, so a Colab cell trains with none of them.

The loop (`fit`) keeps the training data on the device. The steps between two
evaluations run as one `lax.scan`: batch indices come from per-epoch permutations
`permutation(fold_in(k_shuffle, epoch), n)` and step keys from `fold_in(k_step, step)`,
both on the device, so the data order and the noise of a step depend only on the key and
the step number: a run resumed from a checkpoint continues exactly as an uninterrupted
one. The label-noise rate, the seed, the learning rate and the method's hyperparameters
are data, not compile-time constants, so one compiled program serves every run of the
same shapes. NaN/Inf losses stop the run between two scans, keeping the last good
checkpoint; evaluation and the optional `eval_fn` also run between scans.

Devices: training is data-parallel over all devices of all processes (`spec.mesh`, a
1-D "batch" mesh of `noisejax.distributed`). The data and the state are replicated
global arrays, each step's batch is split over the mesh inside the compiled step (XLA
all-reduces the gradient; several vmapped runs split their batch axis the same way),
and every output the host reads is replicated. A batch size that is not a multiple of
the device count trains replicated (every device the whole batch), with a warning. On
one device this is the same program: results do not depend on the device count beyond
float reassociation. Evaluation runs replicated on every device.
"""

import dataclasses
import functools
import math
import os
import warnings
from typing import Any, Callable, Optional, Sequence

import flax
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from jax.sharding import NamedSharding, PartitionSpec

from noisejax import data as data_lib
from noisejax import distributed, losses, methods, models, sparsity
from noisejax.errors import ConfigError, NonFiniteLossError

OPTIMIZERS = ("sgd", "momentum", "adam", "adadelta")
SCHEDULES = ("constant", "cosine", "step")
EVAL_CHUNK = 1000  # samples per forward pass in evaluation


def steps_per_epoch(num_train: int, batch_size: int) -> int:
  """Optimizer steps per epoch; batch_size 0 means full batch. The last partial batch of
  an epoch is dropped (every step has the same shape)."""
  batch_size = batch_size or num_train
  if batch_size > num_train:
    raise ConfigError("optim.batch_size", batch_size,
                      reason=f"exceeds the {num_train} training samples")
  return num_train // batch_size


# ----------------------------------------------------------------------------
# Optimizer: the learning rate is a leaf of the optimizer state (data, not a constant).


def _direction(optim) -> optax.GradientTransformation:
  """The update direction of optimizer `optim.name`, before the learning rate."""
  name = optim.get("name", "sgd")
  if name == "sgd":
    return optax.identity()
  if name == "momentum":
    return optax.trace(decay=optim.get("momentum", 0.9), nesterov=optim.get("nesterov", False))
  if name == "adam":
    return optax.scale_by_adam()
  if name == "adadelta":  # Keras defaults, as used by the early-stopping paper's Fig. 1
    return optax.scale_by_adadelta(rho=optim.get("rho", 0.95), eps=optim.get("eps", 1e-7))
  raise ConfigError("optim.name", name, OPTIMIZERS)


def _relative_schedule(optim, steps_per_epoch_: int):
  """The learning-rate schedule divided by its initial value (None: constant)."""
  name = optim.get("schedule", "constant")
  if name == "constant":
    return None
  if name == "cosine":
    return optax.cosine_decay_schedule(1.0, max(1, optim.epochs * steps_per_epoch_))
  if name == "step":
    return optax.exponential_decay(
        1.0, transition_steps=max(1, optim.get("decay_every", 1) * steps_per_epoch_),
        decay_rate=optim.get("decay_factor", 0.5), staircase=True)
  raise ConfigError("optim.schedule", name, SCHEDULES)


def make_optimizer(optim, steps_per_epoch_: int) -> optax.GradientTransformation:
  """SGD / momentum / Adam / Adadelta with coupled weight decay and a learning-rate schedule.

  Weight decay is added to the gradient (wd·w), as in PyTorch's SGD. The update is
  −lr·schedule(t)·direction; lr sits in the optimizer state (`set_learning_rate`).
  """
  parts = []
  if optim.get("weight_decay", 0.0):
    parts.append(optax.add_decayed_weights(optim.weight_decay))
  parts.append(_direction(optim))
  schedule = _relative_schedule(optim, steps_per_epoch_)
  if schedule is not None:
    parts.append(optax.scale_by_schedule(schedule))
  parts.append(optax.inject_hyperparams(optax.scale)(step_size=-float(optim.lr)))
  return optax.chain(*parts)


def set_learning_rate(opt_state, lr):
  """The optimizer state of `make_optimizer` with learning rate `lr` (a float or array)."""
  *rest, scale = opt_state
  hyper = dict(scale.hyperparams, step_size=-jnp.asarray(lr, jnp.float32))
  return (*rest, scale._replace(hyperparams=hyper))


# ----------------------------------------------------------------------------
# What a compiled program depends on, and the state it carries.


def _frozen(value):
  if isinstance(value, (ml_collections.ConfigDict, dict)):
    return tuple(sorted((k, _frozen(v)) for k, v in dict(value).items()))
  if isinstance(value, (list, tuple)):
    return tuple(_frozen(v) for v in value)
  return value


@dataclasses.dataclass(frozen=True)
class Spec:
  """Everything the compiled step and evaluation depend on; hashable, compared by value.

  The learning rate, the method's hyperparameters, the seed and the labels are not in
  here: they are data, so equal specs share one compiled program.
  """
  model: Any                    # a Flax module (hashable by value)
  num_classes: int
  loss: tuple                   # (name, ((hyperparameter, value), ...)): the training loss
  optim: tuple                  # the optim config, frozen, without its learning rate
  method: methods.Method
  augment: str
  num_train: int
  batch_size: int
  steps_per_epoch: int
  input_shape: tuple = ()       # one sample's shape
  mesh: Any = dataclasses.field(default_factory=distributed.batch_mesh)  # all devices
  eval_loss: Optional[tuple] = None  # the loss evaluation reports (default: `loss`)
  # A layer whose active units evaluation reports, from the same forward passes: E_x A_N(x)
  # and E_x A_N(x)/units on train and test (misclassification Definition 1; None: not).
  eval_activity: Optional[str] = None

  def loss_fn(self) -> Callable:
    """The training loss; it takes integer labels or soft targets (B×C)."""
    name, hparams = self.loss
    return losses.make_loss(name, self.num_classes, **dict(hparams))

  def probabilities(self, state, x_N, *, average: bool = False):
    """Eval-mode class probabilities on x_N of the model evaluation reports, or of its
    average (jit-able; for the methods' epoch hooks, which cannot import this module)."""
    variables_ = average_network(self, state) if average else first_network(self, state)
    return classify(predict_outputs(self, variables_, x_N))[1]

  def eval_loss_fn(self) -> Callable:
    """The loss evaluation reports, on hard labels (config `eval_loss`, default `loss`)."""
    name, hparams = self.eval_loss or self.loss
    return losses.make_loss(name, self.num_classes, **dict(hparams))

  def optimizer(self, lr: float = 1.0) -> optax.GradientTransformation:
    return make_optimizer(ml_collections.ConfigDict(dict(self.optim, lr=lr)),
                          self.steps_per_epoch)


# The optim fields the compiled step depends on (the others only drive the loop).
_STEP_FIELDS = ("name", "momentum", "nesterov", "rho", "eps", "weight_decay", "schedule",
                "decay_every", "decay_factor")


def num_outputs(model_config, loss_name: str, num_classes: int) -> int:
  """One output for the binary losses (logistic, hinge), else C; `model.num_outputs`
  overrides (e.g. a squared loss on ±1 targets)."""
  explicit = model_config.get("num_outputs") if hasattr(model_config, "get") else None
  if explicit:
    return int(explicit)
  return 1 if loss_name in losses.BINARY else num_classes


def build_model(model_config, num_outputs_: int):
  kwargs = {k: (tuple(v) if isinstance(v, list) else v) for k, v in model_config.items()
            if k not in ("name", "num_outputs")}
  return models.get_model(model_config.name, num_outputs_, **kwargs)


def _loss_spec(loss_cfg, num_classes: int) -> tuple:
  hparams = tuple(sorted((k, v) for k, v in loss_cfg.items() if k != "name"))
  losses.make_loss(loss_cfg.name, num_classes, **dict(hparams))  # validates
  return loss_cfg.name, hparams


def make_spec(config, num_classes: int, num_train: int, input_shape) -> Spec:
  """The Spec of training config `config` (model, loss, optim, method, optionally
  eval_loss and eval_activity) on this data."""
  loss_cfg = config.loss
  eval_loss = (_loss_spec(config.eval_loss, num_classes) if config.get("eval_loss")
               else None)
  model = build_model(config.model, num_outputs(config.model, loss_cfg.name, num_classes))
  method_cfg = config.get("method") or ml_collections.ConfigDict({"name": "erm"})
  method = methods.get_method(method_cfg.name)
  method.hparams({k: v for k, v in method_cfg.items() if k != "name"})  # validates
  optim = config.optim
  batch = optim.batch_size or num_train
  spe = steps_per_epoch(num_train, batch)
  augment = optim.get("augment", "none")
  if augment not in data_lib.AUGMENTATIONS:
    raise ConfigError("optim.augment", augment, tuple(data_lib.AUGMENTATIONS))
  _relative_schedule(optim, spe), _direction(optim)  # validates name and schedule
  step_fields = _STEP_FIELDS + (("epochs",) if optim.get("schedule") == "cosine" else ())
  frozen_optim = tuple((k, v) for k, v in _frozen(optim) if k in step_fields)
  mesh = distributed.batch_mesh()
  if batch % mesh.size:
    warnings.warn(f"optim.batch_size={batch} is not a multiple of the {mesh.size} devices: "
                  "every device computes the whole batch (no data parallelism)", stacklevel=2)
  return Spec(model, num_classes, _loss_spec(loss_cfg, num_classes), frozen_optim, method,
              augment, num_train, batch, spe, tuple(input_shape), mesh, eval_loss,
              config.get("eval_activity"))


@flax.struct.dataclass
class TrainState:
  """One run's (or, with a leading run axis, R runs') training state.

  params / batch_stats / opt_state have a leading network axis when the method trains
  several networks together. `average` is the EMA model {"params", "batch_stats"}
  (methods with average=True), `targets` the per-sample target table N×C and
  `sample_weights` the per-sample loss weights N (methods with those `tables`),
  `hparams` the method's hyperparameters.
  """
  step: jax.Array
  params: Any
  batch_stats: Any
  opt_state: Any
  hparams: dict
  average: Any = None
  targets: Any = None
  sample_weights: Any = None


def variables(params, batch_stats=None) -> dict:
  return {"params": params} if batch_stats is None else {"params": params,
                                                          "batch_stats": batch_stats}


def init_state(spec: Spec, key, x_example, *, lr: float, hparams=None) -> TrainState:
  """Initializes the model on `x_example` (any batch size) with its optimizer state."""
  method = spec.method

  def one_network(k):
    v = spec.model.init(k, jnp.asarray(x_example), train=False)
    tx = spec.optimizer(lr)
    return v["params"], v.get("batch_stats"), tx.init(v["params"])

  if method.networks == 1:
    params, stats, opt_state = one_network(key)
  else:
    params, stats, opt_state = jax.vmap(one_network)(jax.random.split(key, method.networks))
  average = (jax.tree.map(jnp.copy, {"params": params, "batch_stats": stats})
             if method.average else None)  # a copy: the state's buffers are donated
  return TrainState(step=jnp.zeros((), jnp.int32), params=params, batch_stats=stats,
                    opt_state=opt_state, hparams=method.hparams(hparams), average=average)


# ----------------------------------------------------------------------------
# The step.


def _forward(spec: Spec, params, batch_stats, x, *, train: bool):
  if batch_stats is None:
    return spec.model.apply({"params": params}, x, train=train), None
  if not train:
    return spec.model.apply(variables(params, batch_stats), x, train=False), batch_stats
  outputs, updates = spec.model.apply(variables(params, batch_stats), x, train=True,
                                      mutable=["batch_stats"])
  return outputs, updates["batch_stats"]


def train_step(spec: Spec, state: TrainState, x_B, labels_B, index_B, key):
  """One optimizer step of `spec.method` on a batch; returns (state, loss)."""
  method = spec.method
  key_target, key_augment = jax.random.split(key)
  if spec.augment != "none":
    x_B = data_lib.AUGMENTATIONS[spec.augment](key_augment, x_B)
  targets = labels_B if state.targets is None else state.targets[index_B]
  if method.targets is not None:
    targets = method.targets(key_target, targets, spec.num_classes, state.hparams)
  loss_fn = spec.loss_fn()
  epoch = state.step / spec.steps_per_epoch
  key_output = jax.random.fold_in(key, 3)

  def per_sample_losses(outputs):
    losses_B = loss_fn(outputs, targets)
    if method.output_noise is not None:
      losses_B = losses_B + method.output_noise(key_output, outputs, state.hparams)
    if state.sample_weights is not None:
      losses_B = losses_B * state.sample_weights[index_B]
    return losses_B

  def objective(params):
    if method.networks == 1:
      outputs, stats = _forward(spec, params, state.batch_stats, x_B, train=True)
      losses_B = per_sample_losses(outputs)
      if method.weights is None:
        return losses_B.mean(), stats
      w_B = method.weights(jax.lax.stop_gradient(losses_B)[None], state.hparams, epoch)[0]
      return jnp.sum(w_B * losses_B) / jnp.maximum(jnp.sum(w_B), 1e-12), stats
    forward = lambda p, s: _forward(spec, p, s, x_B, train=True)
    outputs, stats = jax.vmap(forward)(params, state.batch_stats)
    losses_NxB = jax.vmap(per_sample_losses)(outputs)
    w_NxB = (jnp.ones_like(losses_NxB) if method.weights is None else
             method.weights(jax.lax.stop_gradient(losses_NxB), state.hparams, epoch))
    per_network = jnp.sum(w_NxB * losses_NxB, -1) / jnp.maximum(jnp.sum(w_NxB, -1), 1e-12)
    return per_network.sum(), stats  # network r's gradient is that of its own term

  (loss, stats), grads = jax.value_and_grad(objective, has_aux=True)(state.params)
  if method.grad_noise is not None:
    grads = method.grad_noise(jax.random.fold_in(key, 2), grads, state.hparams,
                              spec.batch_size)
  tx = spec.optimizer()
  if method.networks == 1:
    updates, opt_state = tx.update(grads, state.opt_state, state.params)
  else:
    updates, opt_state = jax.vmap(tx.update)(grads, state.opt_state, state.params)
  params = optax.apply_updates(state.params, updates)
  average = state.average
  if average is not None:  # θ' ← αθ' + (1 − α)θ, parameters and BatchNorm statistics
    alpha = state.hparams["ema_decay"]
    average = jax.tree.map(lambda a, p: alpha * a + (1 - alpha) * p, average,
                           {"params": params, "batch_stats": stats})
  state = state.replace(step=state.step + 1, params=params, batch_stats=stats,
                        opt_state=opt_state, average=average)
  return state, loss


def _permutations(spec: Spec, keys, first_step, num_steps: int):
  """The data order of every epoch that steps first_step .. first_step + num_steps − 1
  touch: permutation(fold_in(k_shuffle, epoch), n), E×N, and the first such epoch."""
  first_epoch = first_step // spec.steps_per_epoch
  num_epochs = num_steps // spec.steps_per_epoch + 2
  perms_ExN = jax.vmap(lambda e: jax.random.permutation(
      jax.random.fold_in(keys["shuffle"], first_epoch + e), spec.num_train))(
          jnp.arange(num_epochs))
  return perms_ExN, first_epoch


def _step_at(spec: Spec, state, data, keys, perms, step):
  """Training step number `step`: its batch from the epoch's permutation, its key."""
  perms_ExN, first_epoch = perms
  epoch, position = jnp.divmod(step, spec.steps_per_epoch)
  idx_B = jax.lax.dynamic_slice(perms_ExN[epoch - first_epoch],
                                (position * spec.batch_size,), (spec.batch_size,))
  split = distributed.batch_sharding(spec.mesh, spec.batch_size)
  x_B, labels_B, idx_B = jax.lax.with_sharding_constraint(
      (data["x"][idx_B], data["labels"][idx_B], idx_B), split)
  return train_step(spec, state, x_B, labels_B, idx_B, jax.random.fold_in(keys["step"], step))


def _replicated(spec: Spec, tree):
  """`tree` whole on every device of the mesh (what the host and the next call read)."""
  return jax.lax.with_sharding_constraint(tree, NamedSharding(spec.mesh, PartitionSpec()))


def _run_steps(spec: Spec, state, data, keys, first_step, num_steps: int):
  """`num_steps` steps of one run from `first_step`, as one lax.scan; (state, losses_T)."""
  perms = _permutations(spec, keys, first_step, num_steps)
  return jax.lax.scan(lambda st, t: _step_at(spec, st, data, keys, perms, t), state,
                      first_step + jnp.arange(num_steps))


def _over_runs(fn, axes, *args):
  """fn(state, data, keys, *rest) for one run, or vmapped over runs (`axes` given)."""
  if axes is None:
    return fn(*args)
  rest = (None,) * (len(args) - 3)
  return jax.vmap(fn, in_axes=(0, dict(axes), 0) + rest)(*args)


@functools.partial(jax.jit, static_argnames=("spec", "num_steps", "axes"), donate_argnums=(1,))
def _train_steps(spec, state, data, keys, first_step, *, num_steps, axes):
  """The compiled scan of `num_steps` steps; vmapped over runs when `axes` is given."""
  run = functools.partial(_run_steps, spec, first_step=first_step, num_steps=num_steps)
  return _replicated(spec, _over_runs(run, axes, state, data, keys))


@functools.partial(jax.jit, static_argnames=("spec", "num_steps", "axes"))
def _chunk_permutations(spec, state, data, keys, first_step, *, num_steps, axes):
  fn = lambda st, d, k: _permutations(spec, k, first_step, num_steps)
  return _replicated(spec, _over_runs(fn, axes, state, data, keys))


@functools.partial(jax.jit, static_argnames=("spec", "axes"), donate_argnums=(1,))
def _one_step(spec, state, data, keys, perms, step, *, axes):
  if axes is None:
    return _replicated(spec, _step_at(spec, state, data, keys, perms, step))
  fn = lambda st, d, k, p: _step_at(spec, st, d, k, p, step)
  return _replicated(spec, jax.vmap(fn, in_axes=(0, dict(axes), 0, 0))(state, data, keys,
                                                                      perms))


@functools.lru_cache(maxsize=None)
def scan_is_fast(spec: Spec) -> bool:
  """Whether the steps run as one lax.scan (else one compiled call per step, still on
  device-resident data with device-drawn batches).

  XLA's CPU backend runs the weight gradient of a convolution several times slower
  inside a loop body than in a program of its own (measured: the clean-priority MNIST
  CNN, 12 s against 1.6 s for 4 steps), so convolutional models on the CPU step from
  Python, where the dispatch costs ≈0.1 ms against a step of tens of milliseconds.
  """
  if jax.default_backend() != "cpu":
    return True
  x = jnp.zeros((1, *spec.input_shape), jnp.float32)
  params = jax.eval_shape(lambda: spec.model.init(jax.random.key(0), x, train=False))
  jaxpr = jax.make_jaxpr(lambda v: spec.model.apply(v, x, train=False))(params)
  return "conv_general_dilated" not in str(jaxpr)


def runs_per_program(spec: Spec, optim, num_runs: int) -> int:
  """How many runs train vmapped in one program: all of them, at most
  `optim.runs_per_program` (a memory cap) — except convolutional models on the CPU, one at a
  time: XLA's CPU backend runs the grouped convolutions of vmapped runs slower per run than
  one run alone (measured with the clean-priority CNN: 0.62× the speed of sequential runs
  at 8 runs, 0.39× at 16)."""
  default = num_runs if scan_is_fast(spec) else 1
  explicit = optim.get("runs_per_program", 0)
  return min(explicit, default) if explicit else default


def _train_chunk(spec, state, data, keys, first_step: int, num_steps: int, axes):
  """num_steps training steps from first_step: (state, losses with a trailing step axis)."""
  if scan_is_fast(spec):
    return _train_steps(spec, state, data, keys, jnp.int32(first_step), num_steps=num_steps,
                        axes=axes)
  perms = _chunk_permutations(spec, state, data, keys, jnp.int32(first_step),
                              num_steps=num_steps, axes=axes)
  losses = []
  for step in range(first_step, first_step + num_steps):
    state, loss = _one_step(spec, state, data, keys, perms, jnp.int32(step), axes=axes)
    losses.append(loss)
  return state, jnp.stack(losses, axis=-1)


# ----------------------------------------------------------------------------
# Evaluation.


def classify(outputs_NxK):
  """Predicted class and class probabilities; one output means a sigmoid binary model."""
  outputs_NxK = jnp.asarray(outputs_NxK)
  if outputs_NxK.shape[-1] == 1:
    p1 = jax.nn.sigmoid(outputs_NxK[..., 0])
    return (outputs_NxK[..., 0] > 0).astype(jnp.int32), jnp.stack([1 - p1, p1], axis=-1)
  return jnp.argmax(outputs_NxK, -1), jax.nn.softmax(outputs_NxK, -1)


def predict_outputs(spec: Spec, variables_, x_N, *, active_layer: Optional[str] = None):
  """Eval-mode outputs for all of x_N, EVAL_CHUNK samples per forward pass (padded);
  jit-able (`predict` is it, jitted). With `active_layer`: (outputs, {"units": A_N(x),
  "fraction": A_N(x)/units} per input) of that layer from the same passes (Definition 1)."""
  n = x_N.shape[0]
  chunk = min(EVAL_CHUNK, n)
  count = -(-n // chunk)
  pad = count * chunk - n
  x_padded = jnp.concatenate([x_N, jnp.repeat(x_N[-1:], pad, axis=0)]) if pad else x_N
  x_chunks = x_padded.reshape(count, chunk, *x_N.shape[1:])

  def forward(xs):
    if active_layer is None:
      return spec.model.apply(variables_, xs, train=False)
    outputs, acts = models.apply_with_activations(spec.model, variables_, xs)
    if active_layer not in acts:
      raise ConfigError("eval_activity", active_layer, tuple(acts))
    units_B = sparsity.active_units(acts[active_layer]).astype(jnp.float32)
    return outputs, {"units": units_B, "fraction": units_B / math.prod(
        acts[active_layer].shape[1:])}

  out = jax.lax.map(forward, x_chunks)
  unchunk = lambda a: a.reshape(count * chunk, *a.shape[2:])[:n]
  if active_layer is None:
    return unchunk(out).reshape(n, -1)
  return unchunk(out[0]).reshape(n, -1), jax.tree.map(unchunk, out[1])


@functools.partial(jax.jit, static_argnames=("spec",))
def predict(spec: Spec, variables_, x_N):
  """Model outputs (eval mode) on x_N, one run; `variables_` = train.variables(...)."""
  return _replicated(spec, predict_outputs(spec, variables_, x_N))


def _subset(outputs_NxK, labels_N, mask_N, loss_fn) -> dict:
  """Mean loss, error and residual 1 − p_label over the samples in mask_N (NaN if none)."""
  predicted, probs = classify(outputs_NxK)
  p_label = jnp.take_along_axis(probs, labels_N[:, None], axis=-1)[:, 0]
  mask = mask_N.astype(jnp.float32)
  count = mask.sum()

  def mean(v):
    return jnp.where(count > 0, jnp.sum(v * mask) / jnp.maximum(count, 1.0), jnp.nan)

  return {"loss": mean(loss_fn(outputs_NxK, labels_N)),
          "error": mean((predicted != labels_N).astype(jnp.float32)),
          "residual": mean(1.0 - p_label)}


def _outputs_and_activity(spec: Spec, variables_, x_N, split: str):
  """(outputs on x_N, {"active_units_<split>", "active_fraction_<split>"}: E_x A_N(x) and
  E_x A_N(x)/units of spec.eval_activity, or {} without one)."""
  if spec.eval_activity is None:
    return predict_outputs(spec, variables_, x_N), {}
  outputs, active = predict_outputs(spec, variables_, x_N, active_layer=spec.eval_activity)
  return outputs, {f"active_{k}_{split}": jnp.mean(v) for k, v in active.items()}


def _model_metrics(spec: Spec, variables_, data) -> tuple[dict, Any]:
  """The evaluation record of one network, and its outputs on the training inputs."""
  loss_fn = spec.eval_loss_fn()
  out_train, record = _outputs_and_activity(spec, variables_, data["x"], "train")
  given, clean, noisy = data["labels"], data["clean_labels"], data["is_noisy"]
  everyone = jnp.ones_like(noisy)
  for prefix, mask, labels in (("train", everyone, given), ("clean", ~noisy, given),
                               ("noisy", noisy, given), ("noisy_true", noisy, clean)):
    for k, v in _subset(out_train, labels, mask, loss_fn).items():
      record[f"{prefix}_{k}"] = v
  record["noisy_error_true"] = record.pop("noisy_true_error")
  out_test, active_test = _outputs_and_activity(spec, variables_, data["x_test"], "test")
  record.update(active_test)
  for k, v in _subset(out_test, data["y_test"], jnp.ones_like(data["y_test"], bool),
                      loss_fn).items():
    record[f"test_{k}"] = v
  return record, out_train


def first_network(spec: Spec, state: TrainState) -> dict:
  """The variables of the model evaluation reports: the first network when several
  train together."""
  params, stats = state.params, state.batch_stats
  if spec.method.networks > 1:
    params, stats = jax.tree.map(lambda a: a[0], (params, stats))
  return variables(params, stats)


def average_network(spec: Spec, state: TrainState) -> Optional[dict]:
  """The variables of the averaged (momentum) model, or None."""
  if state.average is None:
    return None
  return first_network(spec, state.replace(params=state.average["params"],
                                           batch_stats=state.average["batch_stats"]))


def _evaluate_run(spec: Spec, state: TrainState, data) -> tuple[dict, Any]:
  """Loss, error, residual on clean / noisy (given and true labels) / test subsets (and
  spec.eval_activity's activity), for the model (`first_network`) and its average
  (`average_network`, keys average_*); and the model's outputs on the training inputs."""
  record, out_train = _model_metrics(spec, first_network(spec, state), data)
  if state.average is not None:
    for k, v in _model_metrics(spec, average_network(spec, state), data)[0].items():
      record[f"average_{k}"] = v
  return record, out_train


@functools.partial(jax.jit, static_argnames=("spec",))
def per_sample(spec: Spec, variables_, x_N, labels_N) -> dict:
  """Per-sample records at one state (SLN Figs. 3–4): the evaluation loss against the
  given label, the probability of the given label and the predicted class."""
  outputs = predict_outputs(spec, variables_, x_N)
  predicted, probs = classify(outputs)
  return _replicated(spec, {
      "loss": spec.eval_loss_fn()(outputs, labels_N),
      "p_label": jnp.take_along_axis(probs, labels_N[:, None], axis=-1)[:, 0],
      "prediction": predicted})


@functools.partial(jax.jit, static_argnames=("spec", "axes"))
def _evaluate(spec, state, data, *, axes):
  if axes is None:
    return _replicated(spec, _evaluate_run(spec, state, data))
  return _replicated(spec, jax.vmap(functools.partial(_evaluate_run, spec),
                                    in_axes=(0, dict(axes)))(state, data))


# ----------------------------------------------------------------------------
# Data and results.


@dataclasses.dataclass(frozen=True)
class Splits:
  """Training inputs with their (noisy) labels, and the clean test set.

  `noisy.labels` etc. may carry a leading run axis (R×N: every run its own label-noise
  draw); with `inputs_per_run=True` x_train, x_test and y_test do too (every run its own
  synthetic data set).
  """
  x_train: Any
  noisy: Any  # noise.NoisyLabels: .labels (given), .clean_labels, .is_noisy
  x_test: Any
  y_test: Any
  inputs_per_run: bool = False

  @property
  def labels_per_run(self) -> bool:
    return np.ndim(self.noisy.labels) == 2

  @property
  def num_train(self) -> int:
    return np.shape(self.noisy.labels)[-1]

  @property
  def input_shape(self) -> tuple:
    """One sample's shape."""
    return tuple(np.shape(self.x_train)[2 if self.inputs_per_run else 1:])

  def device_data(self, mesh=None) -> tuple[dict, dict]:
    """The arrays on every device of `mesh` (default: all devices), replicated, and which
    of them have a leading run axis (0) or not."""
    arrays = {"x": self.x_train, "labels": self.noisy.labels,
              "clean_labels": self.noisy.clean_labels, "is_noisy": self.noisy.is_noisy,
              "x_test": self.x_test, "y_test": self.y_test}
    per_run = {"x": self.inputs_per_run, "x_test": self.inputs_per_run,
               "y_test": self.inputs_per_run, "labels": self.labels_per_run,
               "clean_labels": self.labels_per_run, "is_noisy": self.labels_per_run}
    dtypes = {"labels": jnp.int32, "clean_labels": jnp.int32, "is_noisy": bool,
              "y_test": jnp.int32}
    data = {k: jnp.asarray(v, dtypes.get(k)) for k, v in arrays.items()}
    return (distributed.replicate(data, mesh),
            {k: (0 if per_run[k] else None) for k in arrays})

  def runs(self, a: int, b: int) -> "Splits":
    """The data of runs a..b−1 (all of it where nothing is per run)."""
    from noisejax import noise  # pylint: disable=g-import-not-at-top
    noisy = self.noisy
    if self.labels_per_run:
      noisy = noise.NoisyLabels(noisy.labels[a:b], noisy.clean_labels[a:b],
                                noisy.is_noisy[a:b], np.asarray(noisy.rate)[a:b])
    if not self.inputs_per_run:
      return dataclasses.replace(self, noisy=noisy)
    return Splits(self.x_train[a:b], noisy, self.x_test[a:b], self.y_test[a:b], True)

  def run(self, r: int) -> "Splits":
    """The data of run r."""
    from noisejax import noise  # pylint: disable=g-import-not-at-top
    noisy = self.noisy
    if self.labels_per_run:
      noisy = noise.NoisyLabels(noisy.labels[r], noisy.clean_labels[r], noisy.is_noisy[r],
                                float(np.mean(noisy.is_noisy[r])))
    if not self.inputs_per_run:
      return Splits(self.x_train, noisy, self.x_test, self.y_test)
    return Splits(self.x_train[r], noisy, self.x_test[r], self.y_test[r])


@dataclasses.dataclass(frozen=True)
class Snapshot:
  """What an `eval_fn` sees: one run's state at one evaluation step."""
  spec: Spec
  state: TrainState
  step: int
  run: int
  splits: Splits          # this run's data
  outputs_train: Any = None  # the evaluation's eval-mode outputs on splits.x_train

  @property
  def model(self):
    return self.spec.model

  def train_outputs(self) -> np.ndarray:
    """Eval-mode outputs on this run's training inputs (the evaluation's own, when it
    computed them: no second forward pass)."""
    if self.outputs_train is None:
      return self.predict(self.splits.x_train)
    return np.asarray(self.outputs_train)

  @property
  def variables(self) -> dict:
    return first_network(self.spec, self.state)

  def predict(self, x) -> np.ndarray:
    return np.asarray(predict(self.spec, self.variables, jnp.asarray(x)))

  def per_sample(self, average: bool = False) -> dict:
    """`per_sample` on the training data (model, or its average), with is_noisy."""
    variables_ = average_network(self.spec, self.state) if average else self.variables
    noisy = self.splits.noisy
    records = per_sample(self.spec, variables_, jnp.asarray(self.splits.x_train),
                         jnp.asarray(noisy.labels, jnp.int32))
    return {**{k: np.asarray(v) for k, v in records.items()},
            "is_noisy": np.asarray(noisy.is_noisy, bool),
            "clean_label": np.asarray(noisy.clean_labels)}


@dataclasses.dataclass
class TrainResult:
  """The trained state (leading run axis when several runs) and one history per run."""
  spec: Spec
  state: TrainState
  histories: list
  batched: bool

  @property
  def history(self) -> list:
    if len(self.histories) != 1:
      raise ValueError(f"{len(self.histories)} runs: use .histories or .curve(key)")
    return self.histories[0]

  def curve(self, key: str) -> np.ndarray:
    """`key` at every evaluation, runs × evaluations."""
    return np.array([[r[key] for r in h] for h in self.histories])

  def run_state(self, r: int) -> TrainState:
    return jax.tree.map(lambda a: a[r], self.state) if self.batched else self.state

  def snapshot(self, r: int, splits: Splits) -> Snapshot:
    step = self.histories[r][-1]["step"]
    return Snapshot(self.spec, self.run_state(r), step, r,
                    splits.run(r) if self.batched else splits)


# ----------------------------------------------------------------------------
# Checkpoints.


def _manager(checkpoint_dir):
  import orbax.checkpoint as ocp  # pylint: disable=g-import-not-at-top
  return ocp.CheckpointManager(os.path.abspath(checkpoint_dir),
                               options=ocp.CheckpointManagerOptions(max_to_keep=2, create=True))


def _save(manager, step: int, state: TrainState, histories):
  import orbax.checkpoint as ocp  # pylint: disable=g-import-not-at-top
  manager.save(step, args=ocp.args.Composite(
      state=ocp.args.StandardSave(flax.serialization.to_state_dict(state)),
      history=ocp.args.JsonSave(histories)))
  manager.wait_until_finished()


def _restore(manager, state: TrainState):
  """(state, histories, step) of the latest checkpoint, or (state, None, 0)."""
  import orbax.checkpoint as ocp  # pylint: disable=g-import-not-at-top
  step = manager.latest_step()
  if step is None:
    return state, None, 0
  target = flax.serialization.to_state_dict(state)
  restored = manager.restore(step, args=ocp.args.Composite(
      state=ocp.args.StandardRestore(target), history=ocp.args.JsonRestore()))
  return flax.serialization.from_state_dict(state, restored["state"]), restored["history"], step


# ----------------------------------------------------------------------------
# The loop.


def _boundaries(spec: Spec, optim, total_steps: int) -> list[int]:
  """Steps after which the loop leaves the compiled scan: evaluations (every `eval_every`
  steps and at the optional steps `optim.eval_at`), checkpoints, the end, and every epoch
  start when the method has an epoch hook."""
  spe = spec.steps_per_epoch
  eval_every = optim.get("eval_every", 0) or spe
  checkpoint_every = max(1, optim.get("checkpoint_every", 1)) * spe
  points = set(range(eval_every, total_steps + 1, eval_every))
  points |= {int(s) for s in optim.get("eval_at", ()) or () if int(s) <= total_steps}
  points |= set(range(checkpoint_every, total_steps + 1, checkpoint_every))
  if spec.method.on_epoch is not None:
    points |= set(range(spe, total_steps + 1, spe))
  points.add(total_steps)
  return sorted(p for p in points if p > 0)


def _to_host(tree, r=None):
  leaves = jax.device_get(tree)
  return {k: float(v if r is None else v[r]) for k, v in leaves.items()}


def fit(spec: Spec, state: TrainState, splits: Splits, optim, *, keys, batched: bool,
        eval_fn: Optional[Callable] = None, log_fn: Optional[Callable] = None,
        checkpoint_dir=None, progress: Optional[Callable] = None,
        run_labels: Optional[Sequence[dict]] = None) -> TrainResult:
  """Trains `state` for `optim.epochs` epochs, evaluating and checkpointing on the way.

  keys: {"shuffle", "step"} (one run) or the same with a leading run axis (`batched`).
  eval_fn(Snapshot) -> dict of scalars, per run, at every evaluation.
  log_fn(record) gets every evaluation record: {"step", "epoch", metrics...} plus the
  run's `run_labels` (e.g. {"seed": 3}). checkpoint_dir: orbax checkpoints; the run
  resumes from the latest one there. progress(iterable, total) wraps the loop.
  """
  total_steps = optim.epochs * spec.steps_per_epoch
  data, axes = splits.device_data(spec.mesh)
  state, keys = distributed.replicate((state, keys), spec.mesh)
  axes_key = tuple(sorted(axes.items())) if batched else None
  num_runs = jax.tree.leaves(keys)[0].shape[0] if batched else 1
  labels = list(run_labels) if run_labels is not None else [{} for _ in range(num_runs)]
  per_run_splits = [splits.run(r) for r in range(num_runs)] if batched else [splits]

  state = _init_tables(spec, state, data, axes=axes_key)
  manager = _manager(checkpoint_dir) if checkpoint_dir is not None else None
  histories, start = None, 0
  if manager is not None:
    state, histories, start = _restore(manager, state)
  histories = histories or [[] for _ in range(num_runs)]

  def log_evaluation(step, state):
    metrics, outputs_train = _evaluate(spec, state, data, axes=axes_key)
    for r in range(num_runs):
      record = {"step": step, "epoch": step / spec.steps_per_epoch,
                **_to_host(metrics, r if batched else None)}
      if eval_fn is not None:
        run_state = jax.tree.map(lambda a: a[r], state) if batched else state
        extra = eval_fn(Snapshot(spec, run_state, step, r, per_run_splits[r],
                                 outputs_train[r] if batched else outputs_train))
        record.update({k: float(v) for k, v in extra.items()})
      histories[r].append(record)
      if log_fn is not None:
        log_fn({**record, **labels[r]})

  if start == 0 and not histories[0]:
    log_evaluation(0, state)
  bounds = [b for b in _boundaries(spec, optim, total_steps) if b > start]
  checkpoint_steps = _checkpoint_steps(spec, optim, total_steps)
  position = start
  for stop in (progress(bounds, len(bounds)) if progress else bounds):
    epoch, at_epoch_start = divmod(position, spec.steps_per_epoch)
    if at_epoch_start == 0 and _epoch_hook_due(spec, state, epoch):
      state = _on_epoch(spec, state, data, keys, jnp.int32(epoch), axes=axes_key)
    state, losses_T = _train_chunk(spec, state, data, keys, position, stop - position,
                                   axes_key)
    position = stop
    losses_RxT = np.asarray(losses_T).reshape(num_runs, -1)
    if not np.isfinite(losses_RxT).all():
      r, t = np.argwhere(~np.isfinite(losses_RxT))[0]
      where = f" (run {r}: {labels[r]})" if batched else ""
      last = manager.latest_step() if manager is not None else None
      raise NonFiniteLossError(
          f"training loss became {losses_RxT[r, t]} at step {stop - losses_RxT.shape[1] + t + 1}"
          f"{where}; stopped. Last good checkpoint: step {last} in {checkpoint_dir}")
    log_evaluation(stop, state)
    if manager is not None and stop in checkpoint_steps:
      _save(manager, stop, state, histories)
  if manager is not None:
    manager.close()
  return TrainResult(spec, state, histories, batched)


@functools.partial(jax.jit, static_argnames=("spec", "axes"))
def _init_tables(spec, state, data, *, axes):
  """The method's per-sample tables at the start: one-hot given labels as targets, unit
  sample weights (a no-op for a state that has them or a method without tables)."""
  tables = spec.method.tables

  def one(st, d):
    if "targets" in tables and st.targets is None:
      st = st.replace(targets=jax.nn.one_hot(d["labels"], spec.num_classes, dtype=jnp.float32))
    if "sample_weights" in tables and st.sample_weights is None:
      st = st.replace(sample_weights=jnp.ones(d["labels"].shape, jnp.float32))
    return st

  if axes is None:
    return _replicated(spec, one(state, data))
  return _replicated(spec, jax.vmap(one, in_axes=(0, dict(axes)))(state, data))


def _epoch_hook_due(spec: Spec, state, epoch: int) -> bool:
  """Whether the method's epoch hook has work at `epoch` for any run (host-side)."""
  method = spec.method
  if method.on_epoch is None:
    return False
  if method.on_epoch_due is None:
    return True
  return bool(np.any(np.asarray(method.on_epoch_due(jax.device_get(state.hparams), epoch))))


@functools.partial(jax.jit, static_argnames=("spec", "axes"), donate_argnums=(1,))
def _on_epoch(spec, state, data, keys, epoch, *, axes):
  """The method's epoch hook on every run; its key is the run's, folded with the epoch."""
  def one(st, d, k):
    key = jax.random.fold_in(jax.random.fold_in(k["shuffle"], 2**31 - 1), epoch)
    return spec.method.on_epoch(spec, st, epoch, d, key)
  return _replicated(spec, _over_runs(one, axes, state, data, keys))


def _checkpoint_steps(spec, optim, total_steps):
  every = max(1, optim.get("checkpoint_every", 1)) * spec.steps_per_epoch
  return set(range(every, total_steps + 1, every)) | {total_steps}


def training_spec(config, splits: Splits, *, num_classes: Optional[int] = None,
                  hparams: Optional[dict] = None) -> tuple[Spec, dict]:
  """The Spec and the method hyperparameters `train_classifier(config, splits, ...)`
  trains with: num_classes defaults to the largest label (given, clean or test) + 1, the
  hyperparameters to config.method's fields, updated by `hparams`."""
  if num_classes is None:
    num_classes = int(max(np.max(splits.noisy.clean_labels), np.max(splits.noisy.labels),
                          np.max(splits.y_test))) + 1
  spec = make_spec(config, num_classes, splits.num_train, splits.input_shape)
  hp = {k: v for k, v in dict(config.get("method") or {}).items() if k != "name"}
  hp.update(hparams or {})
  return spec, hp


def train_classifier(config, splits: Splits, *, key, num_classes: Optional[int] = None,
                     hparams: Optional[dict] = None, lr=None,
                     eval_fn: Optional[Callable] = None, log_fn: Optional[Callable] = None,
                     checkpoint_dir=None, progress: Optional[Callable] = None,
                     run_labels: Optional[Sequence[dict]] = None) -> TrainResult:
  """Trains `config.model` on `splits` with `config.loss`, `config.optim`, `config.method`.

  key: one PRNG key (one run) or R keys (R runs in one compiled program). Each run
  splits its key into initialization, data-order and step keys.
  hparams: the method's hyperparameters (defaults: config.method's fields), each a
  scalar or, for several runs, an array of R values; lr likewise (default optim.lr).
  num_classes: of the labels (default: max label + 1 over train and test).
  `optim.runs_per_program` trains the R runs in chunks of that many runs, one after the
  other, with one compiled program (for runs that do not fit in memory, or in cache, at
  once; see `runs_per_program`); each chunk keeps its checkpoints in
  `checkpoint_dir/runs_<first>-<last>`.
  Returns a TrainResult: `.state`, `.history` (one run) or `.histories`, `.curve(key)`.
  """
  keys = jnp.asarray(key)
  batched = keys.ndim == 1 and jax.dtypes.issubdtype(keys.dtype, jax.dtypes.prng_key)
  num_runs = keys.shape[0] if batched else 1
  spec, hp = training_spec(config, splits, num_classes=num_classes, hparams=hparams)
  lr = config.optim.lr if lr is None else lr
  common = dict(eval_fn=eval_fn, log_fn=log_fn, progress=progress)
  if not batched:
    state, run_keys = jax.jit(functools.partial(_init_run, spec, splits))(keys, hp, lr)
    return fit(spec, state, splits, config.optim, keys=run_keys, batched=False,
               checkpoint_dir=checkpoint_dir, **common)

  chunk = runs_per_program(spec, config.optim, num_runs)
  labels = list(run_labels) if run_labels is not None else [{} for _ in range(num_runs)]
  hp_R = {k: jnp.broadcast_to(jnp.asarray(v, jnp.float32), (num_runs,)) for k, v in hp.items()}
  lr_R = jnp.broadcast_to(jnp.asarray(lr, jnp.float32), (num_runs,))
  results = []
  for a in range(0, num_runs, chunk):
    b = min(a + chunk, num_runs)
    part = slice(a, b)
    state, run_keys = jax.jit(jax.vmap(functools.partial(_init_run, spec, splits)))(
        keys[part], {k: v[part] for k, v in hp_R.items()}, lr_R[part])
    directory = checkpoint_dir
    if checkpoint_dir is not None and chunk < num_runs:
      directory = os.path.join(checkpoint_dir, f"runs_{a}-{b - 1}")
    results.append(fit(spec, state, splits.runs(a, b), config.optim, keys=run_keys,
                       batched=True, checkpoint_dir=directory, run_labels=labels[part],
                       **common))
  if len(results) == 1:
    return results[0]
  state = jax.tree.map(lambda *a: jnp.concatenate(a), *[r.state for r in results])
  return TrainResult(spec, state, [h for r in results for h in r.histories], True)


def init_snapshot(config, splits: Splits, *, key, num_classes: Optional[int] = None,
                  hparams: Optional[dict] = None) -> Snapshot:
  """The Snapshot (step 0) that `train_classifier(config, splits, key=key)` starts from."""
  spec, hp = training_spec(config, splits, num_classes=num_classes, hparams=hparams)
  state, _ = jax.jit(functools.partial(_init_run, spec, splits))(key, hp, config.optim.lr)
  return Snapshot(spec, state, 0, 0, splits)


def _init_run(spec: Spec, splits: Splits, key, hparams, lr):
  """One run's initial state and its data-order and step keys."""
  k_init, k_train = jax.random.split(key)
  x = splits.x_train[0][:1] if splits.inputs_per_run else splits.x_train[:1]
  state = init_state(spec, k_init, np.asarray(x), lr=1.0, hparams=hparams)
  state = state.replace(opt_state=_set_lr(spec, state.opt_state, lr))
  k_shuffle, k_step = jax.random.split(k_train)
  return state, {"shuffle": k_shuffle, "step": k_step}


def _set_lr(spec: Spec, opt_state, lr):
  if spec.method.networks == 1:
    return set_learning_rate(opt_state, lr)
  return jax.vmap(set_learning_rate, in_axes=(0, None))(opt_state, lr)
