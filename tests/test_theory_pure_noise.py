"""Pure-noise theory of the misclassification paper: Theorems 1–4 on small shapes."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from noisejax import models
from noisejax.errors import ConfigError
from noisejax.theory import pure_noise as pn


@pytest.mark.parametrize("architecture,depth", [("mlp", 1), ("mlp", 3), ("conv", 3)])
def test_theorem1_every_layer_shrinks_on_misclassified_samples(architecture, depth):
  results = pn.check_theorem1(jax.random.key(0), d=5, depth=depth, width=8,
                              architecture=architecture, num_nets=16)
  assert set(results) == {(a, l) for a in pn.HOMOGENEOUS for l in pn.SURROGATES}
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


def test_theorem1_activations_come_from_the_models_registry():
  z = jnp.array([-2.0, 0.5])
  np.testing.assert_allclose(pn.activation(pn.LEAKY_RELU)(z), [-0.2, 0.5])
  assert pn.activation("relu") is models.ACTIVATIONS["relu"]
  with pytest.raises(ConfigError):
    pn.activation("tanh")  # in the registry, but not homogeneous
  with pytest.raises(ConfigError):
    pn.surrogate("squared")


def test_theorem1_summary_skips_nets_with_every_unit_off():
  r = {"margin": np.array([-1.0, 0.0, -2.0]),
       "inner": np.array([[2.0, 2.0], [0.0, 0.0], [1.0, 1.1]]),
       "predicted_inner": np.array([2.0, 0.0, 1.0]),
       "norm_change": np.array([[[-1.0, -1.0]], [[0.0, 0.0]], [[-1.0, 0.5]]]),
       "h0": np.array([1.0, 5.0, 3.0])}
  (row,) = pn.theorem1_summary({("relu", "hinge"): r})
  assert (row["misclassified"], row["dead_nets"]) == (2, 1)
  assert row["all_layers_shrink"] == 0.5
  assert row["max_balance_error"] == pytest.approx(0.1)
  assert row["median_h0"] == 2.0


def test_death_time_exponent_of_an_exact_power_law():
  rows = [{"h": h, "steps_to_death": 7.0 / h**2} for h in (0.1, 0.05, 0.025)]
  exponent, at_paper_h, residual = pn.death_time_exponent(rows, d=10)
  assert exponent == pytest.approx(2.0) and residual == pytest.approx(0.0, abs=1e-9)
  assert at_paper_h == pytest.approx(7.0 * 10**4)
  rows[1]["steps_to_death"] = float("inf")  # one run never died: no fit
  assert np.isnan(pn.death_time_exponent(rows, d=10)[0])
  assert pn.first_below([3.0, 2.0, 0.5, 0.1], [0, 10, 20, 30], 1.0) == 20.0


def test_hidden_layer_summary_on_a_short_biased_run():
  keys = jax.random.split(jax.random.key(6), 2)
  out = jax.tree.map(np.asarray, pn.hidden_layer_pure_noise(
      keys, 0.2, d=4, width=16, bias=True, loss="hinge", steps=400, record_every=100))
  s = pn.hidden_layer_summary(*out, np.arange(5) * 100)
  assert s["w_norm_init"] == pytest.approx(float(out[1]["w_norm"][:, 0].mean()))
  assert 0 <= s["active_fraction_final"] < 0.5 and s["fraction_biases_decreased"] > 0.5


def test_layer_norm_changes_match_the_direct_difference():
  params = pn.init_one_hidden_layer(jax.random.key(1), 3, 5)
  grads = jax.tree.map(lambda p: 0.1 * jnp.ones_like(p), params)
  h = 0.3
  direct = [sum(jnp.vdot(params[k] - h * grads[k], params[k] - h * grads[k])
                - jnp.vdot(params[k], params[k]) for k in layer) for layer in pn.LAYERS]
  np.testing.assert_allclose(pn.layer_norm_changes(params, grads, h), direct, rtol=1e-4)


def test_theorem1_counts_on_trained_sgd():
  """Tiny h is inside Theorem 1's regime (every misclassified step shrinks every layer);
  a large h is not."""
  keys = jax.random.split(jax.random.key(2), 2)
  for h, low, high in ((1e-6, 1.0, 1.0), (0.5, 0.0, 0.9)):
    _, rec, _ = jax.tree.map(np.asarray, pn.hidden_layer_pure_noise(
        keys, h, d=4, width=16, bias=False, loss="hinge", steps=400, record_every=100))
    assert np.all(rec["shrinking_steps"] <= rec["misclassified_steps"])
    assert rec["misclassified_steps"][:, 0].sum() == 0  # record 0 is the initialization
    t1 = pn.theorem1_along_sgd(rec)
    assert t1["misclassified_steps"] > 100 and low <= t1["shrink_fraction"] <= high
    assert len(t1["shrink_fraction_per_seed"]) == 2


def test_gradient_flow_norms_decrease():
  with jax.enable_x64(True):
    norms, worst = map(np.asarray, pn.gradient_flow_norms(
        jax.random.key(3), 0.01, d=5, depth=2, width=8, n=20, steps=200, record_every=50))
  assert norms.shape == (5, 2) and worst.shape == (2,) and norms.dtype == np.float64
  assert np.all(np.diff(norms, axis=0) <= 0) and np.all(worst <= 0)
  assert np.all(norms[-1] < norms[0])


def test_hypercube_sparse_net_counts():
  d, eps = 20, 0.3
  net = pn.hypercube_sparse_net(d, eps)
  assert net["w1"].shape == (2 * d, d)
  from noisejax import synthetic
  x, y = synthetic.hypercube_boundary(jax.random.key(4), 20_000, d, eps)
  out, active = map(np.asarray, pn.sparse_net_outputs(net, x))
  y = np.asarray(y)
  assert np.all(active[y == -1] == 0) and np.all(out[y == -1] == -0.5)
  assert np.all(active[y == 1] >= 1)  # the face unit always fires
  assert active[y == 1].mean() == pytest.approx(pn.hypercube_expected_active(d, eps), rel=0.03)


def test_fixed_output_pure_noise_larger_h_is_sparser():
  x = jax.random.uniform(jax.random.key(6), (50, 12))  # non-negative inputs, like pixels
  _, _, rec = jax.tree.map(np.asarray, pn.fixed_output_pure_noise(
      jax.random.split(jax.random.key(7), 2), jnp.asarray([1e-3, 1.0]), x, x[:20], k=8,
      steps=2000, record_every=500))
  assert rec["active_fraction"].shape == (2, 2, 4)  # H×S×R
  assert rec["active_fraction"][1, :, -1].max() < rec["active_fraction"][0, :, -1].min()
  assert np.all(rec["updates"] <= 500) and rec["dead_inputs"][1, :, -1].min() > 0.5
