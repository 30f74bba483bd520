"""Kernels and the GD / EigenPro iterations (the Fig. 9 experiment: tests/experiments/)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from noisejax import kernels
from noisejax.errors import ConfigError


def _points(n=12, d=4, seed=0):
  return jax.random.normal(jax.random.key(seed), (n, d))


def test_kernels_match_numpy_definitions():
  x, z = np.asarray(_points(5, 3, 0)), np.asarray(_points(4, 3, 1))
  dist = np.linalg.norm(x[:, None] - z[None], axis=-1)
  np.testing.assert_allclose(kernels.laplacian_kernel(x, z, 2.0), np.exp(-dist / 2.0),
                             rtol=1e-5)
  np.testing.assert_allclose(kernels.gaussian_kernel(x, z, 2.0), np.exp(-dist**2 / 8.0),
                             rtol=1e-5)
  blocked = kernels.kernel_matrix("laplacian", x, z, 2.0, block_size=2)
  np.testing.assert_allclose(blocked, np.exp(-dist / 2.0), rtol=1e-5)
  with pytest.raises(ConfigError):
    kernels.get_kernel("polynomial")


def test_top_eigenpairs_match_eigh():
  k = np.asarray(kernels.gaussian_kernel(_points(40), _points(40), 2.0))
  evals, evecs = kernels.top_eigenpairs(jnp.asarray(k), jax.random.key(0), k=3, iters=100)
  ref = np.linalg.eigvalsh(k)[::-1][:3]
  np.testing.assert_allclose(evals, ref, rtol=1e-3)
  np.testing.assert_allclose(np.asarray(k @ evecs), np.asarray(evecs * evals), atol=1e-3)


def test_gd_matches_spectral_filter_and_converges_to_interpolation():
  """f_t = Σ_i (1 − (1 − ηλ_i)ᵗ)(e_iᵀy)e_i for α ← α − η(Kα − y) from α = 0."""
  x = _points(15)
  k = kernels.laplacian_kernel(x, x, 1.0)
  y = jnp.sign(jax.random.normal(jax.random.key(5), (15,)))
  pre = kernels.make_preconditioner(k, jax.random.key(0), method="gd", top_k=1)
  evals, evecs = np.linalg.eigh(np.asarray(k, np.float64))
  eta = float(pre.step_size)
  for t in (1, 7, 50):
    alpha = kernels.kernel_gd_steps(jnp.zeros(15), k, y, pre, t)
    expected = evecs @ ((1 - (1 - eta * evals) ** t) * (evecs.T @ np.asarray(y)))
    np.testing.assert_allclose(k @ alpha, expected, atol=1e-3)
  alpha = kernels.kernel_gd_steps(jnp.zeros(15), k, y, pre, 20000)
  np.testing.assert_allclose(k @ alpha, y, atol=1e-2)


def test_eigenpro_fits_top_directions_in_one_step_and_speeds_up_convergence():
  x = _points(30)
  k = kernels.gaussian_kernel(x, x, 3.0)
  y = jnp.sign(jax.random.normal(jax.random.key(5), (30,)))
  pre = kernels.make_preconditioner(k, jax.random.key(0), method="eigenpro", top_k=2)
  alpha = kernels.kernel_gd_steps(jnp.zeros(30), k, y, pre, 1)
  top = pre.evecs_Nxk
  np.testing.assert_allclose(top.T @ (k @ alpha), top.T @ y, atol=1e-3)
  gd = kernels.make_preconditioner(k, jax.random.key(0), method="gd", top_k=2)
  res = {name: float(jnp.linalg.norm(k @ kernels.kernel_gd_steps(jnp.zeros(30), k, y, p, 200) - y))
         for name, p in (("gd", gd), ("eigenpro", pre))}
  assert res["eigenpro"] < res["gd"]
  with pytest.raises(ConfigError):
    kernels.make_preconditioner(k, jax.random.key(0), method="newton", top_k=2)
  with pytest.raises(ConfigError):
    kernels.make_preconditioner(k, jax.random.key(0), method="eigenpro", top_k=30)


def test_log_spaced_steps():
  steps = kernels.log_spaced_steps(1000, 10)
  assert steps[0] == 0 and steps[-1] == 1000 and steps == sorted(set(steps))
