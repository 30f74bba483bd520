"""Per-sample losses: `fn(outputs_BxK, labels_B) -> losses_B`, pure and jit-able.

`outputs` are the model's pre-activation outputs h (logits); `labels` are integer class
ids, for binary tasks in {0, 1} with outputs B×1 (where a paper writes y ∈ {±1}, the
loss maps y = 2·label − 1). Any leading shape works, so a single sample (outputs K,
label scalar) gives a scalar, as per-sample gradient code needs. Means over the batch
are taken by the caller. `make_loss(name, num_classes, **hparams)` builds one by name.

SLN (stochastic-label-noise eq. 3) is `softmax_cross_entropy(logits, onehot + σz)` with
the noisy soft targets from `noise.stochastic_label_noise`.
"""

import functools
import math
from typing import Callable

import jax
import jax.numpy as jnp

from noisejax.errors import ConfigError

LossFn = Callable[[jax.Array, jax.Array], jax.Array]


def softmax_cross_entropy(logits_BxC, targets_BxC):
  """Soft-target cross-entropy ℓ = −Σ_c t_c log softmax(z)_c (SLN eq. 3, LS).

  Targets may be any reals: SLN's y + σz has negative entries and does not sum to 1.
  """
  return -jnp.sum(targets_BxC * jax.nn.log_softmax(logits_BxC, axis=-1), axis=-1)


def _scalar_output(outputs_Bx1, loss_name):
  if outputs_Bx1.shape[-1] != 1:
    raise ValueError(f"{loss_name} expects one output per sample (B×1), got outputs of shape "
                     f"{outputs_Bx1.shape}; build the model with num_outputs=1")
  return outputs_Bx1[..., 0]


def _log_prob_of_label(logits_BxC, labels_B):
  if logits_BxC.shape[-1] < 2:
    raise ValueError(f"softmax losses need C >= 2 logits, got outputs of shape "
                     f"{logits_BxC.shape}; for one output use 'logistic'")
  log_p_BxC = jax.nn.log_softmax(logits_BxC, axis=-1)
  return jnp.take_along_axis(log_p_BxC, labels_B[..., None].astype(jnp.int32), axis=-1)[..., 0]


def cross_entropy(logits_BxC, labels_B):
  """Cross-entropy ℓ = −log p_y, p = softmax(z) (clean-priority §2, SLN "CE").

  Soft targets (B×C floats instead of B integer labels) give −Σ_c t_c log p_c
  (`softmax_cross_entropy`): the per-step targets of SLN and label correction.
  """
  if jnp.issubdtype(labels_B.dtype, jnp.floating) and labels_B.ndim == logits_BxC.ndim:
    return softmax_cross_entropy(logits_BxC, labels_B)
  return -_log_prob_of_label(logits_BxC, labels_B)


def logistic(outputs_Bx1, labels_B):
  """Binary cross-entropy with sigmoid, y ∈ {0, 1}: ℓ = −y log σ(h) − (1−y) log(1−σ(h)).

  = softplus(h) − y·h (clean-priority eq. 32); equals log(1 + exp(−ỹh)) with ỹ = 2y − 1
  (label-noise feature learning, misclassification §3). Its gradient in h is σ(h) − y (eq. 5).
  """
  h_B = _scalar_output(outputs_Bx1, "logistic")
  y_pm_B = 2.0 * labels_B.astype(h_B.dtype) - 1.0
  return jax.nn.softplus(-y_pm_B * h_B)  # no cancellation at large margins


def hinge(outputs_Bx1, labels_B, beta=0.0):
  """Hinge loss with margin β: ℓ = max(0, β − ỹ f), ỹ = 2y − 1 ∈ {±1}.

  Misclassification §3: L(ξ) = ReLU(β + ξ) at ξ = −yN(x), β ≥ 0; Thms 3–4 use β = 0.
  """
  f_B = _scalar_output(outputs_Bx1, "hinge")
  y_pm_B = 2.0 * labels_B.astype(f_B.dtype) - 1.0
  return jax.nn.relu(beta - y_pm_B * f_B)


def sum_logistic(outputs_BxK, labels_B, num_classes=None):
  """Sum of per-class logistic losses ℓ = Σ_i log(1 + exp(−y_i N(x)_i)), y_i = ±1.

  Misclassification eq. 3: y_i = +1 for the labelled class, −1 for the others. With a
  single output (binary task, num_classes 2) it is the logistic loss with ỹ = 2y − 1.
  """
  if outputs_BxK.shape[-1] == 1:
    return logistic(outputs_BxK, labels_B)
  num_classes = num_classes or outputs_BxK.shape[-1]
  y_pm_BxK = 2.0 * jax.nn.one_hot(labels_B, num_classes, dtype=outputs_BxK.dtype) - 1.0
  return jnp.sum(jax.nn.softplus(-y_pm_BxK * outputs_BxK), axis=-1)


def squared(outputs_BxK, labels_B, num_classes=None, scalar_target="pm1"):
  """Squared loss ℓ = ½‖h − t‖² (early-stopping eq. 3: L(W) = ½Σ_i (y_i − f(W, x_i))²).

  K > 1 outputs: t = one-hot(y). One output (binary task): t = 2y − 1 ∈ {±1}
  (scalar_target="pm1", the early-stopping labels α ∈ {±1}) or t = y ∈ {0, 1} ("01").
  """
  if outputs_BxK.shape[-1] == 1:
    y_B = labels_B.astype(outputs_BxK.dtype)
    t_B = 2.0 * y_B - 1.0 if scalar_target == "pm1" else y_B
    return 0.5 * (outputs_BxK[..., 0] - t_B) ** 2
  num_classes = num_classes or outputs_BxK.shape[-1]
  t_BxK = jax.nn.one_hot(labels_B, num_classes, dtype=outputs_BxK.dtype)
  return 0.5 * jnp.sum((outputs_BxK - t_BxK) ** 2, axis=-1)


def gce(logits_BxC, labels_B, q=0.7):
  """Generalized cross-entropy ℓ = (1 − p_y^q)/q, q ∈ (0, 1] (Zhang & Sabuncu 2018, eq. 6).

  q → 0 gives CE, q = 1 gives 1 − p_y (MAE up to a factor 2); SLN App. B uses q = 0.7.
  """
  return (1.0 - jnp.exp(q * _log_prob_of_label(logits_BxC, labels_B))) / q


def phuber_ce(logits_BxC, labels_B, tau=2.0):
  """Partially Huberized CE (Menon et al. 2020): ℓ = −τp_y + log τ + 1 if p_y ≤ 1/τ, else −log p_y.

  τ > 1; linear in p_y (bounded gradient) below p_y = 1/τ and continuous there.
  """
  log_p_B = _log_prob_of_label(logits_BxC, labels_B)
  p_B = jnp.exp(log_p_B)
  return jnp.where(p_B <= 1.0 / tau, -tau * p_B + math.log(tau) + 1.0, -log_p_B)


def label_smoothing(logits_BxC, labels_B, alpha=0.1, num_classes=None):
  """CE against smoothed targets ỹ = (1 − α)·one-hot(y) + α/C (SLN §3.2, Lukasik et al. 2020).

  Misclassification §3 writes the same targets with α = p: (1 − p + p/|Y|, p/|Y|, …).
  """
  num_classes = num_classes or logits_BxC.shape[-1]
  onehot_BxC = jax.nn.one_hot(labels_B, num_classes, dtype=logits_BxC.dtype)
  return softmax_cross_entropy(logits_BxC, (1.0 - alpha) * onehot_BxC + alpha / num_classes)


# ----------------------------------------------------------------------------
# Registry.

LOSSES = ("cross_entropy", "logistic", "hinge", "sum_logistic", "squared", "gce", "phuber",
          "label_smoothing")

_HPARAMS = {
    "cross_entropy": {},
    "logistic": {},
    "hinge": {"beta": 0.0},
    "sum_logistic": {},
    "squared": {"scalar_target": "pm1"},
    "gce": {"q": 0.7},
    "phuber": {"tau": 2.0},
    "label_smoothing": {"alpha": 0.1},
}
BINARY = ("logistic", "hinge")  # one output per sample (B×1)


def _validate(name, num_classes, hparams):
  if name in BINARY and num_classes != 2:
    raise ConfigError("loss.name", name,
                      reason=f"a binary loss (outputs B×1) needs num_classes=2, got {num_classes}")
  if "beta" in hparams and not hparams["beta"] >= 0:
    raise ConfigError("loss.beta", hparams["beta"], reason="the hinge margin must be >= 0")
  if "q" in hparams and not 0 < hparams["q"] <= 1:
    raise ConfigError("loss.q", hparams["q"], reason="must lie in (0, 1]")
  if "tau" in hparams and not hparams["tau"] > 1:
    raise ConfigError("loss.tau", hparams["tau"], reason="must be > 1")
  if "alpha" in hparams and not 0 <= hparams["alpha"] < 1:
    raise ConfigError("loss.alpha", hparams["alpha"], reason="must lie in [0, 1)")
  if "scalar_target" in hparams and hparams["scalar_target"] not in ("pm1", "01"):
    raise ConfigError("loss.scalar_target", hparams["scalar_target"], ("pm1", "01"))


def make_loss(name: str, num_classes: int, **hparams) -> LossFn:
  """Returns the per-sample loss `fn(outputs, labels) -> losses` called `name`.

  hparams: hinge beta (default 0), gce q (0.7), phuber tau (2), label_smoothing alpha
  (0.1), squared scalar_target ("pm1"). Raises ConfigError("loss.<field>") for an
  unknown name, an unknown hyperparameter or a value out of range.
  """
  if name not in _HPARAMS:
    raise ConfigError("loss.name", name, LOSSES)
  for key, value in hparams.items():
    if key not in _HPARAMS[name]:
      raise ConfigError(f"loss.{key}", value, tuple(_HPARAMS[name]) or None,
                        reason=f"not a hyperparameter of loss {name!r}")
  hparams = {**_HPARAMS[name], **hparams}
  _validate(name, num_classes, hparams)
  if name == "cross_entropy":
    return cross_entropy
  if name == "logistic":
    return logistic
  if name == "hinge":
    return functools.partial(hinge, beta=float(hparams["beta"]))
  if name == "sum_logistic":
    return functools.partial(sum_logistic, num_classes=num_classes)
  if name == "squared":
    return functools.partial(squared, num_classes=num_classes,
                             scalar_target=hparams["scalar_target"])
  if name == "gce":
    return functools.partial(gce, q=float(hparams["q"]))
  if name == "phuber":
    return functools.partial(phuber_ce, tau=float(hparams["tau"]))
  return functools.partial(label_smoothing, alpha=float(hparams["alpha"]),
                           num_classes=num_classes)
