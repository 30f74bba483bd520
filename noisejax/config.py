"""Config pieces every experiment shares, and one validation for all of them.

An experiment's config is an `ml_collections.ConfigDict`. The pieces that recur — which
data, which label noise, which model, loss, optimizer and training method — are built
here, so every experiment spells them the same way:

  config.data("mnist5k", classes=(7, 9))        -> name, classes, limit, data_dir
  config.noise("symmetric", 0.3)                -> kind, rate
  config.model("mlp", hidden=(512, 512))        -> name, model options
  config.loss("cross_entropy")                  -> name, loss hyperparameters
  config.optim("momentum", lr=0.05, ...)        -> name, lr, batch_size (0: full batch),
                                                   epochs, schedule, eval_every (0: once
                                                   per epoch), checkpoint_every (epochs)
  config.method("erm")                          -> name, method hyperparameters
  config.training(model, loss, optim, method)   -> the four together: what
                                                   train.train_classifier takes
                                                   (eval_loss=: the loss evaluation
                                                   reports, default the training loss;
                                                   eval_activity=: a layer whose active
                                                   units evaluation reports)

`validate(config)` walks the whole tree and checks every such piece wherever it sits
(`binary.optim`, `sweeps.mnist.noise`, ...): names against their registries, rates in
[0, 1), positive learning rates, non-negative sizes. A bad value raises a one-line
`ConfigError` naming the field by its full path and the valid choices.
"""

import ml_collections

from noisejax.errors import ConfigError, check_choice

PRESETS = ("quick", "paper", "tiny")


def _config(**fields) -> ml_collections.ConfigDict:
  return ml_collections.ConfigDict(fields)


def data(name="mnist5k", *, classes=None, limit=None, data_dir=None, **extra):
  """Which data set and which part of it (classes relabelled 0..k−1, a stratified limit)."""
  return _config(name=name, classes=tuple(classes) if classes else None, limit=limit,
                 data_dir=data_dir, **extra)


def noise(kind="symmetric", rate=0.0, **extra):
  """Label noise drawn once before training (noise.NOISE_TYPES)."""
  return _config(kind=kind, rate=float(rate), **extra)


def model(name, **options):
  """A network of models.MODELS and its options (e.g. hidden=(512, 512))."""
  return _config(name=name, **options)


def loss(name="cross_entropy", **hparams):
  """A per-sample loss of losses.LOSSES and its hyperparameters (e.g. q=0.7 for gce)."""
  return _config(name=name, **hparams)


def optim(name="sgd", *, lr, batch_size=128, epochs=10, momentum=0.0, weight_decay=0.0,
          schedule="constant", eval_every=0, checkpoint_every=1, **extra):
  """Optimizer and loop: batch_size 0 is full batch; eval_every is in steps (0: once per
  epoch); checkpoint_every in epochs."""
  return _config(name=name, lr=float(lr), batch_size=batch_size, epochs=epochs,
                 momentum=momentum, weight_decay=weight_decay, schedule=schedule,
                 eval_every=eval_every, checkpoint_every=checkpoint_every, **extra)


def method(name="erm", **hparams):
  """A training method of methods.METHODS and its hyperparameters (e.g. p=0.1)."""
  return _config(name=name, **hparams)


def training(model_, loss_, optim_, method_=None, eval_loss=None, eval_activity=None):
  """The training config `train.train_classifier` takes; `eval_loss` (a loss piece) is
  what evaluation reports on hard labels when it is not the training loss; with
  `eval_activity` (a layer name, e.g. "hidden_0") evaluation also reports that layer's
  active units (`train.Spec.eval_activity`)."""
  config = _config(model=model_, loss=loss_, optim=optim_, method=method_ or method())
  if eval_loss is not None:
    config.eval_loss = eval_loss
  if eval_activity is not None:
    config.eval_activity = eval_activity
  return config


# ----------------------------------------------------------------------------
# Validation.


def _check_rate(field, value):
  if not 0 <= value < 1:
    raise ConfigError(field, value, reason="must lie in [0, 1)")


def _check_data(path, node):
  from noisejax import data as data_lib  # pylint: disable=g-import-not-at-top
  check_choice(f"{path}.name", node.name, data_lib.DATASETS)
  classes = node.get("classes")
  if classes is not None and len(set(classes)) < 2:
    raise ConfigError(f"{path}.classes", classes, reason="needs at least two classes")
  for field in ("limit", "val_size", "test_limit"):
    value = node.get(field)
    if value is not None and value < 0:
      raise ConfigError(f"{path}.{field}", value, reason="must be >= 0")
  if node.get("original_order") and node.name not in data_lib.ORIGINAL_ORDER_DATASETS:
    raise ConfigError(f"{path}.original_order", node.original_order,
                      reason=f"{node.name} has no original order (only "
                             f"{', '.join(data_lib.ORIGINAL_ORDER_DATASETS)})")


def _check_noise(path, node):
  from noisejax import noise as noise_lib  # pylint: disable=g-import-not-at-top
  if "kind" in node:
    check_choice(f"{path}.kind", node.kind, noise_lib.NOISE_TYPES)
  if node.get("rate") is not None:
    _check_rate(f"{path}.rate", node.rate)
  for rate in node.get("rates") or ():
    _check_rate(f"{path}.rates", rate)
  if node.get("kind") == "csv":
    file = node.get("path")
    if not isinstance(file, str) or not file.strip():
      raise ConfigError(f"{path}.path", file,
                        reason="csv noise needs path=... (a CSV with columns label,label_noisy)")


def _check_model(path, node):
  from noisejax import models  # pylint: disable=g-import-not-at-top
  check_choice(f"{path}.name", node.name, models.MODELS)


def _check_loss(path, node):
  from noisejax import losses  # pylint: disable=g-import-not-at-top
  check_choice(f"{path}.name", node.name, losses.LOSSES)
  hparams = {k: v for k, v in node.items() if k != "name"}
  try:
    losses.make_loss(node.name, 2 if node.name in losses.BINARY else 10, **hparams)
  except ConfigError as e:  # name the field by its full path
    raise ConfigError(f"{path}.{e.field.split('.', 1)[-1]}", e.value, e.choices,
                      reason=str(e).split(": ", 1)[-1].split("; valid")[0]) from None


def _check_optim(path, node):
  from noisejax import train  # pylint: disable=g-import-not-at-top
  check_choice(f"{path}.name", node.get("name", "sgd"), train.OPTIMIZERS)
  check_choice(f"{path}.schedule", node.get("schedule", "constant"), train.SCHEDULES)
  if not node.lr > 0:
    raise ConfigError(f"{path}.lr", node.lr, reason="must be > 0")
  for field in ("batch_size", "epochs", "eval_every"):
    value = node.get(field)
    if value is not None and value < 0:
      raise ConfigError(f"{path}.{field}", value,
                        reason="must be >= 0 (batch size 0 means full batch)")


def _check_method(path, node):
  from noisejax import methods  # pylint: disable=g-import-not-at-top
  name = check_choice(f"{path}.name", node.name, tuple(methods.METHODS))
  known = dict(methods.METHODS[name].defaults)
  for key, value in node.items():
    if key != "name" and key not in known:
      raise ConfigError(f"{path}.{key}", value, tuple(known) or None,
                        reason=f"not a hyperparameter of method {name!r}")


_CHECKS = {"data": _check_data, "noise": _check_noise, "model": _check_model,
           "loss": _check_loss, "eval_loss": _check_loss, "optim": _check_optim,
           "method": _check_method}


def validate(config: ml_collections.ConfigDict, path: str = ""):
  """Checks every shared piece (data, noise, model, loss, optim, method) in the tree."""
  for key, node in config.items():
    here = f"{path}.{key}" if path else key
    if not isinstance(node, ml_collections.ConfigDict):
      continue
    check = _CHECKS.get(key)
    if check is not None and ("name" in node or key == "noise"):
      check(here, node)
    validate(node, here)
