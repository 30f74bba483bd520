"""Theorem 3.1 / Corollary 3.2 closed forms, the finite-width measurement, eq. 8 / 14."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from noisejax import models
from noisejax.errors import ConfigError
from noisejax.theory import ntk_angles


def test_closed_forms_at_hand_computed_points():
  theta_d = np.array([0.0, np.pi / 2, np.pi])
  np.testing.assert_allclose(ntk_angles.theta_h_linear_two_layer(theta_d), theta_d)
  # cos θ_h = ((π − θ)/π) cos θ + sin θ/(2π): 1 at 0, 1/(2π) at π/2, 0 at π.
  expected = np.arccos([1.0, 1 / (2 * np.pi), 0.0])
  np.testing.assert_allclose(ntk_angles.theta_h_relu_two_layer(theta_d), expected, atol=1e-3)
  with pytest.raises(ConfigError):
    ntk_angles.theta_h_two_layer(theta_d, "tanh")


@pytest.mark.parametrize("activation", ["linear", "relu"])
def test_ntk_recursion_at_depth_two_is_theorem_3_1(activation):
  theta_d = np.linspace(0, np.pi, 50)
  np.testing.assert_allclose(ntk_angles.theta_h_infinite_width(theta_d, 2, activation),
                             ntk_angles.theta_h_two_layer(theta_d, activation), atol=2e-3)


def test_deep_linear_limit_is_identity_and_deep_relu_compresses_angles():
  theta_d = np.linspace(0.05, np.pi, 20)
  np.testing.assert_allclose(ntk_angles.theta_h_infinite_width(theta_d, 5, "linear"), theta_d,
                             atol=2e-3)
  two, five = (np.asarray(ntk_angles.theta_h_infinite_width(np.pi, d, "relu")) for d in (2, 5))
  assert five < two - 0.1  # deeper ReLU nets map opposite inputs to smaller angles


@pytest.mark.parametrize("activation", ["linear", "relu"])
def test_closed_form_matches_wide_network_monte_carlo(activation):
  """θ_h of a sampled two-layer NTK net of width 16384 at init vs Theorem 3.1 (any d)."""
  x_NxD = jax.random.normal(jax.random.key(1), (8, 3))
  x_NxD = x_NxD / jnp.linalg.norm(x_NxD, axis=1, keepdims=True)
  theta_d = np.asarray(ntk_angles.input_angles(x_NxD))
  model = ntk_angles.ntk_mlp(2, 16384, activation)
  measured = np.asarray(ntk_angles.theta_h_at_init(model, jax.random.key(0), x_NxD))
  closed = np.asarray(ntk_angles.theta_h_two_layer(theta_d, activation))
  assert np.abs(measured - closed).max() < 0.03
  if activation == "relu":  # and it is not the linear relation
    assert np.abs(measured - theta_d).max() > 0.3


def test_theta_h_at_init_equals_angles_of_explicit_jacobian_rows():
  model = ntk_angles.ntk_mlp(3, 16, "relu")
  x_NxD = jax.random.normal(jax.random.key(2), (5, 2))
  theta = ntk_angles.theta_h_at_init(model, jax.random.key(3), x_NxD, chunk_size=2)
  params = model.init(jax.random.key(3), x_NxD[:1])["params"]
  jac = jax.jit(jax.jacrev(lambda p: model.apply({"params": p}, x_NxD)[:, 0]))(params)
  jac_NxP = jnp.concatenate([leaf.reshape(5, -1) for leaf in jax.tree_util.tree_leaves(jac)], 1)
  unit = jac_NxP / jnp.linalg.norm(jac_NxP, axis=1, keepdims=True)
  np.testing.assert_allclose(theta, np.arccos(np.clip(unit @ unit.T, -1, 1)), atol=2e-3)


def test_angles_from_gram_on_hand_made_vectors():
  v = jnp.array([[1.0, 0.0], [0.0, 2.0], [-3.0, 0.0], [1.0, 1.0]])
  theta = np.asarray(ntk_angles.angles_from_gram(v @ v.T))
  np.testing.assert_allclose(theta[0], [0, np.pi / 2, np.pi, np.pi / 4], atol=1e-3)


def test_corollary_checker_rejects_decreasing_and_out_of_range_curves():
  grid = np.linspace(0, np.pi, 41)
  assert ntk_angles.is_monotone_on_quarter(grid, ntk_angles.theta_h_relu_two_layer(grid))
  bump = np.array(grid)
  bump[5] -= 0.2
  assert not ntk_angles.is_monotone_on_quarter(grid, bump)
  assert not ntk_angles.is_monotone_on_quarter(grid, 1.5 * grid)  # exceeds π/2 on [0, π/2]
  assert ntk_angles.is_monotone_on_quarter(grid, grid + 0.01, range_tol=0.02)


def test_circle_curves_shape_and_reference_angle():
  model = ntk_angles.ntk_mlp(2, 64, "relu")
  theta_d, theta_h = ntk_angles.circle_curves(model, jax.random.key(0), 16, 3)
  assert theta_d.shape == (9,) and theta_h.shape == (3, 9)
  np.testing.assert_allclose(theta_d[[0, -1]], [0, np.pi], atol=1e-6)
  np.testing.assert_allclose(theta_h[:, 0], 0, atol=2e-3)  # ∠(∇h(x), ∇h(x)) = 0


def test_predicted_ratios_eq8_eq14():
  assert ntk_angles.predicted_ratio(0.4, 2, num_outputs=1) == pytest.approx(1.5)
  assert ntk_angles.predicted_ratio(0.3, 10, num_outputs=10) == pytest.approx(21.0)


def test_closed_forms_exist_for_the_listed_activations_only():
  assert set(ntk_angles.CLOSED_FORM_ACTIVATIONS) <= set(models.ACTIVATIONS)
  for activation in ntk_angles.CLOSED_FORM_ACTIVATIONS:
    ntk_angles.theta_h_infinite_width(1.0, 3, activation)
  with pytest.raises(ConfigError, match="activation"):
    ntk_angles.theta_h_infinite_width(1.0, 3, "tanh")
  with pytest.raises(ConfigError, match="activation"):
    ntk_angles.ntk_mlp(2, 8, "softplus")


def test_theta_h_at_any_weights_and_its_change():
  model = ntk_angles.ntk_mlp(2, 32, "relu")
  key, x_Nx2 = jax.random.key(1), ntk_angles.unit_circle(8)[0]
  variables = model.init(key, x_Nx2[:1])
  theta0 = ntk_angles.theta_h(model, variables, x_Nx2)
  np.testing.assert_allclose(theta0, ntk_angles.theta_h_at_init(model, key, x_Nx2), atol=1e-5)
  assert ntk_angles.theta_h_change_deg(theta0, theta0) == 0.0
  shifted = np.asarray(theta0) + np.radians(2.0)  # every pair 2° wider
  assert ntk_angles.theta_h_change_deg(theta0, shifted) == pytest.approx(2.0, rel=1e-4)
  moved = jax.tree.map(lambda a: a + 0.5, variables)
  assert ntk_angles.theta_h_change_deg(theta0, ntk_angles.theta_h(model, moved, x_Nx2)) > 0.1
