"""The early-stopping paper's claims, judged on the records of experiments/clusterable_gd.py.

Each `judge_<part>(record, config)` is a pure function of the part's record. Early stopping
is early_stopping.index / point on a held-out split whose labels are corrupted like the
training labels (the CNN sweeps and the distance simulation); Fig. 5's two iterations are
the paper's iteration 80 and, late, a criterion (the given labels fitted for a while).
"""

import numpy as np

from noisejax import claims

PAPER = "early-stopping"
# The claims' thresholds, each written once (the expected texts are made from them).
F5_EARLY_ERROR, F5_KEPT, F5_AUC_EARLY, F5_OVERLAP_LATE, F5_SHARE = 0.05, 0.9, 0.95, 0.5, 0.8
ES_OVER_FIT, WIDTH_RATIO, SLACK, SQRT_S_TOLERANCE = 0.5, 1.25, 1e-4, 0.25
LAMBDA_EXPONENT = -1.0  # λ(C) ~ K^p: "like a constant" (p = 0) rather than the K^−2 bound
FIT_ACC, ES_TRUE_ACC, TEST_DROP, SWEEP_AUC, JAC_SHARE = 0.95, 0.95, 0.5, 0.9, 0.5
SPECTRUM_RATIO = 2.0  # "10 to 20" large singular values: counts within a factor 2
_claim = lambda name, text, measured, *checks: claims.claim(name, PAPER, text, checks, measured)


def _slope(x, y) -> float:
  """The least-squares slope of log y against log x."""
  return float(np.polyfit(np.log(x), np.log(y), 1)[0])


def judge_covariance(record, config) -> list:
  rows, m = record["rows"], config.covariance.mc_samples
  ks = [r["K"] for r in rows]
  lam = [r["lambda_closed_form"] for r in rows]
  exponent = _slope(ks, lam) if len(ks) > 1 else None
  return [
      _claim("closed_form_matches_mc", "For ReLU and unit-norm centers E[φ'(c_i·g)φ'(c_j·g)] = "
             "(π − θ_ij)/(2π): the closed-form Σ(C) agrees with Monte-Carlo (Def. 2.1).",
             {r["K"]: r["max_abs_diff"] for r in rows},
             claims.check("max |Σ_closed − Σ_MC| over K", max(r["max_abs_diff"] for r in rows),
                          "<=", 4 / np.sqrt(m), f"4/√m (m = {m})")),
      _claim("lambda_lower_bound", "For ReLU and centers ν apart λ(C) ≥ ν/(100K²) (Section 2, "
             "Zou et al.; Oymak & Soltanolkotabi).",
             {r["K"]: {"lambda": r["lambda_closed_form"], "bound": r["relu_lower_bound"],
                       "nu": r["min_center_distance"]} for r in rows},
             claims.check("min over K of λ(C) − ν/(100K²) (closed form)",
                          min(r["lambda_closed_form"] - r["relu_lower_bound"] for r in rows),
                          ">=", 0)),
      _claim("lambda_scaling_with_K", "For centers uniform on the unit sphere λ(C) scales like a "
             f"constant in K (Section 2), not like the worst-case K^-2 (d = {config.covariance.d})"
             ".", {"exponent": exponent, **{r["K"]: r["lambda_closed_form"] for r in rows}},
             claims.check(f"fitted exponent p of λ(C) ~ K^p over K = {tuple(ks)}", exponent,
                          ">", LAMBDA_EXPONENT)),
  ]


def judge_fig5(record, config) -> list:  # over seeds: means and paired differences
  e, l, flip, shares = (record[k] for k in ("early", "late", "flip_rate", "jacobian_at_init"))
  true_e, kept, rise, auc_e, overlap_e, overlap_l, ratio_l = map(claims.SeedStats.of, (
      e["error_true_S"], e["corrupted_predicted_true_label_S"],
      l["error_true_S"] - e["error_true_S"], e["auc_S"], e["overlap_S"], l["overlap_S"],
      l["median_ratio_S"]))
  share, f5 = shares["clean_residual"], config.fig5
  late = f"the first iteration with given-label error 0 for {f5.late_fit_steps} iterations"
  return [
      _claim("early_fits_true_labels", "In the first iterations GD classifies the training set by "
             "its true labels (Fig. 5a): corrupted samples keep their true label.",
             {"error_true": true_e.measured(), "corrupted_predicted_true_label": kept.measured()},
             claims.check_mean(f"true-label error at iteration {e['step']}", true_e, "<=",
                               F5_EARLY_ERROR),
             claims.check_mean("share of corrupted samples predicted with their true label",
                               kept, ">=", F5_KEPT)),
      _claim("overfits_late", f"Trained on, the net fits the corrupted labels (every seed reaches "
             f"{late} within {f5.num_steps} iterations) and its true-label error rises (Fig. 5a).",
             {"flip_rate": flip, "late_step": l["step_S"].tolist(), "fitted": l["fitted"],
              "error_true_rise": rise.measured()},
             claims.condition(f"every seed reaches {late}", l["fitted"]),
             claims.check_ci(f"true-label error rise from iteration {e['step']}", rise,
                             "above", 0)),
      _claim("loss_separated_early", f"With early stopping (iteration {e['step']}) the losses "
             "of clean and corrupted samples are separated (Fig. 5b).",
             {"auc": auc_e.measured(), "histogram_overlap": overlap_e.measured()},
             claims.check_mean("AUC of the loss for telling corrupted from clean samples",
                               auc_e, ">=", F5_AUC_EARLY)),
      _claim("loss_overlap_late", f"After many iterations ({late}) the model has fit the "
             "corruption and the two loss histograms overlap (Fig. 5c).",
             {"overlap_early": overlap_e.measured(), "overlap_late": overlap_l.measured(),
              "median_ratio_late": ratio_l.measured(), "late_step": l["step_S"].tolist(),
              "lr_times_top_sq": shares["lr_times_top_sq"]},
             claims.check_mean("shared mass Σ min(p, q) of the clean and corrupted loss "
                               "histograms on the figure's bins", overlap_l, ">=",
                               F5_OVERLAP_LATE),
             claims.condition("η·2‖J(W0)‖² ≤ 1 (Thm 9.2's η ≤ 1/(2β²))",
                              2 * shares["lr_times_top_sq"] <= 1 + SLACK)),
      _claim("jacobian_mechanism", "Section 4: the clean residual lies in the top singular "
             "subspace of J (K large singular values), the sparse corruption e much less so "
             "(seed 0, at W0).", shares, claims.check(
                 "share of the clean residual in the top-K subspace", share, ">=", F5_SHARE),
             claims.check("share of the clean residual", share, ">", shares["corruption"],
                          "share of e")),
  ]


def judge_perfect(record, config) -> list:
  rows, p = record["rows"], config.perfect
  ks = tuple(p.num_clusters)
  return [
      _claim("no_overfitting", "ε0 = 0 and ρ ≤ δ/8 (a different ρ_ℓ per cluster): after many "
             "iterations the network predicts the true label of every sample and never "
             "overfits (Thm 7.1).", {r["K"]: {"max_true_error": r["max_true_error_second_half"],
                                              "rho_per_cluster": r["rho_per_cluster"]}
                                     for r in rows},
             claims.check(f"max true-label error over iterations {p.num_steps // 2}–{p.num_steps}"
                          f", K = {ks}", max(r["max_true_error_second_half"] for r in rows),
                          "==", 0),
             claims.condition("ρ ≤ δ/8 for every K",
                              all(r["rho_within_delta_over_8"] for r in rows))),
      _claim("theorem_9_2_bound", "Thm 9.2 with α = σ_K(J), β = σ_1(J) (min / max at W0 and "
             "W_T) and η ≤ 1/(2β²): every iterate stays within 4‖r0‖/α of W0, and from "
             "τ₀ = 5/(ηα²)·log(‖r0‖/ν) on ‖f(W_τ) − ỹ‖_∞ ≤ 2ν = 2‖Π_{S₊}(e)‖_∞ ≤ 4ρ (Thm 7.1).",
             {r["K"]: {k: r[k] for k in (
                 "sup_error", "thm92_bound", "thm71_bound", "max_distance", "distance_bound",
                 "bound_holds_from", "iteration_bound", "lr_times_2beta2")} for r in rows},
             claims.condition(f"η·2β² ≤ 1 for every K (to {SLACK:g})",
                              all(r["lr_times_2beta2"] <= 1 + SLACK for r in rows)),
             claims.check("max over K of max_τ ‖W_τ − W0‖_F / (4‖r0‖/α)",
                          max(r["max_distance"] / r["distance_bound"] for r in rows), "<=", 1),
             claims.condition(f"for every K the bound 2ν holds at every recorded τ ≥ τ₀ and "
                              f"τ₀ ≤ {p.num_steps}", all(
                                  None not in (r["bound_holds_from"], r["iteration_bound"])
                                  and r["iteration_bound"] <= p.num_steps and
                                  r["bound_holds_from"] <= p.record_every * np.ceil(
                                      r["iteration_bound"] / p.record_every)
                                  for r in rows)),
             claims.condition(f"2‖Π_{{S₊}}(e)‖_∞ ≤ 4ρ for every K (to {SLACK:g})",
                              all(r["thm92_bound"] <= r["thm71_bound"] + SLACK for r in rows))),
      _claim("theorem_10_8_jacobian", "Thm 10.8 at ε0 = 0 and W0: σ_min(J, S₊) ≥ "
             "√(c_low·nλ(C)/(2K)) and ‖J‖ ≤ √(c_up·n/K)·Γ‖C‖ (ReLU: Γ = 1; the paper leaves "
             "c_low, c_up unspecified: both taken as 1).",
             {r["K"]: {k: r[k] for k in ("sigma_min_S_plus_init", "thm108_sigma_min_bound",
                                         "sigma_max_init", "thm108_sigma_max_bound")}
              for r in rows},
             claims.check("min over K of σ_min(J(W0), S₊) / √(nλ(C)/(2K))",
                          min(r["sigma_min_S_plus_init"] / r["thm108_sigma_min_bound"]
                              for r in rows), ">=", 1),
             claims.check("max over K of ‖J(W0)‖ / (√(n/K)‖C‖)",
                          max(r["sigma_max_init"] / r["thm108_sigma_max_bound"] for r in rows),
                          "<=", 1)),
  ]


def judge_distance(record, config) -> list:
  c, early, rows, width = config.distance, config.fig5.early_step, record["rows"], record["width"]
  fit = [r["fit_distance"] for r in rows]
  noisy = [r for r in rows if r["corruption"] > 0]
  dist = [r["distance_at_early_step"] for r in width]
  flips = [r["flip_rate"] * config.fig5.n for r in noisy]
  exponent = (_slope(flips, [r["fit_distance"] for r in noisy])
              if None not in fit and len(noisy) > 1 else None)
  f5 = config.fig5
  delta = (f5.label_high - f5.label_low) / (f5.num_classes - 1)
  es = "the early-stopping point (smoothed held-out error on noisy labels, early_stopping.index)"
  return [
      _claim("fit_needs_more_distance", "Fitting more corrupted labels takes GD farther from W0 "
             "(Thm 2.3, Lemma 8.1): the distance ‖W − W0‖_F at which the given labels are fitted "
             "grows with corruption.", {r["corruption"]: r["fit_distance"] for r in rows},
             claims.condition(f"distance at given-label error ≤ {c.fit_error} strictly increasing"
                              f" in the corruption {tuple(c.corruptions)}",
                              None not in fit and all(a < b for a, b in zip(fit, fit[1:])))),
      _claim("fit_distance_sqrt_s", "Lemma 8.1 / Section 8: fitting s corrupted labels needs "
             "‖W‖ ≳ √s·δ/ε0, so the distance to fit grows like √s.",
             {"exponent": exponent, **{r["corruption"]: {"s": s, "fit": r["fit_distance"]}
                                       for s, r in zip(flips, noisy)}},
             claims.check("|p − 1/2|, p the fitted exponent of the distance to fit in s "
                          "(corruption > 0)", None if exponent is None else abs(exponent - 0.5),
                          "<=", SQRT_S_TOLERANCE)),
      _claim("early_stop_close_to_init", f"At {es} the model lies in a small neighbourhood of W0 "
             "whose size barely depends on the corruption, while fitting the corruption needs a "
             "far longer way.",
             {r["corruption"]: {"early_stop": r["early_stop_distance"], "fit": r["fit_distance"],
                                "step": r["early_stop_step"]} for r in noisy},
             claims.check("max over corruption > 0 of early-stopped distance / distance to fit",
                          max(r["early_stop_distance"] / r["fit_distance"] for r in noisy)
                          if None not in fit else None, "<", ES_OVER_FIT)),
      _claim("theorem_2_2_held_out", f"Thm 2.2 (ρ ≤ δ/8): at {es} the net predicts the true "
             f"label of points in the ε0-balls it was not trained on ({c.val_n} held out per "
             f"level; ε0 = {config.fig5.eps0}, above the theorem's small-ε0 regime).",
             {r["corruption"]: {"held_out": r["early_stop_val_error_true"],
                                "train": r["early_stop_error_true"], "flip_rate": r["flip_rate"],
                                "rho_within_delta_over_8": r["flip_rate"] <= delta / 8}
              for r in rows},
             claims.check(f"max held-out true-label error over the levels with flip rate ≤ δ/8 "
                          f"= {delta / 8:g}", max((r["early_stop_val_error_true"] for r in rows
                                                   if r["flip_rate"] <= delta / 8), default=None),
                          "<=", F5_EARLY_ERROR)),
      _claim("width_independent", "Under the 1/√k output scaling the distance from W0 travelled "
             "to fit the true labels does not grow with the width k (Section 1; Thm 7.1's bound "
             "is free of k).", {r["hidden"]: {"distance": r["distance_at_early_step"],
                                              "error_true": r["error_true_at_early_step"]}
                                for r in width},
             claims.check(f"max/min over k = {tuple(c.hidden_sizes)} of the mean ‖W − W0‖_F at "
                          f"iteration {early} ({c.width_seeds} seeds; √k growth: "
                          f"{np.sqrt(max(c.hidden_sizes) / min(c.hidden_sizes)):.0f})",
                          max(dist) / min(dist), "<", WIDTH_RATIO)),
  ]


def _stand_in(data_name: str, paper_data: str) -> str:
  return "" if data_name == paper_data else f" ({data_name} standing in for {paper_data})"


def judge_sweeps(record, config) -> list:
  out, _accuracies = [], lambda r, **extra: {
      "train_given": 1 - r["train_error"], "train_true": 1 - r["train_error_true"],
      "test": 1 - r["test_error"], **extra}
  for name, runs in record.items():
    sweep, runs = config.sweeps[name], sorted(runs, key=lambda r: r["rate"])
    lo, hi = runs[0]["rate"], runs[-1]["rate"]
    where = f"{sweep.model.name}, {sweep.data.name}, {len(runs)} corruption levels"
    final = {r["rate"]: _accuracies(r["history"][-1]) for r in runs}
    early = {r["rate"]: _accuracies(r["early"], epoch=r["early"]["epoch"]) for r in runs}
    drop = {k: v[lo]["test"] - v[hi]["test"] for k, v in (("final", final), ("early", early))}
    if "fig1" in sweep.figures:
      out += [_claim(f"fig1/{name}/converged_fits_corruption", "Trained to convergence the network "
                     "fits the corrupted training labels, its accuracy on the true labels and on "
                     f"the test set degrade (Fig. 1a; {where}, {sweep.optim.epochs} epochs).",
                     final,
                     claims.check("min final train accuracy (given labels)",
                                  min(v["train_given"] for v in final.values()), ">=", FIT_ACC),
                     *(claims.check(f"final {what} accuracy at {hi:g}", final[hi][k], "<",
                                    final[lo][k], f"that at {lo:g}")
                       for k, what in (("train_true", "true-label train"), ("test", "test")))),
              _claim(f"fig1/{name}/early_stopping_robust", "With early stopping (the smoothed "
                     "error on a held-out split with noisy labels) the accuracy on the true "
                     "training labels stays around 100% and the test accuracy stays high even "
                     f"with 50% corruption (Fig. 1b; {where}).", early,
                     claims.check("min early-stopped true-label train accuracy",
                                  min(v["train_true"] for v in early.values()), ">=", ES_TRUE_ACC),
                     claims.check(f"early-stopped test accuracy drop {lo:g} → {hi:g}",
                                  drop["early"], "<=", TEST_DROP * drop["final"],
                                  f"{TEST_DROP:g} × the converged drop"))]
    if "fig3" in sweep.figures:
      reach = {r["rate"]: next((h["relative_distance"] for h in r["history"]
                                if 1 - h["train_error"] >= sweep.fit_accuracy), None) for r in runs}
      v = list(reach.values())
      out.append(_claim(f"fig3/{name}/distance_grows_with_corruption", "More label corruption "
                        f"needs a larger distance from initialization to fit the training set "
                        f"(Fig. 3; {where}).", reach, claims.condition(
                            f"relative distance ‖θ − θ0‖/‖θ0‖ at train accuracy ≥ "
                            f"{sweep.fit_accuracy} strictly increasing in the corruption",
                            None not in v and all(a < b for a, b in zip(v, v[1:])))))
    shown = [r for r in runs if np.isclose(r["rate"], sweep.hist_rates).any()]
    if "fig4ab" in sweep.figures and len(shown) >= 2:
      stats = {r["rate"]: {"auc": r["auc_early"], "clean_loss": r["clean_loss_early"],
                           "corrupted_loss": r["noisy_loss_early"], "epoch": r["early"]["epoch"]}
               for r in shown}
      (a, sa), (b, sb) = [(f"{r['rate']:.0%}", stats[r["rate"]]) for r in (shown[0], shown[-1])]
      out.append(_claim(f"fig4ab/{name}/loss_separation", "With early stopping the losses of "
                        "clean and corrupted samples are approximately separable at 30% "
                        "corruption; at 50% the clean loss grows and the distributions overlap "
                        f"more (Fig. 4a–b; {sweep.model.name}"
                        f"{_stand_in(sweep.data.name, 'cifar10')}).", stats,
                        claims.check(f"AUC at {a}", sa["auc"], ">=", SWEEP_AUC),
                        claims.check(f"AUC at {b}", sb["auc"], "<", sa["auc"], f"that at {a}"),
                        claims.check(f"clean loss at {b}", sb["clean_loss"], ">", sa["clean_loss"],
                                     f"that at {a}")))
  return out


def judge_jacobian(record, config) -> list:
  jac, n, share0, large = config.jacobian, record["n"], record["shares_init"], record["large"]
  where = f"{jac.model.name}{_stand_in(jac.data.name, 'cifar10')}, n = {n}"
  counts = list(large.values())
  return [
      _claim("few_large_singular_values", "The Jacobian of a binary task is approximately "
             "low-rank: only a few singular values exceed 0.1× the largest, at initialization and "
             f"after training (Fig. 4c; paper: 10–20 of n = 10,000 for ResNet-20 on CIFAR-10; "
             f"here {where}).",
             {**large, "n": n}, *(claims.check(f"#σ > {jac.relative_threshold}σ₁ (n = {n}) at "
                                               f"{w}", count, "<=", jac.max_large)
                                  for w, count in large.items())),
      _claim("spectra_close_before_after", "The singular-value distributions before and after "
             f"training are fairly close (Fig. 4c; {where}).", {**large, "n": n},
             claims.check(f"max/min of the #σ > {jac.relative_threshold}σ₁ at init and trained",
                          max(counts) / max(min(counts), 1), "<=", SPECTRUM_RATIO,
                          "the paper's 10 → 20 range")),
      _claim("residual_vs_corruption_subspace", "Section 4: the clean residual lies mostly in the "
             "top singular subspace of J, a sparse label corruption e mostly outside it.",
             {"init": share0, "trained": record["shares_trained"]},
             claims.check("share of the clean residual at init", share0["clean_residual"], ">=",
                          JAC_SHARE),
             claims.check("share of the clean residual at init", share0["clean_residual"], ">",
                          share0["corruption"], "share of e")),
  ]
