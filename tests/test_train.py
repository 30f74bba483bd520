"""train: it learns, resumes exactly, stops on NaN, evaluates subsets, batches runs."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from noisejax import config as cfg, noise, train
from noisejax.errors import ConfigError, NonFiniteLossError


def make_splits(n=96, noisy_fraction=0.25, seed=0, scale=1.0):
  rng = np.random.default_rng(seed)
  x = (scale * rng.normal(size=(n + 40, 4))).astype(np.float32)
  y = (x[:, 0] + 0.5 * x[:, 1] > 0).astype(np.int32)
  given = y[:n].copy()
  flip = rng.random(n) < noisy_fraction
  given[flip] = 1 - given[flip]
  return train.Splits(x[:n], noise.NoisyLabels(given, y[:n], flip, flip.mean()), x[n:], y[n:])


def training_config(method="erm", **optim):
  base = dict(lr=0.1, momentum=0.9, batch_size=16, epochs=6)
  base.update(optim)
  return cfg.training(cfg.model("mlp", hidden=(16,)), cfg.loss("cross_entropy"),
                      cfg.optim(base.pop("name", "momentum"), **base), cfg.method(method))


def test_tiny_run_learns():
  result = train.train_classifier(training_config(epochs=15), make_splits(noisy_fraction=0.0),
                                  key=jax.random.key(0))
  history = result.history
  assert len(history) == 16  # the initial record and one per epoch
  assert history[0]["test_error"] > 0.15 and history[-1]["test_error"] < 0.1


def test_steps_per_epoch_full_batch_and_too_large():
  assert train.steps_per_epoch(100, 0) == 1 and train.steps_per_epoch(100, 30) == 3
  with pytest.raises(ConfigError, match="optim.batch_size"):
    train.steps_per_epoch(100, 101)


def test_resume_equals_uninterrupted_run(tmp_path):
  splits = make_splits()
  full = train.train_classifier(training_config(epochs=6), splits, key=jax.random.key(1),
                                checkpoint_dir=tmp_path / "full")
  # Interrupted after 3 epochs, then started again with the same checkpoint directory.
  train.train_classifier(training_config(epochs=3), splits, key=jax.random.key(1),
                         checkpoint_dir=tmp_path / "resumed")
  resumed = train.train_classifier(training_config(epochs=6), splits, key=jax.random.key(1),
                                   checkpoint_dir=tmp_path / "resumed")
  chex.assert_trees_all_equal(full.state.params, resumed.state.params)
  assert resumed.history == full.history


def test_several_runs_in_one_program_equal_separate_runs():
  """R vmapped runs (each its own key and label-noise draw) = R runs one by one."""
  splits = make_splits(noisy_fraction=0.0)
  keys = jax.random.split(jax.random.key(3), 3)
  noisy = [noise.corrupt(jax.random.fold_in(keys[r], 9), splits.noisy.clean_labels, 2,
                         "symmetric", 0.2) for r in range(3)]
  stacked = noise.stack(noisy)
  batched = train.train_classifier(training_config(epochs=3),
                                   train.Splits(splits.x_train, stacked, splits.x_test,
                                                splits.y_test), key=keys)
  assert batched.curve("test_error").shape == (3, 4)
  for r in range(3):
    single = train.train_classifier(
        training_config(epochs=3), train.Splits(splits.x_train, noisy[r], splits.x_test,
                                                splits.y_test), key=keys[r])
    chex.assert_trees_all_close(batched.run_state(r).params, single.state.params, atol=1e-5)
    np.testing.assert_allclose(batched.curve("train_loss")[r], single.curve("train_loss")[0],
                               rtol=1e-4)


def test_learning_rate_and_hparams_are_data_not_recompiled(monkeypatch):
  """One trace of the compiled scan serves every noise draw, seed, learning rate and p."""
  config = training_config("resample", epochs=2)
  train._train_steps.clear_cache()
  monkeypatch.setattr(train, "_run_steps", chex.assert_max_traces(train._run_steps, n=1))
  for lr, p, seed in ((0.1, 0.1, 0), (0.05, 0.3, 1), (0.2, 0.0, 2)):
    train.train_classifier(config, make_splits(seed=seed), key=jax.random.key(seed), lr=lr,
                           hparams={"p": p})


def test_nan_loss_stops_and_keeps_last_good_checkpoint(tmp_path):
  splits = make_splits(scale=1e3)
  config = training_config(name="sgd", lr=1e4, momentum=0.0, epochs=50)
  with pytest.raises(NonFiniteLossError, match="loss became"):
    train.train_classifier(config, splits, key=jax.random.key(0), checkpoint_dir=tmp_path)
  manager = train._manager(tmp_path)
  if manager.latest_step() is not None:  # every kept checkpoint holds finite parameters
    spec = train.make_spec(config, 2, splits.num_train, splits.input_shape)
    state = train.init_state(spec, jax.random.key(0), splits.x_train[:1], lr=1.0)
    restored, _, _ = train._restore(manager, state)
    assert all(np.isfinite(np.asarray(l)).all() for l in jax.tree.leaves(restored.params))


def test_subset_metrics_by_hand():
  outputs = jnp.array([[2.0, 0.0], [0.0, 2.0], [2.0, 0.0], [0.0, 0.0]])
  labels = jnp.array([0, 1, 1, 0])
  ce = optax.softmax_cross_entropy_with_integer_labels
  m = train._subset(outputs, labels, jnp.ones(4, bool), ce)
  p = 1 / (1 + np.exp(-2.0))
  assert float(m["error"]) == pytest.approx(0.25)  # sample 3 is wrong; a tie gives class 0
  assert float(m["residual"]) == pytest.approx(((1 - p) * 2 + p + 0.5) / 4, rel=1e-5)
  assert float(m["loss"]) == pytest.approx((2 * -np.log(p) - np.log(1 - p) + np.log(2)) / 4,
                                           rel=1e-5)
  empty = train._subset(outputs, labels, jnp.zeros(4, bool), ce)
  assert np.isnan(float(empty["error"]))


def test_binary_single_output_classify():
  predicted, probs = train.classify(jnp.array([[3.0], [-1.0]]))
  assert predicted.tolist() == [1, 0]
  np.testing.assert_allclose(probs[:, 1], 1 / (1 + np.exp(-np.array([3.0, -1.0]))), rtol=1e-6)


def test_evaluation_splits_clean_and_noisy():
  splits = make_splits(noisy_fraction=0.3)
  config = training_config(epochs=1)
  result = train.train_classifier(config, splits, key=jax.random.key(0))
  record = result.history[-1]
  snapshot = result.snapshot(0, splits)
  predicted = np.argmax(snapshot.predict(splits.x_train), -1)
  noisy, given, clean = splits.noisy.is_noisy, splits.noisy.labels, splits.noisy.clean_labels
  assert record["noisy_error"] == pytest.approx(np.mean(predicted[noisy] != given[noisy]))
  assert record["noisy_error_true"] == pytest.approx(np.mean(predicted[noisy] != clean[noisy]))
  assert record["clean_error"] == pytest.approx(np.mean(predicted[~noisy] != given[~noisy]))


def test_step_schedule_halves_learning_rate():
  optim = cfg.optim("sgd", lr=1.0, schedule="step", decay_every=2, decay_factor=0.5)
  tx = train.make_optimizer(optim, 3)
  params = {"w": jnp.zeros(())}
  opt_state = tx.init(params)
  steps = []
  for _ in range(8):
    updates, opt_state = tx.update({"w": jnp.ones(())}, opt_state, params)
    steps.append(float(-updates["w"]))
  assert steps == [1.0] * 6 + [0.5] * 2
  updates, _ = tx.update({"w": jnp.ones(())}, train.set_learning_rate(opt_state, 0.1), params)
  assert float(-updates["w"]) == pytest.approx(0.05)


def test_eval_fn_and_log_fn_see_every_evaluation():
  logged = []
  config = training_config(epochs=2)
  result = train.train_classifier(
      config, make_splits(), key=jax.random.split(jax.random.key(0), 2),
      eval_fn=lambda snap: {"norm": float(optax.tree.norm(snap.state.params)), "run": snap.run},
      log_fn=logged.append, run_labels=[{"seed": 10}, {"seed": 11}])
  assert [r["seed"] for r in logged] == [10, 11] * 3
  assert [r["run"] for r in result.histories[1]] == [1.0, 1.0, 1.0]
  assert result.histories[0][0]["norm"] != result.histories[0][-1]["norm"]


class TinyBatchNormNet(__import__("flax").linen.Module):
  """Dense → BatchNorm → ReLU → Dense: running statistics carried per run."""
  num_outputs: int = 2

  @__import__("flax").linen.compact
  def __call__(self, x, train=False):
    nn = __import__("flax").linen
    h = nn.Dense(8)(x.reshape(x.shape[0], -1))
    h = nn.relu(nn.BatchNorm(use_running_average=not train, momentum=0.9)(h))
    return nn.Dense(self.num_outputs)(h)


def test_batchnorm_runs_in_chunks_equal_separate_runs(monkeypatch, tmp_path):
  """Runs with BatchNorm, trained 2 at a time (runs_per_program), equal single runs."""
  from noisejax import models
  monkeypatch.setitem(models._REGISTRY, "tiny_bn", TinyBatchNormNet)
  config = training_config(epochs=2)
  config.model = cfg.model("tiny_bn")
  config.optim.runs_per_program = 2
  splits = make_splits()
  keys = jax.random.split(jax.random.key(7), 3)
  chunked = train.train_classifier(config, splits, key=keys, checkpoint_dir=tmp_path)
  assert sorted(p.name for p in tmp_path.iterdir()) == ["runs_0-1", "runs_2-2"]
  assert len(chunked.histories) == 3 and chunked.state.batch_stats is not None
  for r in range(3):
    single = train.train_classifier(config, splits, key=keys[r])
    chex.assert_trees_all_close(chunked.run_state(r).batch_stats, single.state.batch_stats,
                                atol=1e-5)
    chex.assert_trees_all_close(chunked.run_state(r).params, single.state.params, atol=1e-5)


def test_resume_with_several_runs_is_exact(tmp_path):
  """Kill after 2 of 4 epochs and resume: the same as an uninterrupted 3-run program."""
  splits = make_splits()
  keys = jax.random.split(jax.random.key(4), 3)
  full = train.train_classifier(training_config(epochs=4), splits, key=keys,
                                checkpoint_dir=tmp_path / "full")
  train.train_classifier(training_config(epochs=2), splits, key=keys,
                         checkpoint_dir=tmp_path / "resumed")
  resumed = train.train_classifier(training_config(epochs=4), splits, key=keys,
                                   checkpoint_dir=tmp_path / "resumed")
  chex.assert_trees_all_equal(full.state, resumed.state)
  assert resumed.histories == full.histories


KILLED_SCRIPT = """
import sys, time, jax
sys.path.insert(0, {tests!r})
from test_train import make_splits, training_config
from noisejax import train
train.train_classifier(training_config(epochs=12), make_splits(),
                       key=jax.random.split(jax.random.key(4), 3), checkpoint_dir={ckpt!r},
                       log_fn=lambda record: time.sleep(0.5))  # slow enough to be killed
"""


def test_killed_process_resumes_bit_for_bit(tmp_path):
  """SIGKILL a 3-run training after its second checkpoint; resuming equals no kill."""
  import os
  import signal
  import subprocess
  import sys
  import time
  tests = os.path.dirname(os.path.abspath(__file__))
  ckpt = tmp_path / "killed"
  script = KILLED_SCRIPT.format(tests=tests, ckpt=str(ckpt))
  process = subprocess.Popen([sys.executable, "-c", script])
  deadline = time.time() + 240
  while time.time() < deadline and not (ckpt.exists() and len(
      [p for p in ckpt.iterdir() if p.name.isdigit()]) >= 2):
    time.sleep(0.2)
  process.send_signal(signal.SIGKILL)
  process.wait()
  steps = sorted(int(p.name) for p in ckpt.iterdir() if p.name.isdigit())
  assert steps and steps[-1] < 12 * 6, "the run finished before it could be killed"
  keys = jax.random.split(jax.random.key(4), 3)
  resumed = train.train_classifier(training_config(epochs=12), make_splits(), key=keys,
                                   checkpoint_dir=ckpt)
  full = train.train_classifier(training_config(epochs=12), make_splits(), key=keys)
  chex.assert_trees_all_equal(full.state, resumed.state)
  assert resumed.histories == full.histories


def test_runs_per_program_default_and_explicit():
  config = training_config()
  spec = train.make_spec(config, 2, 96, (4,))
  assert train.runs_per_program(spec, config.optim, 8) == 8          # all at once
  config.optim.runs_per_program = 3
  assert train.runs_per_program(spec, config.optim, 8) == 3
  cnn = training_config()
  cnn.model = cfg.model("lenet5")
  spec = train.make_spec(cnn, 10, 96, (28, 28, 1))
  if jax.default_backend() == "cpu":  # conv weight gradients: one run, one call per step
    assert not train.scan_is_fast(spec) and train.runs_per_program(spec, cnn.optim, 8) == 1
  else:
    assert train.scan_is_fast(spec) and train.runs_per_program(spec, cnn.optim, 8) == 8


def test_eval_activity_and_train_outputs_come_from_the_evaluations_forward_pass():
  """eval_activity reports E_x A_N(x) and its fraction (misclassification Definition 1)
  on train and test; Snapshot.train_outputs are the model's outputs there."""
  from noisejax import models, sparsity
  config = training_config(epochs=1)
  config.eval_activity = "hidden_0"
  splits, seen = make_splits(), []

  def eval_fn(snap):
    np.testing.assert_allclose(snap.train_outputs(), snap.predict(splits.x_train), rtol=1e-5,
                               atol=1e-6)
    acts = {k: models.hidden_activations(snap.model, snap.variables, x)["hidden_0"]
            for k, x in (("train", splits.x_train), ("test", splits.x_test))}
    seen.append({f"active_units_{k}": float(jnp.mean(sparsity.active_units(a)))
                 for k, a in acts.items()} |
                {f"active_fraction_{k}": float(sparsity.active_fraction(a))
                 for k, a in acts.items()})
    return {}

  history = train.train_classifier(config, splits, key=jax.random.key(0), eval_fn=eval_fn).history
  assert len(seen) == len(history) == 2
  for record, expected in zip(history, seen):
    for k, v in expected.items():
      assert record[k] == pytest.approx(v, rel=1e-6)
    assert 0 < record["active_fraction_train"] < 1
    assert record["active_units_train"] == pytest.approx(16 * record["active_fraction_train"])
  config.eval_activity = "hidden_7"
  with pytest.raises(ConfigError, match="eval_activity.*hidden_0"):
    train.train_classifier(config, splits, key=jax.random.key(0))
