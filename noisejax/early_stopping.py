"""The early-stopping point, defined once for every experiment.

A practitioner has no clean labels, and the error of a few hundred held-out images is
noisy on a curve that is flat near its minimum. So the point is chosen

  * on a **held-out split whose labels are corrupted like the training labels**
    (`holdout` + `ValidationError`, history key "val_error"); where an experiment has
    no such split it says which key it stops on instead, and
  * on that error **smoothed by a centered moving average** over `window` evaluations:

      t* = first argmin_t  (1/|W_t|) Σ_{s ∈ W_t} err(s),
      W_t = {t − ⌊w/2⌋, …, t + ⌊w/2⌋} ∩ {0, …, T − 1}   (shrunk at both ends).

With symmetric noise at rate δ < (C − 1)/C the expected noisy-label error is
δ + (1 − δ·C/(C − 1))·err_clean, an increasing function of the clean error, so both are
minimized at the same point in expectation.
"""

import dataclasses

import jax
import numpy as np

WINDOW = 5  # evaluations averaged around each candidate point
KEY = "val_error"


def smoothed(values_T, window: int = WINDOW) -> np.ndarray:
  """The centered moving average of values_T over `window` points (shrunk at the ends)."""
  values_T = np.asarray(values_T, np.float64)
  if window < 1:
    raise ValueError(f"early-stopping window must be ≥ 1, got {window}")
  half = window // 2
  cumsum = np.concatenate([[0.0], np.cumsum(values_T)])
  idx = np.arange(len(values_T))
  lo, hi = np.maximum(idx - half, 0), np.minimum(idx + half + 1, len(values_T))
  return (cumsum[hi] - cumsum[lo]) / (hi - lo)


def index(values_T, window: int = WINDOW) -> int:
  """t*: the first argmin of the smoothed curve."""
  if len(values_T) == 0:
    raise ValueError("no evaluations to choose an early-stopping point from")
  return int(np.argmin(smoothed(values_T, window)))


def point(history: list[dict], key: str = KEY, window: int = WINDOW) -> dict:
  """The history record at t* of `key` (see the module docstring)."""
  return history[index([r[key] for r in history], window)]


def holdout(key, num: int, size: int) -> tuple[np.ndarray, np.ndarray]:
  """(train_idx, val_idx): a random split of range(num) holding out `size` samples."""
  if not 0 < size < num:
    raise ValueError(f"validation size must be in (0, {num}), got {size}")
  order = np.asarray(jax.random.permutation(key, num))
  return np.sort(order[size:]), np.sort(order[:size])


@dataclasses.dataclass
class ValidationError:
  """An eval_fn for train.train_classifier: "val_error", the error of the current model
  against the held-out split's (noisy) labels y_val."""
  x_val: np.ndarray
  y_val: np.ndarray

  def __call__(self, snapshot) -> dict:
    from noisejax import train  # pylint: disable=g-import-not-at-top
    predicted = np.asarray(train.classify(snapshot.predict(self.x_val))[0])
    return {KEY: float(np.mean(predicted != np.asarray(self.y_val)))}
