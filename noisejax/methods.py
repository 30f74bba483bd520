"""Training methods as named pieces of one train step.

A method is not a copy of the training loop: it names the pieces that `train` plugs into
its one step and its one loop.

  targets      per-step target transform `(key, targets_B, num_classes, hparams) ->
               targets`: the labels (or rows of the per-sample target table) of a batch,
               redrawn at every step. `resample_targets` is the misclassification
               paper's §3 label noise, `sln_targets` stochastic label noise (SLN eq. 3).
  output_noise `(key, outputs_BxC, hparams) -> extra_B`, a per-sample term added to the
               loss whose gradient is noise on ∇_f ℓ pushed through the Jacobian (SLN
               eq. 2).
  grad_noise   `(key, grads, hparams, batch_size) -> grads`, noise on the batch-mean
               parameter gradient (SLN eq. 1).
  weights      per-sample weights `(losses_NetxB, hparams, epoch) -> weights_NetxB` from
               the batch's per-sample losses (gradients stopped), for sample selection
               (Co-teaching's cross selection between two networks). The step minimizes
               Σ_i w_i ℓ_i / Σ_i w_i.
  average      keep an exponential moving average of the parameters and BatchNorm
               statistics beside them, updated every step (SLN-MO's momentum model):
               θ' ← αθ' + (1−α)θ, α = hparams["ema_decay"]; evaluation reports the
               averaged model as well.
  networks     how many networks train together (Co-teaching: 2); their parameters carry
               a leading network axis and `weights` sees the losses of all of them.
  tables       per-sample state the train state carries: "targets" (N×C, starts as the
               one-hot given labels; the step trains on its rows) and "sample_weights"
               (N, starts at 1; multiplies each sample's loss before the batch mean).
  on_epoch     `(spec, state, epoch, data, key) -> state`, one run, jit-able, at the start
               of an epoch, between two compiled scans: updates the tables (label
               correction, loss truncation) and the hyperparameters from the model's
               predictions. `data` is the run's device data (train.Splits.device_data).
  on_epoch_due `(hparams, epoch) -> bool array`: at which epochs `on_epoch` has work
               (host-side, on the hyperparameters of every run; the hook is skipped when
               no run needs it).

Continuous hyperparameters (p, σ, α, …) are data in the train state (`state.hparams`),
not compile-time constants, so runs that differ only in them share one compiled program
and can be vmapped together. `defaults` names them and gives their default values.
"""

import dataclasses
from typing import Callable, Optional

import jax
import jax.numpy as jnp

from noisejax import data as data_lib
from noisejax import noise
from noisejax.errors import ConfigError


# ----------------------------------------------------------------------------
# Per-step targets and gradient noise (the SGD-noise variants of SLN §3.1).


def resample_targets(key, labels_B, num_classes, hparams):
  """Misclassification §3: each step's label is replaced, w.p. p, by a uniform draw."""
  return noise.resample_labels(key, labels_B, num_classes, hparams["p"])


def sln_targets(key, targets, num_classes, hparams):
  """SLN eq. 3: the one-hot (or soft) target plus σ·z, z ~ N(0, I_C), fresh every step."""
  if targets.ndim == 1:  # integer labels
    targets = jax.nn.one_hot(targets, num_classes, dtype=jnp.float32)
  return noise.stochastic_label_noise(key, targets, hparams["sigma"])


def output_gradient_noise(key, outputs_BxC, hparams):
  """SLN eq. 2: ∇̃_θ ℓ = (∇_f ℓ + σ_f z_f)·∇_θ f, z_f ~ N(0, I_C) fresh per sample and step.

  Returned as the per-sample term σ_f ⟨sg(z_f), f⟩, whose gradient is σ_f z_f·∇_θ f.
  """
  z_BxC = jax.lax.stop_gradient(jax.random.normal(key, outputs_BxC.shape, outputs_BxC.dtype))
  return hparams["sigma_f"] * jnp.sum(z_BxC * outputs_BxC, axis=-1)


def parameter_gradient_noise(key, grads, hparams, batch_size):
  """SLN eq. 1: ∇̃_θ ℓ_i = ∇_θ ℓ_i + σ_θ z_θ, z_θ ~ N(0, I_p) fresh per sample and step.

  The batch mean of B such draws is N(0, σ_θ²/B) per parameter, added to the mean gradient.
  """
  leaves, treedef = jax.tree.flatten(grads)
  keys = jax.random.split(key, len(leaves))
  scale = hparams["sigma_theta"] / jnp.sqrt(jnp.float32(batch_size))
  return jax.tree.unflatten(treedef, [g + scale * jax.random.normal(k, g.shape, g.dtype)
                                      for g, k in zip(leaves, keys)])


# ----------------------------------------------------------------------------
# Sample selection (Co-teaching) and per-sample tables (truncated GCE, label correction).


def _smallest(losses_B, keep):
  """1 for the `keep` samples with the smallest loss (keep may be traced), else 0."""
  rank_B = jnp.argsort(jnp.argsort(losses_B))
  return (rank_B < keep).astype(jnp.float32)


def coteaching_weights(losses_NxB, hparams, epoch):
  """Co-teaching (Han et al. 2018, Alg. 1): each of the two networks learns from the
  ⌊R(e)·B⌋ samples of the batch with the smallest loss under its peer (cross update),
  the keep rate R(e) = 1 − ε·min(e / T_k, 1) falling linearly over the first T_k epochs
  (SLN App. B.1: ε the noise rate, T_k = 10). e counts whole epochs, as in the authors'
  per-epoch schedule."""
  batch = losses_NxB.shape[-1]
  ramp = jnp.minimum(jnp.floor(epoch) / jnp.maximum(hparams["ramp_epochs"], 1.0), 1.0)
  keep = jnp.floor((1.0 - hparams["forget_rate"] * ramp) * batch)
  select = jax.vmap(lambda l: _smallest(l, keep))(losses_NxB)
  return select[::-1]  # network n trains on its peer's selection


def _epoch_mask(hparams, epoch, start, every):
  """Whether epoch e is ≥ `start` and a multiple of `every` epochs after it (per run)."""
  since = epoch - jnp.asarray(hparams[start])
  return (since >= 0) & (since % jnp.maximum(hparams[every], 1.0) == 0)


def truncate_weights(spec, state, epoch, data, key):
  """Truncated L_q (Zhang & Sabuncu 2018, §3.2; SLN App. B.1): after `warm_epochs` and
  then every `prune_every` epochs, sample i keeps weight w_i = 1 if the current model's
  p_{ỹ_i}(x_i) > k, else 0 (its loss is the constant L_q(k), no gradient). With loss
  `gce`, Σ_i w_i L_q(x_i) over the batch is the truncated GCE objective up to a constant."""
  del key
  probs_NxC = spec.probabilities(state, data["x"])
  p_label_N = jnp.take_along_axis(probs_NxC, data["labels"][:, None], axis=-1)[:, 0]
  new = (p_label_N > state.hparams["trunc_k"]).astype(jnp.float32)
  due = _epoch_mask(state.hparams, epoch, "warm_epochs", "prune_every")
  return state.replace(sample_weights=jnp.where(due, new, state.sample_weights))


def truncate_due(hparams, epoch):
  return _epoch_mask(hparams, epoch, "warm_epochs", "prune_every")


def label_correction(spec, state, epoch, data, key):
  """SLN-MO-LC (SLN §3.3, App. D, and the authors' code): from epoch `lc_epoch` on, every
  epoch, with σ switched off,
    ℓ_i = −Σ_c T_ic log S_ic,  S = the momentum model's softmax on (augmented) x_i,
    ω_i = (ℓ_i − min ℓ)/(max ℓ − min ℓ),
    T_i ← w_i·onehot(ỹ_i) + (1 − w_i)·onehot(argmax S_i),
  with w = ω (the paper's weighting) or, for `lc_reverse` = 1, w = 1 − ω (App. D, Fig. 10).
  T is the per-sample target table the step trains on (starting as onehot(ỹ))."""
  hp = state.hparams
  due = epoch >= hp["lc_epoch"]
  x_N = data["x"]
  if spec.augment != "none":
    x_N = data_lib.AUGMENTATIONS[spec.augment](key, x_N)
  probs_NxC = spec.probabilities(state, x_N, average=state.average is not None)
  loss_N = -jnp.sum(state.targets * jnp.log(jnp.maximum(probs_NxC, 1e-12)), axis=-1)
  omega_N = (loss_N - loss_N.min()) / jnp.maximum(loss_N.max() - loss_N.min(), 1e-12)
  w_N = jnp.where(hp["lc_reverse"] > 0.5, 1.0 - omega_N, omega_N)[:, None]
  given_NxC = jax.nn.one_hot(data["labels"], spec.num_classes, dtype=jnp.float32)
  predicted_NxC = jax.nn.one_hot(jnp.argmax(probs_NxC, -1), spec.num_classes,
                                 dtype=jnp.float32)
  corrected = w_N * given_NxC + (1.0 - w_N) * predicted_NxC
  return state.replace(targets=jnp.where(due, corrected, state.targets),
                       hparams=dict(hp, sigma=jnp.where(due, 0.0, hp["sigma"])))


def label_correction_due(hparams, epoch):
  return epoch >= jnp.asarray(hparams["lc_epoch"])


# ----------------------------------------------------------------------------
# The registry.


@dataclasses.dataclass(frozen=True)
class Method:
  """The pieces of one training method (see the module docstring). Hashable: the
  compiled step is keyed on it, so pieces are module-level functions."""
  name: str
  targets: Optional[Callable] = None
  output_noise: Optional[Callable] = None
  grad_noise: Optional[Callable] = None
  weights: Optional[Callable] = None
  average: bool = False
  networks: int = 1
  tables: tuple = ()            # of "targets", "sample_weights"
  on_epoch: Optional[Callable] = None
  on_epoch_due: Optional[Callable] = None
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


_SLN = (("sigma", 1.0),)
_MO = (("ema_decay", 0.999),)

METHODS = {
    "erm": Method("erm"),
    # Misclassification paper §3: SGD where each step's label is resampled w.p. p.
    "resample": Method("resample", targets=resample_targets, defaults=(("p", 0.1),)),
    # SLN paper eq. 3 (σ = 0 is plain CE with soft targets).
    "sln": Method("sln", targets=sln_targets, defaults=_SLN),
    # SLN-MO: SLN plus the momentum (EMA) model, evaluated beside the raw one.
    "sln_mo": Method("sln_mo", targets=sln_targets, average=True, defaults=_SLN + _MO),
    # SLN-MO-LC: SLN-MO, then label correction from epoch lc_epoch on (SLN §3.3).
    "sln_mo_lc": Method("sln_mo_lc", targets=sln_targets, average=True, tables=("targets",),
                        on_epoch=label_correction, on_epoch_due=label_correction_due,
                        defaults=_SLN + _MO + (("lc_epoch", 250.0), ("lc_reverse", 0.0))),
    # SLN eq. 1: spherical Gaussian noise on the parameter gradient.
    "param_noise": Method("param_noise", grad_noise=parameter_gradient_noise,
                          defaults=(("sigma_theta", 0.01),)),
    # SLN eq. 2: Gaussian noise on the gradient w.r.t. the output.
    "output_noise": Method("output_noise", output_noise=output_gradient_noise,
                           defaults=(("sigma_f", 0.1),)),
    # Co-teaching (Han et al. 2018) with SLN App. B.1's schedule.
    "coteaching": Method("coteaching", weights=coteaching_weights, networks=2,
                         defaults=(("forget_rate", 0.4), ("ramp_epochs", 10.0))),
    # Truncated L_q loss (Zhang & Sabuncu 2018) with loss "gce": periodic pruning.
    "truncate": Method("truncate", tables=("sample_weights",), on_epoch=truncate_weights,
                       on_epoch_due=truncate_due,
                       defaults=(("trunc_k", 0.5), ("warm_epochs", 50.0),
                                 ("prune_every", 10.0))),
}


def get_method(name: str) -> Method:
  if name not in METHODS:
    raise ConfigError("method.name", name, tuple(METHODS))
  return METHODS[name]
