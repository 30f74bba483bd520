"""Misclassification paper, pure label noise: Theorems 1–4 and Figs. 2–4.

  theorem1   random homogeneous nets (ReLU, leaky ReLU; MLPs of several depths and a
             weight-shared conv net, bias folded in as in eq. 2): Theorem 1's identity
             ⟨W_l, ∇_l L⟩ = L'·(−yN) on misclassified samples; Cor. 1: the hinge gradient
             flow (small Euler steps, two step sizes) never raises a layer's norm.
  single     Fig. 2: one neuron, x ~ N(0, I_d), uniform ±1 labels: ‖V‖ falls at a linear
             rate to an equilibrium O(dh) (hinge) or O(d√h) (logistic), swept over h.
  hidden     Figs. 3–4: one hidden layer of 4d ReLU neurons: without bias all weights
             decay (faster with hinge); with bias the weights stay but the active fraction
             E_x A_N(x) falls to ≈0 while every bias decreases. Theorem 1 on these trained
             SGD runs: the share of misclassified steps on which every layer shrinks.
  basis      Thms. 3–4: data U{e_1..e_d}, V = (1..1, −1..−1) fixed, W ~ U[−1, 1], hinge
             β = 0: |N(e_i)| < 2kh; h ≥ 1 kills every unit; h ≤ 1/k leaves ≥ k − o(k) alive.
  mnist      §5 after Thm. 4: the same network on MNIST pixels in [0, 1] under pure noise:
             every unit dies at h = 0.001; larger h gives sparser nets.

  python -m experiments.pure_noise --preset quick   # ≈1.5–2 min on 2 CPU cores
  python -m experiments.pure_noise --preset paper   # h = 1/d², 10⁸ steps: hours; GPU
  python -m experiments.pure_noise --preset tiny    # seconds: d = 6, short runs

Expect (quick): every claim but theorem1_trained_sgd and thm4_mnist_all_dead_at_h_0.001
passes. Fig. 2: equilibrium ≈ 0.63·dh (hinge, slope 1 in h) and ≈ √(dh/2) (logistic,
slope ½); Figs. 3–4: hinge weights reach 0, logistic ones a small equilibrium, with bias
< 5% of the neurons fire at the end. At h = 1/d only ≈56% (hinge) and ≈76% (logistic) of the misclassified SGD steps
shrink every layer (h ≥ h_0 on the rest; 63/69/74% at h = 1/30, 1/60, 1/120 with bias):
the norms fall on average, not step by step. The simulations are in
noisejax/theory/pure_noise.py, the claims in pure_noise_claims.py, the figures in
pure_noise_figures.py.
"""

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from experiments import pure_noise_claims as judge, pure_noise_figures as figures
from noisejax import config as cfg, data, experiment
from noisejax.errors import ConfigError
from noisejax.theory import pure_noise as pn


def get_config(preset: str) -> ml_collections.ConfigDict:
  """quick: the paper's d = 30 and widths; fewer seeds and, for Figs. 3–4, h = 1/d.

  Scaled in quick: Figs. 3–4 use h = 1/d instead of the paper's 1/d² and 10⁵ steps. The
  run itself measures the time to ReLU death (biased, logistic) at h = 1/30, 1/60, 1/120
  (4·10⁴/h² steps each): it scales as h^−α, α ≈ 2.15 (claim
  hidden/fig4_death_time_scales_as_inverse_h2), so 10⁵ steps at h = 1/d stand for ≈10⁸
  steps at h = 1/d², which the paper preset runs (< 10% of the neurons fire after ≈3·10⁷
  steps with cross-entropy: extrapolated from h = 1/120 over a further factor 7.5 in h,
  not run). Fig. 2 keeps h = 1/d² and sweeps h around it;
  Theorems 3–4 use d = 10 inputs (the columns of W evolve independently, d only sets
  the run length). Cor. 1 runs the hinge flow to t = 10 with Euler steps 0.02 and 0.005.
  §5's MNIST remark: 2k = 100 units (the paper gives no width), 2·10⁴ steps (5 epochs of
  mnist5k; at h = 0.001 the active fraction is still ≈0.37 there, so the "all dead" claim
  fails; paper preset: 600 units, 6·10⁵ steps of MNIST). tiny: d = 6, one MLP depth,
  2·10³-step runs, k ∈ {8, 32}.
  """
  c = ml_collections.ConfigDict()
  c.seed = 0
  c.parts = tuple(PARTS)
  c.d = 30
  c.theorem1 = ml_collections.ConfigDict(dict(
      depths=(1, 2, 3, 5), width=16, conv_depth=3, num_nets=256))
  # Cor. 1: the hinge gradient flow to time t, Euler steps of each h (full batch on n
  # pure-noise points), norms recorded every record_t.
  c.flow = ml_collections.ConfigDict(dict(depths=(2, 3), width=16, n=120, hs=(0.02, 0.005),
                                          t=10.0, record_t=0.2, seeds=4))
  # Fig. 2: h = h_scale/d², several h_scale values.
  c.single = ml_collections.ConfigDict(dict(
      h_scales=(0.5, 1.0, 2.0, 4.0), steps=100_000, record_every=500, seeds=4))
  # Figs. 3–4: width = 4d, learning rate h = 1/d^h_power.
  c.hidden = ml_collections.ConfigDict(dict(
      h_power=1.0, steps=100_000, record_every=1_000, seeds=4,
      scaling_h=(1 / 30, 1 / 60, 1 / 120), scaling_budget=40.0, scaling_seeds=2))
  c.basis = ml_collections.ConfigDict(dict(
      ks=(8, 32, 128, 512), d=10, small_h_factors=(0.25, 1.0), large_hs=(1.0, 2.0),
      mid_hs=(0.1, 0.5), steps=20_000, record_every=1_000, seeds=8))
  # §5: Theorem 4's network (2k units, V = ±1 fixed) on MNIST pixels, pure noise.
  c.mnist = ml_collections.ConfigDict(dict(k=50, hs=(1e-4, 1e-3, 1e-2), steps=20_000,
                                           record_every=2_000, seeds=2, eval_limit=1_000))
  c.data = cfg.data("mnist5k")
  if preset == "paper":
    c.single.update(dict(steps=400_000, record_every=1_000, seeds=8,
                         h_scales=(0.25, 0.5, 1.0, 2.0, 4.0)))
    c.hidden.update(dict(h_power=2.0, steps=100_000_000, record_every=500_000,
                         seeds=4, scaling_h=(1 / 30, 1 / 60, 1 / 120, 1 / 240)))
    c.basis.update(dict(ks=(8, 32, 128, 512, 2048), steps=100_000, seeds=16))
    c.mnist.update(dict(k=300, steps=600_000, record_every=20_000, eval_limit=10_000))
    c.data.name = "mnist"
  elif preset == "tiny":
    c.d = 6
    c.theorem1.update(dict(depths=(2,), num_nets=8))
    c.flow.update(dict(depths=(2,), n=24, t=2.0, seeds=2))
    c.single.update(dict(steps=2000, record_every=100, seeds=2))
    c.hidden.update(dict(steps=2000, record_every=200, seeds=2,
                         scaling_h=(1 / 6, 1 / 12, 1 / 24),
                         scaling_budget=50.0, scaling_seeds=1))
    c.basis.update(dict(ks=(8, 32), d=3, steps=1000, record_every=500, seeds=2))
    c.mnist.update(dict(k=8, steps=1000, record_every=500, eval_limit=100))
    c.data.limit = 200
  return c


def validate(config):
  """Experiment-specific fields (the runner checks config.parts)."""
  if not config.d > 0:
    raise ConfigError("d", config.d, reason="must be > 0")
  for name in ("single", "hidden", "basis", "mnist"):
    c = config[name]
    if not 1 <= c.record_every <= c.steps:
      raise ConfigError(f"{name}.record_every", c.record_every,
                        reason=f"must lie in [1, {name}.steps = {c.steps}]")
    if not c.seeds >= 1:
      raise ConfigError(f"{name}.seeds", c.seeds, reason="must be >= 1")
  if not all(h > 0 for h in config.single.h_scales):
    raise ConfigError("single.h_scales", config.single.h_scales, reason="must all be > 0")


def _log_curves(run, steps_R, curves: dict, points: int = 50):
  """About `points` lines of metrics.jsonl: every curve (name -> values_R) at each."""
  for r, step in enumerate(steps_R):
    if r % max(1, len(steps_R) // points) == 0:
      run.log(step=int(step), **{name: float(v[r]) for name, v in curves.items()})


# ----------------------------------------------------------------------------------------
# Theorem 1.


def compute_theorem1(config, run) -> dict:
  c = config.theorem1
  cases = [("mlp", depth) for depth in c.depths] + [("conv", c.conv_depth)]
  rows = []
  for i, (arch, depth) in enumerate(cases):
    results = pn.check_theorem1(jax.random.fold_in(run.key, i), d=config.d, depth=depth,
                                width=c.width, architecture=arch, num_nets=c.num_nets)
    rows += [dict(architecture=arch, depth=depth, **row)
             for row in pn.theorem1_summary(results)]
  f = config.flow  # Cor. 1, float64; the same nets and data for every h
  flow = {}
  with jax.enable_x64(True):
    for depth in f.depths:
      for h in f.hs:
        norms, worst = jax.tree.map(np.asarray, jax.vmap(lambda k: pn.gradient_flow_norms(
            k, h, d=config.d, depth=depth, width=f.width, n=f.n,
            steps=int(round(f.t / h)), record_every=int(round(f.record_t / h))))(
                jax.random.split(jax.random.fold_in(run.key, 99), f.seeds)))
        flow[f"depth{depth}_h{h:g}"] = dict(h=h, norms=norms,  # S×R×L
                                            max_step_increase=worst)  # S×L
  return {"rows": rows, "flow": flow}


# ----------------------------------------------------------------------------------------
# Theorem 2 / Fig. 2.


def compute_single(config, run) -> dict:
  c, d = config.single, config.d
  h_H = np.asarray(c.h_scales) / d**2
  steps_R = np.arange(c.steps // c.record_every + 1) * c.record_every
  keys = jax.random.split(run.key, c.seeds)  # the same seeds for both losses
  base = int(np.argmin(np.abs(np.asarray(c.h_scales) - 1.0)))  # h = 1/d²
  norms, summary = {}, {}
  for loss in pn.SURROGATES:
    norms[loss] = np.asarray(pn.single_neuron_norms(
        keys, jnp.asarray(h_H), d=d, steps=c.steps, record_every=c.record_every, loss=loss))
    summary[loss] = pn.single_neuron_summary(norms[loss], steps_R, h_H, d=d, loss=loss,
                                             base=base)
  _log_curves(run, steps_R, {f"single_{loss}_norm_h{s:g}": norms[loss][i].mean(0)
                             for loss in pn.SURROGATES for i, s in enumerate(c.h_scales)})
  return dict(h=h_H, steps=steps_R, base=base, summary=summary,
              mean_norms={loss: norms[loss].mean(1) for loss in pn.SURROGATES})  # H×R


# ----------------------------------------------------------------------------------------
# Figs. 3–4.


def compute_hidden(config, run) -> dict:
  c, d = config.hidden, config.d
  width, h = 4 * d, float(d ** -c.h_power)
  steps_R = np.arange(c.steps // c.record_every + 1) * c.record_every
  keys = jax.random.split(run.key, c.seeds)  # the same seeds for every (bias, loss)
  summary, curves = {}, {}
  for bias in (False, True):
    for loss in pn.SURROGATES:
      name = f"{'bias' if bias else 'nobias'}_{loss}"
      final, rec, init = jax.tree.map(np.asarray, pn.hidden_layer_pure_noise(
          keys, h, d=d, width=width, bias=bias, loss=loss, steps=c.steps,
          record_every=c.record_every))
      summary[name] = pn.hidden_layer_summary(final, rec, init, steps_R)
      curves[name] = {k: rec[k].mean(0) for k in ("w_norm", "v_norm", "active_fraction")}
      if bias and loss == "logistic":
        curves[name]["b_tracked_seed0"] = rec["b_tracked"][0]  # R×tracked
  _log_curves(run, steps_R, {f"hidden_{name}_{k}": v for name, cv in curves.items()
                             for k, v in cv.items() if k != "b_tracked_seed0"})
  # The time to ReLU death (active fraction < 0.1) against h.
  scaling = [pn.death_time(jax.random.split(jax.random.fold_in(run.key, i), c.scaling_seeds),
                           hs, d=d, width=width, budget=c.scaling_budget)
             for i, hs in enumerate(c.scaling_h)]
  exponent, at_paper_h, residual = pn.death_time_exponent(scaling, d)
  return dict(steps=steps_R, h=h, width=width, summary=summary, curves=curves,
              scaling=scaling, exponent=exponent, steps_at_h_1_over_d2=at_paper_h,
              fit_residual=residual)


# ----------------------------------------------------------------------------------------
# Theorems 3–4.


def compute_basis(config, run) -> dict:
  c = config.basis
  rows = []
  for i, k in enumerate(c.ks):
    small = [f / k for f in c.small_h_factors]
    h_H = np.asarray(small + list(c.mid_hs) + list(c.large_hs), dtype=np.float32)
    w0, w, rec = jax.tree.map(np.asarray, pn.standard_basis_pure_noise(
        jax.random.split(jax.random.fold_in(run.key, i), c.seeds), jnp.asarray(h_H), k=k,
        d=c.d, steps=c.steps, record_every=c.record_every))
    rows += pn.standard_basis_summary(k, h_H, len(small), w0, w, rec)
  return {"rows": rows}


def compute_mnist(config, run) -> dict:
  c = config.mnist
  train_set, test_set = data.load_splits(config.data)
  (mean,), (std,) = data.NORMALIZATION[config.data.name]
  pixels = lambda s, n=None: jnp.asarray(s.x[:n].reshape(len(s.x[:n]), -1) * std + mean)
  _, _, records = jax.tree.map(np.asarray, pn.fixed_output_pure_noise(
      jax.random.split(run.key, c.seeds), jnp.asarray(c.hs, jnp.float32), pixels(train_set),
      pixels(test_set, c.eval_limit), k=c.k, steps=c.steps, record_every=c.record_every))
  return dict(h=list(c.hs), steps=(np.arange(c.steps // c.record_every) + 1) * c.record_every,
              records=records)  # records[name]: H×S×R


PARTS = {
    "theorem1": experiment.Part(compute_theorem1, None, judge.theorem1),
    "single": experiment.Part(compute_single, figures.plot_single, judge.single),
    "hidden": experiment.Part(compute_hidden, figures.plot_hidden, judge.hidden),
    "basis": experiment.Part(compute_basis, figures.plot_basis, judge.basis),
    "mnist": experiment.Part(compute_mnist, None, judge.mnist),
}

if __name__ == "__main__":
  experiment.main("pure_noise", get_config, PARTS, validate=validate)
