"""The misclassification paper's pure-noise claims, judged on experiments/pure_noise.py's
records (Theorems 1–4, Cor. 1, Figs. 2–4). Simulations of several seeds are judged on the
seed mean (stated in each claim); exact statements (Theorem 1, Cor. 1) on every case.
"""

import dataclasses

import numpy as np

from noisejax import claims
from noisejax.theory import pure_noise as pn

PAPER = "misclassification"


def theorem1(record, config) -> list:
  """Theorem 1's identity on random nets and Cor. 1 on a gradient flow. That a step at
  h = f·h_0 (f < 1) lowers every norm is algebra (h_0 is defined by it): it is reported
  beside the identity, and the theorem is tested on trained SGD in hidden/."""
  rows, f = record["rows"], config.flow
  shrink = min(r["all_layers_shrink"] for r in rows)
  balance = max(r["max_balance_error"] for r in rows)
  flow, (h_big, h_small) = record["flow"], (max(f.hs), min(f.hs))
  runs = lambda h: [r for r in flow.values() if r["h"] == h]
  coarse = max(float(np.max(np.diff(r["norms"], axis=1))) for r in runs(h_small))
  rate = {h: max(float(np.max(r["max_step_increase"])) for r in runs(h)) / h
          for h in (h_big, h_small)}  # the largest per-step increase, per unit of time
  drop = {k: (r["norms"][:, -1] / r["norms"][:, 0]).mean(0).tolist() for k, r in flow.items()}
  fell = max(max(v) for v in drop.values())
  return [
      claims.claim(
          "theorem1_layers_balanced", PAPER,
          "Theorem 1's mechanism (Du et al. 2018): ⟨W_l, ∇_{W_l}L⟩ = L'(−yN)·(−yN) is "
          "the same positive number for every layer (float64; MLPs of depth "
          f"{tuple(config.theorem1.depths)} and a weight-shared conv net, ReLU and leaky "
          "ReLU, hinge and logistic)",
          [claims.check("max relative deviation across layers", balance, "<", 1e-8)],
          dict(max_deviation=balance, shrink_fraction_at_f_h0=shrink,
               cases=sum(r["misclassified"] for r in rows),
               skipped_dead_nets=sum(r["dead_nets"] for r in rows))),
      claims.claim(
          "cor1_gradient_flow_monotone", PAPER,
          "Cor. 1: under gradient flow with hinge loss (β = 0) ‖W_l(t)‖ is monotonically "
          f"decreasing for every layer (eq. (2) MLPs of depth {tuple(f.depths)}, width "
          f"{f.width}, on {f.n} pure-noise points, to t = {f.t:g}; Euler steps h = "
          f"{', '.join(f'{h:g}' for h in f.hs)}, float64, {f.seeds} seeds). A step can raise "
          "a norm by O(h²) where a sample crosses the hinge's kink: an artifact of the "
          "discretization if its rate per unit time vanishes with h",
          [claims.check(f"max change of ‖W_l‖ between records (every {f.record_t:g} of t),"
                        f" h = {h_small:g}", coarse, "<=", 0.0),
           claims.check("(max per-step increase / h, 0 if none) at h_min over the same at h_max",
                        max(rate[h_small], 0.0) / max(rate[h_big], 1e-300), "<=", 0.5),
           claims.check("‖W_l(t_end)‖/‖W_l(0)‖ (seed mean), max over runs and layers",
                        fell, "<", 1.0)],
          dict(max_increase_between_records=coarse,
               max_step_increase_over_h={f"{h:g}": v for h, v in rate.items()},
               final_over_initial=drop)),
  ]


def _over_seeds(claim_list, seeds) -> list:  # the statistic the claims are judged on
  return [dataclasses.replace(c, statement=f"{c.statement} [judged on the mean over {seeds} "
                              "seeds, run in one program]") for c in claim_list]


def single(record, config) -> list:
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


def hidden(record, config) -> list:
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
          "theorem1_trained_sgd", PAPER,
          f"Theorem 1 at the step size used (h = {record['h']:.3g}): on the misclassified "
          "batch-1 SGD steps of the trained no-bias networks of Fig. 3 (eq. (2) form), every "
          "layer's norm drops, i.e. h < h_0 there (every seed, both losses)",
          [claims.check_every_seed(f"{loss}: fraction of misclassified steps with every "
                                   "layer shrinking", s[f"nobias_{loss}"][
                                       "shrink_fraction_per_seed"], ">=", 0.99)
           for loss in ("hinge", "logistic")],
          {**{name: dict(per_seed=v["shrink_fraction_per_seed"],
                         first_tenth=v["shrink_fraction_first_tenth"],
                         misclassified_steps=v["misclassified_steps"])
              for name, v in s.items()},
           "bias_logistic_by_h": {f"{r['h']:.4g}": r["theorem1_shrink_fraction"]
                                  for r in record["scaling"]}}),
      claims.claim(
          "fig4_death_time_scales_as_inverse_h2", PAPER,
          f"(not a paper claim: the scaling the quick preset relies on) the number of steps "
          f"until < 10% of the neurons fire grows as h^−α with α ≈ 2 (fit over "
          f"{len(record['scaling'])} values of h, "
          f"{min(r['h'] for r in record['scaling']):.3g} to "
          f"{max(r['h'] for r in record['scaling']):.3g}); the paper's h = 1/d² = "
          f"{config.d ** -2.0:.3g} is extrapolated, not run",
          [claims.between("α from a log-log fit", record["exponent"], 1.8, 2.4),
           claims.check("max |relative residual| of the fit", record["fit_residual"], "<",
                        0.15),
           claims.condition("≥ 3 values of h in the fit", len(record["scaling"]) >= 3)],
          dict(exponent=record["exponent"], fit_residual=record["fit_residual"],
               rows=record["scaling"],
               steps_at_h_1_over_d2_extrapolated=record["steps_at_h_1_over_d2"])),
  ]


def basis(record, config) -> list:
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


def mnist(record, config) -> list:
  """§5: "for MNIST item 1 [of Theorem 4] holds for the rate h = 0.001" and "larger
  learning rates induced greater sparsity" (after the same number of steps)."""
  c, rec, hs = config.mnist, record["records"], record["h"]
  dead_HxS = rec["dead_inputs"][..., -1]
  active_H = rec["active_fraction"][..., -1].mean(1)
  at = hs.index(1e-3) if 1e-3 in hs else None
  setting = (f"Theorem 4's network (2k = {2 * c.k} units, V = (1..1, −1..−1) fixed, "
             f"W ~ U[−1, 1], hinge β = 0, only W trained) on {config.data.name} pixels in "
             f"[0, 1], pure noise, {c.steps} steps, {c.seeds} seeds")
  return [
      claims.claim(
          "thm4_mnist_all_dead_at_h_0.001", PAPER,
          f"§5: on MNIST Theorem 4.1 holds at h = 0.001: every unit is dead on every input "
          f"({setting})",
          [claims.check("fraction of test inputs with every unit dead at h = 0.001, min over "
                        "seeds", None if at is None else float(dead_HxS[at].min()), "==", 1)],
          {f"h={h:g}": dict(all_dead=dead_HxS[i].tolist(), active_fraction=float(active_H[i]),
                            updates_last_record=float(rec["updates"][i, :, -1].mean()))
           for i, h in enumerate(hs)}),
      claims.claim(
          "thm4_mnist_larger_h_sparser", PAPER,
          f"§1/§5: larger learning rates induce greater sparsity, after the same number of "
          f"steps ({setting}; seed means)",
          [claims.condition(f"final active fraction strictly decreasing in h over "
                            f"{tuple(hs)}", all(a > b for a, b in zip(active_H[:-1],
                                                                      active_H[1:])))],
          {f"h={h:g}": float(a) for h, a in zip(hs, active_H)}),
  ]
