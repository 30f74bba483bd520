"""methods: the pieces a training method plugs into the one train step."""

import dataclasses

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from noisejax import config as cfg, methods, train
from noisejax.errors import ConfigError
from test_train import make_splits


def spec_for(method, **optim):
  config = cfg.training(cfg.model("mlp", hidden=(8,)), cfg.loss("cross_entropy"),
                        cfg.optim("sgd", lr=0.5, batch_size=16, epochs=1, **optim))
  spec = train.make_spec(config, 2, 96, (4,))
  return dataclasses.replace(spec, method=method)


def one_step(spec, state, splits, key=jax.random.key(5)):
  x, y = jnp.asarray(splits.x_train[:16]), jnp.asarray(splits.noisy.labels[:16])
  return jax.jit(train.train_step, static_argnums=0)(spec, state, x, y, jnp.arange(16), key)


def test_resample_and_sln_targets():
  labels = jnp.zeros(20000, jnp.int32)
  resampled = methods.resample_targets(jax.random.key(0), labels, 4, {"p": 0.4})
  # w.p. p a uniform draw over all 4 classes: 0.4·3/4 = 30% end up wrong.
  assert float(jnp.mean(resampled != 0)) == pytest.approx(0.3, abs=0.01)
  soft = methods.sln_targets(jax.random.key(0), labels[:5000], 3, {"sigma": 0.5})
  assert soft.shape == (5000, 3)
  np.testing.assert_allclose(np.std(np.asarray(soft - jax.nn.one_hot(labels[:5000], 3))), 0.5,
                             rtol=0.05)


def test_sln_with_zero_sigma_is_cross_entropy():
  splits = make_splits()
  erm, sln = spec_for(methods.METHODS["erm"]), spec_for(methods.METHODS["sln"])
  state0 = train.init_state(erm, jax.random.key(0), splits.x_train[:1], lr=0.5)
  state_sln = train.init_state(sln, jax.random.key(0), splits.x_train[:1], lr=0.5,
                               hparams={"sigma": 0.0})
  a, _ = one_step(erm, state0, splits)
  b, _ = one_step(sln, state_sln, splits)
  chex.assert_trees_all_close(a.params, b.params, atol=1e-6)


def test_average_is_the_exponential_moving_average():
  splits = make_splits()
  spec = spec_for(methods.METHODS["sln_mo"])
  state = train.init_state(spec, jax.random.key(0), splits.x_train[:1], lr=0.5,
                           hparams={"sigma": 0.1, "ema_decay": 0.9})
  expected = state.params
  for i in range(3):
    state, _ = one_step(spec, state, splits, jax.random.key(i))
    expected = jax.tree.map(lambda a, p: 0.9 * a + 0.1 * p, expected, state.params)
  chex.assert_trees_all_close(state.average["params"], expected, rtol=1e-5)


def keep_smallest_half(losses_NxB, hparams, epoch):
  """A selection piece: weight 1 for the half of the batch with the smallest loss."""
  threshold = jnp.median(losses_NxB, axis=-1, keepdims=True)
  return (losses_NxB <= threshold).astype(jnp.float32)


def test_sample_weights_select_what_the_step_learns_from():
  splits = make_splits()
  spec = spec_for(methods.Method("small_loss", weights=keep_smallest_half))
  state = train.init_state(spec, jax.random.key(0), splits.x_train[:1], lr=0.5)
  selected, _ = one_step(spec, state, splits)
  # The same step by hand on the selected samples only.
  x, y = splits.x_train[:16], splits.noisy.labels[:16]
  losses = spec.loss_fn()(spec.model.apply({"params": state.params}, x), y)
  keep = np.asarray(losses <= jnp.median(losses))
  plain = spec_for(methods.METHODS["erm"])
  grads = jax.grad(lambda p: spec.loss_fn()(plain.model.apply({"params": p}, x[keep]),
                                            y[keep]).mean())(state.params)
  chex.assert_trees_all_close(selected.params,
                              jax.tree.map(lambda p, g: p - 0.5 * g, state.params, grads),
                              atol=1e-6)


def cross_selection(losses_NxB, hparams, epoch):
  """Co-teaching's shape: each network learns from the samples its peer finds easy."""
  return keep_smallest_half(losses_NxB[::-1], hparams, epoch)


def test_two_networks_train_together_with_cross_selection():
  splits = make_splits()
  spec = spec_for(methods.Method("pair", weights=cross_selection, networks=2))
  state = train.init_state(spec, jax.random.key(0), splits.x_train[:1], lr=0.5)
  assert jax.tree.leaves(state.params)[0].shape[0] == 2
  after, _ = one_step(spec, state, splits)
  x, y = splits.x_train[:16], splits.noisy.labels[:16]
  apply = lambda p, xs: spec.model.apply({"params": p}, xs)
  net = [jax.tree.map(lambda a, i=i: a[i], state.params) for i in range(2)]
  losses = [spec.loss_fn()(apply(p, x), y) for p in net]
  for i in range(2):  # network i's step uses network 1 − i's small-loss half
    keep = np.asarray(losses[1 - i] <= jnp.median(losses[1 - i]))
    g = jax.grad(lambda p: spec.loss_fn()(apply(p, x[keep]), y[keep]).mean())(net[i])
    chex.assert_trees_all_close(jax.tree.map(lambda a, i=i: a[i], after.params),
                                jax.tree.map(lambda p, d: p - 0.5 * d, net[i], g), atol=1e-6)


def relabel_everything_as_zero(spec, state, epoch, splits):
  """An epoch hook that sets the per-sample target table (label correction's shape)."""
  n = splits.num_train
  return state.replace(targets=jnp.tile(jnp.asarray([1.0, 0.0]), (n, 1)))


def test_epoch_hook_sets_the_per_sample_targets_the_step_uses():
  splits = make_splits(noisy_fraction=0.0)
  method = methods.Method("relabel", on_epoch=relabel_everything_as_zero)
  config = cfg.training(cfg.model("mlp", hidden=(8,)), cfg.loss("cross_entropy"),
                        cfg.optim("sgd", lr=0.5, batch_size=16, epochs=4))
  spec = dataclasses.replace(train.make_spec(config, 2, 96, (4,)), method=method)
  state = train.init_state(spec, jax.random.key(0), splits.x_train[:1], lr=0.5)
  keys = {"shuffle": jax.random.key(1), "step": jax.random.key(2)}
  result = train.fit(spec, state, splits, config.optim, keys=keys, batched=False)
  assert result.history[-1]["train_error"] > 0.35  # it learned "class 0", not the labels
  assert result.state.targets.shape == (96, 2)


def test_unknown_method_and_hyperparameter_are_config_errors():
  with pytest.raises(ConfigError, match="method.name='coteach'.*valid: erm"):
    methods.get_method("coteach")
  with pytest.raises(ConfigError, match="method.q=.*valid: p"):
    methods.METHODS["resample"].hparams({"q": 1.0})
