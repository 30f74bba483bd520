"""Figures of experiments/clusterable_gd.py (early-stopping paper, Figs. 1, 3, 4, 5).

Each function draws one part's figures from its saved record: (record, config) →
{filename: figure}. Clean / corrupted samples and curves use the shared palette
(noisejax.plots: clean blue, noisy red, test black).
"""

import numpy as np

from noisejax import plots

GIVEN, TRUE, TEST = plots.COLORS["noisy"], plots.COLORS["clean"], plots.COLORS["test"]


def fig5(record, config) -> dict:
  """Fig. 5a: training error against the given and the true labels over iterations (mean
  and min–max over seeds); Fig. 5b–c: per-sample loss histograms at iteration early_step
  and at each seed's late point (the given labels fitted for late_fit_steps iterations)."""
  f5, steps = config.fig5, np.maximum(record["steps"], 1)
  early, late = record["early"], record["late"]
  fig, axes = plots.figure(width=6, height=4)
  ax = axes[0, 0]
  plots.mean_band(ax, steps, record["error_given_SxT"], color=GIVEN, label="vs corrupted labels",
                  band="minmax")
  plots.mean_band(ax, steps, record["error_true_SxT"], color=TRUE, label="vs ground truth",
                  band="minmax")
  plots.mark_noise_level(ax, record["flip_rate"])
  for step in (early["step"], *late["step_S"]):
    ax.axvline(step, ls=":", color="gray")
  ax.set(xscale="log", xlabel="iteration", ylabel="training error", ylim=(0, 0.6),
         title=f"Fig. 5a: K={f5.num_clusters}, n={f5.n}, ε0={f5.eps0}, k={f5.hidden}, "
               f"{f5.corruption:.0%} redrawn ({len(record['error_true_SxT'])} seeds)")
  ax.legend(fontsize=8)
  hist, axes = plots.figure(1, 2, width=5, height=3.6)
  steps_late = late["step_S"]
  for ax, at, when in ((axes[0, 0], early, f"iteration {early['step']}"),
                       (axes[0, 1], late, f"iterations {min(steps_late)}–{max(steps_late)} "
                                          f"(given labels fitted for {f5.late_fit_steps})")):
    plots.loss_histograms(ax, at["losses_SxN"], record["is_noisy_SxN"],
                          xlabel="least-squares loss", names=("clean", "corrupted"),
                          title=f"{when}\nmean AUC {np.mean(at['auc_S']):.3f}, overlap "
                                f"{np.mean(at['overlap_S']):.2f}")
  hist.suptitle("Fig. 5b–c: per-sample loss ½(f − y)², clean vs corrupted", y=1.08)
  return {"fig5a_training_error.png": fig, "fig5bc_loss_histograms.png": hist}


def perfect(record, config) -> dict:
  """ε0 = 0: the true-label error over iterations (Fig. 5's ε0 > 0 curve dashed) and the
  entrywise error after training against Thms 9.2 and 7.1."""
  rows = record["rows"]
  fig, axes = plots.figure(1, 2, width=5.5)
  ax = axes[0, 0]
  for err_T, r in zip(record["error_true_SxT"], rows):
    ax.plot(np.maximum(record["steps"], 1), err_T, label=f"ε0 = 0, K = {r['K']}")
  if record.get("fig5_steps") is not None:
    ax.plot(np.maximum(record["fig5_steps"], 1), record["fig5_error_true"], "k--",
            label="ε0 = 0.5 (Fig. 5)")
  ax.set(xscale="log", xlabel="iteration", ylabel="error vs ground truth",
         title="Perfectly clustered data never overfit (Thm 7.1)")
  ax.legend(fontsize=8)
  ax, ks = axes[0, 1], np.arange(len(rows))
  for offset, key, label in ((-0.25, "sup_error", "‖f(W_T) − ỹ‖_∞"),
                             (0.0, "thm92_bound", "2‖Π_S₊(e)‖_∞ (Thm 9.2)"),
                             (0.25, "thm71_bound", "4ρ (Thm 7.1)")):
    ax.bar(ks + offset, [r[key] for r in rows], 0.25, label=label)
  ax.set_xticks(ks, [f"K = {r['K']}" for r in rows])
  ax.set(title="Entrywise error after training vs the bounds")
  ax.legend(fontsize=8)
  return {"perfect_clusters.png": fig}


def distance(record, config) -> dict:
  """Accuracy against ‖W_τ − W0‖_F (solid: given labels, dotted: true; a dot at the point
  early-stopped on the held-out noisy labels) and the distance over iterations, one curve
  per corruption level."""
  fig, axes = plots.figure(1, 2, width=5.5)
  for s, r in enumerate(record["rows"]):
    label = f"{r['corruption']:.0%} redrawn ({r['flip_rate']:.0%} flipped)"
    dist_T = record["distance_SxT"][s]
    line, = axes[0, 0].plot(dist_T, 1 - record["error_given_SxT"][s], label=label)
    axes[0, 0].plot(dist_T, 1 - record["error_true_SxT"][s], ls=":", color=line.get_color())
    t = int(np.searchsorted(record["steps"], r["early_stop_step"]))  # stopped on held-out labels
    axes[0, 0].plot(dist_T[t], 1 - record["error_true_SxT"][s, t], "o", color=line.get_color())
    axes[0, 1].plot(np.maximum(record["steps"], 1), dist_T, color=line.get_color(), label=label)
  axes[0, 0].set(xlabel="‖W_τ − W_0‖_F", ylabel="train accuracy",
                 title="Accuracy vs distance (solid: given, dotted: true; •: early stop)")
  axes[0, 1].set(xscale="log", xlabel="iteration", ylabel="‖W_τ − W_0‖_F",
                 title="Distance from initialization")
  axes[0, 0].legend(fontsize=7)
  return {"distance_from_init_clusterable.png": fig}


def sweeps(record, config) -> dict:
  """Per named sweep, the figures it feeds: Fig. 1 (accuracies against the corruption at
  convergence and early-stopped), Fig. 3 (accuracy and loss against ‖θ − θ0‖/‖θ0‖),
  Fig. 4a–b (per-sample loss histograms at the early-stopping point)."""
  out = {}
  for name, runs in record.items():
    sweep = config.sweeps[name]
    tag = f"{name}: {sweep.model.name} on {sweep.data.name}"
    if "fig1" in sweep.figures:
      out[f"fig1_{name}_accuracy_vs_corruption.png"] = _fig1(runs, tag, sweep.optim.epochs)
    if "fig3" in sweep.figures:
      out[f"fig3_{name}_accuracy_vs_distance.png"] = _fig3(runs, tag)
    shown = [r for r in runs if np.isclose(r["rate"], sweep.hist_rates).any()]
    if "fig4ab" in sweep.figures and len(shown) >= 2:
      fig, axes = plots.figure(1, len(shown), width=5, height=3.6)
      for ax, r in zip(axes[0], shown):
        plots.loss_histograms(ax, r["losses_early"], r["is_noisy"], xlabel="least-squares loss",
                              title=f"{r['rate']:.0%} corruption, epoch {r['early']['epoch']:.0f} "
                                    f"(AUC {r['auc_early']:.3f})", names=("clean", "corrupted"))
      stand_in = "" if sweep.data.name == "cifar10" else ", standing in for CIFAR-10"
      fig.suptitle(f"Fig. 4a–b: per-sample loss with early stopping ({tag}{stand_in})")
      out[f"fig4ab_{name}_loss_histograms.png"] = fig
  return out


def _fig1(runs, tag, epochs):
  fig, axes = plots.figure(1, 2, width=5.5, sharey=True)
  rates = [r["rate"] for r in runs]
  for ax, pick, title in ((axes[0, 0], lambda r: r["history"][-1],
                           f"(a) at the end of training ({epochs} epochs)"),
                          (axes[0, 1], lambda r: r["early"], "(b) with early stopping")):
    records = [pick(r) for r in runs]
    for key, label, color in (("train_error", "train acc. (corrupted labels)", GIVEN),
                              ("train_error_true", "train acc. (true labels)", TRUE),
                              ("test_error", "test acc.", TEST)):
      ax.plot(rates, [1 - h[key] for h in records], "o-", color=color, label=label)
    ax.set(xlabel="corruption level (fraction of labels redrawn)", title=title, ylim=(0, 1.02))
  axes[0, 0].set_ylabel("accuracy")
  axes[0, 0].legend(fontsize=8)
  fig.suptitle(f"Fig. 1 ({tag})")
  return fig


def _fig3(runs, tag):
  fig, axes = plots.figure(1, 2, width=5.5)
  for r in runs:
    dist = [h["relative_distance"] for h in r["history"]]
    label = f"{r['rate']:.0%} corruption"
    axes[0, 0].plot(dist, [1 - h["train_error"] for h in r["history"]], label=label)
    axes[0, 1].plot(dist, [h["train_loss"] for h in r["history"]], label=label)
  axes[0, 0].set(xlabel="‖θ − θ0‖ / ‖θ0‖", ylabel="train accuracy (given labels)", title="(a)")
  axes[0, 1].set(xlabel="‖θ − θ0‖ / ‖θ0‖", ylabel="train loss (given labels)", yscale="log",
                 title="(b)")
  axes[0, 0].legend(fontsize=8)
  fig.suptitle(f"Fig. 3 ({tag})")
  return fig


def jacobian(record, config) -> dict:
  """Fig. 4c: the histogram of the Jacobian's singular values at initialization and after
  training, and σ_i / σ_1 against i with the threshold of the "large" ones."""
  jac, sigma0, sigma1 = config.jacobian, record["sigma_init"], record["sigma_trained"]
  fig, axes = plots.figure(1, 2, width=5.5)
  top = max(sigma0[0], sigma1[0])
  low = max(min(sigma0.min(), sigma1.min()), top * 1e-6)
  bins = np.logspace(np.log10(low), np.log10(top), 50)
  for sigma, label in ((sigma0, "initialization"), (sigma1, "after training")):
    axes[0, 0].hist(np.maximum(sigma, bins[0]), bins=bins, alpha=0.55, label=label)
    axes[0, 1].semilogy(np.arange(1, len(sigma) + 1), sigma / sigma[0], label=label)
  axes[0, 0].set(xscale="log", yscale="log", xlabel="singular value of J", ylabel="count",
                 title=f"Fig. 4c: {jac.model.name} on {jac.data.name} {tuple(jac.data.classes)}"
                       f"{'' if jac.data.name == 'cifar10' else ' (stand-in for CIFAR-10)'}, "
                       f"n = {record['n']}, p = {record['num_params']}")
  axes[0, 1].axhline(jac.relative_threshold, ls="--", color="gray")
  axes[0, 1].set(xscale="log", xlabel="index", ylabel="σ_i / σ_1",
                 title=f"#σ > {jac.relative_threshold}σ₁: {record['large']}")
  axes[0, 0].legend(fontsize=8)
  return {"fig4c_jacobian_spectrum.png": fig}
