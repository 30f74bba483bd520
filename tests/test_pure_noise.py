"""Pure-noise theory of the misclassification paper: Theorems 1–4 on small shapes."""

import tempfile

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from noisejax import experiment
from noisejax.errors import ConfigError
from noisejax.theory import pure_noise as pn


@pytest.mark.parametrize("architecture,depth", [("mlp", 1), ("mlp", 3), ("conv", 3)])
def test_theorem1_every_layer_shrinks_on_misclassified_samples(architecture, depth):
  results = pn.check_theorem1(jax.random.key(0), d=5, depth=depth, width=8,
                              architecture=architecture, num_nets=16)
  assert set(results) == {(a, l) for a in pn.ACTIVATIONS for l in pn.SURROGATES}
  for r in results.values():
    assert r["inner"].dtype == np.float64
    # y = −sign N(x): misclassified unless every unit is off (N = 0), which we skip.
    valid = r["margin"] < 0
    assert np.all(r["margin"] <= 0) and valid.mean() > 0.5
    r = {k: v[valid] for k, v in r.items()}
    assert np.all(r["norm_change"] < 0)
    # Du et al. balance: <W_l, G_l> = L'(-yN)(-yN) > 0 for every layer.
    np.testing.assert_allclose(r["inner"], np.broadcast_to(r["predicted_inner"][:, None],
                                                           r["inner"].shape), rtol=1e-9)


def test_theorem1_step_above_h0_grows_some_layer():
  weights = pn.init_homogeneous_net(jax.random.key(1), 4, 2, 6)
  x = jax.random.normal(jax.random.key(2), (4,))
  y = -jnp.sign(pn.homogeneous_net(weights, x, jax.nn.relu))
  r = pn.theorem1_step(weights, x, y, loss="hinge", act="relu", h_fractions=(0.5, 1.5))
  change = np.asarray(r["norm_change"])
  assert np.all(change[0] < 0) and np.any(change[1] > 0)


def test_single_neuron_hinge_step_moves_only_when_misclassified():
  v = jnp.array([1.0, 0.0])
  x = jnp.array([2.0, 1.0])
  same = pn.single_neuron_step(v, (x, 1.0), h=0.1, loss="hinge")
  np.testing.assert_allclose(same, v)
  moved = pn.single_neuron_step(v, (x, -1.0), h=0.1, loss="hinge")
  np.testing.assert_allclose(moved, v - 0.1 * x)  # V + h·y·x with y = −1


def test_single_neuron_hinge_equilibrium_is_order_dh():
  d, h = 10, 1 / 100
  norms = np.asarray(pn.single_neuron_norms(jax.random.split(jax.random.key(0), 2),
                                            jnp.array([h]), d=d, steps=20_000,
                                            record_every=500, loss="hinge"))
  assert norms[0, :, 0].mean() > 1.0                    # U[-√3, √3]^10 starts near √10
  eq = norms[0, :, -10:].mean()
  assert eq == pytest.approx(pn.single_neuron_equilibrium(d, h, "hinge"), rel=0.25)


def test_gaussian_active_fraction_matches_monte_carlo():
  params = pn.init_one_hidden_layer(jax.random.key(3), 6, 20)
  params["b"] = params["b"] * 3 - 2
  x = jax.random.normal(jax.random.key(4), (20_000, 6))
  mc = float(jnp.mean(pn.hidden_preactivations(params, x) > 0))
  assert float(pn.gaussian_active_fraction(params)) == pytest.approx(mc, abs=0.01)


def test_standard_basis_step_touches_one_column_and_live_units_only():
  w = jnp.array([[0.5, 0.2], [-0.3, 0.4], [0.1, -0.2], [-0.5, 0.3]])  # k = 2
  # N(e_0) = relu(0.5) + relu(-0.3) - relu(0.1) - relu(-0.5) = 0.4 > 0: y = -1 misclassified.
  new = pn.standard_basis_step(w, (0, -1.0), h=0.1)
  np.testing.assert_allclose(new[:, 0], [0.4, -0.3, 0.2, -0.5], atol=1e-6)
  np.testing.assert_allclose(new[:, 1], w[:, 1])
  np.testing.assert_allclose(pn.standard_basis_step(w, (0, 1.0), h=0.1), w)


def test_theorem3_bound_and_theorem4_regimes_on_small_k():
  k, d = 64, 3
  hs = jnp.array([0.25 / k, 1.0 / k, 0.3, 1.0, 1.5])
  w0, w, rec = pn.standard_basis_pure_noise(jax.random.split(jax.random.key(5), 4), hs,
                                            k=k, d=d, steps=3000, record_every=500)
  outs = np.abs(np.asarray(jax.vmap(jax.vmap(pn.basis_outputs))(w)))
  assert np.all(outs.max(axis=(1, 2)) < 2 * k * np.asarray(hs))            # Theorem 3
  zeros = np.asarray(jax.vmap(jax.vmap(pn.zero_coordinates))(w))
  assert np.all(zeros[3:] == 2 * k)                                          # Theorem 4.1
  assert np.all(zeros[:2] < 2 * k) and zeros[:2].max() <= k + 3 * k**0.6    # Theorem 4.2
  # Columns never visited with a misclassified label keep their initial values exactly.
  assert np.all(np.asarray(w0)[3:].max() > 0)


def test_sgd_label_noise_fits_separable_data_and_p1_does_not():
  x = jnp.array([[1.0], [2.0], [-1.0], [-2.0]])
  labels = jnp.array([1, 1, 0, 0])
  apply_fn = lambda w, xs: xs @ w
  loss_fn = lambda out, lab: jax.nn.softplus(-(2.0 * lab - 1.0) * out[:, 0])
  noise_fn = lambda key, lab, p: jnp.where(jax.random.bernoulli(key, p, lab.shape),
                                           jax.random.randint(key, lab.shape, 0, 2), lab)
  eval_fn = lambda w: {"w": w[0, 0]}
  run = lambda p: pn.sgd_label_noise(
      jnp.zeros((1, 1)), jax.random.key(0), p, apply_fn=apply_fn, loss_fn=loss_fn,
      noise_fn=noise_fn, lr_fn=lambda t: 0.1, x_NxD=x, labels_N=labels, steps=400,
      eval_every=100, eval_fn=eval_fn)
  w_clean, rec = run(0.0)
  assert rec["w"].shape == (5,) and float(rec["w"][0]) == 0.0
  assert float(w_clean[0, 0]) > 1.0
  w_noise, _ = run(1.0)
  assert abs(float(w_noise[0, 0])) < float(w_clean[0, 0]) / 2


def test_unknown_names_raise_config_error():
  with pytest.raises(ConfigError):
    pn.surrogate("squared")
  with pytest.raises(ConfigError):
    pn.activation("tanh")


def _tiny_config(parts):
  from experiments import pure_noise as E
  cfg = E.get_config("quick")
  cfg.parts = parts
  cfg.d = 6
  cfg.theorem1.update(dict(depths=(2,), num_nets=8))
  cfg.single.update(dict(steps=2000, record_every=100, seeds=2))
  cfg.hidden.update(dict(steps=2000, record_every=200, seeds=2, scaling_h=(1 / 6,),
                         scaling_budget=50.0, scaling_seeds=1))
  cfg.basis.update(dict(ks=(8,), d=3, steps=1000, record_every=500, seeds=2))
  return cfg, E.run


def test_pure_noise_end_to_end_theorems():
  cfg, run_fn = _tiny_config(("theorem1", "basis"))
  workdir = tempfile.mkdtemp()
  claims = experiment.execute("pure_noise", cfg, workdir, run_fn)
  ids = {c.id: c for c in claims}
  assert ids["theorem1_every_layer_shrinks"].passed
  assert ids["theorem3_outputs_vanish"].passed
  assert ids["theorem4_large_h_all_dead"].passed
  import pathlib
  assert (pathlib.Path(workdir) / "thm34_standard_basis.png").exists()


@pytest.mark.slow
def test_pure_noise_end_to_end_dynamics():
  cfg, run_fn = _tiny_config(("single", "hidden"))
  workdir = tempfile.mkdtemp()
  claims = experiment.execute("pure_noise", cfg, workdir, run_fn)
  assert {c.id for c in claims} >= {"theorem2_hinge_equilibrium_dh", "fig4_relu_death"}
  import pathlib
  for name in ("fig2_single_neuron.png", "fig3_no_bias.png", "fig4_with_bias.png"):
    assert (pathlib.Path(workdir) / name).exists()


def test_pure_noise_rejects_unknown_part():
  cfg, run_fn = _tiny_config(("theorem5",))
  with pytest.raises(ConfigError):
    experiment.execute("pure_noise", cfg, tempfile.mkdtemp(), run_fn)
