"""Misclassification paper, pure label noise: Theorems 1–4 and Figs. 2–4.

  theorem1   random homogeneous nets (ReLU, leaky ReLU; MLPs of several depths and a
             weight-shared conv net, bias folded in as in eq. 2): one SGD step on a
             misclassified sample lowers every layer's Frobenius norm.
  single     Fig. 2: one neuron, x ~ N(0, I_d), uniform ±1 labels: ‖V‖ falls at a linear
             rate to an equilibrium O(dh) (hinge) or O(d√h) (logistic), swept over h.
  hidden     Figs. 3–4: one hidden layer of 4d ReLU neurons: without bias all weights
             decay (faster with hinge); with bias the weights stay but the active fraction
             E_x A_N(x) falls to ≈0 while every bias decreases.
  basis      Thms. 3–4: data U{e_1..e_d}, V = (1..1, −1..−1) fixed, W ~ U[−1, 1], hinge
             β = 0: |N(e_i)| < 2kh; h ≥ 1 kills every unit; h ≤ 1/k leaves ≥ k − o(k) alive.

  python -m experiments.pure_noise --preset quick   # ≈1–2 min on 2 CPU cores
  python -m experiments.pure_noise --preset paper   # h = 1/d², 10⁸ steps: hours; GPU
  python -m experiments.pure_noise --preset tiny    # seconds: d = 6, short runs

Expect (quick): every claim passes. Fig. 2: equilibrium ≈ 0.63·dh (hinge, slope 1 in h)
and ≈ √(dh/2) (logistic, slope ½); Figs. 3–4: hinge weights reach 0, logistic ones a
small equilibrium, with bias < 5% of the neurons fire at the end. The simulations are
in noisejax/theory/pure_noise.py; the figures in experiments/pure_noise_figures.py.
"""

import dataclasses

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from experiments import pure_noise_figures as figures
from noisejax import claims, experiment
from noisejax.errors import ConfigError
from noisejax.theory import pure_noise as pn

PAPER = "misclassification"


def get_config(preset: str) -> ml_collections.ConfigDict:
  """quick: the paper's d = 30 and widths; fewer seeds and, for Figs. 3–4, h = 1/d.

  Scaled in quick: Figs. 3–4 use h = 1/d instead of the paper's 1/d² and 10⁵ steps. The
  run itself measures that the time to ReLU death scales as h^−α, α ≈ 2.2 (claim
  hidden/fig4_death_time_scales_as_inverse_h2), so 10⁵ steps at h = 1/d stand for ≈10⁸
  steps at h = 1/d², which the paper preset runs (< 10% of the neurons fire after ≈4·10⁷
  steps with cross-entropy, extrapolated). Fig. 2 keeps h = 1/d² and sweeps h around it;
  Theorems 3–4 use d = 10 inputs (the columns of W evolve independently, d only sets
  the run length). tiny: d = 6, one MLP depth, 2·10³-step runs, k ∈ {8, 32}.
  """
  c = ml_collections.ConfigDict()
  c.seed = 0
  c.parts = tuple(PARTS)
  c.d = 30
  c.theorem1 = ml_collections.ConfigDict(dict(
      depths=(1, 2, 3, 5), width=16, conv_depth=3, num_nets=256))
  # Fig. 2: h = h_scale/d², several h_scale values.
  c.single = ml_collections.ConfigDict(dict(
      h_scales=(0.5, 1.0, 2.0, 4.0), steps=100_000, record_every=500, seeds=4))
  # Figs. 3–4: width = 4d, learning rate h = 1/d^h_power.
  c.hidden = ml_collections.ConfigDict(dict(
      h_power=1.0, steps=100_000, record_every=1_000, seeds=4,
      scaling_h=(1 / 30, 1 / 60), scaling_budget=40.0, scaling_seeds=2))
  c.basis = ml_collections.ConfigDict(dict(
      ks=(8, 32, 128, 512), d=10, small_h_factors=(0.25, 1.0), large_hs=(1.0, 2.0),
      mid_hs=(0.1, 0.5), steps=20_000, record_every=1_000, seeds=8))
  if preset == "paper":
    c.single.update(dict(steps=400_000, record_every=1_000, seeds=8,
                         h_scales=(0.25, 0.5, 1.0, 2.0, 4.0)))
    c.hidden.update(dict(h_power=2.0, steps=100_000_000, record_every=500_000,
                         seeds=4, scaling_h=(1 / 30, 1 / 60, 1 / 120)))
    c.basis.update(dict(ks=(8, 32, 128, 512, 2048), steps=100_000, seeds=16))
  elif preset == "tiny":
    c.d = 6
    c.theorem1.update(dict(depths=(2,), num_nets=8))
    c.single.update(dict(steps=2000, record_every=100, seeds=2))
    c.hidden.update(dict(steps=2000, record_every=200, seeds=2, scaling_h=(1 / 6, 1 / 12),
                         scaling_budget=50.0, scaling_seeds=1))
    c.basis.update(dict(ks=(8, 32), d=3, steps=1000, record_every=500, seeds=2))
  return c


def validate(config):
  """Experiment-specific fields (the runner checks config.parts)."""
  if not config.d > 0:
    raise ConfigError("d", config.d, reason="must be > 0")
  for name in ("single", "hidden", "basis"):
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
  return {"rows": rows}


def claims_theorem1(record, config) -> list:
  rows = record["rows"]
  shrink = min(r["all_layers_shrink"] for r in rows)
  balance = max(r["max_balance_error"] for r in rows)
  return [
      claims.claim(
          "theorem1_every_layer_shrinks", PAPER,
          "Theorem 1: on a misclassified sample one SGD step with h < h_0 lowers the "
          f"Frobenius norm of every layer (MLPs of depth {tuple(config.theorem1.depths)} "
          "and a weight-shared conv net; ReLU and leaky ReLU; hinge and logistic; "
          "h = 0.5, 0.1, 0.01·h_0)",
          [claims.check("fraction of (net, sample) cases with every layer shrinking",
                        shrink, "==", 1)],
          dict(min_fraction=shrink, cases=sum(r["misclassified"] for r in rows),
               skipped_dead_nets=sum(r["dead_nets"] for r in rows))),
      claims.claim(
          "theorem1_layers_balanced", PAPER,
          "Theorem 1's mechanism (Du et al. 2018): ⟨W_l, ∇_{W_l}L⟩ = L'(−yN)·(−yN) is "
          "the same positive number for every layer (float64)",
          [claims.check("max relative deviation across layers", balance, "<", 1e-8)],
          balance),
  ]


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


def _over_seeds(claim_list, seeds) -> list:  # the statistic the claims are judged on
  return [dataclasses.replace(c, statement=f"{c.statement} [judged on the mean over {seeds} "
                              "seeds, run in one program]") for c in claim_list]


def claims_single(record, config) -> list:
  s = record["summary"]
  hinge, logistic = s["hinge"], s["logistic"]
  return _over_seeds([
      claims.claim(
          "theorem2_hinge_equilibrium_dh", PAPER,
          "Theorem 2 (a), Fig. 2: with hinge loss ‖V‖ settles at O(dh): the equilibrium "
          "grows linearly in h",
          [claims.between("log-log slope of equilibrium vs h", hinge["slope_in_h"], 0.8, 1.2),
           claims.check("max equilibrium/(dh)", max(hinge["equilibrium_over_dh"]), "<", 5)],
          dict(slope=hinge["slope_in_h"], over_dh=hinge["equilibrium_over_dh"])),
      claims.claim(
          "theorem2_logistic_equilibrium", PAPER,
          "Theorem 2 (b): with logistic loss ‖V‖ settles at O(d√h) (measured: ≈√(dh/2), "
          "slope ½ in h, below the d√h bound)",
          [claims.between("log-log slope", logistic["slope_in_h"], 0.35, 0.65),
           claims.check("max equilibrium/(d√h)", max(logistic["equilibrium_over_d_sqrt_h"]),
                        "<=", 1.0)],
          dict(slope=logistic["slope_in_h"],
               over_d_sqrt_h=logistic["equilibrium_over_d_sqrt_h"])),
      claims.claim(
          "theorem2_linear_decay", PAPER,
          "Theorem 2 / Fig. 2: far from equilibrium ‖V‖ decays at a linear rate, "
          "E[Δ‖V‖] ≈ h·E[L'(−‖V‖p)p] (−h/√(2π) for hinge)",
          [claims.within(f"measured slope/h, {loss}", s[loss]["early_rate_over_h"],
                         s[loss]["predicted_early_rate_over_h"], 0.2)
           for loss in pn.SURROGATES],
          {loss: (s[loss]["early_rate_over_h"], s[loss]["predicted_early_rate_over_h"])
           for loss in pn.SURROGATES}),
  ], config.single.seeds)


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
  exponent, at_paper_h = pn.death_time_exponent(scaling, d)
  return dict(steps=steps_R, h=h, width=width, summary=summary, curves=curves,
              scaling=scaling, exponent=exponent, steps_at_h_1_over_d2=at_paper_h)


def claims_hidden(record, config) -> list:
  s = record["summary"]
  nb_h, nb_l = s["nobias_hinge"], s["nobias_logistic"]
  b_h, b_l = s["bias_hinge"], s["bias_logistic"]
  return _over_seeds([
      claims.claim(
          "fig3_no_bias_weights_decay", PAPER,
          "Fig. 3: without bias, under pure noise the weights W and V of a 4d-neuron ReLU "
          "layer decay toward 0 (hinge: to 0; logistic: to a small O(√h) equilibrium)",
          [claims.check("hinge: max final/initial norm of W, V",
                        max(nb_h["w_ratio"], nb_h["v_ratio"]), "<", 0.01),
           claims.check("logistic: max final/initial norm of W, V",
                        max(nb_l["w_ratio"], nb_l["v_ratio"]), "<", 0.1)],
          {k: dict(w=v["w_ratio"], v=v["v_ratio"]) for k, v in
           (("hinge", nb_h), ("logistic", nb_l))}),
      claims.claim(
          "fig3_hinge_faster_than_logistic", PAPER,
          "Fig. 3: cross-entropy needs longer than hinge to nullify the weights",
          [claims.check("steps until ‖W‖ < 10% of init, hinge",
                        nb_h["steps_to_w_below_10pct"], "<",
                        nb_l["steps_to_w_below_10pct"], "logistic"),
           claims.check("final ‖W‖, hinge", nb_h["w_norm_final"], "<",
                        nb_l["w_norm_final"], "logistic")],
          dict(hinge=nb_h["steps_to_w_below_10pct"], logistic=nb_l["steps_to_w_below_10pct"],
               final_hinge=nb_h["w_norm_final"], final_logistic=nb_l["w_norm_final"])),
      claims.claim(
          "fig4_bias_weights_stay", PAPER,
          "Fig. 4a: with bias the hidden weights do not decay to zero",
          [claims.check("final/initial ‖W‖, min over both losses",
                        min(b_h["w_ratio"], b_l["w_ratio"]), ">", 0.1)],
          dict(hinge=b_h["w_ratio"], logistic=b_l["w_ratio"])),
      claims.claim(
          "fig4_relu_death", PAPER,
          "Fig. 4b: with bias the fraction of active neurons E_x A_N(x)/4d on N(0, I) falls "
          "to about 0",
          [claims.check("final active fraction (0.5 at init), max over both losses",
                        max(b_h["active_fraction_final"], b_l["active_fraction_final"]),
                        "<", 0.05)],
          dict(hinge=b_h["active_fraction_final"], logistic=b_l["active_fraction_final"])),
      claims.claim(
          "fig4_biases_decrease", PAPER,
          "Fig. 4c: every bias decreases",
          [claims.check("fraction of biases below their initial value, min over both losses",
                        min(b_h["fraction_biases_decreased"],
                            b_l["fraction_biases_decreased"]), ">=", 0.99)],
          dict(hinge=b_h["fraction_biases_decreased"],
               logistic=b_l["fraction_biases_decreased"])),
  ], config.hidden.seeds) + [
      claims.claim(
          "fig4_death_time_scales_as_inverse_h2", PAPER,
          "(scaling used by the quick preset) the number of steps until < 10% of the "
          "neurons fire grows as h^−α with α ≈ 2, so quick's larger h is a shorter run of "
          "the same dynamics",
          [claims.between("α from a log-log fit", record["exponent"], 1.8, 2.4)],
          dict(exponent=record["exponent"], rows=record["scaling"],
               steps_at_h_1_over_d2=record["steps_at_h_1_over_d2"])),
  ]


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


def claims_basis(record, config) -> list:
  rows, ks = record["rows"], list(config.basis.ks)
  thm3 = max(r["max_output_over_2kh"] for r in rows)
  large = [r for r in rows if r["regime"] == "large"]
  small = [r for r in rows if r["regime"] == "small"]
  excess = {k: max(r["max_excess_zeros_over_k"] for r in small if r["k"] == k) for k in ks}
  dead_small = {k: max(r["fraction_inputs_all_dead"] for r in small if r["k"] == k)
                for k in ks}
  all_dead = min(r["fraction_inputs_all_dead"] for r in large)
  return [
      claims.claim(
          "theorem3_outputs_vanish", PAPER,
          "Theorem 3: eventually |N(e_i)| < 2kh for every i (every k, h, seed)",
          [claims.check("max_i |N(e_i)|/(2kh)", thm3, "<", 1.0)], thm3),
      claims.claim(
          "theorem4_large_h_all_dead", PAPER,
          "Theorem 4.1: for h ≥ 1, ReLU(W e_i) = 0 for all i",
          [claims.check("fraction of inputs with every unit dead, min over k and h ≥ 1",
                        all_dead, "==", 1)], all_dead),
      claims.claim(
          "theorem4_small_h_half_alive", PAPER,
          "Theorem 4.2: for h ≤ 1/k, ReLU(W e_i) ≠ 0 and at most k + o(k) of its 2k "
          "coordinates are zero: (max_i #zeros − k)/k shrinks as k grows",
          [claims.condition(f"no dead input for k ≥ {ks[min(1, len(ks) - 1)]}",
                            all(dead_small[k] == 0 for k in ks[1:])),
           claims.condition("excess/k decreasing in k",
                            all(excess[a] > excess[b] for a, b in zip(ks[:-1], ks[1:]))),
           claims.check(f"excess/k at k = {ks[-1]}", excess[ks[-1]], "<", 0.15)],
          dict(excess_over_k=excess, dead_inputs=dead_small)),
  ]


PARTS = {
    "theorem1": experiment.Part(compute_theorem1, None, claims_theorem1),
    "single": experiment.Part(compute_single, figures.plot_single, claims_single),
    "hidden": experiment.Part(compute_hidden, figures.plot_hidden, claims_hidden),
    "basis": experiment.Part(compute_basis, figures.plot_basis, claims_basis),
}

if __name__ == "__main__":
  experiment.main("pure_noise", get_config, PARTS, validate=validate)
