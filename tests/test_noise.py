"""Tests for noisejax.noise: exact counts, realized transition matrices, keys, errors."""

import dataclasses

import chex
import hypothesis
import hypothesis.strategies as st
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from noisejax import noise
from noisejax.errors import ConfigError


def _balanced(num_classes, per_class):
  return np.repeat(np.arange(num_classes), per_class).astype(np.int32)


def _key(seed=0):
  return jax.random.key(seed)


# ----------------------------------------------------------------------------------------
# Symmetric noise.


# Small tests share N = 60 and large ones N = 40000: jax.random compiles once per shape.
N_SMALL, N_LARGE = 60, 40000


@hypothesis.settings(max_examples=30, deadline=None)
@hypothesis.given(
    num_classes=st.integers(2, 6),
    weights=st.lists(st.floats(0.0, 1.0), min_size=6, max_size=6),
    rate=st.floats(0.0, 0.95),
    seed=st.integers(0, 2**31 - 1),
)
def test_symmetric_per_class_exact_counts(num_classes, weights, rate, seed):
  # Unbalanced classes, some possibly empty, in a random order.
  w = np.asarray(weights[:num_classes]) + 1e-3
  rng = np.random.default_rng(seed)
  labels = rng.choice(num_classes, size=N_SMALL, p=w / w.sum()).astype(np.int32)
  out = noise.symmetric_per_class(_key(seed), labels, num_classes, rate)
  for c in range(num_classes):
    n_c = int(np.sum(labels == c))
    assert int(np.sum(out.is_noisy[labels == c])) == int(np.floor(rate * n_c + 0.5 + 1e-9))
  np.testing.assert_array_equal(out.clean_labels, labels)
  np.testing.assert_array_equal(out.is_noisy, out.labels != labels)
  assert out.rate == pytest.approx(out.is_noisy.mean() if labels.size else 0.0)
  assert out.labels.dtype == np.int32


def test_symmetric_per_class_rounds_half_up_and_binary_flips_to_other_class():
  labels = _balanced(2, 30)  # round(0.25·30) = round(7.5) = 8 per class
  out = noise.symmetric_per_class(_key(1), labels, 2, 0.25)
  assert out.is_noisy.sum() == 16
  np.testing.assert_array_equal(out.labels[out.is_noisy], 1 - labels[out.is_noisy])
  # 0.35·20 is 6.999... in floating point; the count must still be 7.
  out = noise.symmetric_per_class(_key(1), _balanced(3, 20), 3, 0.35)
  assert out.is_noisy.sum() == 21


def test_symmetric_per_class_transition_matrix():
  num_classes, per_class, rate = 5, N_LARGE // 5, 0.4
  labels = np.random.default_rng(0).permutation(_balanced(num_classes, per_class))
  out = noise.symmetric_per_class(_key(2), labels, num_classes, rate)
  t = noise.transition_matrix(out.clean_labels, out.labels, num_classes)
  np.testing.assert_allclose(np.diag(t), 1 - rate)  # exact per class
  np.testing.assert_allclose(t.sum(axis=1), 1.0)
  off = t[~np.eye(num_classes, dtype=bool)]
  # Each off-diagonal entry ~ Binomial(3200, 1/4)/8000: std ≈ 0.003.
  np.testing.assert_allclose(off, rate / (num_classes - 1), atol=0.02)
  np.testing.assert_allclose(t, noise.symmetric_transition(num_classes, rate), atol=0.02)


def test_symmetric_total_exact_overall_count():
  labels = np.random.default_rng(0).integers(0, 3, size=N_SMALL).astype(np.int32)
  out = noise.symmetric_total(_key(3), labels, 3, 0.33)
  assert out.is_noisy.sum() == 19  # floor(19.8)
  assert np.all(out.labels[out.is_noisy] != labels[out.is_noisy])


def test_symmetric_bernoulli_rate_within_binomial_tolerance():
  n, rate, num_classes = N_LARGE, 0.3, 4
  labels = np.random.default_rng(0).integers(0, num_classes, size=n).astype(np.int32)
  out = noise.symmetric_bernoulli(_key(4), labels, num_classes, rate)
  std = np.sqrt(rate * (1 - rate) / n)
  assert abs(out.rate - rate) < 5 * std
  assert np.all(out.labels[out.is_noisy] != labels[out.is_noisy])
  t = out.transition_matrix(num_classes)
  np.testing.assert_allclose(t, noise.symmetric_transition(num_classes, rate), atol=0.02)


def test_symmetric_all_classes_includes_true_class():
  n, rate, num_classes = N_LARGE, 0.6, 4
  labels = np.random.default_rng(0).integers(0, num_classes, size=n).astype(np.int32)
  out = noise.symmetric_all_classes(_key(5), labels, num_classes, rate)
  expected = rate * (num_classes - 1) / num_classes  # 0.45, not 0.6
  assert abs(out.rate - expected) < 5 * np.sqrt(expected * (1 - expected) / n)
  np.testing.assert_array_equal(out.is_noisy, out.labels != labels)
  t = out.transition_matrix(num_classes)
  np.testing.assert_allclose(np.diag(t), 1 - rate + rate / num_classes, atol=0.02)
  np.testing.assert_allclose(t[~np.eye(num_classes, dtype=bool)], rate / num_classes, atol=0.02)
  # rate = 1: labels independent of the truth.
  full = noise.symmetric_all_classes(_key(6), labels, num_classes, 1.0)
  assert abs(full.rate - 0.75) < 0.02


@pytest.mark.parametrize("kind", ["symmetric", "symmetric_total", "symmetric_bernoulli",
                                  "symmetric_all"])
def test_deterministic_under_key(kind):
  labels = np.random.default_rng(0).integers(0, 10, size=N_SMALL).astype(np.int32)
  a = noise.corrupt(_key(7), labels, 10, kind, 0.4)
  b = noise.corrupt(_key(7), labels, 10, kind, 0.4)
  c = noise.corrupt(_key(8), labels, 10, kind, 0.4)
  np.testing.assert_array_equal(a.labels, b.labels)
  np.testing.assert_array_equal(a.is_noisy, b.is_noisy)
  assert not np.array_equal(a.labels, c.labels)


def test_none_returns_clean_labels():
  labels = _balanced(3, 20)
  out = noise.corrupt(_key(), labels, 3, "none", 0.4)
  np.testing.assert_array_equal(out.labels, labels)
  assert out.rate == 0.0 and not out.is_noisy.any()


# ----------------------------------------------------------------------------------------
# Pair noise.


def test_cifar10_pair_map_is_the_papers():
  m = noise.class_map_array("cifar10", 10)
  names = noise.CIFAR10_CLASSES
  moves = {names[c]: names[m[c]] for c in range(10) if m[c] != c}
  assert moves == {"truck": "automobile", "bird": "airplane", "deer": "horse",
                   "cat": "dog", "dog": "cat"}
  by_name = noise.class_map_array(
      {"truck": "automobile", "bird": "airplane", "deer": "horse", "cat": "dog",
       "dog": "cat"}, 10)
  np.testing.assert_array_equal(by_name, m)


def test_cifar100_pair_map_is_circular():
  m = noise.cifar100_pair_map()
  assert m[0] == 1 and m[42] == 43 and m[99] == 0
  np.testing.assert_array_equal(noise.class_map_array("cifar100", 100), m)


def test_pair_exact_transition_matrix():
  num_classes, per_class, rate = 10, 6, 0.5  # round(3) per source class
  labels = np.random.default_rng(1).permutation(_balanced(num_classes, per_class))
  out = noise.pair(_key(9), labels, num_classes, rate, noise.CIFAR10_PAIR_MAP,
                   exact_per_class=True, require_clean_majority=False)
  t = out.transition_matrix(num_classes)
  np.testing.assert_allclose(t, noise.pair_transition(num_classes, rate, "cifar10"))
  assert t[9, 1] == 0.5 and t[3, 5] == 0.5 and t[5, 3] == 0.5 and t[0, 0] == 1.0
  assert out.is_noisy.sum() == 15


def test_pair_bernoulli_matches_expected_transition():
  num_classes, n, rate = 10, N_LARGE, 0.4
  labels = np.random.default_rng(2).integers(0, num_classes, size=n).astype(np.int32)
  out = noise.corrupt(_key(10), labels, num_classes, "pair", rate, class_map="cifar10")
  t = out.transition_matrix(num_classes)
  expected = noise.pair_transition(num_classes, rate, "cifar10")
  np.testing.assert_allclose(t, expected, atol=0.03)
  assert np.count_nonzero(t) == np.count_nonzero(expected)  # no mass off the map
  assert out.transition_matrix(num_classes)[0, 0] == 1.0  # airplane untouched


def test_pair_array_and_next_maps():
  labels = _balanced(4, 15)
  out = noise.pair(_key(11), labels, 4, 0.2, "next", exact_per_class=True)
  np.testing.assert_array_equal(out.labels[out.is_noisy], (labels[out.is_noisy] + 1) % 4)
  assert out.is_noisy.sum() == 12
  only_0_to_2 = np.array([2, 1, 2, 3])
  out = noise.pair(_key(11), labels, 4, 0.2, only_0_to_2, exact_per_class=True)
  assert set(np.flatnonzero(out.is_noisy)) <= set(np.flatnonzero(labels == 0))
  assert out.is_noisy.sum() == 3
  np.testing.assert_array_equal(out.labels[out.is_noisy], 2)


# ----------------------------------------------------------------------------------------
# Instance-dependent noise.


def test_instance_dependent_flips_top_scored_samples_to_their_candidate():
  rng = np.random.default_rng(3)
  n, num_classes, rate = N_SMALL, 4, 0.25
  labels = rng.integers(0, num_classes, size=n).astype(np.int32)
  logits = rng.normal(size=(n, num_classes))
  probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
  out = noise.instance_dependent(_key(12), labels, probs, rate)
  wrong = probs.copy()
  wrong[np.arange(n), labels] = -1.0
  score = wrong.max(axis=1)
  top = np.argsort(-score)[:15]
  np.testing.assert_array_equal(np.sort(out.noisy_indices), np.sort(top))
  np.testing.assert_array_equal(out.labels[top], wrong.argmax(axis=1)[top])
  assert out.is_noisy.sum() == 15


def test_instance_dependent_through_corrupt_and_average_predictions():
  labels = np.array([0, 1, 2, 0], np.int32)
  epoch1 = np.array([[.9, .1, 0], [.2, .8, 0], [0, .1, .9], [.5, .0, .5]])
  epoch2 = np.array([[.7, .3, 0], [.2, .8, 0], [0, .1, .9], [.3, .0, .7]])
  mean = noise.average_predictions([epoch1, epoch2])
  np.testing.assert_allclose(mean[3], [.4, 0, .6])
  out = noise.corrupt(_key(), labels, 3, "instance", 0.5, probs_NxC=mean)
  # Scores: 0.2, 0.2, 0.1, 0.6 -> sample 3 first, then one of the tied 0 and 1.
  assert out.is_noisy[3] and out.labels[3] == 2 and out.is_noisy.sum() == 2
  assert not out.is_noisy[2]


# ----------------------------------------------------------------------------------------
# Open-set noise.


def test_open_set_replaces_recorded_indices_and_keeps_labels():
  x = np.zeros((N_SMALL, 4, 4, 1), np.float32)
  source = np.arange(1, 31, dtype=np.float32)[:, None, None, None] * np.ones((30, 4, 4, 1))
  labels = _balanced(5, 12)
  x_new, out = noise.open_set(_key(13), x, labels, 0.4, source)
  assert out.is_noisy.sum() == 24 and out.rate == 0.4
  np.testing.assert_array_equal(out.labels, labels)
  np.testing.assert_array_equal(out.clean_labels, labels)
  replaced = np.any(x_new != 0, axis=(1, 2, 3))
  np.testing.assert_array_equal(replaced, out.is_noisy)
  used = x_new[out.is_noisy][:, 0, 0, 0]
  assert len(set(used.tolist())) == 24  # distinct source images
  assert np.all(x == 0)  # input untouched
  x_again, again = noise.corrupt_dataset(_key(13), x, labels, 5, "open_set", 0.4,
                                         source_x=source)
  np.testing.assert_array_equal(x_again, x_new)
  np.testing.assert_array_equal(again.is_noisy, out.is_noisy)


def test_pixel_permuted_is_a_fixed_permutation():
  x = np.random.default_rng(4).normal(size=(3, 5, 5, 2)).astype(np.float32)
  y = noise.pixel_permuted(_key(14), x)
  assert y.shape == x.shape
  flat_x, flat_y = x.reshape(3, 25, 2), y.reshape(3, 25, 2)
  # Same permutation for every image and channel: recover it from image 0, channel 0.
  perm = [int(np.flatnonzero(flat_x[0, :, 0] == v)[0]) for v in flat_y[0, :, 0]]
  np.testing.assert_array_equal(flat_y, flat_x[:, perm, :])
  assert sorted(perm) == list(range(25)) and perm != list(range(25))


# ----------------------------------------------------------------------------------------
# Transition matrix, save/load.


def test_transition_matrix_counts():
  clean = np.array([0, 0, 0, 0, 1, 1], np.int32)
  given = np.array([0, 1, 2, 2, 1, 1], np.int32)
  t = noise.transition_matrix(clean, given, 3)
  np.testing.assert_allclose(t, [[.25, .25, .5], [0, 1, 0], [0, 0, 0]])


def test_save_load_roundtrip(tmp_path):
  out = noise.symmetric_per_class(_key(), _balanced(3, 20), 3, 0.2)
  path = out.save(tmp_path)
  assert path.endswith("noise.npz")
  back = noise.NoisyLabels.load(tmp_path)
  np.testing.assert_array_equal(back.labels, out.labels)
  np.testing.assert_array_equal(back.clean_labels, out.clean_labels)
  np.testing.assert_array_equal(back.is_noisy, out.is_noisy)
  assert back.rate == out.rate
  with pytest.raises(dataclasses.FrozenInstanceError):
    out.rate = 0.5


# ----------------------------------------------------------------------------------------
# Per-step noise.


def test_resample_labels_statistics_and_jit():
  b, num_classes, p = N_LARGE, 5, 0.3
  labels = jnp.asarray(np.random.default_rng(5).integers(0, num_classes, size=b), jnp.int32)

  @jax.jit
  @chex.assert_max_traces(n=1)
  def fn(key, labels_B, p):
    return noise.resample_labels(key, labels_B, num_classes, p)

  out = fn(_key(15), labels, p=p)
  out2 = fn(_key(16), labels, p=0.5)  # p traced: no recompile
  assert out.dtype == labels.dtype and out.shape == labels.shape
  changed = float(jnp.mean(out != labels))
  assert abs(changed - p * (num_classes - 1) / num_classes) < 0.012
  assert abs(float(jnp.mean(out2 != labels)) - 0.4) < 0.012
  counts = np.bincount(np.asarray(out)[np.asarray(out != labels)], minlength=num_classes)
  np.testing.assert_allclose(counts / counts.sum(), 1 / num_classes, atol=0.01)
  assert not jnp.array_equal(noise.resample_labels(_key(17), labels, num_classes, p), out)
  np.testing.assert_array_equal(noise.resample_labels(_key(15), labels, num_classes, 1.0)
                                >= 0, True)


def test_resample_signs_flip_rate_is_half_p():
  y = jnp.where(jnp.arange(N_LARGE) % 2 == 0, 1.0, -1.0)
  out = jax.jit(noise.resample_signs)(_key(18), y, 0.4)
  assert set(np.unique(np.asarray(out)).tolist()) == {-1.0, 1.0}
  assert abs(float(jnp.mean(out != y)) - 0.2) < 0.012
  pure = noise.resample_signs(_key(19), y, 1.0)
  assert abs(float(jnp.mean(pure == 1.0)) - 0.5) < 0.012


def test_stochastic_label_noise_mean_std():
  b, c, sigma = N_LARGE // 10, 10, 0.5
  onehot = np.eye(c, dtype=np.float32)[np.arange(b) % c]
  sln = jax.jit(noise.stochastic_label_noise)
  out = sln(_key(20), onehot, sigma)
  z = np.asarray(out - onehot)
  assert abs(z.mean()) < 0.01
  assert abs(z.std() - sigma) < 0.01
  assert np.abs(np.corrcoef(z[:, 0], z[:, 1])[0, 1]) < 0.08  # independent per class
  assert not np.allclose(z[0], z[1])  # fresh per sample
  assert z.min() < -1.0  # no clipping
  np.testing.assert_array_equal(sln(_key(21), onehot, 0.0), onehot)
  int_onehot = sln(_key(20), onehot.astype(np.int32), sigma)
  assert jnp.issubdtype(int_onehot.dtype, jnp.floating)


# ----------------------------------------------------------------------------------------
# Errors.


@pytest.mark.parametrize("rate", [-0.1, 1.0, 1.5, float("nan"), "0.4", True])
def test_bad_rate(rate):
  with pytest.raises(ConfigError) as e:
    noise.corrupt(_key(), _balanced(2, 5), 2, "symmetric", rate)
  assert e.value.field == "noise.rate"
  assert "\n" not in str(e.value)


def test_clean_majority_flag():
  labels = _balanced(3, 20)
  noise.symmetric_per_class(_key(), labels, 3, 0.6)  # allowed by default
  with pytest.raises(ConfigError, match="noise.rate"):
    noise.symmetric_per_class(_key(), labels, 3, 0.6, require_clean_majority=True)
  with pytest.raises(ConfigError, match="noise.rate"):
    noise.corrupt(_key(), labels, 3, "pair", 0.5, class_map="next")  # default for pair
  noise.corrupt(_key(), labels, 3, "pair", 0.5, class_map="next",
                require_clean_majority=False)


def test_unknown_kind():
  with pytest.raises(ConfigError) as e:
    noise.corrupt(_key(), _balanced(2, 5), 2, "uniform", 0.2)
  assert e.value.field == "noise.kind" and "symmetric_bernoulli" in str(e.value)
  with pytest.raises(ConfigError, match="noise.kind"):
    noise.corrupt(_key(), _balanced(2, 5), 2, "open_set", 0.2)


@pytest.mark.parametrize("class_map, num_classes", [
    ({"truck": "lorry"}, 10),
    ({"truck": "truck"}, 10),
    ({0: 12}, 10),
    (np.array([1, 2, 0]), 4),
    (np.array([1.0, 0.0]), 2),
    ("cifar10", 100),
    ("cifar100", 10),
    ("swap", 10),
    (None, 10),
    ({"a": "b"}, 3),
])
def test_bad_class_map(class_map, num_classes):
  with pytest.raises(ConfigError) as e:
    noise.pair(_key(), _balanced(num_classes, 2), num_classes, 0.2, class_map)
  assert e.value.field == "noise.class_map"


def test_bad_labels_probs_source_num_classes():
  with pytest.raises(ConfigError, match="noise.labels"):
    noise.symmetric_bernoulli(_key(), np.array([0, 3]), 3, 0.2)
  with pytest.raises(ConfigError, match="noise.labels"):
    noise.symmetric_bernoulli(_key(), np.array([0.0, 1.0]), 3, 0.2)
  with pytest.raises(ConfigError, match="noise.num_classes"):
    noise.symmetric_bernoulli(_key(), np.array([0, 0]), 1, 0.2)
  with pytest.raises(ConfigError, match="noise.probs"):
    noise.corrupt(_key(), _balanced(3, 2), 3, "instance", 0.2)
  with pytest.raises(ConfigError, match="noise.probs"):
    noise.instance_dependent(_key(), _balanced(3, 2), np.ones((5, 3)) / 3, 0.2)
  x = np.zeros((10, 2, 2, 1), np.float32)
  with pytest.raises(ConfigError, match="noise.source_x"):
    noise.open_set(_key(), x, _balanced(2, 5), 0.4, np.zeros((10, 3, 3, 1)))
  with pytest.raises(ConfigError, match="noise.source_x"):
    noise.open_set(_key(), x, _balanced(2, 5), 0.4, np.zeros((3, 2, 2, 1)))
  with pytest.raises(ConfigError, match="noise.source_x"):
    noise.corrupt_dataset(_key(), x, _balanced(2, 5), 2, "open_set", 0.4)


# ----------------------------------------------------------------------------------------
# Noisy labels from the SLN authors' CSV files.

# The first 12 rows of github.com/chenpf1025/SLN data/CIFAR10/label_noisy/sym0.4.csv, with
# its CRLF line endings: header `label,label_noisy`, then clean,given per training sample
# in the original CIFAR-10 order (data_batch_1 starts with labels 6, 9, 9, 4, 1, ...).
SLN_SYM_HEAD = ("label,label_noisy\r\n6,3\r\n9,9\r\n9,9\r\n4,4\r\n1,1\r\n1,5\r\n2,2\r\n"
                "7,8\r\n8,9\r\n3,3\r\n4,4\r\n7,8\r\n")


def _write_csv(path, clean, given, *, header="label,label_noisy", newline="\r\n"):
  lines = [header] + [f"{c},{g}" for c, g in zip(clean, given)]
  path.write_bytes((newline.join(lines) + newline).encode())
  return path


def test_from_csv_reads_the_authors_file_format(tmp_path):
  path = tmp_path / "sym0.4.csv"
  path.write_bytes(SLN_SYM_HEAD.encode())
  clean = np.array([6, 9, 9, 4, 1, 1, 2, 7, 8, 3, 4, 7])
  out = noise.from_csv(path, clean, num_classes=10)
  np.testing.assert_array_equal(out.labels, [3, 9, 9, 4, 1, 5, 2, 8, 9, 3, 4, 8])
  np.testing.assert_array_equal(out.clean_labels, clean)
  np.testing.assert_array_equal(out.noisy_indices, [0, 5, 7, 8, 11])
  assert out.rate == pytest.approx(5 / 12) and out.labels.dtype == np.int32


def test_from_csv_round_trip_and_corrupt_kind_csv(tmp_path):
  clean = np.random.default_rng(3).integers(0, 10, size=N_SMALL).astype(np.int32)
  drawn = noise.symmetric_bernoulli(_key(21), clean, 10, 0.4)
  assert 0 < drawn.is_noisy.sum() < N_SMALL
  path = _write_csv(tmp_path / "noisy.csv", drawn.clean_labels, drawn.labels)
  back = noise.from_csv(path, clean, num_classes=10)
  np.testing.assert_array_equal(back.labels, drawn.labels)
  np.testing.assert_array_equal(back.is_noisy, drawn.is_noisy)
  assert back.rate == pytest.approx(drawn.rate)
  # Through the dispatcher (key and rate unused), with str or Path, LF line endings.
  lf = _write_csv(tmp_path / "lf.csv", drawn.clean_labels, drawn.labels, newline="\n")
  via = noise.corrupt(None, clean, 10, "csv", 0.0, path=str(lf))
  np.testing.assert_array_equal(via.labels, drawn.labels)
  assert via.rate == pytest.approx(drawn.rate)
  # num_classes defaults to 1 + the largest clean label.
  assert noise.from_csv(path, clean).rate == pytest.approx(drawn.rate)
  assert "csv" in noise.NOISE_TYPES


def test_from_csv_without_clean_column_checks_only_the_row_count(tmp_path):
  path = tmp_path / "given_only.csv"
  path.write_text("label_noisy\n1\n0\n2\n")
  out = noise.from_csv(path, np.array([1, 1, 2]), num_classes=3)
  np.testing.assert_array_equal(out.labels, [1, 0, 2])
  np.testing.assert_array_equal(out.is_noisy, [False, True, False])
  with pytest.raises(ConfigError, match="has 3 rows but the data has 4 samples"):
    noise.from_csv(path, np.array([1, 1, 2, 0]), num_classes=3)


def _csv_error(path, clean, num_classes=10):
  with pytest.raises(ConfigError) as e:
    noise.from_csv(path, clean, num_classes=num_classes)
  message = str(e.value)
  assert e.value.field == "noise.csv" and message.startswith("config.noise.csv=")
  assert "\n" not in message and str(path) in message
  return message


def test_from_csv_wrong_row_count(tmp_path):
  clean = np.arange(20) % 10
  path = _write_csv(tmp_path / "short.csv", clean[:19], clean[:19])
  assert "has 19 rows but the data has 20 samples" in _csv_error(path, clean)


def test_from_csv_mismatching_clean_label_says_the_order_is_wrong(tmp_path):
  clean = np.arange(30) % 10
  csv_clean = clean.copy()
  csv_clean[17] = 3  # the data's label there is 7
  csv_clean[25] = 0
  path = _write_csv(tmp_path / "other_order.csv", csv_clean, csv_clean)
  message = _csv_error(path, clean)
  assert ("row 17 (file line 19): the CSV's clean label 3 differs from the data's 7 "
          "(2 of 30 rows differ): the data is not in the CSV's order") in message
  assert "original_order=True" in message


@pytest.mark.parametrize("column, value", [("label_noisy", 10), ("label_noisy", -1),
                                           ("label", 12)])
def test_from_csv_label_out_of_range(tmp_path, column, value):
  clean = np.arange(20) % 10
  csv_clean, given = clean.copy(), clean.copy()
  (given if column == "label_noisy" else csv_clean)[4] = value
  path = _write_csv(tmp_path / "range.csv", csv_clean, given)
  assert f"row 4 (file line 6): {column} {value} is outside [0, 10)" in _csv_error(path, clean)


def test_from_csv_malformed_files(tmp_path):
  clean = np.array([0, 1])
  bad = tmp_path / "bad.csv"
  bad.write_text("label,noisy\n0,0\n1,1\n")
  assert "has no 'label_noisy' column" in _csv_error(bad, clean)
  bad.write_text("label,label_noisy\n0,0\n1,x\n")
  assert "row 1 (file line 3): label_noisy='x' is not an integer" in _csv_error(bad, clean)
  bad.write_text("label,label_noisy\n0,0\n1\n")
  assert "row 1 (file line 3) has 1 fields" in _csv_error(bad, clean)
  bad.write_text("")
  assert "is empty" in _csv_error(bad, clean)
  assert "cannot be read" in _csv_error(tmp_path / "missing.csv", clean)


def test_corrupt_csv_needs_a_path():
  for path in (None, ""):
    with pytest.raises(ConfigError) as e:
      noise.corrupt(None, _balanced(2, 5), 2, "csv", 0.0, path=path)
    assert e.value.field == "noise.path" and "config.noise.path=" in str(e.value)
  with pytest.raises(ConfigError, match="noise.path"):
    noise.corrupt(None, _balanced(2, 5), 2, "csv", 0.0)
