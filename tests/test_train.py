"""Training loop: it learns, resumes exactly, stops on NaN, evaluates subsets correctly."""

import dataclasses

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest

from noisejax import experiment, train
from noisejax.errors import ConfigError


class TinyNet(nn.Module):

  @nn.compact
  def __call__(self, x, train=False):
    x = x.reshape(x.shape[0], -1)
    return nn.Dense(2)(nn.relu(nn.Dense(16)(x)))


@dataclasses.dataclass(frozen=True)
class Labels:
  labels: np.ndarray
  clean_labels: np.ndarray
  is_noisy: np.ndarray


def ce(outputs, labels):
  return optax.softmax_cross_entropy_with_integer_labels(outputs, labels)


def make_data(n=96, noisy_fraction=0.25, seed=0):
  rng = np.random.default_rng(seed)
  x = rng.normal(size=(n + 40, 4)).astype(np.float32)
  y = (x[:, 0] + 0.5 * x[:, 1] > 0).astype(np.int32)
  given = y[:n].copy()
  flip = rng.random(n) < noisy_fraction
  given[flip] = 1 - given[flip]
  return train.Data(x[:n], Labels(given, y[:n], flip), x[n:], y[n:])


def optim_config(**kw):
  base = dict(name="momentum", lr=0.1, momentum=0.9, weight_decay=0.0, schedule="constant",
              batch_size=16, epochs=6, eval_every=0, checkpoint_every=1)
  base.update(kw)
  return ml_collections.ConfigDict(base)


def fit(tmp_path, name, optim, data, seed=0, **kwargs):
  run = experiment.Run(name, ml_collections.ConfigDict(), tmp_path / name)
  run.workdir.mkdir(parents=True, exist_ok=True)
  tx = train.make_optimizer(optim, len(data.x_train) // optim.batch_size)
  state = train.create_state(TinyNet(), jax.random.key(seed), data.x_train[:1], tx)
  return train.fit(optim, run, state, ce, data, key=jax.random.key(seed + 1), **kwargs), run


def test_tiny_run_learns(tmp_path):
  data = make_data(noisy_fraction=0.0)
  (_, history), run = fit(tmp_path, "learn", optim_config(epochs=15), data)
  assert history[0]["test_error"] > 0.15
  assert history[-1]["test_error"] < 0.1
  assert len(run.read_metrics()) == len(history) == 16  # initial record + one per epoch


def test_augmentation_runs_inside_the_step(tmp_path):
  data = make_data(noisy_fraction=0.0)
  blind = lambda key, x: x * 0.0  # an augmentation that erases the inputs: nothing to learn
  (_, history), _ = fit(tmp_path, "blind", optim_config(epochs=15), data, augment_fn=blind)
  assert history[-1]["test_error"] > 0.2


def test_resume_equals_uninterrupted_run(tmp_path):
  data = make_data()
  (state_full, hist_full), _ = fit(tmp_path, "full", optim_config(epochs=6), data)
  # Interrupted after 3 epochs, then started again in the same workdir.
  fit(tmp_path, "resumed", optim_config(epochs=3), data)
  (state_resumed, hist_resumed), run = fit(tmp_path, "resumed", optim_config(epochs=6), data)
  chex_equal = jax.tree.map(lambda a, b: np.array_equal(np.asarray(a), np.asarray(b)),
                            state_full.params, state_resumed.params)
  assert all(jax.tree.leaves(chex_equal))
  assert [r["step"] for r in hist_resumed] == [r["step"] for r in hist_full]
  assert hist_resumed[-1]["train_loss"] == hist_full[-1]["train_loss"]
  assert [r["step"] for r in run.read_metrics()] == [r["step"] for r in hist_full]


def test_nan_loss_stops_and_keeps_last_good_checkpoint(tmp_path):
  data = make_data()
  data = dataclasses.replace(data, x_train=data.x_train * 1e3)
  with pytest.raises(experiment.NonFiniteLossError, match="loss became"):
    fit(tmp_path, "nan", optim_config(lr=1e4, momentum=0.0, name="sgd", epochs=50), data)
  manager = train._checkpoint_manager(experiment.Run("nan", None, tmp_path / "nan"))
  last = manager.latest_step()
  if last is not None:  # every kept checkpoint holds finite parameters
    state = train.create_state(TinyNet(), jax.random.key(0), data.x_train[:1], optax.sgd(1.0))
    restored, _ = train.restore_checkpoint(manager, state)
    assert all(np.isfinite(np.asarray(l)).all() for l in jax.tree.leaves(restored.params))


def test_batch_larger_than_data_is_rejected(tmp_path):
  with pytest.raises(ConfigError, match="optim.batch_size"):
    fit(tmp_path, "big", optim_config(batch_size=500), make_data())


def test_subset_metrics_by_hand():
  outputs = jnp.array([[2.0, 0.0], [0.0, 2.0], [2.0, 0.0], [0.0, 0.0]])
  labels = np.array([0, 1, 1, 0])
  m = train.subset_metrics(outputs, labels, ce)
  p = 1 / (1 + np.exp(-2.0))
  assert m["error"] == pytest.approx(0.25)  # sample 3 is wrong; argmax of a tie is class 0
  assert m["residual"] == pytest.approx(((1 - p) * 2 + p + 0.5) / 4, rel=1e-5)
  assert m["loss"] == pytest.approx((2 * -np.log(p) - np.log(1 - p) + np.log(2)) / 4, rel=1e-5)


def test_binary_single_output_metrics():
  outputs = jnp.array([[3.0], [-1.0]])
  m = train.subset_metrics(outputs, np.array([1, 1]), lambda o, l: jnp.zeros(len(l)))
  assert m["error"] == 0.5
  assert m["residual"] == pytest.approx(((1 - 1 / (1 + np.exp(-3))) + (1 - 1 / (1 + np.exp(1)))) / 2)


def test_evaluate_splits_clean_and_noisy():
  data = make_data(noisy_fraction=0.3)
  tx = optax.sgd(0.1)
  state = train.create_state(TinyNet(), jax.random.key(0), data.x_train[:1], tx)
  record = train.evaluate(state, ce, data)
  predicted = np.argmax(train.predict(state, data.x_train), -1)
  noisy = data.noisy.is_noisy
  assert record["noisy_error"] == pytest.approx(np.mean(predicted[noisy] != data.noisy.labels[noisy]))
  assert record["noisy_error_true"] == pytest.approx(
      np.mean(predicted[noisy] != data.noisy.clean_labels[noisy]))
  assert record["clean_error"] == pytest.approx(np.mean(predicted[~noisy] != data.noisy.labels[~noisy]))


def test_step_schedule_halves_learning_rate():
  optim = optim_config(name="sgd", schedule="step", decay_every=2, decay_factor=0.5, lr=1.0)
  tx = train.make_optimizer(optim, steps_per_epoch=3)
  params = {"w": jnp.zeros(())}
  opt_state = tx.init(params)
  steps = []
  for _ in range(8):
    updates, opt_state = tx.update({"w": jnp.ones(())}, opt_state, params)
    steps.append(float(-updates["w"]))
  assert steps == [1.0] * 6 + [0.5] * 2


def test_train_step_compiles_once(tmp_path):
  data = make_data()
  optim = optim_config(epochs=1)
  tx = train.make_optimizer(optim, 6)
  state = train.create_state(TinyNet(), jax.random.key(0), data.x_train[:1], tx)
  step = train.make_train_step(ce)
  for i in range(3):
    state, _ = step(state, data.x_train[i * 16:(i + 1) * 16], data.noisy.labels[i * 16:(i + 1) * 16],
                    jax.random.key(i))
  assert step._cache_size() == 1
