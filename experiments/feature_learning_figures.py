"""Figures of experiments/feature_learning.py: each a function of one part's record.

  plot_dynamics  fig1_dynamics.png (Fig. 1: coefficients, accuracies, clean test error and
                 held-out noisy-label error, mean |ℓ'_i| of clean and noisy samples, per-sample
                 losses, with and without label noise) and sample_selection.png (the loss
                 histograms of clean and noisy samples at T₁ and at the end, log 2 marked)
  plot_sweep     sweep_nsnr2.png (over n·SNR² and over d/n)
  plot_real      real_data.png (per-epoch accuracies on the real data, seed 0, its
                 early-stopping point)
"""

import numpy as np

from noisejax import early_stopping, plots
from noisejax.theory import feature_learning as fl

CLEAN, NOISY, TEST, TRAIN = (plots.COLORS[k] for k in ("clean", "noisy", "test", "train"))


def _mark_stages(ax, a, label):
  """T₁ (dashed), the end of Stage I (dotted) and the early-stopping point (dash-dot) of
  run `a` on a log-time axis."""
  for index, ls, lw, text in ((a["t1_index"], "--", 1, "T₁ (Thm 4.1 holds)"),
                              (a["window_end_index"], ":", 1.5,
                               "Stage I / II: first noisy sample fitted"),
                              (a["es_index"], "-.", 1, "early stopping (held-out)")):
    if index is not None:
      ax.axvline(max(a["steps"][index], 0.5), color="gray", ls=ls, lw=lw,
                 label=text if label else None)


def _dynamics_column(axes, a, title):
  t = np.maximum(a["steps"], 0.5)
  has_noise = bool(np.any(a["is_noisy"]))
  ax = axes[0]
  ax.plot(t, a["gamma_max"], "k", lw=2, label="max γ_{j,r}")
  ax.plot(t, a["rho_mean_clean"], color=CLEAN, label="max_{j,r} ρ_{j,r,i}: clean (mean over i)")
  ax.plot(t, a["rho_max_clean"], color=CLEAN, ls=":", label="clean (max over i)")
  if has_noise:
    ax.plot(t, a["rho_mean_noisy"], color=NOISY, label="noisy (mean over i)")
    ax.plot(t, a["rho_max_noisy"], color=NOISY, ls=":", label="noisy (max over i)")
  ax.set(ylabel="coefficient", title=title)
  ax = axes[1]
  ax.plot(t, a["acc_train"], color=TRAIN, label="train (given labels)")
  ax.plot(t, a["acc_clean"], color=CLEAN, label="clean samples")
  if has_noise:
    ax.plot(t, a["acc_noisy"], color=NOISY, label="noisy samples vs noisy labels")
  ax.set(ylabel="training accuracy", ylim=(-0.03, 1.03))
  axes[2].plot(t, a["test_error"], color=TEST, label="test (clean labels)")
  axes[2].plot(t, a["val_error"], color=TEST, ls="--", label="held-out (noisy labels)")
  axes[2].set_ylabel("error")
  axes[2].legend(fontsize=7, loc="center right")
  ax = axes[3]
  ax.plot(t, a["dloss_mean_clean"], color=CLEAN, label="clean samples")
  if has_noise:
    ax.plot(t, a["dloss_mean_noisy"], color=NOISY, label="noisy samples")
  ax.set(yscale="log", ylabel="mean |ℓ'_i|")
  ax.legend(fontsize=7, loc="lower left")
  ax = axes[4]
  losses_RxN, noisy_N = a["losses"], np.asarray(a["is_noisy"], bool)
  for i in np.flatnonzero(~noisy_N):
    ax.plot(t, losses_RxN[:, i], color=CLEAN, lw=0.5, alpha=0.5)
  for i in np.flatnonzero(noisy_N):
    ax.plot(t, losses_RxN[:, i], color=NOISY, lw=0.5, alpha=0.7)
  ax.axhline(fl.LOG2, color="k", ls="--", lw=1, label="log 2")
  ax.set(yscale="log", ylabel="training loss per sample", xlabel="GD iteration")


def plot_dynamics(record, config) -> dict:
  s, unit = config.synthetic, record["regime"]["time_unit"]
  a_noise, a_clean = record["seed0"]["noisy"], record["seed0"]["clean"]
  fig, axes = plots.figure(5, 2, width=5.5, height=3.0, sharex=True)
  for col, (a, title) in enumerate(((a_noise, f"label noise τ₊ = {s.tau_pos}, τ₋ = {s.tau_neg}"),
                                    (a_clean, "no label noise"))):
    _dynamics_column(axes[:, col], a, title)
    for row in range(5):
      axes[row, col].set_xscale("log")
      _mark_stages(axes[row, col], a_noise, label=row == 1)
    axes[0, col].legend(fontsize=7, loc="upper left")
    axes[1, col].legend(fontsize=7, loc="center right")
  fig.suptitle(f"Two-layer ReLU CNN, n = {s.n}, d = {s.d}, m = {s.m}, n·SNR² = {s.n_snr2}, "
               f"η = {s.eta} (time unit nm/(ησ²d) = {unit:g} iterations)", fontsize=10)
  figures = {"fig1_dynamics.png": fig}
  if a_noise["t1_index"] is not None:
    figures["sample_selection.png"] = _selection(a_noise)
  return figures


def _selection(a):
  """Clean vs noisy per-sample losses at T₁ and at the end (Prop. 4.3's log 2 threshold)."""
  fig, axes = plots.figure(1, 2, width=5.0, height=3.5)
  for ax, index, title in ((axes[0, 0], a["t1_index"], f"at T₁ = {a['steps'][a['t1_index']]}"),
                           (axes[0, 1], -1, f"at the end, t = {a['steps'][-1]}")):
    plots.loss_histograms(ax, a["losses"][index], a["is_noisy"], log=True,
                          xlabel="training loss", title=title)
    ax.axvline(fl.LOG2, color="k", ls="--", label="log 2")
    ax.legend(fontsize=7)
  return fig


def _mean_finite(xs):
  finite = [x for x in xs if x is not None and np.isfinite(x)]
  return float(np.mean(finite)) if finite else np.nan


def plot_sweep(record, config) -> dict:
  s, sw = config.synthetic, config.sweep
  points, by_d = record["n_snr2"], record["d_over_n"]
  floor = 0.5 * min(s.tau_pos, s.tau_neg)
  fig, axes = plots.figure(1, 4, width=5.0, height=4.0)
  axes = axes[0]
  values = np.array([v["n_snr2"] for v in points])
  axes[0].plot(values, [v["frac_window"] for v in points], "o-",
               label="seeds with a Stage I window")
  axes[0].plot(values, [v["noisy_memorized_end"] for v in points], "s-",
               label="noisy samples memorized at the end")
  axes[0].set_ylabel("fraction")
  axes[1].plot(values, [v["test_error_t1"] for v in points], "o-", label="at T₁")
  axes[1].plot(values, [v["test_error_end"] for v in points], "s-", label="at the end")
  axes[1].axhline(floor, color="k", ls=":", label="0.5·min(τ₊, τ₋)")
  axes[1].set_ylabel("test error (clean labels)")
  axes[3].plot(values, [_mean_finite(v["window_end_time_units"]) for v in points], "o-",
               label="end of Stage I (first noisy sample fitted)")
  axes[3].plot(values, [_mean_finite(v["all_noisy_fitted_time_units"]) for v in points], "s-",
               label="every noisy sample fitted")
  axes[3].set(yscale="log", ylabel="iterations / (nm/(ησ²d))")
  for ax in axes[[0, 1, 3]]:
    ax.set(xscale="log", xlabel="n·SNR²")
    ax.axvspan(*sw.theta_band, color="gray", alpha=0.15)
    ax.axvline(fl.signal_threshold(max(s.tau_pos, s.tau_neg)), color="gray", ls="--", lw=1,
               label="2/(1 − 2τ)")
    ax.legend(fontsize=8)
  ratios = [v["d_over_n"] for v in by_d]
  ax = axes[2]
  ax.set_xscale("log")
  ax.set_xticks(ratios, [f"{v:g}" for v in ratios])
  ax.minorticks_off()
  ax.plot(ratios, [v["test_error_t1"] for v in by_d], "o-", label="at T₁")
  ax.plot(ratios, [v["test_error_end"] for v in by_d], "s-", label="at the end")
  ax.axhline(floor, color="k", ls=":", label="0.5·min(τ₊, τ₋)")
  ax.set(xlabel=f"d / n  (n = {s.n}, n·SNR² = {s.n_snr2:g})", ylabel="test error (clean labels)")
  ax.legend(fontsize=8)
  fig.suptitle(f"mean over {sw.seeds} seeds, {sw.time_units:g} time units nm/(ησ²d) per "
               "point; shaded: the Θ(1) band",
               fontsize=10)
  return {"sweep_nsnr2.png": fig}


def plot_real(record, config) -> dict:
  r, history = config.real, [h for h in record["histories"][0] if h["epoch"] > 0]
  es = early_stopping.point(record["histories"][0])
  epochs = [h["epoch"] for h in history]
  fig, axes = plots.figure(width=6.5, height=4.0)
  plots.curves(axes[0, 0], epochs, {
      "train acc, clean samples": [1 - h["clean_error"] for h in history],
      "train acc, flipped samples vs flipped labels": [1 - h["noisy_error"] for h in history],
      "test acc (clean)": [1 - h["test_error"] for h in history],
      "held-out acc (flipped labels)": [1 - h["val_error"] for h in history]},
      colors={"train acc, clean samples": CLEAN,
              "train acc, flipped samples vs flipped labels": NOISY,
              "test acc (clean)": TEST, "held-out acc (flipped labels)": TRAIN},
      ylabel="accuracy", early_stop=es["epoch"])
  axes[0, 0].set_ylim(-0.02, 1.02)
  axes[0, 0].set_title(f"{r.data.name} classes {tuple(r.data.classes)}, {r.model.name}, SGD, "
                       f"{record['flipped']} of {record['n_train']} labels flipped (seed 0; "
                       "dotted: early stopping)", fontsize=9)
  return {"real_data.png": fig}
