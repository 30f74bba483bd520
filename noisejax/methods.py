"""Training methods as named pieces of one train step.

A method is not a copy of the training loop: it names the pieces that `train` plugs into
its one step and its one loop.

  targets    per-step target transform `(key, targets_B, num_classes, hparams) -> targets`:
             the labels (or rows of the per-sample target table) of a batch, redrawn at
             every step. `resample_targets` is the misclassification paper's §3 label
             noise, `sln_targets` stochastic label noise (SLN eq. 3).
  weights    per-sample weights `(losses_NetxB, hparams, epoch) -> weights_NetxB` from the
             batch's per-sample losses (gradients stopped), for sample selection: small-loss
             selection, Co-teaching's cross selection between two networks. The step
             minimizes Σ_i w_i ℓ_i / Σ_i w_i.
  average    keep an exponential moving average of the parameters and BatchNorm statistics
             beside them, updated every step (SLN-MO's momentum model): θ' ← αθ' + (1−α)θ,
             α = hparams["ema_decay"]; evaluation reports the averaged model as well.
  networks   how many networks train together (Co-teaching: 2); their parameters carry a
             leading network axis and `weights` sees the losses of all of them.
  on_epoch   `(spec, state, epoch, splits) -> state` at the start of every epoch, between
             two compiled scans: updates the per-sample target table `state.targets`
             (label correction, SLN-MO-LC) from the model's predictions.
  grad_noise `(key, grads, hparams) -> grads`, noise on the parameter gradient (SLN eq. 1).

Continuous hyperparameters (p, σ, α, …) are data in the train state (`state.hparams`),
not compile-time constants, so runs that differ only in them share one compiled program
and can be vmapped together. `defaults` names them and gives their default values.
"""

import dataclasses
from typing import Callable, Optional

import jax
import jax.numpy as jnp

from noisejax import noise
from noisejax.errors import ConfigError


def resample_targets(key, labels_B, num_classes, hparams):
  """Misclassification §3: each step's label is replaced, w.p. p, by a uniform draw."""
  return noise.resample_labels(key, labels_B, num_classes, hparams["p"])


def sln_targets(key, targets, num_classes, hparams):
  """SLN eq. 3: the one-hot (or soft) target plus σ·z, z ~ N(0, I_C), fresh every step."""
  if targets.ndim == 1:  # integer labels
    targets = jax.nn.one_hot(targets, num_classes, dtype=jnp.float32)
  return noise.stochastic_label_noise(key, targets, hparams["sigma"])


@dataclasses.dataclass(frozen=True)
class Method:
  """The pieces of one training method (see the module docstring). Hashable: the
  compiled step is keyed on it, so pieces are module-level functions."""
  name: str
  targets: Optional[Callable] = None
  weights: Optional[Callable] = None
  average: bool = False
  networks: int = 1
  on_epoch: Optional[Callable] = None
  grad_noise: Optional[Callable] = None
  defaults: tuple = ()          # ((hyperparameter, default value), ...)

  def hparams(self, overrides=None) -> dict:
    """The method's hyperparameters as float32 scalars: defaults updated by `overrides`."""
    values = dict(self.defaults)
    for key, value in (overrides or {}).items():
      if key not in values:
        raise ConfigError(f"method.{key}", value, tuple(values) or None,
                          reason=f"not a hyperparameter of method {self.name!r}")
      values[key] = value
    return {k: jnp.asarray(v, jnp.float32) for k, v in values.items()}


METHODS = {
    "erm": Method("erm"),
    # Misclassification paper §3: SGD where each step's label is resampled w.p. p.
    "resample": Method("resample", targets=resample_targets, defaults=(("p", 0.1),)),
    # SLN paper eq. 3 (σ = 0 is plain CE with soft targets).
    "sln": Method("sln", targets=sln_targets, defaults=(("sigma", 1.0),)),
    # SLN-MO: SLN plus the momentum (EMA) model, evaluated beside the raw one.
    "sln_mo": Method("sln_mo", targets=sln_targets, average=True,
                     defaults=(("sigma", 1.0), ("ema_decay", 0.999))),
}


def get_method(name: str) -> Method:
  if name not in METHODS:
    raise ConfigError("method.name", name, tuple(METHODS))
  return METHODS[name]
