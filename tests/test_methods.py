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


def relabel_everything_as_zero(spec, state, epoch, data, key):
  """An epoch hook that sets the per-sample target table (label correction's shape)."""
  return state.replace(targets=jnp.zeros_like(state.targets).at[:, 0].set(1.0))


def test_epoch_hook_sets_the_per_sample_targets_the_step_uses():
  splits = make_splits(noisy_fraction=0.0)
  method = methods.Method("relabel", tables=("targets",), on_epoch=relabel_everything_as_zero)
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


# ----------------------------------------------------------------------------
# The SLN paper's methods: SGD-noise variants (§3.1), Co-teaching, truncated GCE, LC.


def test_output_noise_is_a_cotangent_noise_through_the_jacobian():
  """SLN eq. 2: the gradient of ℓ + σ_f⟨sg(z), f⟩ is (∇_f ℓ + σ_f z)·∇_θ f."""
  splits = make_splits()
  spec = spec_for(methods.METHODS["erm"])
  state = train.init_state(spec, jax.random.key(0), splits.x_train[:1], lr=0.5)
  x, y = jnp.asarray(splits.x_train[:16]), jnp.asarray(splits.noisy.labels[:16])
  hp = {"sigma_f": jnp.float32(0.7)}
  key = jax.random.key(3)
  f = lambda p: spec.model.apply({"params": p}, x)
  noisy = jax.grad(lambda p: jnp.mean(spec.loss_fn()(f(p), y)
                                      + methods.output_gradient_noise(key, f(p), hp)))(
                                          state.params)
  outputs, vjp = jax.vjp(f, state.params)
  grad_f = jax.grad(lambda o: jnp.mean(spec.loss_fn()(o, y)))(outputs)
  z = jax.random.normal(key, outputs.shape)
  expected = vjp(grad_f + 0.7 * z / 16)[0]
  chex.assert_trees_all_close(noisy, expected, atol=1e-6)


@pytest.mark.parametrize("name, hparam", [("output_noise", "sigma_f"),
                                          ("param_noise", "sigma_theta")])
def test_gradient_noise_methods_reduce_to_erm_at_zero_and_differ_otherwise(name, hparam):
  splits = make_splits()
  erm, noisy = spec_for(methods.METHODS["erm"]), spec_for(methods.METHODS[name])
  state = train.init_state(erm, jax.random.key(0), splits.x_train[:1], lr=0.5)
  plain, _ = one_step(erm, state, splits)
  for sigma, same in ((0.0, True), (0.5, False)):
    start = train.init_state(noisy, jax.random.key(0), splits.x_train[:1], lr=0.5,
                             hparams={hparam: sigma})
    after, _ = one_step(noisy, start, splits)
    gap = max(float(jnp.max(jnp.abs(a - b))) for a, b in
              zip(jax.tree.leaves(after.params), jax.tree.leaves(plain.params)))
    assert (gap < 1e-6) == same, (sigma, gap)


def test_parameter_noise_has_the_per_sample_variance_over_the_batch():
  """SLN eq. 1 per sample: the batch mean carries N(0, σ_θ²/B) on every parameter."""
  grads = {"w": jnp.zeros((200, 100))}
  noisy = methods.parameter_gradient_noise(jax.random.key(0), grads, {"sigma_theta": 2.0}, 16)
  assert float(jnp.std(noisy["w"])) == pytest.approx(2.0 / 4.0, rel=0.02)
  assert abs(float(jnp.mean(noisy["w"]))) < 0.01


def test_coteaching_keeps_its_peers_smallest_losses_on_the_paper_schedule():
  losses = jnp.asarray([[0.1, 0.9, 0.5, 0.3, 0.7, 0.2, 0.8, 0.4, 0.6, 1.0],
                        [1.0, 0.1, 0.2, 0.9, 0.3, 0.8, 0.4, 0.7, 0.5, 0.6]])
  hp = {"forget_rate": jnp.float32(0.4), "ramp_epochs": jnp.float32(10.0)}
  at = lambda e: np.asarray(methods.coteaching_weights(losses, hp, jnp.float32(e)))
  assert at(0).sum(-1).tolist() == [10, 10]          # R(0) = 1: every sample
  assert at(5.5).sum(-1).tolist() == [8, 8]          # R(5) = 1 − 0.4·5/10 = 0.8
  late = at(30)
  assert late.sum(-1).tolist() == [6, 6]             # R = 1 − ε after T_k epochs
  # Network 0 trains on network 1's six smallest losses, and vice versa.
  np.testing.assert_array_equal(late[0], np.asarray(losses[1]) <= 0.6)
  np.testing.assert_array_equal(late[1], np.asarray(losses[0]) <= 0.6)


def run_hook(method_name, hparams, epoch, splits, **optim):
  config = cfg.training(cfg.model("mlp", hidden=(8,)), cfg.loss("gce"),
                        cfg.optim("sgd", lr=0.5, batch_size=16, epochs=1, **optim),
                        cfg.method(method_name, **hparams))
  spec, hp = train.training_spec(config, splits)
  state = train.init_state(spec, jax.random.key(0), splits.x_train[:1], lr=0.5, hparams=hp)
  data, _ = splits.device_data(spec.mesh)
  state = train._init_tables(spec, state, data, axes=None)
  after = jax.jit(spec.method.on_epoch, static_argnums=0)(
      spec, state, jnp.int32(epoch), data, jax.random.key(1))
  return spec, state, after, data


def test_truncation_prunes_low_confidence_samples_only_at_its_epochs():
  splits = make_splits()
  hp = {"trunc_k": 0.5, "warm_epochs": 4, "prune_every": 3}
  spec, state, after, data = run_hook("truncate", hp, 7, splits)
  assert state.sample_weights.tolist() == [1.0] * 96
  probs = jax.nn.softmax(spec.model.apply({"params": state.params}, data["x"]))
  p_label = np.take_along_axis(np.asarray(probs), np.asarray(data["labels"])[:, None], 1)[:, 0]
  np.testing.assert_array_equal(np.asarray(after.sample_weights), (p_label > 0.5).astype(float))
  assert 0 < float(after.sample_weights.sum()) < 96
  for epoch in (3, 5, 6):  # before the warm epoch, or not a multiple of 3 after it
    _, _, unchanged, _ = run_hook("truncate", hp, epoch, splits)
    assert unchanged.sample_weights.tolist() == [1.0] * 96, epoch
  assert bool(methods.truncate_due(dict(hp), 10)) and not methods.truncate_due(dict(hp), 9)


def test_pruned_samples_do_not_move_the_weights():
  splits = make_splits()
  spec = spec_for(methods.METHODS["truncate"])
  state = train.init_state(spec, jax.random.key(0), splits.x_train[:1], lr=0.5)
  state = state.replace(sample_weights=jnp.zeros(96).at[:8].set(1.0))
  after, _ = one_step(spec, state, splits)
  x, y = splits.x_train[:8], splits.noisy.labels[:8]
  grads = jax.grad(lambda p: spec.loss_fn()(spec.model.apply({"params": p}, x), y).sum() / 16)(
      state.params)
  chex.assert_trees_all_close(after.params, jax.tree.map(lambda p, g: p - 0.5 * g,
                                                         state.params, grads), atol=1e-6)


@pytest.mark.parametrize("reverse", [0.0, 1.0])
def test_label_correction_follows_the_paper_weighting(reverse):
  splits = make_splits()
  hp = {"sigma": 0.5, "ema_decay": 0.9, "lc_epoch": 3, "lc_reverse": reverse}
  spec, state, after, data = run_hook("sln_mo_lc", hp, 3, splits)
  S = np.asarray(jax.nn.softmax(spec.model.apply({"params": state.average["params"]},
                                                 data["x"])))
  given = np.eye(2)[np.asarray(data["labels"])]
  loss = -np.sum(given * np.log(S), -1)     # against the current targets: one-hot ỹ
  omega = (loss - loss.min()) / (loss.max() - loss.min())
  w = (1 - omega if reverse else omega)[:, None]
  expected = w * given + (1 - w) * np.eye(2)[S.argmax(-1)]
  np.testing.assert_allclose(np.asarray(after.targets), expected, atol=1e-5)
  assert float(after.hparams["sigma"]) == 0.0        # SLN off during correction
  _, _, before, _ = run_hook("sln_mo_lc", hp, 2, splits)
  np.testing.assert_array_equal(np.asarray(before.targets), given)
  assert float(before.hparams["sigma"]) == 0.5


def test_label_correction_trains_on_the_corrected_table():
  splits = make_splits(noisy_fraction=0.3)
  config = cfg.training(cfg.model("mlp", hidden=(16,)), cfg.loss("cross_entropy"),
                        cfg.optim("momentum", lr=0.1, momentum=0.9, batch_size=16, epochs=6),
                        cfg.method("sln_mo_lc", sigma=0.2, ema_decay=0.5, lc_epoch=3))
  result = train.train_classifier(config, splits, key=jax.random.key(0))
  targets = np.asarray(result.state.targets)
  assert targets.shape == (96, 2) and float(result.state.hparams["sigma"]) == 0.0
  assert not np.allclose(targets, np.eye(2)[splits.noisy.labels])  # corrected
  assert "average_test_error" in result.history[-1]


def test_evaluation_reports_the_eval_loss_on_hard_labels():
  splits = make_splits()
  config = cfg.training(cfg.model("mlp", hidden=(8,)), cfg.loss("gce", q=0.7),
                        cfg.optim("sgd", lr=0.1, batch_size=16, epochs=1),
                        eval_loss=cfg.loss("cross_entropy"))
  result = train.train_classifier(config, splits, key=jax.random.key(0))
  snap = result.snapshot(0, splits)
  records = snap.per_sample()
  np.testing.assert_allclose(result.history[-1]["train_loss"], records["loss"].mean(), rtol=1e-5)
  np.testing.assert_allclose(records["loss"], -np.log(records["p_label"]), rtol=1e-4)
  assert records["is_noisy"].sum() == splits.noisy.is_noisy.sum()
