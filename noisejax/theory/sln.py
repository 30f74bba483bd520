"""Stochastic label noise as SGD noise (Chen et al., "Noise against noise", ICLR 2021).

One sample (x, y), logits f = f(x; θ) ∈ R^c, S = softmax(f), J = ∇θf ∈ R^{c×p} (params
flattened in `jax.flatten_util.ravel_pytree` order, as `persample.flat_jacobian`). Each
variant adds noise that is LINEAR in a standard normal draw z, so it is exactly Gaussian
with covariance F Fᵀ, F the map's matrix (`noise_factor` = ∂g̃/∂z by autodiff):

  eq. 1   g̃ = ∇θℓ + σθ zθ                 F = σθ I_p               (`eq1_noisy_grad`)
  eq. 2   g̃ = (∇fℓ + σf zf)·J   (eq. 4)   F = σf Jᵀ                (`eq2_noisy_grad`)
          Prop 1 / eq. 5–6: Cov = σf² JᵀJ, std on θ_i = σf‖J[:, i]‖ (`prop1_covariance`,
          `prop1_std`, `eq2_noise`).
  eq. 3   g̃ = ∇θ CE(f, y + σ zy), soft targets −Σ t_k log S_k     (`eq3_noisy_grad`)
          on ∇fℓ (Prop 2, eq. 7–10): noise −σ(zy − (1ᵀzy)S) = σ A(S) zy, A = −(I − S1ᵀ)
          (`eq8_noise`, `prop2_factor`, `eq3_logit_grad`); Cov = σ² M(S), M = A Aᵀ with
          M_ii = c(S_i − 1/c)² + (c−1)/c, M_ij = cS_iS_j − S_i − S_j (`prop2_M`, `prop2_std`).
          Per-entry variance 1 − 2S_i + cS_i² on S_i ∈ [0, 1]: least (c−1)/c at S_i = 1/c,
          most c−1 at S_i = 1 (`prop2_entry_variance`, `prop2_extremes`); tr M =
          c − 2 + c‖S‖² ∈ [c−1, 2(c−1)] (`prop2_trace`, `prop2_trace_bounds`); spectrum
          {0, 1 (×c−2), c‖S‖²}, null vector 1 (`prop2_eigenvalues`).
          on ∇θℓ (Prop 3, eq. 11–13): noise −σ zyᵀ ∇θlog S, row k of ∇θlog S is ∇θS_k/S_k
          = ((I − 1Sᵀ)J)_k (`jac_log_softmax`); Cov = σ²(∇θlog S)ᵀ(∇θlog S) = σ² JᵀMJ
          (`prop3_covariance`, `prop3_std`, `eq3_noise`).
  Models `apply_fn(params, x_B) -> logits_BxC` (the persample convention): J and ∇θlog S of
  one sample (`output_jacobian`, `log_softmax_jacobian`); Monte Carlo moments of a noisy
  gradient over many draws (`monte_carlo_moments`, `covariance_rel_stderr`).

Claim 2, made precise (M = P + (c‖S‖² − 1)uuᵀ, P = I − 11ᵀ/c, u ∥ S − 1/c): the SLN
θ-noise energy per unit σ² is ‖∇θlog S‖²_F = tr JᵀMJ ∈ [‖PJ‖²_F, c‖S‖²‖PJ‖²_F]
(`prop3_energy_bounds`). Confidence multiplies it by at most c‖S‖² ≤ c (the trace of M by
at most 2); S in the "denominator" of Prop 3 never blows it up, because ∇θS_k/S_k =
∇θf_k − Σ_j S_j∇θf_j. The unbounded factor is the output sharpness J (Claim 1).

Noise energy (App. E): mean_i ‖∇θlog S(x_i)‖²_F (`noise_energy`) and mean_i ‖J(x_i)‖²_F
(`output_sharpness`, the eq. 2 energy per unit σf²), per-sample squared gradient norms
from `persample.sample_grad_stats` (the tap engine: no B×P gradients), chunked over samples.

Loss landscapes (Fig. 2; Li et al. 2018): filter-normalized random directions
(`filter_normalized_direction`), the loss on a 1-D / 2-D slice θ + a·d1 + b·d2
(`landscape_1d`, `landscape_2d`, one evaluation in memory at a time) and a flatness number
(`sharpness`: mean loss rise over the slice's points within radius r of θ).
"""

import functools
from typing import Callable

import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

from noisejax import losses, persample


def _flat(tree):
  return ravel_pytree(tree)[0]


def _ce(f_C, t_C):
  """ℓ(f, t) = −Σ_k t_k log S_k(f) of one sample (any real targets t)."""
  return losses.softmax_cross_entropy(f_C[None], t_C[None])[0]


# ----------------------------------------------------------------------------------------
# Prop 1: eq. 2 against eq. 1.


@jax.jit
def prop1_covariance(J_CxP, sigma_f):
  """Prop 1, eq. 6: Cov of σf zfᵀJ is σf² JᵀJ, entry (i, j) = σf² (∇θ_i f)ᵀ∇θ_j f."""
  return sigma_f ** 2 * J_CxP.T @ J_CxP


@jax.jit
def prop1_std(J_CxP, sigma_f):
  """Prop 1: std of the noise on θ_i is σf‖∇θ_i f‖₂ (column i of J)."""
  return sigma_f * jnp.linalg.norm(J_CxP, axis=0)


@jax.jit
def eq2_noise(J_CxP, z_C, sigma_f):
  """Eq. 4–5: the noise σf zfᵀ·J that eq. 2 adds to ∇θℓ."""
  return sigma_f * z_C @ J_CxP


# ----------------------------------------------------------------------------------------
# Prop 2: eq. 3 against eq. 2, on ∇fℓ.


@jax.jit
def prop2_factor(S_C):
  """Eq. 8 as a matrix: −(zy − (1ᵀzy)S) = A zy with A(S) = −(I − S1ᵀ) (c×c); A Aᵀ = M."""
  c = S_C.shape[-1]
  return -(jnp.eye(c, dtype=S_C.dtype) - jnp.outer(S_C, jnp.ones_like(S_C)))


@jax.jit
def eq8_noise(S_C, z_C, sigma):
  """Eq. 8: the noise −σ(zy − (Σ_k zy_k)·S) that SLN adds to ∇fℓ."""
  return -sigma * (z_C - jnp.sum(z_C) * S_C)


@jax.jit
def prop2_M(S_C):
  """Prop 2, eq. 9–10, entry by entry (c×c).

  M_ii = c(S_i − 1/c)² + (c−1)/c,  M_ij = cS_iS_j − S_i − S_j (i ≠ j).
  """
  c = S_C.shape[-1]
  off_CxC = c * jnp.outer(S_C, S_C) - S_C[:, None] - S_C[None, :]
  diag_C = c * (S_C - 1.0 / c) ** 2 + (c - 1.0) / c
  return jnp.where(jnp.eye(c, dtype=bool), diag_C[:, None], off_CxC)


@jax.jit
def prop2_std(S_C, sigma):
  """Prop 2: std of the noise on ∇f_iℓ, σ√(c(S_i − 1/c)² + (c−1)/c)."""
  return sigma * jnp.sqrt(prop2_entry_variance(S_C, S_C.shape[-1]))


@functools.partial(jax.jit, static_argnames=("c",))
def prop2_entry_variance(s, c: int):
  """M_ii / σ² as a function of s = S_i: c(s − 1/c)² + (c−1)/c = 1 − 2s + cs² (eq. 9)."""
  return c * (s - 1.0 / c) ** 2 + (c - 1.0) / c


def prop2_extremes(c: int) -> dict:
  """§3.2: on s ∈ [0, 1] the entry variance is least at s = 1/c, (c−1)/c, and most at s = 1, c−1."""
  return dict(argmin=1.0 / c, min=(c - 1.0) / c, argmax=1.0, max=c - 1.0)


@jax.jit
def prop2_trace(S_C):
  """tr M = Σ_i (1 − 2S_i + cS_i²) = c − 2 + c‖S‖² (code notes)."""
  c = S_C.shape[-1]
  return c - 2.0 + c * jnp.sum(S_C * S_C, axis=-1)


def prop2_trace_bounds(c: int):
  """‖S‖² ∈ [1/c, 1] gives tr M ∈ [c−1, 2(c−1)]: uniform S at the bottom, one-hot at the top."""
  return c - 1.0, 2.0 * (c - 1.0)


@jax.jit
def prop2_eigenvalues(S_C):
  """Spectrum of M ascending: 0 (eigenvector 1), 1 (×c−2, on 1⊥ ∩ (S − 1/c)⊥), c‖S‖².

  M1 = 0 since adding a constant to every logit is invisible to softmax; on 1⊥,
  ‖(I − 1Sᵀ)v‖² = 1 + c(Sᵀv)² and Sᵀv = (S − 1/c)ᵀv, largest along S − 1/c.
  """
  c = S_C.shape[-1]
  top = c * jnp.sum(S_C * S_C, axis=-1, keepdims=True)
  ones = jnp.ones(S_C.shape[:-1] + (c - 2,), S_C.dtype)
  return jnp.concatenate([jnp.zeros_like(top), ones, top], axis=-1)


@jax.jit
def eq3_logit_grad(f_C, y_C, z_C, sigma):
  """∇fℓ(f, y + σzy) by autodiff of the soft-target CE (the left side of eq. 8)."""
  return jax.grad(_ce)(f_C, y_C + sigma * z_C)


# ----------------------------------------------------------------------------------------
# Prop 3: eq. 3 against eq. 1, on ∇θℓ.


@jax.jit
def jac_log_softmax(J_CxP, S_C):
  """∇θlog S = (I − 1Sᵀ)J: row k is ∇θS_k/S_k = ∇θf_k − Σ_j S_j ∇θf_j (eq. 7 divided by S)."""
  return J_CxP - (S_C @ J_CxP)[None, :]


@jax.jit
def prop3_covariance(jac_logS_CxP, sigma):
  """Prop 3, eq. 13: σ²(∇θS/S)ᵀ(∇θS/S), ∇θS/S = ∇θlog S (c×p). Equals σ² JᵀM(S)J."""
  return sigma ** 2 * jac_logS_CxP.T @ jac_logS_CxP


@jax.jit
def prop3_std(jac_logS_CxP, sigma):
  """Prop 3: std of the noise on θ_i is σ‖∇θ_i S / S‖₂ (column i of ∇θlog S)."""
  return sigma * jnp.linalg.norm(jac_logS_CxP, axis=0)


@jax.jit
def eq3_noise(jac_logS_CxP, z_C, sigma):
  """Eq. 11–12: the noise −σ Σ_k zy_k ∇θS_k/S_k that SLN adds to ∇θℓ."""
  return -sigma * z_C @ jac_logS_CxP


@jax.jit
def prop3_energy_bounds(J_CxP, S_C):
  """‖PJ‖²_F ≤ ‖∇θlog S‖²_F = tr JᵀMJ ≤ c‖S‖²‖PJ‖²_F, P = I − 11ᵀ/c (M = P + (c‖S‖²−1)uuᵀ).

  Both bounds meet at uniform S; confidence raises the SLN θ-noise by at most c‖S‖² ≤ c.
  """
  pj_sq = jnp.sum((J_CxP - jnp.mean(J_CxP, axis=0, keepdims=True)) ** 2)
  return pj_sq, S_C.shape[-1] * jnp.sum(S_C * S_C) * pj_sq


# ----------------------------------------------------------------------------------------
# A model's J, ∇θlog S and its actual noisy gradients (autodiff through the loss).


@functools.partial(jax.jit, static_argnames=("apply_fn",))
def output_jacobian(apply_fn: Callable, params, x):
  """J = ∇θf(x) ∈ R^{c×p} of one sample x (no batch axis), via `persample.flat_jacobian`."""
  return persample.flat_jacobian(apply_fn, params, x[None])


@functools.partial(jax.jit, static_argnames=("apply_fn",))
def log_softmax_jacobian(apply_fn: Callable, params, x):
  """∇θlog S(x) ∈ R^{c×p} of one sample: jacrev of log_softmax(f), rows ∇θS_k/S_k."""
  log_s = lambda p, x_B: jax.nn.log_softmax(apply_fn(p, x_B), axis=-1)
  return persample.flat_jacobian(log_s, params, x[None])


@functools.partial(jax.jit, static_argnames=("apply_fn",))
def eq1_noisy_grad(apply_fn: Callable, params, x, y_C, z_P, sigma_theta):
  """Eq. 1: ∇θℓ(f, y) + σθ zθ, flat (p)."""
  loss = lambda p: _ce(apply_fn(p, x[None])[0], y_C)
  return _flat(jax.grad(loss)(params)) + sigma_theta * z_P


@functools.partial(jax.jit, static_argnames=("apply_fn",))
def eq2_noisy_grad(apply_fn: Callable, params, x, y_C, z_C, sigma_f):
  """Eq. 2: the perturbed cotangent ∇fℓ + σf zf pulled back through f by one VJP, flat (p)."""
  f_C, vjp = jax.vjp(lambda p: apply_fn(p, x[None])[0], params)
  g_C = jax.grad(_ce)(f_C, y_C)
  return _flat(vjp(g_C + sigma_f * z_C)[0])


@functools.partial(jax.jit, static_argnames=("apply_fn",))
def eq3_noisy_grad(apply_fn: Callable, params, x, y_C, z_C, sigma):
  """Eq. 3 (SLN): ∇θ CE(f, y + σzy) with soft targets −Σ_k t_k log S_k, flat (p)."""
  loss = lambda p: _ce(apply_fn(p, x[None])[0], y_C + sigma * z_C)
  return _flat(jax.grad(loss)(params))


@functools.partial(jax.jit, static_argnames=("noisy_grad_of_z", "z_dim"))
def noise_factor(noisy_grad_of_z: Callable, z_dim: int):
  """F = ∂g̃/∂z (p×z_dim) of a noisy gradient z ↦ g̃(z), by forward-mode autodiff.

  For eq. 1–3 g̃ is affine in z, g̃(z) = g̃(0) + F z, so the noise is N(0, F Fᵀ) exactly.
  z is in the default float dtype (float64 under enable_x64).
  """
  return jax.jacfwd(noisy_grad_of_z)(jnp.zeros((z_dim,), jnp.result_type(float)))


@functools.partial(jax.jit, static_argnames=("noisy_grad_of_z", "z_dim", "num_draws",
                                             "batch_size"))
def monte_carlo_moments(noisy_grad_of_z: Callable, key, *, z_dim: int, num_draws: int,
                        batch_size=None):
  """Sample mean (p) and covariance (p×p, ddof 1) of g̃(z) over num_draws z ~ N(0, I).

  Holds num_draws×p gradients (meant for small nets); `batch_size` draws are vmapped at a
  time (`jax.lax.map`).
  """
  z_DxZ = jax.random.normal(key, (num_draws, z_dim), jnp.result_type(float))
  grads_DxP = jax.lax.map(noisy_grad_of_z, z_DxZ, batch_size=batch_size or num_draws)
  mean_P = jnp.mean(grads_DxP, axis=0)
  centred_DxP = grads_DxP - mean_P
  return mean_P, centred_DxP.T @ centred_DxP / (num_draws - 1)


@functools.partial(jax.jit, static_argnames=("num_draws",))
def covariance_rel_stderr(cov_PxP, num_draws: int):
  """√E‖Σ̂ − Σ‖²_F / ‖Σ‖_F of the sample covariance of n Gaussian draws.

  Var Σ̂_ij = (Σ_ij² + Σ_iiΣ_jj)/(n − 1), so E‖Σ̂ − Σ‖²_F = (‖Σ‖²_F + (tr Σ)²)/(n − 1).
  """
  fro_sq = jnp.sum(cov_PxP ** 2)
  return jnp.sqrt((fro_sq + jnp.trace(cov_PxP) ** 2) / (num_draws - 1) / fro_sq)


# ----------------------------------------------------------------------------------------
# Noise energy at a solution (App. E), through the sample-wise gradient engine.


def _class_sq_norms(apply_fn, params, x_N, cotangents, chunk_size, method):
  """‖J_iᵀ c_{k,i}‖² (N×C) for the C cotangent sets of `cotangents(logits_BxC)` (C×B×C)."""
  n = x_N.shape[0]
  chunk = max(1, min(chunk_size, n))
  num_chunks = -(-n // chunk)
  pad = num_chunks * chunk - n
  if pad:  # ragged tail: repeat sample 0, dropped below
    x_N = jnp.concatenate([x_N, jnp.broadcast_to(x_N[:1], (pad,) + x_N.shape[1:])])
  x_chunks = x_N.reshape((num_chunks, chunk) + x_N.shape[1:])

  def one(x_B):
    stats, _, _ = persample.sample_grad_stats(apply_fn, params, x_B,
                                              lambda h: (cotangents(h), None),
                                              jnp.ones((chunk, 1)), method=method)
    return stats.sq_norms_MxB.T

  sq_chunks = jax.lax.map(one, x_chunks)
  return sq_chunks.reshape((num_chunks * chunk,) + sq_chunks.shape[2:])[:n]


def _summary(sq_NxC, key):
  per_sample_N = jnp.sum(sq_NxC, axis=1)
  return {key: jnp.mean(per_sample_N), "per_sample_N": per_sample_N,
          "per_class_C": jnp.mean(sq_NxC, axis=0), "sq_norms_NxC": sq_NxC}


@functools.partial(jax.jit, static_argnames=("apply_fn", "chunk_size", "method"))
def noise_energy(apply_fn: Callable, params, x_N, *, chunk_size: int = 256,
                 method: str = "auto") -> dict:
  """SLN gradient-noise energy per unit σ²: mean_i ‖∇θlog S(x_i)‖²_F (App. E, Prop 3).

  ‖∇θlog S‖²_F = tr of Prop 3's covariance / σ², the total variance SLN adds to one
  sample's gradient. Per class k, ‖∇θlog S_k(x_i)‖² is the squared norm of the sample
  gradient of −log S_k, i.e. cotangent S − e_k through `persample.sample_grad_stats`
  (`chunk_size` samples per pass, `jax.lax.map` over chunks; the tap engine never forms
  B×P gradients, so the 784-512-512-10 MLP at N = 1000 fits in < 0.5 GB, while
  method="vmap" holds chunk·C·P floats). Models with BatchNorm: pass
  `persample.eval_apply_fn(model, batch_stats)`. Returns energy, per_sample_N,
  per_class_C (mean over samples of ‖∇θlog S_k‖²) and sq_norms_NxC.
  """
  def cotangents(logits_BxC):
    S_BxC = jax.nn.softmax(logits_BxC, axis=-1)
    eye_CxC = jnp.eye(logits_BxC.shape[-1], dtype=logits_BxC.dtype)
    return S_BxC[None] - eye_CxC[:, None, :]      # ∂(−log S_k)/∂f for set k

  sq_NxC = _class_sq_norms(apply_fn, params, x_N, cotangents, chunk_size, method)
  return _summary(sq_NxC, "energy")


@functools.partial(jax.jit, static_argnames=("apply_fn", "chunk_size", "method"))
def output_sharpness(apply_fn: Callable, params, x_N, *, chunk_size: int = 256,
                     method: str = "auto") -> dict:
  """Output sharpness mean_i ‖J(x_i)‖²_F = tr of Prop 1's covariance / σf² (eq. 2's energy).

  Same engine as `noise_energy`, cotangents e_k. Returns sharpness, per_sample_N,
  per_class_C and sq_norms_NxC (= ‖∇θf_k(x_i)‖²).
  """
  def cotangents(logits_BxC):
    b, c = logits_BxC.shape
    return jnp.broadcast_to(jnp.eye(c, dtype=logits_BxC.dtype)[:, None, :], (c, b, c))

  sq_NxC = _class_sq_norms(apply_fn, params, x_N, cotangents, chunk_size, method)
  return _summary(sq_NxC, "sharpness")


# ----------------------------------------------------------------------------------------
# Loss-landscape slices (Fig. 2; Li et al. 2018).


@functools.partial(jax.jit, static_argnames=("ignore_1d",))
def filter_normalized_direction(key, params, *, ignore_1d: bool = True):
  """Li et al.'s direction: d ~ N(0, I), each filter rescaled, d_j ← d_j ‖θ_j‖/(‖d_j‖ + 1e-10).

  A filter is the slice along the LAST axis (one output unit): `[:, j]` of a Dense kernel
  (in, out), `[..., j]` of a Conv kernel (h, w, in, out). Parameters with ≤ 1 axis (biases,
  BatchNorm scales / offsets) get 0 (ignore_1d, Li et al.'s `biasbn`) or θ itself.
  """
  leaves, treedef = jax.tree.flatten(params)
  flat_P, unravel = ravel_pytree(leaves)       # one draw for every leaf
  gauss = unravel(jax.random.normal(key, flat_P.shape, flat_P.dtype))
  out = []
  for d, theta in zip(gauss, leaves):
    if theta.ndim <= 1:
      out.append(jnp.zeros_like(theta) if ignore_1d else theta)
      continue
    axes = tuple(range(theta.ndim - 1))
    norm_theta = jnp.sqrt(jnp.sum(theta * theta, axis=axes, keepdims=True))
    norm_d = jnp.sqrt(jnp.sum(d * d, axis=axes, keepdims=True))
    out.append((d * norm_theta / (norm_d + 1e-10)).astype(theta.dtype))
  return treedef.unflatten(out)


def _shift(params, steps, directions):
  """θ + Σ_m steps_m d_m, leaf dtypes kept."""
  def leaf(theta, *ds):
    return (theta + sum(s * d for s, d in zip(steps, ds))).astype(theta.dtype)
  return jax.tree.map(leaf, params, *directions)


@functools.partial(jax.jit, static_argnames=("loss_of_params", "batch_size"))
def landscape_1d(loss_of_params: Callable, params, d, alphas_A, *, batch_size: int = 1):
  """L(θ + a·d) for a in alphas_A (A), `batch_size` evaluations at a time (jax.lax.map)."""
  return jax.lax.map(lambda a: loss_of_params(_shift(params, (a,), (d,))), alphas_A,
                     batch_size=batch_size)


@functools.partial(jax.jit, static_argnames=("loss_of_params", "batch_size"))
def landscape_2d(loss_of_params: Callable, params, d1, d2, alphas_A, betas_B, *,
                 batch_size: int = 1):
  """grid_AxB[i, j] = L(θ + α_i d1 + β_j d2) (Fig. 2), `batch_size` evaluations at a time."""
  a_AxB, b_AxB = jnp.meshgrid(alphas_A, betas_B, indexing="ij")
  ab_Gx2 = jnp.stack([a_AxB.ravel(), b_AxB.ravel()], axis=1)
  losses_G = jax.lax.map(lambda ab: loss_of_params(_shift(params, (ab[0], ab[1]), (d1, d2))),
                         ab_Gx2, batch_size=batch_size)
  return losses_G.reshape(a_AxB.shape)


@jax.jit
def sharpness(grid, alphas_A, betas_B=None, *, radius, center_loss=None):
  """Mean loss rise over a slice: mean of L(a, b) − L(0, 0) over the grid points with
  √(a² + b²) ≤ radius, the centre excluded.

  `grid` is landscape_1d's A-vector (betas_B=None) or landscape_2d's A×B grid, in the
  directions' units (filter-normalized: relative to θ's filter norms, so two models'
  minima compare). The centre is the grid point nearest the origin (put 0 on the grid);
  L(0, 0) is `center_loss`, by default the grid value there. Larger = sharper; averaged
  over direction draws it estimates the mean rise on the radius-r disc of the slice.
  NaN if no other point lies within the radius.
  """
  r2 = jnp.asarray(alphas_A) ** 2
  if betas_B is not None:
    r2 = r2[:, None] + jnp.asarray(betas_B)[None, :] ** 2
  r2_G, grid_G = r2.ravel(), grid.ravel()
  center = jnp.argmin(r2_G)
  if center_loss is None:
    center_loss = grid_G[center]
  inside_G = (r2_G <= radius ** 2) & (jnp.arange(r2_G.size) != center)
  return jnp.sum(jnp.where(inside_G, grid_G - center_loss, 0.0)) / jnp.sum(inside_G)


@functools.partial(jax.jit, static_argnames=("apply_fn",))
def _ce_slice(apply_fn, params, d1, d2, axis, x_N, labels_N):
  """landscape_2d of the mean CE on (x_N, labels_N), compiled once per apply_fn."""
  loss = lambda p: jnp.mean(losses.cross_entropy(apply_fn(p, x_N), labels_N))
  return landscape_2d(loss, params, d1, d2, axis, axis)


def minimum_report(apply_fn: Callable, params, x_N, labels_N, key, *, points: int = 11,
                   span: float = 1.0, radius: float = 0.5, samples=None) -> dict:
  """A solution's neighbourhood (Fig. 2, App. E): the CE training loss on a 2-D
  filter-normalized slice (points × points over [−span, span]²), its `sharpness` within
  `radius`, the SLN noise energy and the output sharpness, on x_N with labels_N."""
  del samples  # the caller's subset size, already applied to x_N
  k1, k2 = jax.random.split(key)
  d1, d2 = (filter_normalized_direction(k, params) for k in (k1, k2))
  axis = jnp.linspace(-span, span, points)
  grid = _ce_slice(apply_fn, params, d1, d2, axis, x_N, labels_N)
  return {"grid": grid, "axis": axis,
          "sharpness": float(sharpness(grid, axis, axis, radius=radius)),
          "noise_energy": float(noise_energy(apply_fn, params, x_N)["energy"]),
          "output_sharpness": float(output_sharpness(apply_fn, params, x_N)["sharpness"])}


# ----------------------------------------------------------------------------------------
# Props 1–3 checked on a small network (the experiment's `theory` part).


def check_propositions(key, *, inputs: int = 5, hidden: int = 8, classes: int = 4,
                       draws: int = 20000) -> dict:
  """Props 1–3 on a random tanh MLP inputs-hidden-classes and one sample, in float64.

  exact_*: the largest entry of |F Fᵀ − Cov|, F = ∂g̃/∂z the Jacobian of the actual noisy
  gradient (autodiff through the loss) in its draw, Cov the proposition's matrix (σ = 1);
  prop2_* also over 52 softmax vectors S (random, uniform, one-hot), with the trace of the
  measured covariance against its bounds and the extremes of one entry's measured noise
  variance as S_i sweeps [0, 1] (on a grid of step 1/(20c));
  mc_*: the relative Frobenius error of the covariance of `draws` noisy gradients against
  the proposition, and its standard error (`covariance_rel_stderr`).
  """
  with jax.enable_x64(True):
    k_w1, k_w2, k_x, k_y, k_s, k_mc = jax.random.split(key, 6)
    params = {"w1": jax.random.normal(k_w1, (inputs, hidden), jnp.float64),
              "w2": jax.random.normal(k_w2, (hidden, classes), jnp.float64) / 2}
    apply_fn = lambda p, x_B: jnp.tanh(x_B @ p["w1"]) @ p["w2"]
    x = jax.random.normal(k_x, (inputs,), jnp.float64)
    y_C = jax.nn.one_hot(jax.random.randint(k_y, (), 0, classes), classes, dtype=jnp.float64)
    J = output_jacobian(apply_fn, params, x)
    S = jax.nn.softmax(apply_fn(params, x[None])[0])
    jac_log_s = log_softmax_jacobian(apply_fn, params, x)
    eq2 = lambda z: eq2_noisy_grad(apply_fn, params, x, y_C, z, 1.0)
    eq3 = lambda z: eq3_noisy_grad(apply_fn, params, x, y_C, z, 1.0)
    f2, f3 = noise_factor(eq2, classes), noise_factor(eq3, classes)
    out = {"num_params": int(J.shape[1]), "draws": draws,
           "exact_prop1": float(jnp.max(jnp.abs(f2 @ f2.T - prop1_covariance(J, 1.0)))),
           "exact_prop3": float(jnp.max(jnp.abs(f3 @ f3.T - prop3_covariance(jac_log_s, 1.0)))),
           "exact_log_softmax": float(jnp.max(jnp.abs(jac_log_s - jac_log_softmax(J, S))))}
    S_KxC = jax.nn.softmax(3 * jax.random.normal(k_s, (50, classes), jnp.float64), -1)
    S_KxC = jnp.concatenate([S_KxC, jnp.full((1, classes), 1 / classes), jnp.eye(classes)[:1]])
    def logit_factor(S_C):  # ∂(∇fℓ(f, y + z))/∂z at softmax S (logits log S), autodiff
      logits = jnp.log(jnp.maximum(S_C, 1e-300))
      return jax.jacfwd(lambda z: eq3_logit_grad(logits, y_C, z, 1.0))(jnp.zeros(classes))

    err, traces = 0.0, []
    for s in S_KxC:
      a = logit_factor(s)
      err = max(err, float(jnp.max(jnp.abs(a @ a.T - prop2_M(s)))))
      traces.append(float(jnp.trace(a @ a.T)))  # tr of the measured covariance
    low, high = prop2_trace_bounds(classes)
    # §3.2's extremes, measured: entry 0's noise variance as S_0 runs over [0, 1] (the
    # other classes share 1 − S_0), from the autodiff factor, not the closed form.
    grid = jnp.linspace(0.0, 1.0, 20 * classes + 1)
    variance = jnp.asarray([float((logit_factor(jnp.concatenate(
        [g[None], jnp.full((classes - 1,), (1 - g) / (classes - 1))])) ** 2).sum(1)[0])
        for g in grid])
    out.update(exact_prop2=err, prop2_trace_in_bounds=bool(
                   low - 1e-9 <= min(traces) and max(traces) <= high + 1e-9),
               prop2_trace_range=[min(traces), max(traces)],
               prop2_extremes_measured=[float(grid[jnp.argmin(variance)]), float(variance.min()),
                                        float(grid[jnp.argmax(variance)]), float(variance.max())],
               prop2_extremes=[prop2_extremes(classes)[k] for k in ("argmin", "min", "argmax",
                                                                    "max")])
    for name, fn, factor in (("prop1", eq2, f2), ("prop3", eq3, f3)):
      _, cov = monte_carlo_moments(fn, jax.random.fold_in(k_mc, int(name[-1])),
                                   z_dim=classes, num_draws=draws)
      target = factor @ factor.T
      out[f"mc_{name}"] = float(jnp.linalg.norm(cov - target) / jnp.linalg.norm(target))
      out[f"mc_{name}_stderr"] = float(covariance_rel_stderr(target, draws))
  return out
