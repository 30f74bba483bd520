"""Label noise, in one place: fixed corruptions of a dataset and per-step label noise.

Two families live here.

Fixed corruptions are drawn once, before training. Each is deterministic under a jax
PRNG key (`jax.random` does the sampling), returns numpy arrays, and returns a
`NoisyLabels(labels, clean_labels, is_noisy, rate)` where `is_noisy` always means
`labels != clean_labels` (except for open-set noise, see `open_set`) and `rate` is the
realized fraction `is_noisy.mean()`. The counting convention is in every name:

  symmetric_per_class   exactly round(rate·n_c) samples of each class c go to a
                        uniformly random OTHER class (clean-priority paper, "into each
                        class").
  symmetric_total       exactly floor(rate·n) samples of the whole set, chosen uniformly,
                        go to a uniformly random other class (feature-learning code).
  symmetric_bernoulli   each sample independently, with probability rate, goes to a
                        uniformly random other class (SLN paper, "flip the label to other
                        classes with an overall probability").
  symmetric_all_classes each sample, with probability rate, is replaced by a uniform draw
                        from ALL classes, the true one included, so only about
                        rate·(C-1)/C labels end up wrong (early-stopping paper, "assigning
                        their label uniformly at random").
  pair                  class c goes to class_map[c]: per sample with probability rate
                        (SLN paper, "with a probability 40%"), or exactly round(rate·n_c)
                        per source class with `exact_per_class=True`.
  instance_dependent    the round(rate·n) samples whose averaged softmax puts the most mass
                        on one wrong class get that class (Chen et al. 2020a, used by SLN).
  open_set              a floor(rate·n) subset of INPUTS is replaced by inputs of another
                        data set; labels are kept (Wang et al. 2018, used by SLN).

Published noisy labels are read, not drawn: `from_csv` reads the SLN authors' CSV files
(`corrupt(kind="csv", path=...)`) and checks them against the data they are used with.

Per-step noise is drawn afresh at every training step inside the jitted step: pure jnp
functions `resample_labels`, `resample_signs` (misclassification paper) and
`stochastic_label_noise` (SLN paper, Eq. 3).
"""

import collections.abc
import csv
import dataclasses
import os
import types

import jax
import jax.numpy as jnp
import numpy as np

from noisejax.errors import ConfigError

NOISE_TYPES = (
    "none",
    "symmetric",
    "symmetric_total",
    "symmetric_bernoulli",
    "symmetric_all",
    "pair",
    "instance",
    "open_set",
    "csv",
)

CIFAR10_CLASSES = (
    "airplane", "automobile", "bird", "cat", "deer",
    "dog", "frog", "horse", "ship", "truck",
)

# TRUCK -> AUTOMOBILE, BIRD -> AIRPLANE, DEER -> HORSE, CAT <-> DOG (Zhang & Sabuncu 2018,
# SLN paper Sec. 4). Classes not listed keep their label.
CIFAR10_PAIR_MAP = types.MappingProxyType({9: 1, 2: 0, 4: 7, 3: 5, 5: 3})

# MNIST's asymmetric map between similar digits, 2 -> 7, 3 -> 8, 5 <-> 6, 7 -> 1 (Patrini
# et al. 2017, used on MNIST by Zhang & Sabuncu's follow-ups): the SLN quick preset's
# stand-in for the CIFAR-10 map.
MNIST_PAIR_MAP = types.MappingProxyType({2: 7, 3: 8, 5: 6, 6: 5, 7: 1})

# Named class maps accepted wherever a `class_map` is expected.
PAIR_MAPS = ("cifar10", "mnist", "cifar100", "next")


# ----------------------------------------------------------------------------------------
# The result type.


@dataclasses.dataclass(frozen=True, eq=False)
class NoisyLabels:
  """Given labels next to the clean ones.

  labels: given (possibly corrupted) labels, int32 (N,).
  clean_labels: true labels, int32 (N,).
  is_noisy: bool (N,), `labels != clean_labels`; for open-set noise it marks the samples
    whose INPUT was replaced (their labels are unchanged).
  rate: realized noise rate, `is_noisy.mean()`.

  Several draws (one per seed) stack to arrays S×N with a rate per draw (`stack`).
  """

  labels: np.ndarray
  clean_labels: np.ndarray
  is_noisy: np.ndarray
  rate: float

  def __post_init__(self):
    labels = np.asarray(self.labels, dtype=np.int32)
    clean = np.asarray(self.clean_labels, dtype=np.int32)
    is_noisy = np.asarray(self.is_noisy, dtype=bool)
    if not labels.shape == clean.shape == is_noisy.shape or labels.ndim not in (1, 2):
      raise ValueError(
          "NoisyLabels needs 1-D (or, for stacked draws, 2-D) arrays of one shape; got "
          f"labels {labels.shape}, clean_labels {clean.shape}, is_noisy {is_noisy.shape}")
    object.__setattr__(self, "labels", labels)
    object.__setattr__(self, "clean_labels", clean)
    object.__setattr__(self, "is_noisy", is_noisy)
    rate = float(self.rate) if labels.ndim == 1 else np.asarray(self.rate, np.float64)
    object.__setattr__(self, "rate", rate)

  @property
  def noisy_indices(self):
    """Indices of the noisy samples, sorted."""
    return np.flatnonzero(self.is_noisy)

  @property
  def clean_indices(self):
    """Indices of the clean samples, sorted."""
    return np.flatnonzero(~self.is_noisy)

  def transition_matrix(self, num_classes):
    """Realized T[i, j] = P(given = j | clean = i), see `transition_matrix`."""
    return transition_matrix(self.clean_labels, self.labels, num_classes)

  def save(self, path):
    """Writes an npz; a directory `path` gets `path/noise.npz`. Returns the file path."""
    path = os.fspath(path)
    if os.path.isdir(path):
      path = os.path.join(path, "noise.npz")
    elif not path.endswith(".npz"):
      path += ".npz"
    np.savez(path, labels=self.labels, clean_labels=self.clean_labels,
             is_noisy=self.is_noisy, rate=np.asarray(self.rate, np.float64))
    return path

  @classmethod
  def load(cls, path):
    """Reads what `save` wrote (a file, or a directory holding `noise.npz`)."""
    path = os.fspath(path)
    if os.path.isdir(path):
      path = os.path.join(path, "noise.npz")
    with np.load(path) as f:
      return cls(f["labels"], f["clean_labels"], f["is_noisy"], f["rate"])


def stack(draws) -> NoisyLabels:
  """Several draws of noisy labels for the same samples (one per seed) as S×N arrays."""
  draws = list(draws)
  return NoisyLabels(np.stack([d.labels for d in draws]),
                     np.stack([d.clean_labels for d in draws]),
                     np.stack([d.is_noisy for d in draws]), [d.rate for d in draws])


def _result(clean, given, is_noisy=None):
  """Packs a NoisyLabels; the mask defaults to `given != clean`."""
  if is_noisy is None:
    is_noisy = given != clean
  rate = float(is_noisy.mean()) if is_noisy.size else 0.0
  return NoisyLabels(given, clean, is_noisy, rate)


# ----------------------------------------------------------------------------------------
# Validation.


def _summary(a):
  a = np.asarray(a)
  if a.size == 0:
    return f"array(shape={a.shape})"
  return f"array(shape={a.shape}, dtype={a.dtype}, min={a.min()}, max={a.max()})"


def _check_num_classes(num_classes):
  if (isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer))
      or num_classes < 2):
    raise ConfigError("noise.num_classes", num_classes,
                      reason="must be an integer >= 2")
  return int(num_classes)


def _check_labels(labels, num_classes):
  """Returns labels as int32 (N,) with values in [0, num_classes)."""
  arr = np.asarray(labels)
  if arr.ndim != 1 or not (np.issubdtype(arr.dtype, np.integer) or arr.size == 0):
    raise ConfigError("noise.labels", _summary(arr),
                      reason="must be a 1-D array of integer class ids")
  if arr.size and (arr.min() < 0 or arr.max() >= num_classes):
    raise ConfigError("noise.labels", _summary(arr),
                      reason=f"class ids must lie in [0, {num_classes})")
  return arr.astype(np.int32)


def _check_rate(rate, *, require_clean_majority=False, allow_one=False):
  """rate in [0, 1) ([0, 1] if allow_one), or [0, 0.5) with require_clean_majority."""
  if isinstance(rate, bool) or not isinstance(rate, (int, float, np.integer, np.floating)):
    raise ConfigError("noise.rate", rate, reason="must be a number")
  rate = float(rate)
  if require_clean_majority:
    if not 0.0 <= rate < 0.5:
      raise ConfigError(
          "noise.rate", rate,
          reason="must lie in [0, 0.5) so that clean labels stay the majority "
                 "(pass require_clean_majority=False to allow more)")
  elif allow_one:
    if not 0.0 <= rate <= 1.0:
      raise ConfigError("noise.rate", rate, reason="must lie in [0, 1]")
  elif not 0.0 <= rate < 1.0:
    raise ConfigError("noise.rate", rate, reason="must lie in [0, 1)")
  return rate


def _round_count(rate, n):
  """round(rate·n), halves rounded up (so round(0.5·3) = 2), robust to 0.29·100."""
  return np.floor(rate * np.asarray(n, dtype=np.float64) + 0.5 + 1e-9).astype(np.int64)


def _floor_count(rate, n):
  """floor(rate·n), robust to binary fractions (floor(0.29·100) = 29)."""
  return np.floor(rate * np.asarray(n, dtype=np.float64) + 1e-9).astype(np.int64)


# ----------------------------------------------------------------------------------------
# Shared sampling pieces (jax.random draws, numpy bookkeeping).


def _other_class(key, clean, num_classes):
  """A uniformly random class != clean for every sample: (y + U{1..C-1}) mod C."""
  offset = np.asarray(jax.random.randint(key, clean.shape, 1, num_classes))
  return ((clean + offset) % num_classes).astype(np.int32)


def _exact_per_class_mask(key, labels, counts_to_flip, num_classes):
  """Marks counts_to_flip[c] uniformly chosen samples of each class c."""
  n = labels.size
  rank = np.asarray(jax.random.permutation(key, n))  # a random ranking of the samples
  order = np.lexsort((rank, labels))  # by class, then by random rank
  sizes = np.bincount(labels, minlength=num_classes)
  starts = np.cumsum(sizes) - sizes
  sorted_labels = labels[order]
  position = np.arange(n) - starts[sorted_labels]
  mask = np.zeros(n, dtype=bool)
  mask[order] = position < counts_to_flip[sorted_labels]
  return mask


# ----------------------------------------------------------------------------------------
# Symmetric noise.


def symmetric_per_class(key, labels, num_classes, rate, *, require_clean_majority=False):
  """Exactly round(rate·n_c) samples of each class c relabelled to a uniform other class.

  Clean-priority paper, Sec. 3 (D_noise uniform over all classes but the true one) and
  App. ("injected 40% random label noise into each class"). T[c, c] = 1 − k_c/n_c.
  """
  num_classes = _check_num_classes(num_classes)
  clean = _check_labels(labels, num_classes)
  rate = _check_rate(rate, require_clean_majority=require_clean_majority)
  key_pick, key_class = jax.random.split(key)
  counts = _round_count(rate, np.bincount(clean, minlength=num_classes))
  flip = _exact_per_class_mask(key_pick, clean, counts, num_classes)
  given = np.where(flip, _other_class(key_class, clean, num_classes), clean)
  return _result(clean, given)


def symmetric_total(key, labels, num_classes, rate, *, require_clean_majority=False):
  """Exactly floor(rate·n) samples, chosen uniformly from all n, go to a uniform other class.

  The count convention of the feature-learning paper's code (flips ⌊rate·N⌋ labels);
  per-class counts are then hypergeometric, not fixed.
  """
  num_classes = _check_num_classes(num_classes)
  clean = _check_labels(labels, num_classes)
  rate = _check_rate(rate, require_clean_majority=require_clean_majority)
  key_pick, key_class = jax.random.split(key)
  rank = np.asarray(jax.random.permutation(key_pick, clean.size))
  flip = rank < _floor_count(rate, clean.size)
  given = np.where(flip, _other_class(key_class, clean, num_classes), clean)
  return _result(clean, given)


def symmetric_bernoulli(key, labels, num_classes, rate, *, require_clean_majority=False):
  """Each sample independently, w.p. rate, goes to a uniformly random other class.

  SLN paper Sec. 4: "uniformly flip the label to other classes with an overall probability
  40%". E[T] = (1 − rate)·I + rate/(C − 1)·(11ᵀ − I).
  """
  num_classes = _check_num_classes(num_classes)
  clean = _check_labels(labels, num_classes)
  rate = _check_rate(rate, require_clean_majority=require_clean_majority)
  key_pick, key_class = jax.random.split(key)
  flip = np.asarray(jax.random.uniform(key_pick, clean.shape)) < rate
  given = np.where(flip, _other_class(key_class, clean, num_classes), clean)
  return _result(clean, given)


def symmetric_all_classes(key, labels, num_classes, rate, *, require_clean_majority=False):
  """Each label, w.p. rate, is replaced by a uniform draw from ALL C classes (true included).

  Early-stopping paper Sec. 1 ("assigning their label uniformly at random"). A draw equal
  to the true label is not noise: is_noisy = given != clean, so E[rate] = rate·(C−1)/C.
  rate = 1 (labels independent of inputs) is allowed.
  """
  num_classes = _check_num_classes(num_classes)
  clean = _check_labels(labels, num_classes)
  rate = _check_rate(rate, require_clean_majority=require_clean_majority, allow_one=True)
  key_pick, key_class = jax.random.split(key)
  replace = np.asarray(jax.random.uniform(key_pick, clean.shape)) < rate
  draw = np.asarray(jax.random.randint(key_class, clean.shape, 0, num_classes))
  given = np.where(replace, draw, clean).astype(np.int32)
  return _result(clean, given)


def symmetric_transition(num_classes, rate):
  """Expected T for symmetric noise to other classes: (1−δ) on the diagonal, δ/(C−1) off it.

  Holds for symmetric_per_class (up to rounding), symmetric_total and symmetric_bernoulli.
  """
  num_classes = _check_num_classes(num_classes)
  t = np.full((num_classes, num_classes), rate / (num_classes - 1))
  np.fill_diagonal(t, 1.0 - rate)
  return t


# ----------------------------------------------------------------------------------------
# Pair (asymmetric) noise.


def next_class_map(num_classes):
  """Class i -> (i + 1) mod C, as an array (the CIFAR-100 pair map for C = 100)."""
  num_classes = _check_num_classes(num_classes)
  return (np.arange(num_classes) + 1) % num_classes


def cifar100_pair_map():
  """CIFAR-100 pair noise: each class into the next one circularly (SLN paper Sec. 4)."""
  return next_class_map(100)


def _class_id(entry, num_classes, class_names):
  """A class id from an int or a class name."""
  if isinstance(entry, str):
    names = class_names if class_names is not None else (
        CIFAR10_CLASSES if num_classes == 10 else None)
    if names is None:
      raise ConfigError("noise.class_map", entry,
                        reason="class names need `class_names` for "
                               f"{num_classes} classes")
    names = tuple(names)
    if entry not in names:
      raise ConfigError("noise.class_map", entry, choices=names,
                        reason="unknown class name")
    return names.index(entry)
  if isinstance(entry, bool) or not isinstance(entry, (int, np.integer)):
    raise ConfigError("noise.class_map", entry,
                      reason="map entries must be class ids or class names")
  if not 0 <= entry < num_classes:
    raise ConfigError("noise.class_map", int(entry),
                      reason=f"class ids must lie in [0, {num_classes})")
  return int(entry)


def class_map_array(class_map, num_classes, *, class_names=None):
  """Any class map as an int array m of length C: class c goes to m[c]; m[c] == c: untouched.

  class_map: "cifar10" (`CIFAR10_PAIR_MAP`), "mnist" (`MNIST_PAIR_MAP`), "cifar100" (C
  must be 100) or "next"
  (i -> i+1 mod C); a dict {source: target} of ids or names (names looked up in
  `class_names`, default `CIFAR10_CLASSES` when C = 10); or an array of length C.
  """
  num_classes = _check_num_classes(num_classes)
  if isinstance(class_map, str):
    if class_map not in PAIR_MAPS:
      raise ConfigError("noise.class_map", class_map, choices=PAIR_MAPS)
    if class_map in ("cifar10", "mnist"):
      if num_classes != 10:
        raise ConfigError("noise.class_map", class_map,
                          reason=f"is a 10-class map, not {num_classes}-class")
      class_map = dict(CIFAR10_PAIR_MAP if class_map == "cifar10" else MNIST_PAIR_MAP)
    elif class_map == "cifar100":
      if num_classes != 100:
        raise ConfigError("noise.class_map", class_map,
                          reason=f"is a 100-class map, not {num_classes}-class")
      return cifar100_pair_map()
    else:
      return next_class_map(num_classes)
  if isinstance(class_map, collections.abc.Mapping):
    m = np.arange(num_classes)
    for source, target in class_map.items():
      s = _class_id(source, num_classes, class_names)
      t = _class_id(target, num_classes, class_names)
      if s == t:
        raise ConfigError("noise.class_map", f"{source}->{target}",
                          reason="maps a class to itself")
      m[s] = t
    return m
  if class_map is None:
    raise ConfigError("noise.class_map", None, choices=PAIR_MAPS,
                      reason="pair noise needs a class map (a name, dict or array)")
  m = np.asarray(class_map)
  if m.shape != (num_classes,) or not np.issubdtype(m.dtype, np.integer):
    raise ConfigError("noise.class_map", _summary(m),
                      reason=f"an array map must hold {num_classes} integer class ids")
  if m.min() < 0 or m.max() >= num_classes:
    raise ConfigError("noise.class_map", _summary(m),
                      reason=f"class ids must lie in [0, {num_classes})")
  return m.astype(np.int64)


def pair(key, labels, num_classes, rate, class_map, *, exact_per_class=False,
         class_names=None, require_clean_majority=True):
  """Class c relabelled to class_map[c]: each sample w.p. rate, or exactly round(rate·n_c).

  SLN paper Sec. 4 (after Zhang & Sabuncu 2018): "flip labels ... with a probability 40%",
  hence per-sample Bernoulli by default. T[c, m(c)] = rate for sources c, T = I elsewhere.
  Rates >= 0.5 would make the target the majority label, so they need
  require_clean_majority=False.
  """
  num_classes = _check_num_classes(num_classes)
  clean = _check_labels(labels, num_classes)
  rate = _check_rate(rate, require_clean_majority=require_clean_majority)
  m = class_map_array(class_map, num_classes, class_names=class_names)
  is_source = m != np.arange(num_classes)
  if exact_per_class:
    sizes = np.bincount(clean, minlength=num_classes)
    counts = np.where(is_source, _round_count(rate, sizes), 0)
    flip = _exact_per_class_mask(key, clean, counts, num_classes)
  else:
    flip = (np.asarray(jax.random.uniform(key, clean.shape)) < rate) & is_source[clean]
  given = np.where(flip, m[clean], clean).astype(np.int32)
  return _result(clean, given)


def pair_transition(num_classes, rate, class_map, *, class_names=None):
  """Expected T for pair noise: T[c, m(c)] = rate, T[c, c] = 1 − rate for sources c."""
  m = class_map_array(class_map, num_classes, class_names=class_names)
  t = np.eye(m.size)
  for c, target in enumerate(m):
    if target != c:
      t[c, c], t[c, target] = 1.0 - rate, rate
  return t


# ----------------------------------------------------------------------------------------
# Instance-dependent noise.


def average_predictions(probs_seq):
  """S̄ = (1/T) Σ_t S_t: the softmax averaged over the T recorded epochs (Chen et al. 2020a).

  probs_seq: a sequence of N×C softmax arrays, or one T×N×C array. Returns float64 N×C.
  """
  arrays = [np.asarray(p, dtype=np.float64) for p in probs_seq]
  if not arrays:
    raise ConfigError("noise.probs", "[]", reason="needs at least one N×C array")
  shape = arrays[0].shape
  if len(shape) != 2 or any(a.shape != shape for a in arrays):
    raise ConfigError("noise.probs", [a.shape for a in arrays][:4],
                      reason="every array must be N×C with one shape")
  return np.mean(np.stack(arrays), axis=0)


def instance_dependent(key, labels, probs_NxC, rate, *, require_clean_majority=False):
  """The round(rate·n) samples with the largest s_i = max_{k≠y_i} S̄_ik go to argmax_{k≠y_i} S̄_ik.

  Chen et al. 2020a, as used by the SLN paper Sec. 4 ("synthetized based on the DNN
  prediction error"). probs_NxC: softmax of a model trained on CLEAN labels, averaged over
  its training (`average_predictions`); the top scores are taken over all n samples, not
  per class. The key only breaks ties between equal scores.
  """
  probs = np.asarray(probs_NxC, dtype=np.float64)
  if probs.ndim != 2:
    raise ConfigError("noise.probs", f"shape {probs.shape}", reason="must be N×C")
  num_classes = _check_num_classes(probs.shape[1])
  clean = _check_labels(labels, num_classes)
  if probs.shape[0] != clean.size:
    raise ConfigError("noise.probs", f"shape {probs.shape}",
                      reason=f"needs one row per label ({clean.size})")
  rate = _check_rate(rate, require_clean_majority=require_clean_majority)
  wrong = probs.copy()
  wrong[np.arange(clean.size), clean] = -np.inf
  candidate = np.argmax(wrong, axis=1).astype(np.int32)
  score = wrong[np.arange(clean.size), candidate]
  tiebreak = np.asarray(jax.random.permutation(key, clean.size))
  order = np.lexsort((tiebreak, -score))  # highest score first
  flip = np.zeros(clean.size, dtype=bool)
  flip[order[:_round_count(rate, clean.size)]] = True
  given = np.where(flip, candidate, clean).astype(np.int32)
  return _result(clean, given)


# ----------------------------------------------------------------------------------------
# Open-set noise.


def open_set(key, x, labels, rate, source_x):
  """Replace floor(rate·n) inputs, chosen uniformly, by distinct inputs drawn from source_x.

  SLN paper Sec. 4 after Wang et al. 2018 (40% of CIFAR-10 images replaced by CIFAR-100
  images; the SLN code draws int(n·rate) of each without replacement). Labels are kept, so
  here `is_noisy` marks the samples whose INPUT was replaced and `labels == clean_labels`.
  Returns (x_new, NoisyLabels). `source_x` must be normalized like `x` by the caller.
  """
  x = np.asarray(x)
  source_x = np.asarray(source_x)
  clean = np.asarray(labels)
  if clean.ndim != 1 or clean.size != x.shape[0] or not (
      np.issubdtype(clean.dtype, np.integer) or clean.size == 0):
    raise ConfigError("noise.labels", _summary(clean),
                      reason=f"must be 1-D integer labels, one per input ({x.shape[0]})")
  rate = _check_rate(rate)
  if source_x.shape[1:] != x.shape[1:]:
    raise ConfigError("noise.source_x", f"shape {source_x.shape}",
                      reason=f"inputs must have shape (M, *{x.shape[1:]})")
  k = int(_floor_count(rate, x.shape[0]))
  if k > source_x.shape[0]:
    raise ConfigError("noise.source_x", f"shape {source_x.shape}",
                      reason=f"needs at least {k} source inputs for rate {rate}")
  key_target, key_source = jax.random.split(key)
  target = np.asarray(jax.random.permutation(key_target, x.shape[0]))[:k]
  source = np.asarray(jax.random.permutation(key_source, source_x.shape[0]))[:k]
  x_new = x.copy()
  x_new[target] = source_x[source].astype(x.dtype)
  replaced = np.zeros(x.shape[0], dtype=bool)
  replaced[target] = True
  clean = clean.astype(np.int32)
  return x_new, _result(clean, clean.copy(), replaced)


def pixel_permuted(key, x_NxHxWxC):
  """The same fixed random permutation of the H·W pixel positions applied to every image.

  An offline open-set source for MNIST (mnist5k needs no second download): permuted digits
  are out of distribution for a CNN yet keep each image's exact pixel-intensity histogram,
  so they cannot be told apart by brightness or normalization. Channels move together.
  """
  x = np.asarray(x_NxHxWxC)
  if x.ndim != 4:
    raise ConfigError("noise.source_x", f"shape {x.shape}", reason="must be N×H×W×C")
  n, h, w, c = x.shape
  perm = np.asarray(jax.random.permutation(key, h * w))
  return x.reshape(n, h * w, c)[:, perm, :].reshape(n, h, w, c)


# ----------------------------------------------------------------------------------------
# Noisy labels read from a file.

# The SLN authors' columns: clean label, given label (`label_noisy` is required, `label`
# optional but checked when present).
CSV_CLEAN_COLUMN = "label"
CSV_NOISY_COLUMN = "label_noisy"


def _csv_int(text, path, row, column):
  try:
    return int(text.strip())
  except ValueError:
    raise ConfigError("noise.csv", path,
                      reason=f"row {row} (file line {row + 2}): {column}={text!r} is not "
                             "an integer class id") from None


def from_csv(path, clean_labels, *, num_classes=None) -> NoisyLabels:
  """Noisy labels published as a CSV file, checked against the data they are used with.

  The format is the SLN authors' (Chen et al., ICLR 2021; github.com/chenpf1025/SLN,
  `data/CIFAR10/label_noisy/{sym,asym,dependent}0.4.csv` and the same under
  `data/CIFAR100/`, read by their `dataset.py` with pandas): a header line
  `label,label_noisy`, then one row per training sample, e.g. `6,3` = clean class 6
  given as class 3. Rows follow the torchvision/original CIFAR training order (the first
  CIFAR-10 rows have clean labels 6, 9, 9, 4, 1 as in `data_batch_1`); 50,000 rows.
  Line endings may be CRLF; extra columns are ignored; the `label` column may be absent.

  The file is only usable with data in the same order. CIFAR from TFDS is stored
  shuffled: load it with `data.load(..., original_order=True)` (sorted by TFDS's `id`,
  "train_00000"..., the index in the original files) for the rows to line up. This is
  checked: the row count must equal len(clean_labels) and, where the CSV has a `label`
  column, every clean label must equal the data's, in order; a mismatch, a label outside
  [0, num_classes) or a malformed file raises a one-line ConfigError naming `noise.csv`.

  Args:
    path: the CSV file.
    clean_labels: the data's labels, int (N,), in the order the given labels apply to.
    num_classes: number of classes (default: 1 + the largest clean label).

  Returns:
    NoisyLabels(labels=label_noisy, clean_labels=the data's labels,
    is_noisy=labels != clean_labels, rate=is_noisy.mean()).
  """
  path = os.fspath(path)
  clean_arr = np.asarray(clean_labels)
  if num_classes is None:
    if clean_arr.ndim != 1 or not np.issubdtype(clean_arr.dtype, np.integer) or not clean_arr.size:
      raise ConfigError("noise.labels", _summary(clean_arr),
                        reason="must be a non-empty 1-D array of integer class ids")
    num_classes = int(clean_arr.max()) + 1
  num_classes = _check_num_classes(num_classes)
  clean = _check_labels(clean_arr, num_classes)
  try:
    with open(path, newline="", encoding="utf-8-sig") as f:
      rows = list(csv.reader(f))
  except OSError as err:
    raise ConfigError("noise.csv", path,
                      reason=f"cannot be read ({type(err).__name__}: {err.strerror or err})"
                      ) from None
  while rows and not any(cell.strip() for cell in rows[-1]):
    rows.pop()  # a trailing empty line
  if not rows:
    raise ConfigError("noise.csv", path, reason="is empty; expected a header "
                                                f"{CSV_CLEAN_COLUMN},{CSV_NOISY_COLUMN}")
  header = [cell.strip() for cell in rows[0]]
  if CSV_NOISY_COLUMN not in header:
    raise ConfigError("noise.csv", path,
                      reason=f"has no {CSV_NOISY_COLUMN!r} column (header {','.join(header)!r}"
                             f"; expected {CSV_CLEAN_COLUMN},{CSV_NOISY_COLUMN})")
  body = rows[1:]
  if len(body) != clean.size:
    raise ConfigError("noise.csv", path,
                      reason=f"has {len(body)} rows but the data has {clean.size} samples")
  noisy_col = header.index(CSV_NOISY_COLUMN)
  clean_col = header.index(CSV_CLEAN_COLUMN) if CSV_CLEAN_COLUMN in header else None
  given = np.empty(clean.size, np.int64)
  csv_clean = np.empty(clean.size, np.int64) if clean_col is not None else None
  for i, row in enumerate(body):
    if len(row) != len(header):
      raise ConfigError("noise.csv", path,
                        reason=f"row {i} (file line {i + 2}) has {len(row)} fields, the "
                               f"header {len(header)}")
    given[i] = _csv_int(row[noisy_col], path, i, CSV_NOISY_COLUMN)
    if csv_clean is not None:
      csv_clean[i] = _csv_int(row[clean_col], path, i, CSV_CLEAN_COLUMN)
  for column, values in ((CSV_NOISY_COLUMN, given), (CSV_CLEAN_COLUMN, csv_clean)):
    if values is None:
      continue
    bad = np.flatnonzero((values < 0) | (values >= num_classes))
    if bad.size:
      i = int(bad[0])
      raise ConfigError("noise.csv", path,
                        reason=f"row {i} (file line {i + 2}): {column} {values[i]} is outside "
                               f"[0, {num_classes})")
  if csv_clean is not None:
    wrong = np.flatnonzero(csv_clean != clean)
    if wrong.size:
      i = int(wrong[0])
      raise ConfigError(
          "noise.csv", path,
          reason=f"row {i} (file line {i + 2}): the CSV's clean label {csv_clean[i]} differs "
                 f"from the data's {clean[i]} ({wrong.size} of {clean.size} rows differ): "
                 "the data is not in the CSV's order (CIFAR from TFDS needs "
                 "data.load(..., original_order=True)) or is another data set")
  return _result(clean, given.astype(np.int32))


# ----------------------------------------------------------------------------------------
# Dispatchers and the realized transition matrix.


def _check_kind(kind):
  if kind not in NOISE_TYPES:
    raise ConfigError("noise.kind", kind, choices=NOISE_TYPES)
  return kind


def corrupt(key, labels, num_classes, kind, rate, **kwargs):
  """Label noise of kind `kind` (one of NOISE_TYPES) at rate `rate`, as a NoisyLabels.

  kwargs go to the named function: "symmetric" -> symmetric_per_class, "symmetric_total",
  "symmetric_bernoulli", "symmetric_all" -> symmetric_all_classes, "pair" (class_map=...,
  exact_per_class=...), "instance" -> instance_dependent (probs_NxC=...), "csv" ->
  from_csv (path=...; the key and rate are unused: the file fixes the labels, and the
  data must be in the file's order). "none" returns the clean labels whatever the rate.
  "open_set" replaces inputs: use `corrupt_dataset`.
  """
  kind = _check_kind(kind)
  if kind == "open_set":
    raise ConfigError("noise.kind", kind,
                      reason="open-set noise replaces inputs; call corrupt_dataset "
                             "or open_set")
  num_classes = _check_num_classes(num_classes)
  if kind == "none":
    _check_rate(rate, allow_one=True)
    clean = _check_labels(labels, num_classes)
    return _result(clean, clean.copy())
  if kind == "csv":
    _check_rate(rate, allow_one=True)
    path = kwargs.pop("path", None)
    if path is None or (isinstance(path, str) and not path.strip()):
      raise ConfigError("noise.path", path,
                        reason="csv noise needs path=... (a CSV with columns "
                               f"{CSV_CLEAN_COLUMN},{CSV_NOISY_COLUMN})")
    if not isinstance(path, (str, os.PathLike)):
      raise ConfigError("noise.path", path, reason="must be a file path")
    if kwargs:
      raise ConfigError("noise.kind", kind, reason=f"takes no options {sorted(kwargs)}")
    return from_csv(path, labels, num_classes=num_classes)
  if kind == "instance":
    probs = kwargs.pop("probs_NxC", None)
    if probs is None:
      raise ConfigError("noise.probs", None,
                        reason="instance noise needs probs_NxC (averaged softmax)")
    if np.shape(probs)[-1] != num_classes:
      raise ConfigError("noise.probs", f"shape {np.shape(probs)}",
                        reason=f"needs {num_classes} columns")
    return instance_dependent(key, labels, probs, rate, **kwargs)
  if kind == "pair":
    class_map = kwargs.pop("class_map", None)
    return pair(key, labels, num_classes, rate, class_map, **kwargs)
  fn = {
      "symmetric": symmetric_per_class,
      "symmetric_total": symmetric_total,
      "symmetric_bernoulli": symmetric_bernoulli,
      "symmetric_all": symmetric_all_classes,
  }[kind]
  return fn(key, labels, num_classes, rate, **kwargs)


def corrupt_dataset(key, x, labels, num_classes, kind, rate, **kwargs):
  """(x, NoisyLabels) for any kind: open_set (source_x=...) replaces inputs, others labels.

  x is returned unchanged for label noise.
  """
  kind = _check_kind(kind)
  if kind == "open_set":
    source_x = kwargs.pop("source_x", None)
    if source_x is None:
      raise ConfigError("noise.source_x", None,
                        reason="open-set noise needs source_x (inputs of another data set)")
    if kwargs:
      raise ConfigError("noise.kind", kind,
                        reason=f"takes no options {sorted(kwargs)}")
    _check_labels(labels, _check_num_classes(num_classes))
    return open_set(key, x, labels, rate, source_x)
  return x, corrupt(key, labels, num_classes, kind, rate, **kwargs)


def transition_matrix(clean, given, num_classes):
  """Realized T[i, j] = #{clean = i, given = j} / #{clean = i}, a C×C row-stochastic array.

  Rows of classes absent from `clean` are all zero.
  """
  num_classes = _check_num_classes(num_classes)
  clean = _check_labels(clean, num_classes)
  given = _check_labels(given, num_classes)
  if clean.shape != given.shape:
    raise ConfigError("noise.labels", f"shapes {clean.shape} vs {given.shape}",
                      reason="clean and given labels must have one shape")
  counts = np.zeros((num_classes, num_classes), dtype=np.float64)
  np.add.at(counts, (clean, given), 1.0)
  totals = counts.sum(axis=1, keepdims=True)
  return np.divide(counts, totals, out=np.zeros_like(counts), where=totals > 0)


# ----------------------------------------------------------------------------------------
# Per-step noise (pure jnp, jit-able; draw with a fresh key every step).


def resample_labels(key, labels_B, num_classes, p):
  """Each label, w.p. p, replaced by a uniform draw from all num_classes classes.

  Misclassification paper Sec. 3: "its label y is changed with probability p to a uniform
  random label"; so it stays correct w.p. p/C, and p = 1 gives pure label noise.
  """
  key_pick, key_class = jax.random.split(key)
  labels_B = jnp.asarray(labels_B)
  replace = jax.random.bernoulli(key_pick, p, labels_B.shape)
  draw = jax.random.randint(
      key_class, labels_B.shape, 0, num_classes, dtype=labels_B.dtype)
  return jnp.where(replace, draw, labels_B)


def resample_signs(key, y_pm_B, p):
  """Each ±1 label, w.p. p, replaced by a uniform draw from {−1, +1}: flips w.p. p/2.

  The binary case Y = {±1} of the misclassification paper's label noise (Sec. 3).
  """
  key_pick, key_sign = jax.random.split(key)
  y_pm_B = jnp.asarray(y_pm_B)
  replace = jax.random.bernoulli(key_pick, p, y_pm_B.shape)
  draw = jnp.where(jax.random.bernoulli(key_sign, 0.5, y_pm_B.shape), 1, -1)
  return jnp.where(replace, draw.astype(y_pm_B.dtype), y_pm_B)


def stochastic_label_noise(key, onehot_BxC, sigma):
  """ỹ = y + σ·z, z ~ N(0, I_C) fresh per sample and step, no clipping.

  SLN paper Eq. (3): the loss is taken against the perturbed one-hot target.
  """
  onehot_BxC = jnp.asarray(onehot_BxC)
  if not jnp.issubdtype(onehot_BxC.dtype, jnp.floating):
    onehot_BxC = onehot_BxC.astype(jnp.float32)
  z_BxC = jax.random.normal(key, onehot_BxC.shape, onehot_BxC.dtype)
  return onehot_BxC + sigma * z_BxC
