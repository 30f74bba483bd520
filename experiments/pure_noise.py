"""Misclassification paper, pure label noise: Theorems 1–4 and Figs. 2–4.

  Theorem 1   random homogeneous nets (ReLU, leaky ReLU; MLPs of several depths and a
              weight-shared conv net, bias folded in as in eq. 2): one SGD step on a
              misclassified sample lowers every layer's Frobenius norm.
  Fig. 2      one neuron, x ~ N(0, I_d), uniform ±1 labels: ‖V‖ falls at a linear rate to
              an equilibrium O(dh) (hinge) or O(d√h) (logistic), swept over h.
  Figs. 3–4   one hidden layer of 4d ReLU neurons: without bias all weights decay (faster
              with hinge); with bias the weights stay but the active fraction E_x A_N(x)
              falls to ≈0 while every bias decreases.
  Thms. 3–4   data U{e_1..e_d}, V = (1..1, −1..−1) fixed, W ~ U[−1, 1], hinge β = 0:
              |N(e_i)| < 2kh; h ≥ 1 kills every unit; h ≤ 1/k leaves ≥ k − o(k) alive.

  python -m experiments.pure_noise --preset quick   # ≈3 min on 2 CPU cores
  python -m experiments.pure_noise --preset paper   # h = 1/d², 10⁸ steps: hours; GPU

Expect: every claim passes. Fig. 2: equilibrium ≈ 0.63·dh (hinge, slope 1 in h) and
≈ √(dh/2) (logistic, slope ½); Figs. 3–4: hinge weights reach 0, logistic ones a small
equilibrium, with bias < 5% of the neurons fire at the end.
"""

import zlib

import jax
import jax.numpy as jnp
import matplotlib
import ml_collections
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top

from noisejax import experiment
from noisejax.errors import ConfigError
from noisejax.experiment import Claim
from noisejax.theory import pure_noise as pn

PAPER = "misclassification"


def get_config(preset: str) -> ml_collections.ConfigDict:
  """quick: the paper's d = 30 and widths; fewer seeds and, for Figs. 3–4, h = 1/d.

  Scaled in quick: Figs. 3–4 use h = 1/d instead of the paper's 1/d² and 10⁵ steps. The
  run itself measures that the time to ReLU death scales as h^−α, α ≈ 2.2 (claim
  fig4_death_time_scales_as_inverse_h2), so 10⁵ steps at h = 1/d stand for ≈10⁸ steps at
  h = 1/d², which the paper preset runs (< 10% of the neurons fire after ≈4·10⁷ steps
  with cross-entropy, extrapolated). Fig. 2 keeps h = 1/d² and sweeps
  h around it; Theorems 3–4 use d = 10 inputs (the columns of W evolve independently, d
  only sets the run length).
  """
  config = ml_collections.ConfigDict()
  config.seed = 0
  config.parts = tuple(PARTS)
  config.d = 30
  config.theorem1 = ml_collections.ConfigDict(dict(
      depths=(1, 2, 3, 5), width=16, conv_depth=3, num_nets=256))
  # Fig. 2: h = h_scale/d², several h_scale values.
  config.single = ml_collections.ConfigDict(dict(
      h_scales=(0.5, 1.0, 2.0, 4.0), steps=100_000, record_every=500, seeds=4))
  # Figs. 3–4: width = 4d, learning rate h = 1/d^h_power.
  config.hidden = ml_collections.ConfigDict(dict(
      h_power=1.0, steps=100_000, record_every=1_000, seeds=4,
      scaling_h=(1 / 30, 1 / 60), scaling_budget=40.0, scaling_seeds=2))
  config.basis = ml_collections.ConfigDict(dict(
      ks=(8, 32, 128, 512), d=10, small_h_factors=(0.25, 1.0), large_hs=(1.0, 2.0),
      mid_hs=(0.1, 0.5), steps=20_000, record_every=1_000, seeds=8))
  if preset == "paper":
    config.single.update(dict(steps=400_000, record_every=1_000, seeds=8,
                              h_scales=(0.25, 0.5, 1.0, 2.0, 4.0)))
    config.hidden.update(dict(h_power=2.0, steps=100_000_000, record_every=500_000,
                              seeds=4, scaling_h=(1 / 30, 1 / 60, 1 / 120)))
    config.basis.update(dict(ks=(8, 32, 128, 512, 2048), steps=100_000, seeds=16))
  return config


def _keys(seed, name, n):
  return jax.random.split(jax.random.fold_in(jax.random.key(seed), zlib.crc32(name.encode())), n)


# ----------------------------------------------------------------------------------------
# Theorem 1.


def run_theorem1(config, run):
  c = config.theorem1
  cases = [("mlp", depth) for depth in c.depths] + [("conv", c.conv_depth)]
  rows = []
  for arch, depth in cases:
    results = pn.check_theorem1(_keys(config.seed, f"t1{arch}{depth}", 1)[0], d=config.d,
                                depth=depth, width=c.width, architecture=arch,
                                num_nets=c.num_nets)
    for (act, loss), r in results.items():
      # A net whose ReLUs are all off on x outputs N(x) = 0: no sample is misclassified.
      valid = r["margin"] < 0
      r = {k: v[valid] for k, v in r.items()}
      balance = np.abs(r["inner"] - r["predicted_inner"][:, None]) / np.abs(
          r["predicted_inner"][:, None])
      rows.append(dict(
          architecture=arch, depth=depth, activation=act, loss=loss,
          misclassified=int(valid.sum()), dead_nets=int((~valid).sum()),
          all_layers_shrink=float(np.mean(np.all(r["norm_change"] < 0, axis=(1, 2)))),
          max_balance_error=float(balance.max()),
          median_h0=float(np.median(r["h0"]))))
  run.save_json("theorem1", rows)
  shrink = min(r["all_layers_shrink"] for r in rows)
  balance = max(r["max_balance_error"] for r in rows)
  return [
      Claim("theorem1_every_layer_shrinks", PAPER,
            "Theorem 1: on a misclassified sample one SGD step with h < h_0 lowers the "
            "Frobenius norm of every layer (MLPs of depth "
            f"{tuple(c.depths)} and a weight-shared conv net; ReLU and leaky ReLU; hinge "
            "and logistic; h = 0.5, 0.1, 0.01·h_0)",
            "fraction of (net, sample) cases with every layer shrinking = 1",
            dict(min_fraction=shrink, cases=sum(r["misclassified"] for r in rows),
                 skipped_dead_nets=sum(r["dead_nets"] for r in rows)), shrink == 1.0),
      Claim("theorem1_layers_balanced", PAPER,
            "Theorem 1's mechanism (Du et al. 2018): ⟨W_l, ∇_{W_l}L⟩ = L'(−yN)·(−yN) is "
            "the same positive number for every layer (float64)",
            "max relative deviation across layers < 1e-8",
            balance, balance < 1e-8),
  ]


# ----------------------------------------------------------------------------------------
# Theorem 2 / Fig. 2.


def run_single_neuron(config, run):
  c, d = config.single, config.d
  h_H = np.asarray(c.h_scales) / d**2
  steps_R = np.arange(c.steps // c.record_every + 1) * c.record_every
  keys = _keys(config.seed, "single", c.seeds)
  norms, summary = {}, {}
  for loss in pn.SURROGATES:
    norms[loss] = np.asarray(pn.single_neuron_norms(
        keys, jnp.asarray(h_H), d=d, steps=c.steps, record_every=c.record_every, loss=loss))
    tail = norms[loss][:, :, -len(steps_R) // 4:]
    eq = tail.mean(axis=(1, 2))
    i_base = int(np.argmin(np.abs(np.asarray(c.h_scales) - 1.0)))
    rate = pn.linear_rate(norms[loss][i_base].mean(0), steps_R, 0.8 * np.sqrt(d), 0.3 * np.sqrt(d))
    summary[loss] = dict(
        h=h_H.tolist(), equilibrium=eq.tolist(),
        equilibrium_over_dh=(eq / (d * h_H)).tolist(),
        equilibrium_over_d_sqrt_h=(eq / (d * np.sqrt(h_H))).tolist(),
        predicted=[pn.single_neuron_equilibrium(d, h, loss) for h in h_H],
        slope_in_h=float(np.polyfit(np.log(h_H), np.log(eq), 1)[0]),
        early_rate_over_h=float(rate / h_H[i_base]),
        predicted_early_rate_over_h=pn.single_neuron_rate(0.5 * np.sqrt(d), loss))
    for r, step in enumerate(steps_R):
      if r % max(1, len(steps_R) // 50) == 0:
        run.log(step=int(step), **{f"single_{loss}_norm_h{s:g}": float(norms[loss][i, :, r].mean())
                                   for i, s in enumerate(c.h_scales)})
  run.save_json("single_neuron", summary)
  plot_single_neuron(run, norms, steps_R, h_H, summary, d, c.h_scales)
  hinge, logistic = summary["hinge"], summary["logistic"]
  return [
      Claim("theorem2_hinge_equilibrium_dh", PAPER,
            "Theorem 2 (a), Fig. 2: with hinge loss ‖V‖ settles at O(dh): the equilibrium "
            "grows linearly in h",
            "log-log slope of equilibrium vs h in [0.8, 1.2]; equilibrium/(dh) = O(1)",
            dict(slope=hinge["slope_in_h"], over_dh=hinge["equilibrium_over_dh"]),
            0.8 <= hinge["slope_in_h"] <= 1.2 and max(hinge["equilibrium_over_dh"]) < 5),
      Claim("theorem2_logistic_equilibrium", PAPER,
            "Theorem 2 (b): with logistic loss ‖V‖ settles at O(d√h) (measured: ≈√(dh/2), "
            "slope ½ in h, below the d√h bound)",
            "slope in [0.35, 0.65]; equilibrium/(d√h) ≤ 1",
            dict(slope=logistic["slope_in_h"], over_d_sqrt_h=logistic["equilibrium_over_d_sqrt_h"]),
            0.35 <= logistic["slope_in_h"] <= 0.65
            and max(logistic["equilibrium_over_d_sqrt_h"]) <= 1.0),
      Claim("theorem2_linear_decay", PAPER,
            "Theorem 2 / Fig. 2: far from equilibrium ‖V‖ decays at a linear rate, "
            "E[Δ‖V‖] ≈ h·E[L'(−‖V‖p)p] (−h/√(2π) for hinge)",
            "measured slope/h within 20% of the prediction, both losses",
            {loss: (summary[loss]["early_rate_over_h"],
                    summary[loss]["predicted_early_rate_over_h"]) for loss in pn.SURROGATES},
            all(abs(summary[l]["early_rate_over_h"] / summary[l]["predicted_early_rate_over_h"] - 1)
                < 0.2 for l in pn.SURROGATES)),
  ]


def plot_single_neuron(run, norms, steps_R, h_H, summary, d, h_scales):
  fig, axes = plt.subplots(1, 2, figsize=(11, 4))
  i_base = int(np.argmin(np.abs(np.asarray(h_scales) - 1.0)))
  h = h_H[i_base]
  for loss, color in zip(pn.SURROGATES, ("C0", "C1")):
    mean = norms[loss][i_base].mean(0)
    axes[0].plot(steps_R, mean, color=color, label=f"{loss}")
  axes[0].axhline(d * h, ls="--", color="gray", label=f"dh = {d * h:.3g}")
  axes[0].axhline(d * np.sqrt(h), ls=":", color="gray", label=f"d√h = {d * np.sqrt(h):.3g}")
  axes[0].set(xlabel="SGD step", ylabel="‖V‖", yscale="log",
              title=f"one neuron, pure noise, d = {d}, h = 1/d²")
  axes[0].legend(fontsize=8)
  axes[0].ticklabel_format(axis="x", style="sci", scilimits=(0, 0))
  for loss, color in zip(pn.SURROGATES, ("C0", "C1")):
    axes[1].loglog(h_H, summary[loss]["equilibrium"], "o-", color=color,
                   label=f"{loss} (slope {summary[loss]['slope_in_h']:.2f})")
    axes[1].loglog(h_H, summary[loss]["predicted"], "--", color=color, alpha=0.6,
                   label="0.63·dh" if loss == "hinge" else "√(dh/2)")
  axes[1].loglog(h_H, d * h_H, ":", color="gray", label="dh")
  axes[1].loglog(h_H, d * np.sqrt(h_H), "-.", color="gray", label="d√h")
  axes[1].set(xlabel="learning rate h", ylabel="equilibrium ‖V‖",
              title="Theorem 2: equilibrium vs h")
  axes[1].legend(fontsize=7)
  run.savefig(fig, "fig2_single_neuron.png")


# ----------------------------------------------------------------------------------------
# Figs. 3–4.


def _first_below(values_R, steps_R, threshold):
  below = np.flatnonzero(values_R < threshold)
  return float(steps_R[below[0]]) if below.size else float("inf")


def run_hidden_layer(config, run):
  c, d = config.hidden, config.d
  width, h = 4 * d, float(d ** -c.h_power)
  steps_R = np.arange(c.steps // c.record_every + 1) * c.record_every
  keys = _keys(config.seed, "hidden", c.seeds)
  results = {}
  for bias in (False, True):
    for loss in pn.SURROGATES:
      final, rec, init = pn.hidden_layer_pure_noise(
          keys, h, d=d, width=width, bias=bias, loss=loss, steps=c.steps,
          record_every=c.record_every)
      results[(bias, loss)] = (jax.tree.map(np.asarray, final), jax.tree.map(np.asarray, rec),
                               jax.tree.map(np.asarray, init))
  summary = {}
  for (bias, loss), (final, rec, init) in results.items():
    name = f"{'bias' if bias else 'nobias'}_{loss}"
    w, v = rec["w_norm"].mean(0), rec["v_norm"].mean(0)
    summary[name] = dict(
        w_norm_init=float(w[0]), w_norm_final=float(w[-1]), v_norm_init=float(v[0]),
        v_norm_final=float(v[-1]), w_ratio=float(w[-1] / w[0]), v_ratio=float(v[-1] / v[0]),
        steps_to_w_below_10pct=_first_below(w, steps_R, 0.1 * w[0]),
        active_fraction_final=float(rec["active_fraction"][:, -1].mean()))
    if bias:
      summary[name]["fraction_biases_decreased"] = float(np.mean(final["b"] < init["b"]))
      summary[name]["b_mean_final"] = float(rec["b_mean"][:, -1].mean())
    for r, step in enumerate(steps_R):
      if r % max(1, len(steps_R) // 50) == 0:
        run.log(step=int(step), **{f"hidden_{name}_{k}": float(rec[k][:, r].mean())
                                   for k in ("w_norm", "v_norm", "active_fraction")})

  # The time to ReLU death (active fraction < 0.1) against h; each h runs
  # scaling_budget/h² steps (logistic needs ≈27/h², measured).
  scaling = []
  for hs in c.scaling_h:
    steps = int(round(c.scaling_budget / hs**2))
    every = max(1, steps // 200)
    _, rec, _ = pn.hidden_layer_pure_noise(
        _keys(config.seed, f"scaling{hs}", c.scaling_seeds), float(hs), d=d, width=width,
        bias=True, loss="logistic", steps=steps, record_every=every)
    frac = np.asarray(rec["active_fraction"]).mean(0)
    t_death = _first_below(frac, np.arange(len(frac)) * every, 0.1)
    scaling.append(dict(h=float(hs), steps=steps, steps_to_death=t_death,
                        steps_times_h2=t_death * hs**2))
  summary["death_time_scaling"] = scaling
  run.save_json("hidden_layer", summary)
  plot_hidden_layer(run, results, steps_R, d, h)

  nb_h, nb_l = summary["nobias_hinge"], summary["nobias_logistic"]
  b_h, b_l = summary["bias_hinge"], summary["bias_logistic"]
  times = np.asarray([s["steps_to_death"] for s in scaling])
  inv_h = 1.0 / np.asarray([s["h"] for s in scaling])
  exponent = (float(np.polyfit(np.log(inv_h), np.log(times), 1)[0])
              if np.all(np.isfinite(times)) and len(times) > 1 else float("nan"))
  # Steps to death at the paper's h = 1/d², extrapolated from the smallest h measured.
  at_paper_h = (float(times[-1] * (d**2 / inv_h[-1]) ** exponent)
                if np.isfinite(exponent) else None)
  return [
      Claim("fig3_no_bias_weights_decay", PAPER,
            "Fig. 3: without bias, under pure noise the weights W and V of a 4d-neuron ReLU "
            "layer decay toward 0 (hinge: to 0; logistic: to a small O(√h) equilibrium)",
            "final/initial norm < 0.01 (hinge) and < 0.1 (logistic), both layers",
            {k: dict(w=s["w_ratio"], v=s["v_ratio"]) for k, s in
             (("hinge", nb_h), ("logistic", nb_l))},
            max(nb_h["w_ratio"], nb_h["v_ratio"]) < 0.01
            and max(nb_l["w_ratio"], nb_l["v_ratio"]) < 0.1),
      Claim("fig3_hinge_faster_than_logistic", PAPER,
            "Fig. 3: cross-entropy needs longer than hinge to nullify the weights",
            "steps until ‖W‖ < 10% of init: hinge < logistic, and final ‖W‖ hinge < logistic",
            dict(hinge=nb_h["steps_to_w_below_10pct"], logistic=nb_l["steps_to_w_below_10pct"],
                 final_hinge=nb_h["w_norm_final"], final_logistic=nb_l["w_norm_final"]),
            nb_h["steps_to_w_below_10pct"] < nb_l["steps_to_w_below_10pct"]
            and nb_h["w_norm_final"] < nb_l["w_norm_final"]),
      Claim("fig4_bias_weights_stay", PAPER,
            "Fig. 4a: with bias the hidden weights do not decay to zero",
            "final ‖W‖ > 10% of init (both losses)",
            dict(hinge=b_h["w_ratio"], logistic=b_l["w_ratio"]),
            min(b_h["w_ratio"], b_l["w_ratio"]) > 0.1),
      Claim("fig4_relu_death", PAPER,
            "Fig. 4b: with bias the fraction of active neurons E_x A_N(x)/4d on N(0, I) falls "
            "to about 0",
            "final active fraction < 0.05 (from 0.5 at init), both losses",
            dict(hinge=b_h["active_fraction_final"], logistic=b_l["active_fraction_final"]),
            max(b_h["active_fraction_final"], b_l["active_fraction_final"]) < 0.05),
      Claim("fig4_biases_decrease", PAPER,
            "Fig. 4c: every bias decreases",
            "fraction of biases below their initial value ≥ 0.99, both losses",
            dict(hinge=b_h["fraction_biases_decreased"], logistic=b_l["fraction_biases_decreased"]),
            min(b_h["fraction_biases_decreased"], b_l["fraction_biases_decreased"]) >= 0.99),
      Claim("fig4_death_time_scales_as_inverse_h2", PAPER,
            "(scaling used by the quick preset) the number of steps until < 10% of the "
            "neurons fire grows as h^−α with α ≈ 2, so quick's larger h is a shorter run of "
            "the same dynamics",
            "α from a log-log fit in [1.8, 2.4]",
            dict(exponent=exponent, rows=scaling, steps_at_h_1_over_d2=at_paper_h),
            1.8 <= exponent <= 2.4),
  ]


def plot_hidden_layer(run, results, steps_R, d, h):
  fig, axes = plt.subplots(1, 2, figsize=(11, 4))
  for loss, color in zip(pn.SURROGATES, ("C0", "C1")):
    _, rec, _ = results[(False, loss)]
    axes[0].plot(steps_R, rec["w_norm"].mean(0), color=color, label=f"‖W‖_F, {loss}")
    axes[1].plot(steps_R, rec["v_norm"].mean(0), color=color, label=f"‖V‖, {loss}")
  for ax, name in zip(axes, ("hidden layer ‖W‖_F", "output layer ‖V‖")):
    ax.set(xlabel="SGD step", ylabel=name, yscale="log",
           title=f"Fig. 3: no bias, width 4d = {4 * d}, h = {h:.3g}")
    ax.legend(fontsize=8)
    ax.ticklabel_format(axis="x", style="sci", scilimits=(0, 0))
  run.savefig(fig, "fig3_no_bias.png")

  fig, axes = plt.subplots(1, 3, figsize=(15, 4))
  for loss, color in zip(pn.SURROGATES, ("C0", "C1")):
    _, rec, _ = results[(True, loss)]
    axes[0].plot(steps_R, rec["w_norm"].mean(0), color=color, label=f"‖W‖_F, {loss}")
    axes[0].plot(steps_R, rec["v_norm"].mean(0), color=color, ls="--", label=f"‖V‖, {loss}")
    axes[1].plot(steps_R, rec["active_fraction"].mean(0), color=color, label=loss)
  _, rec, _ = results[(True, "logistic")]
  axes[2].plot(steps_R, rec["b_tracked"][0], lw=1)
  axes[0].set(xlabel="SGD step", ylabel="norm", yscale="log", title="(a) weight norms")
  axes[1].set(xlabel="SGD step", ylabel="E_x A_N(x) / 4d", title="(b) fraction of active neurons")
  axes[2].set(xlabel="SGD step", ylabel="bias b_i", title="(c) biases of 8 neurons (logistic)")
  axes[0].legend(fontsize=7)
  axes[1].legend(fontsize=8)
  for ax in axes:
    ax.ticklabel_format(axis="x", style="sci", scilimits=(0, 0))
  fig.suptitle(f"Fig. 4: with bias, pure noise on N(0, I_{d}), h = {h:.3g}")
  run.savefig(fig, "fig4_with_bias.png")


# ----------------------------------------------------------------------------------------
# Theorems 3–4.


def run_standard_basis(config, run):
  c = config.basis
  rows = []
  for k in c.ks:
    small = [f / k for f in c.small_h_factors]
    hs = np.asarray(small + list(c.mid_hs) + list(c.large_hs), dtype=np.float32)
    w0, w, rec = pn.standard_basis_pure_noise(
        _keys(config.seed, f"basis{k}", c.seeds), jnp.asarray(hs), k=k, d=c.d,
        steps=c.steps, record_every=c.record_every)
    w, rec = np.asarray(w), jax.tree.map(np.asarray, rec)
    outs_HxSxD = np.abs(np.asarray(jax.vmap(jax.vmap(pn.basis_outputs))(w)))
    zeros_HxSxD = np.asarray(jax.vmap(jax.vmap(pn.zero_coordinates))(w))
    for j, h in enumerate(hs):
      # Theorem 3 is about "eventually": the bound must hold on the last records too.
      tail_max = rec["max_abs_output"][j, :, -3:].max()
      rows.append(dict(
          k=k, h=float(h), regime=("small" if j < len(small) else
                                   "large" if h >= 1 else "middle"),
          max_output_over_2kh=float(max(outs_HxSxD[j].max(), tail_max) / (2 * k * h)),
          fraction_inputs_all_dead=float(np.mean(zeros_HxSxD[j] == 2 * k)),
          max_excess_zeros_over_k=float((zeros_HxSxD[j].max() - k) / k),
          mean_zero_fraction=float(zeros_HxSxD[j].mean() / (2 * k)),
          init_max_excess_zeros_over_k=float(
              (np.asarray(jax.vmap(jax.vmap(pn.zero_coordinates))(w0))[j].max() - k) / k)))
  run.save_json("standard_basis", rows)
  plot_standard_basis(run, rows, c.ks)
  thm3 = max(r["max_output_over_2kh"] for r in rows)
  large = [r for r in rows if r["regime"] == "large"]
  small = [r for r in rows if r["regime"] == "small"]
  excess = {k: max(r["max_excess_zeros_over_k"] for r in small if r["k"] == k) for k in c.ks}
  dead_small = {k: max(r["fraction_inputs_all_dead"] for r in small if r["k"] == k)
                for k in c.ks}
  ks = list(c.ks)
  decreasing = all(excess[a] > excess[b] for a, b in zip(ks[:-1], ks[1:]))
  return [
      Claim("theorem3_outputs_vanish", PAPER,
            "Theorem 3: eventually |N(e_i)| < 2kh for every i (every k, h, seed)",
            "max_i |N(e_i)|/(2kh) < 1",
            thm3, thm3 < 1.0),
      Claim("theorem4_large_h_all_dead", PAPER,
            "Theorem 4.1: for h ≥ 1, ReLU(W e_i) = 0 for all i",
            "fraction of inputs with every unit dead = 1 for every k and h ≥ 1",
            min(r["fraction_inputs_all_dead"] for r in large),
            min(r["fraction_inputs_all_dead"] for r in large) == 1.0),
      Claim("theorem4_small_h_half_alive", PAPER,
            "Theorem 4.2: for h ≤ 1/k, ReLU(W e_i) ≠ 0 and at most k + o(k) of its 2k "
            "coordinates are zero: (max_i #zeros − k)/k shrinks as k grows",
            f"no dead input for k ≥ {ks[min(1, len(ks) - 1)]}; excess/k decreasing in k and "
            f"< 0.15 at k = {ks[-1]}",
            dict(excess_over_k=excess, dead_inputs=dead_small),
            decreasing and excess[ks[-1]] < 0.15
            and all(dead_small[k] == 0 for k in ks[1:])),
  ]


def plot_standard_basis(run, rows, ks):
  fig, axes = plt.subplots(1, 3, figsize=(15, 4))
  for k in ks:
    sel = sorted((r for r in rows if r["k"] == k), key=lambda r: r["h"])
    hs = [r["h"] for r in sel]
    axes[0].semilogx(hs, [r["max_output_over_2kh"] for r in sel], "o-", label=f"k = {k}")
    axes[1].semilogx(hs, [r["mean_zero_fraction"] for r in sel], "o-", label=f"k = {k}")
  axes[0].axhline(1.0, color="k", ls="--", label="Theorem 3 bound")
  axes[0].set(xlabel="h", ylabel="max_i |N(e_i)| / 2kh", title="Theorem 3")
  axes[1].axvline(1.0, color="k", ls=":")
  axes[1].set(xlabel="h", ylabel="fraction of zero coordinates of ReLU(W e_i)",
              title="Theorem 4: larger h, sparser (all dead for h ≥ 1)")
  small = [r for r in rows if r["regime"] == "small"]
  for f_label, sel in (("after training", "max_excess_zeros_over_k"),
                       ("at initialization", "init_max_excess_zeros_over_k")):
    axes[2].loglog(ks, [max(r[sel] for r in small if r["k"] == k) for k in ks], "o-",
                   label=f_label)
  axes[2].loglog(ks, [3 * k**-0.4 for k in ks], "k--", label="3k^-0.4 (proof's o(k))")
  axes[2].set(xlabel="k", ylabel="(max_i #zeros − k)/k, h ≤ 1/k", title="Theorem 4.2: o(k)")
  for ax in axes:
    ax.legend(fontsize=7)
  run.savefig(fig, "thm34_standard_basis.png")


# ----------------------------------------------------------------------------------------


PARTS = {"theorem1": run_theorem1, "single": run_single_neuron, "hidden": run_hidden_layer,
         "basis": run_standard_basis}


def run(config, run):  # pylint: disable=redefined-outer-name
  if not 0 < config.d:
    raise ConfigError("d", config.d, reason="must be > 0")
  return experiment.run_parts(config, run, PARTS)


if __name__ == "__main__":
  experiment.main("pure_noise", get_config, run)
