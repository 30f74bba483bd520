"""Claims of experiments/clean_priority.py: pure functions of one part's record.

Every claim that depends on the early-stopping point says which one. Both come from
`noisejax.early_stopping.point` (the first argmin of an error smoothed over 5 evaluations):
the paper's ES point t_ES, the bottom of the U-shaped test error that its Figs. 5–8 mark
with a vertical line (key "test_error", clean test labels), for the claims about what
happens before and after it; and the practitioner's point, on the held-out split's
noisy-label error ("val_error"), for the claim that stopping there beats the noise level
and the end of training.
Trends "before the ES point" are Spearman rank correlations over every diagnostic at or
before it (at least `thresholds.min_points` of them, else the claim fails).
"""

import numpy as np

from noisejax import claims, early_stopping, metrics
from noisejax.theory import ntk_angles

PAPER = "clean-priority"
PAPER_ES_KEY = "test_error"  # the paper's ES point: the bottom of the U-shaped test error


def _angle_deg(cos):
  return float(np.degrees(np.arccos(np.clip(cos, -1, 1))))


def _worst(values, pick=min):
  """pick(values), NaN if any value is NaN (a class without the subset cannot pass)."""
  values = [float(v) for v in values]
  return float("nan") if any(np.isnan(values)) else pick(values)


def _trend(history, key, lo, hi):
  """Spearman(t, key) over the records with lo ≤ step ≤ hi that have `key`, and its points."""
  pts = [(r["step"], r[key]) for r in history if key in r and lo <= r["step"] <= hi]
  return metrics.spearman(*zip(*pts)) if len(pts) >= 3 else float("nan"), len(pts)


def _trend_checks(history, keys_signs, lo, hi, th, where):
  """Spearman checks (sign −1: decreasing, +1: increasing) and the enough-points check."""
  out, measured, points = [], {}, []
  for key, sign in keys_signs:
    rho, n = _trend(history, key, lo, hi)
    points.append(n)
    measured[f"spearman_{key}"] = rho
    out.append(claims.check(f"Spearman(t, {key}) on {where}", rho, "<=" if sign < 0 else ">=",
                            sign * th.trend_rank_corr))
  out.append(claims.check(f"evaluations on {where}", min(points), ">=", th.min_points))
  return out, {**measured, "points": min(points)}


def run_claims(tag, rec, th) -> list:
  """The paper's claims on one training run's record, named `<tag>_<claim>`."""
  h, rate, outputs, num_classes = rec["history"], rec["rate"], rec["num_outputs"], rec["num_classes"]
  predicted = ntk_angles.predicted_ratio(rate, num_classes, num_outputs=outputs)
  es, first, final = early_stopping.point(h, PAPER_ES_KEY), h[0], h[-1]
  es_val = early_stopping.point(h)
  diag = [r for r in h if "ratio_mean" in r]
  d0, ratio0 = diag[0], diag[0]["ratio_mean"]
  claim = lambda name, *args: claims.claim(f"{tag}_{name}", PAPER, *args)
  if predicted <= 1:  # δ above (C − 1)/C: the noisy labels are the majority of class c
    return [claim("majority_noise_is_learned", f"δ = {rate} > (C−1)/C (outside the paper's "
                  "δ < 0.5): the noisy labels dominate the gradient, so the net learns them "
                  "and the test error rises",
                  [claims.check("ratio_0", ratio0, "<", 1),
                   claims.check("final test error", final["test_error"], ">", 0.5)],
                  {"ratio_0": ratio0, "predicted": predicted,
                   "final_test_error": final["test_error"]})]
  classes = range(num_classes)
  angles0 = {f"c{c}": _angle_deg(d0[f"cos_c{c}"]) for c in classes}
  ratios0 = [d0[f"ratio_c{c}"] for c in classes]
  odds = [(1 - d0[f"pbar_c{c}"]) / d0[f"pbar_c{c}"] / (num_classes - 1) for c in classes]
  tol, t_es = th.ratio_rel_tol, es["step"]
  before = [r for r in diag if r["step"] <= t_es]
  at_es = before[-1]
  rho, n_before = _trend(h, "ratio_mean", 0, t_es)
  resid = "noisy_residual_l2" if outputs > 1 else "noisy_residual"
  es_text = "(t_ES: the smoothed test error's minimum)"
  priority, priority_m = _trend_checks(
      h, (("clean_error", -1), ("noisy_error", +1), (resid, +1)), 0, t_es, th, "[0, t_ES]")
  losses, losses_m = _trend_checks(h, (("clean_loss", -1), ("noisy_loss", +1)), 0, t_es, th,
                                   "[0, t_ES]")
  later, later_m = _trend_checks(h, (("noisy_loss", -1),), t_es, final["step"], th,
                                 "[t_ES, T]")
  early_cos = [r["grad_cos"] for r in diag if r["step"] <= t_es / 2]
  out = [
      claim("init_angle_noise_clean",
            "At initialization g_noise^(c) points almost opposite to g_clean^(c) (Fig. 4)",
            [claims.check("mean over c of θ(g_noise, g_clean) (degrees)",
                          float(np.nanmean(list(angles0.values()))), ">=", th.init_angle_deg)],
            angles0),
      claim("init_ratio", "‖g_clean^(c)‖/‖g_noise^(c)‖ at initialization follows the "
            "population, " + ("eq. 8: (1 − δ)/δ" if outputs == 1 else
                              "eq. 14: (C − 1)(1 − δ)/δ") + ", for every class c, under the "
            "paper's condition that f(w0) is a random guess (mean prob. p̄_c of class c on its "
            "samples ≈ 1/C, i.e. the odds factor (1 − p̄_c)/(p̄_c(C − 1)) ≈ 1; the ratio is "
            "(1 − δ)/δ·(1 − p̄_c)/p̄_c)",
            [claims.check("max over c of |odds factor − 1| (the condition)",
                          _worst([abs(o - 1) for o in odds], max), "<=", tol),
             claims.check(f"max over c of |ratio_c / {predicted:.3g} − 1|",
                          _worst([abs(r / predicted - 1) for r in ratios0], max), "<=", tol)],
            {"predicted": predicted, "ratio_c": ratios0, "odds_factor_c": odds,
             "ratio_given_f_c": [predicted * o for o in odds]}),
      claim("ratio_falls_to_about_1", "The clean dominance ‖g_clean‖/‖g_noise‖ falls to "
            f"about 1 by the early-stopping point (Figs. 6, 8; Theorem 4.5) {es_text}",
            [claims.check("|ratio − 1| at the last diagnostic ≤ t_ES (geometric mean over c)",
                          abs(at_es["ratio_mean"] - 1), "<=", th.about_one)],
            {"ratio_0": ratio0, "ratio_at_es": at_es["ratio_mean"], "es_step": t_es,
             "diag_step": at_es["step"], "min_ratio_before_es": min(
                 r["ratio_mean"] for r in before)}),
      claim("ratio_decreases_before_es", "Before the early-stopping point the ratio "
            f"decreases monotonically (α_t increases, Theorem 4.5; Figs. 6, 8) {es_text}",
            [claims.check("Spearman(t, ratio) on [0, t_ES]", rho, "<=", -th.trend_rank_corr),
             claims.check("diagnostics on [0, t_ES]", n_before, ">=", th.min_points)],
            {"spearman": rho, "points": n_before}),
      claim("assumption_4_1", "Assumption 4.1 holds before the early-stopping point: "
            f"g_noise^(c) ≈ −α_t g_clean^(c) with α_t ∈ (0, 1) {es_text}",
            [claims.check("max over t ≤ t_ES of the mean over c of cos(g_noise, g_clean)",
                          max(r["cos_mean"] for r in before), "<=", th.assumption_cos),
             claims.check("max over t ≤ t_ES of α_t", max(r["alpha_mean"] for r in before),
                          "<", 1)],
            {"max_cos_before_es": max(r["cos_mean"] for r in before),
             "alpha_0": before[0]["alpha_mean"], "alpha_at_es": at_es["alpha_mean"]}),
      claim("prop_4_2_gd_follows_clean_gradient", "Early on (t ≤ t_ES/2) the full gradient "
            "∇L(D) points along the ground-truth-label gradient ∇L(D̂) (Prop. 4.2, eq. 12) "
            f"{es_text}",
            [claims.check("min over t ≤ t_ES/2 of cos(∇L(D), ∇L(D̂))",
                          min(early_cos) if early_cos else None, ">=", th.prop42_cos)],
            {"cos_0": d0["grad_cos"], "min_early": min(early_cos) if early_cos else None,
             "cos_at_es": at_es["grad_cos"], "points": len(early_cos)}),
      claim("clean_priority_before_es", "Before the early-stopping point the clean-subset "
            "error falls while the noisy-subset error (given labels) and residual rise, "
            f"monotonically (Figs. 5, 7) {es_text}", priority,
            {**priority_m, "es_epoch": es["epoch"],
             **{k: [first[k], (es if k in es else at_es)[k]]  # resid: diagnostics only
                for k in ("clean_error", "noisy_error", resid)}}),
      claim("thm_4_4_subset_losses", "Subset losses (Thm. 4.4, Fig. 11): before the ES point "
            "the clean-subset loss falls and the noisy-subset loss rises; after it the noisy "
            f"loss falls {es_text}", losses + later,
            {**losses_m, **{f"later_{k}": v for k, v in later_m.items()},
             "noisy_loss": [first["noisy_loss"], es["noisy_loss"], final["noisy_loss"]]}),
      claim("best_test_below_noise_and_final", "Stopping early on the held-out split's "
            "noisy labels, the test error is below the noise level and below the final test "
            "error (U-shape, Figs. 1, 5, 7; ES point: smoothed held-out noisy-label error)",
            [claims.check("test error at the held-out ES point", es_val["test_error"], "<",
                          rate, "δ ="),
             claims.check("test error at the held-out ES point", es_val["test_error"], "<",
                          final["test_error"], "final test error")],
            {"at_es": es_val["test_error"], "final": final["test_error"],
             "es_epoch": es_val["epoch"], "t_es_epoch": es["epoch"],
             "min_test": min(r["test_error"] for r in h)}),
  ]
  if "theta_h_change_deg" in d0:
    out.append(claim("remark_3_3_theta_h_constant", "θ_h, the angle between model "
                     "derivatives of two samples, stays nearly constant in training (Remark "
                     "3.3): at the ES point it moved little relative to its value at w0 "
                     f"{es_text}",
                     [claims.check("mean |Δθ_h| / mean θ_h(w0) at t_ES",
                                   at_es["theta_h_change_deg"] / rec["theta_h0_mean_deg"],
                                   "<=", th.theta_h_rel_change)],
                     {"change_at_es_deg": at_es["theta_h_change_deg"],
                      "theta_h0_mean_deg": rec["theta_h0_mean_deg"],
                      "change_final_deg": diag[-1]["theta_h_change_deg"]}))
  if rec.get("later_stage"):
    out.append(claim("later_stage_fits_noise", "In the later stage both subsets are fitted: "
                     "training errors of the clean and noisy subsets converge to zero (§4.2, "
                     "Fig. 5)",
                     [claims.check("final noisy-subset error (given labels)",
                                   final["noisy_error"], "<=", th.fitted_error),
                      claims.check("final train error", final["train_error"], "<=",
                                   th.fitted_error)],
                     {"final_noisy_error": final["noisy_error"],
                      "final_train_error": final["train_error"],
                      "final_clean_error": final["clean_error"]}))
  return out


def judge_runs(record, config) -> list:  # a run copied from another part is judged there
  return [c for tag, rec in record["runs"].items() if "copied_from" not in rec
          for c in run_claims(tag, rec, config.thresholds)]


def judge_widths(record, config) -> list:
  """The width runs' claims, and Remark 3.3 across widths: θ_h moves less when wider."""
  out = judge_runs(record, config)
  runs = sorted(record["runs"].values(), key=lambda r: r["model"]["hidden"][0])
  change = []
  for rec in runs:
    es = early_stopping.point(rec["history"], PAPER_ES_KEY)
    diag = [r for r in rec["history"] if "theta_h_change_deg" in r and r["step"] <= es["step"]]
    change.append(diag[-1]["theta_h_change_deg"] if diag else float("nan"))
  widths = [r["model"]["hidden"][0] for r in runs]
  out.append(claims.claim(
      "remark_3_3_wider_moves_less", PAPER, "θ_h moves less during training the wider the "
      "network (Remark 3.3: constant at infinite width), at the ES point",
      [claims.condition("mean |Δθ_h| at t_ES strictly decreases with the width",
                        len(change) > 1 and all(np.diff(change) < 0))],
      {f"width{w}": v for w, v in zip(widths, change)}))
  return out


def median_angles(stats) -> dict:
  """Fig. 4 read off: the median θ_g of each subset of class c = 0, 1 (NaN if empty)."""
  return {f"median_{name}_c{c}": float(np.median(stats["angles_CxB"][c][mask]))
          if mask.any() else float("nan")
          for c in (0, 1) for k, name in enumerate(("clean", "noisy", "other"))
          for mask in [stats["masks_BxCx3"][:, c, k]]}


def _separation(stats, c):
  """AUCs of θ_g: other above clean, noisy above other (class c); and sin θ(g_other, g_clean)."""
  a, m = stats["angles_CxB"][c], stats["masks_BxCx3"][:, c]
  return (metrics.separation_auc(a[m[:, 0]], a[m[:, 2]]),
          metrics.separation_auc(a[m[:, 2]], a[m[:, 1]]),
          float(np.sin(np.radians(stats["subset_angles_Cx3"][c, 2]))))


def other_subset_claim(name, title, stats, classes, th):
  """Figs. 4, 10: the 'other' subset separated from class c's clean and noisy θ_g, and
  g_other^(c) with a Θ(1) component orthogonal to g_clean^(c)."""
  sep = [_separation(stats, c) for c in classes]
  return claims.claim(
      f"{name}_other_separated_orthogonal", PAPER,
      f"{title}: the 'other' subset's θ_g is clearly separated from class c's clean and noisy "
      "ones, and g_other^(c) has a non-trivial component orthogonal to g_clean^(c) (Fig. 4, "
      "App. C.1 Fig. 10)",
      [claims.check("min over c of AUC(θ_g other > θ_g clean)", _worst([s[0] for s in sep]),
                    ">=", th.separation_auc),
       claims.check("min over c of AUC(θ_g noisy > θ_g other)", _worst([s[1] for s in sep]),
                    ">=", th.separation_auc),
       claims.check("min over c of sin θ(g_other, g_clean)", _worst([s[2] for s in sep]),
                    ">=", th.other_sin)],
      {"auc_other_clean": [s[0] for s in sep], "auc_noisy_other": [s[1] for s in sep],
       "sin_other": [s[2] for s in sep]})


def judge_histograms(record, config) -> list:
  out, th = [], config.thresholds
  for panel in record["panels"]:
    noisy_angle = [float(a) for a in panel["stats"]["subset_angles_Cx3"][:2, 1]]
    m = median_angles(panel["stats"])
    separate = all(m[f"median_clean_c{c}"] < 90 < m[f"median_noisy_c{c}"] for c in (0, 1))
    out.append(claims.claim(
        f"{panel['name']}_noise_opposite", PAPER,
        f"Fig. 4 ({panel['title']}): noisy sample gradients point away from g_clean^(c) and "
        "g_noise^(c) is almost opposite to g_clean^(c); clean ones point along it",
        [claims.check("min over c of θ(g_noise, g_clean) (degrees)", min(noisy_angle), ">=",
                      th.init_angle_deg),
         claims.condition("median θ_g clean < 90° < median θ_g noisy for both c", separate)],
        {"theta_noise_deg": noisy_angle, **m}))
    out.append(other_subset_claim(panel["name"], f"Fig. 4 ({panel['title']})", panel["stats"],
                                  (0, 1), th))
  return out


def judge_multiclass(record, config) -> list:
  out = judge_runs(record, config)
  (tag, rec), = record["runs"].items()
  stats = rec["init_stats"]
  return out + [other_subset_claim(f"{tag}_fig10", "Fig. 10 (single-logit, MNIST CNN, w0)",
                                   stats, range(stats["angles_CxB"].shape[0]),
                                   config.thresholds)]
