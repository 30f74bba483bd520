"""Training on (noisy) labelled data: state, optimizer, the jitted step, evaluation, fit.

The train step is one pure function `(state, x, labels, key) -> (state, metrics)`,
jitted once per `fit` with the loss bound statically. Evaluation splits every metric
by subset: clean samples, noisy samples (against the given and the true labels) and
the clean test set. `fit` logs to metrics.jsonl, checkpoints with orbax, resumes
exactly from the latest checkpoint and stops loudly on a non-finite loss.
"""

import dataclasses
import functools
from typing import Any, Callable, Optional

import flax
import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax.training import train_state

from noisejax.errors import ConfigError
from noisejax.experiment import NonFiniteLossError, Run


OPTIMIZERS = ("sgd", "momentum", "adam", "adadelta")
SCHEDULES = ("constant", "cosine", "step")


class TrainState(train_state.TrainState):
  """Flax TrainState plus BatchNorm statistics (None for models without BN)."""
  batch_stats: Any = None


def model_variables(params, batch_stats=None) -> dict:
  return {"params": params} if batch_stats is None else {"params": params, "batch_stats": batch_stats}


def create_state(model, key, x_example, tx) -> TrainState:
  """Initializes `model` on `x_example` (any batch size) and wraps it with `tx`."""
  variables = model.init(key, jnp.asarray(x_example), train=False)
  state = TrainState.create(apply_fn=model.apply, params=variables["params"], tx=tx,
                            batch_stats=variables.get("batch_stats"))
  return state.replace(step=jnp.zeros((), jnp.int32))  # an array from the start: no retrace


def make_optimizer(optim, steps_per_epoch: int) -> optax.GradientTransformation:
  """SGD / momentum / Adam / Adadelta with coupled weight decay and a learning-rate schedule.

  Weight decay is added to the gradient (wd·w), as in PyTorch's SGD.
  """
  lr = optim.lr
  schedule_name = optim.get("schedule", "constant")
  if schedule_name == "constant":
    schedule = lr
  elif schedule_name == "cosine":
    schedule = optax.cosine_decay_schedule(lr, max(1, optim.epochs * steps_per_epoch))
  elif schedule_name == "step":
    schedule = optax.exponential_decay(
        lr, transition_steps=max(1, optim.get("decay_every", 1) * steps_per_epoch),
        decay_rate=optim.get("decay_factor", 0.5), staircase=True)
  else:
    raise ConfigError("optim.schedule", schedule_name, SCHEDULES)
  name = optim.get("name", "sgd")
  if name == "sgd":
    opt = optax.sgd(schedule)
  elif name == "momentum":
    opt = optax.sgd(schedule, momentum=optim.get("momentum", 0.9),
                    nesterov=optim.get("nesterov", False))
  elif name == "adam":
    opt = optax.adam(schedule)
  elif name == "adadelta":  # Keras defaults, as used by the early-stopping paper's Fig. 1
    opt = optax.adadelta(schedule, rho=optim.get("rho", 0.95), eps=optim.get("eps", 1e-7))
  else:
    raise ConfigError("optim.name", name, OPTIMIZERS)
  weight_decay = optim.get("weight_decay", 0.0)
  return optax.chain(optax.add_decayed_weights(weight_decay), opt) if weight_decay else opt


def _train_step(state: TrainState, x, labels, key, *, loss_fn, target_fn, augment_fn):
  """One optimizer step on the mean per-sample loss; metrics stay on device."""
  key_target, key_augment = jax.random.split(key)
  if target_fn is not None:
    labels = target_fn(key_target, labels)
  if augment_fn is not None:
    x = augment_fn(key_augment, x)

  def objective(params):
    variables = model_variables(params, state.batch_stats)
    if state.batch_stats is None:
      outputs = state.apply_fn(variables, x, train=True)
      new_stats = None
    else:
      outputs, updates = state.apply_fn(variables, x, train=True, mutable=["batch_stats"])
      new_stats = updates["batch_stats"]
    return loss_fn(outputs, labels).mean(), new_stats

  (loss, new_stats), grads = jax.value_and_grad(objective, has_aux=True)(state.params)
  state = state.apply_gradients(grads=grads, batch_stats=new_stats)
  return state, {"loss": loss, "grad_norm": optax.tree.norm(grads)}


def make_train_step(loss_fn: Callable, target_fn: Optional[Callable] = None,
                    augment_fn: Optional[Callable] = None):
  """The jitted train step `(state, x, labels, key) -> (state, metrics)`.

  `target_fn(key, labels)` applies per-step label noise, `augment_fn(key, x)` data
  augmentation (e.g. data.random_crop_flip), both inside the compiled step.
  """
  step = functools.partial(_train_step, loss_fn=loss_fn, target_fn=target_fn,
                           augment_fn=augment_fn)
  return jax.jit(step, donate_argnums=(0,))


@functools.partial(jax.jit, static_argnames=("train",))
def _apply(state, x, train=False):
  return state.apply_fn(model_variables(state.params, state.batch_stats), x, train=train)


def predict(state: TrainState, x, batch_size: int = 1000) -> np.ndarray:
  """Model outputs (eval mode) for all of `x`, in chunks of one fixed shape."""
  n = len(x)
  batch_size = min(batch_size, n)
  outputs = []
  for start in range(0, n, batch_size):
    chunk = x[start:start + batch_size]
    pad = batch_size - len(chunk)
    if pad:  # keep one compiled shape
      chunk = np.concatenate([chunk, np.repeat(chunk[-1:], pad, axis=0)])
    outputs.append(np.asarray(_apply(state, chunk))[:batch_size - pad])
  return np.concatenate(outputs)


@dataclasses.dataclass(frozen=True)
class Data:
  """Training inputs with their (noisy) labels, and the clean test set."""
  x_train: np.ndarray
  noisy: Any  # noise.NoisyLabels: .labels (given), .clean_labels, .is_noisy
  x_test: np.ndarray
  y_test: np.ndarray


def classify(outputs_NxK):
  """Predicted class and class probabilities; one output means a sigmoid binary model."""
  outputs_NxK = jnp.asarray(outputs_NxK)
  if outputs_NxK.shape[-1] == 1:
    p1 = jax.nn.sigmoid(outputs_NxK[:, 0])
    return (outputs_NxK[:, 0] > 0).astype(jnp.int32), jnp.stack([1 - p1, p1], axis=-1)
  return jnp.argmax(outputs_NxK, -1), jax.nn.softmax(outputs_NxK, -1)


def subset_metrics(outputs_NxK, labels_N, loss_fn) -> dict:
  """loss, error and mean residual |f − y| = 1 − p_label on one subset."""
  if len(labels_N) == 0:
    return {"loss": float("nan"), "error": float("nan"), "residual": float("nan")}
  predicted, probs = classify(outputs_NxK)
  labels_N = jnp.asarray(labels_N)
  p_label = jnp.take_along_axis(probs, labels_N[:, None], axis=-1)[:, 0]
  return {"loss": float(loss_fn(jnp.asarray(outputs_NxK), labels_N).mean()),
          "error": float((predicted != labels_N).mean()),
          "residual": float((1 - p_label).mean())}


def evaluate(state: TrainState, loss_fn: Callable, data: Data, batch_size: int = 1000) -> dict:
  """Loss, error and residual on clean / noisy (given and true labels) / test subsets."""
  out_train = predict(state, data.x_train, batch_size)
  given, clean, noisy = data.noisy.labels, data.noisy.clean_labels, np.asarray(data.noisy.is_noisy)
  record = {}
  for prefix, mask, labels in (("train", slice(None), given), ("clean", ~noisy, given),
                               ("noisy", noisy, given), ("noisy_true", noisy, clean)):
    for k, v in subset_metrics(out_train[mask], labels[mask], loss_fn).items():
      record[f"{prefix}_{k}"] = v
  record["noisy_error_true"] = record.pop("noisy_true_error")
  out_test = predict(state, data.x_test, batch_size)
  for k, v in subset_metrics(out_test, data.y_test, loss_fn).items():
    record[f"test_{k}"] = v
  return record


def early_stopping_point(history: list[dict], key: str = "test_error") -> dict:
  """The record with the lowest `key` (first one on ties)."""
  return min(history, key=lambda r: (r[key], r["step"]))


def _checkpoint_manager(run: Run):
  import orbax.checkpoint as ocp  # pylint: disable=g-import-not-at-top
  return ocp.CheckpointManager(run.checkpoint_dir,
                               options=ocp.CheckpointManagerOptions(max_to_keep=2, create=True))


def save_checkpoint(manager, step: int, state: TrainState):
  import orbax.checkpoint as ocp  # pylint: disable=g-import-not-at-top
  manager.save(step, args=ocp.args.StandardSave(flax.serialization.to_state_dict(state)))
  manager.wait_until_finished()


def restore_checkpoint(manager, state: TrainState) -> tuple[TrainState, int]:
  """Restores the latest checkpoint into `state`'s structure; (state, step) or (state, 0)."""
  import orbax.checkpoint as ocp  # pylint: disable=g-import-not-at-top
  step = manager.latest_step()
  if step is None:
    return state, 0
  target = flax.serialization.to_state_dict(state)
  restored = manager.restore(step, args=ocp.args.StandardRestore(target))
  return flax.serialization.from_state_dict(state, restored), step


def fit(optim, run: Run, state: TrainState, loss_fn: Callable, data: Data, *, key,
        eval_fn: Optional[Callable] = None, target_fn: Optional[Callable] = None,
        augment_fn: Optional[Callable] = None):
  """Mini-batch (or full-batch, batch_size=0) training with evaluation and checkpoints.

  Data order and step keys derive from `key` and the step number alone, so a run
  resumed from a checkpoint continues exactly as an uninterrupted one would.
  Returns (state, history): one record per evaluation, also logged to metrics.jsonl.
  """
  n = len(data.x_train)
  batch_size = optim.batch_size or n
  if batch_size > n:
    raise ConfigError("optim.batch_size", batch_size, reason=f"exceeds the {n} training samples")
  steps_per_epoch = n // batch_size
  total_steps = optim.epochs * steps_per_epoch
  eval_every = optim.get("eval_every", 0) or steps_per_epoch
  checkpoint_every = max(1, optim.get("checkpoint_every", 1)) * steps_per_epoch
  shuffle_key, step_key = jax.random.split(key)

  manager = _checkpoint_manager(run)
  state, start = restore_checkpoint(manager, state)
  history = run.truncate_metrics(start)
  train_step = make_train_step(loss_fn, target_fn, augment_fn)
  labels = np.asarray(data.noisy.labels)
  x_train = data.x_train

  def log_evaluation(step, state):
    record = {"epoch": step / steps_per_epoch, **evaluate(state, loss_fn, data)}
    if eval_fn is not None:
      record.update({k: float(v) for k, v in eval_fn(state, step).items()})
    run.log(step, **record)
    history.append({"step": step, **record})

  if start == 0 and not history:
    log_evaluation(0, state)
  order = None
  for step in run.progress(range(start, total_steps), total=total_steps - start):
    epoch, position = divmod(step, steps_per_epoch)
    if order is None or position == 0:
      order = np.asarray(jax.random.permutation(jax.random.fold_in(shuffle_key, epoch), n))
    idx = order[position * batch_size:(position + 1) * batch_size]
    state, metrics = train_step(state, x_train[idx], labels[idx], jax.random.fold_in(step_key, step))
    done = step + 1
    if done % eval_every == 0 or done % checkpoint_every == 0 or done == total_steps:
      loss = float(metrics["loss"])
      if not np.isfinite(loss):
        raise NonFiniteLossError(
            f"{run.name}: training loss became {loss} at step {done}; stopped. "
            f"Last good checkpoint: step {manager.latest_step()} in {run.checkpoint_dir}")
      log_evaluation(done, state)
      if done % checkpoint_every == 0 or done == total_steps:
        save_checkpoint(manager, done, state)
  manager.close()
  return state, history
