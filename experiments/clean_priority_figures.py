"""Figures of experiments/clean_priority.py: each a function of one part's record.

Panels: θ_g histograms at initialization (Figs. 4, 10), training dynamics — subset errors,
residuals, train/test error — (Figs. 1, 5, 7, 12, 13), the ratio ‖g_clean‖/‖g_noise‖ with
the Assumption 4.1 check (Figs. 6, 8) and subset losses (Fig. 11, one file per panel: each
figure is a function of one part's record).
"""

import numpy as np

from noisejax import early_stopping, plots
from noisejax.theory import ntk_angles

SUBSETS = ("clean", "noisy", "other")  # the order of masks_BxCx3's last axis


def _series(history, key):
  pts = [(r["epoch"], r[key]) for r in history if key in r]
  return np.array([p[0] for p in pts]), np.array([p[1] for p in pts])


def _early_epoch(history):
  """The paper's ES point t_ES (the smoothed test error's minimum), the line of Figs. 5–8."""
  return early_stopping.point(history, "test_error")["epoch"]


# ----------------------------------------------------------------------------
# θ_g histograms at initialization.


def _histograms(axes, stats, classes, title):
  bins = np.linspace(0, 180, 61)
  for ax, c in zip(axes, classes):
    for k, name in enumerate(SUBSETS):
      mask = stats["masks_BxCx3"][:, c, k]
      if mask.any():
        ax.hist(stats["angles_CxB"][c][mask], bins=bins, color=plots.COLORS[name], alpha=0.55,
                density=True, label=f"{plots.LABELS[name]} ({mask.sum()})")
      if k > 0:  # θ(g_noise, g_clean), θ(g_other, g_clean)
        ax.axvline(stats["subset_angles_Cx3"][c, k], color=plots.COLORS[name], ls="--", lw=1.5)
    ax.set_title(f"{title}, c = {c}" if title == "logit" else f"{title}\nclass c = {c}",
                 fontsize=8)
    ax.set_xlim(0, 180)
    ax.set_xlabel(r"$\theta_g$ to $g_{clean}^{(c)}$ (degrees)", fontsize=8)
    ax.legend(fontsize=6)


def plot_histograms(record, config) -> dict:
  """Fig. 4: one row per panel (synthetic clusters, MNIST pairs), one column per class."""
  panels = record["panels"]
  fig, axes = plots.figure(len(panels), 2, width=4.5, height=2.9)
  for row, panel in zip(axes, panels):
    _histograms(row, panel["stats"], (0, 1), panel["title"])
  fig.suptitle(f"Fig. 4: sample-wise gradient angles at initialization (δ = "
               f"{config.histograms.rate}); dashed: g_noise (red), g_other (green)", fontsize=9)
  fig.tight_layout()
  return {"fig4_theta_g_histograms.png": fig}


def _fig10(stats, rate):
  num_classes = stats["angles_CxB"].shape[0]
  cols = (num_classes + 1) // 2
  fig, axes = plots.figure(2, cols, width=3.2, height=3)
  _histograms(axes.ravel(), stats, range(num_classes), "logit")
  fig.suptitle(f"Fig. 10: single-logit sample-wise gradient angles at init, MNIST CNN, "
               f"δ = {rate}", fontsize=9)
  fig.tight_layout()
  return fig


# ----------------------------------------------------------------------------
# Training dynamics and the gradient ratio.


def _dynamics(runs: dict, title, *, labelled=False, linthresh=None):
  """Subset errors, residuals, train/test error of each run (+ its ES point). labelled:
  one color per run (legend on the first panel), solid clean/test, dashed noisy/train.
  linthresh: a symlog epoch axis, linear up to that epoch (long runs' early stage)."""
  fig, axes = plots.figure(1, 3, width=5, height=3.8)
  axes = axes[0]
  for i, (label, rec) in enumerate(runs.items()):
    h = rec["history"]
    residual = "residual_l2" if rec["num_outputs"] > 1 else "residual"
    run_color = f"C{i}" if labelled else None
    panels = ((axes[0], (("clean_error", "clean"), ("noisy_error", "noisy (given labels)"))),
              (axes[1], ((f"clean_{residual}", "clean"), (f"noisy_{residual}", "noisy"))),
              (axes[2], (("train_error", "train"), ("test_error", "test"))))
    for p, (ax, keys) in enumerate(panels):
      for k, (key, name) in enumerate(keys):
        kind = key.split("_")[0]
        x, y = _series(h, key)
        ax.plot(x, y, "--" if kind in ("noisy", "train") else "-",
                color=run_color or plots.COLORS[kind], lw=1.3,
                label=(label if p == k == 0 else None) if labelled else name)
      plots.mark_early_stopping(ax, _early_epoch(h), color=run_color or "k",
                                label=None)
    if rec["rate"] not in [r["rate"] for r in list(runs.values())[:i]]:  # once per level
      plots.mark_noise_level(axes[2], rec["rate"], color=run_color or "gray")
  multi = next(iter(runs.values()))["num_outputs"] > 1
  for ax, label in zip(axes, ("subset error", "mean residual " + ("‖f − y‖" if multi else
                                                                  "|f − y|"), "error")):
    ax.set_ylabel(label)
    if linthresh:
      ax.set_xscale("symlog", linthresh=linthresh, linscale=2)
      ax.set_xlim(left=0)
  if labelled:
    title += "\nsolid: clean subset / test; dashed: noisy subset / train"
  _finish(fig, axes if not labelled else axes[:1], title + " (dotted: early-stopping point)")
  for ax in axes:
    ax.set_xlabel("epoch" + (f" (linear up to {linthresh}, then log)" if linthresh else ""))
  fig.tight_layout()
  return fig


def _finish(fig, axes, title):
  for ax in axes:
    ax.set_xlabel("epoch")
    ax.legend(fontsize=6)
  fig.suptitle(title, fontsize=9)
  return fig


def _ratio(runs: dict, title, *, linthresh=None):
  """Figs. 6 / 8 and the Assumption 4.1 check: ratio, cosine and α_t per class."""
  fig, axes = plots.figure(1, 3, width=5, height=3.8)
  axes = axes[0]
  for i, (label, rec) in enumerate(runs.items()):
    h, color = rec["history"], f"C{i}"
    predicted = ntk_angles.predicted_ratio(rec["rate"], rec["num_classes"],
                                           num_outputs=rec["num_outputs"])
    for c in range(rec["num_classes"]):
      axes[0].plot(*_series(h, f"ratio_c{c}"), color=color, lw=0.6, alpha=0.5)
      axes[1].plot(*_series(h, f"cos_c{c}"), color=color, lw=0.6, alpha=0.5)
    axes[0].plot(*_series(h, "ratio_mean"), color=color, lw=2,
                 label=f"{label}: geometric mean over c")
    axes[0].axhline(predicted, color=color, ls="-.", lw=0.8, label=f"eq. 8/14: {predicted:.3g}")
    axes[1].plot(*_series(h, "cos_mean"), color=color, lw=2, label=label)
    axes[2].plot(*_series(h, "alpha_mean"), color=color, lw=2, label=label)
    for ax in axes:
      plots.mark_early_stopping(ax, _early_epoch(h), color=color, label=None)
  axes[0].axhline(1, color="k", lw=0.7)
  axes[0].set_yscale("log")
  axes[0].set_ylabel(r"$\|g_{clean}^{(c)}\| / \|g_{noise}^{(c)}\|$")
  axes[1].set_ylabel(r"cos($g_{noise}^{(c)}, g_{clean}^{(c)}$)")
  axes[2].set_ylabel(r"$\alpha_t = \|g_{noise}\| / \|g_{clean}\|$ (geom. mean over c)")
  axes[2].axhline(1, color="k", lw=0.7)
  if linthresh:
    for ax in axes:
      ax.set_xscale("symlog", linthresh=linthresh, linscale=2)
      ax.set_xlim(left=0)
  top = max(ntk_angles.predicted_ratio(r["rate"], r["num_classes"], num_outputs=r["num_outputs"])
            for r in runs.values())
  axes[0].set_ylim(0.3, 3 * top)  # after the noise is fitted the per-class ratios scatter
  _finish(fig, axes, title + " (thin: one class c; dotted: early-stopping point)")
  fig.tight_layout()
  return fig


def _losses(tag, rec, *, linthresh=None):
  """Fig. 11 (one panel): clean and noisy subset losses over training."""
  h = rec["history"]
  fig, axes = plots.figure(width=5, height=3.6)
  plots.curves(axes[0, 0], [r["epoch"] for r in h],
               {"clean subset": [r["clean_loss"] for r in h],
                "noisy subset": [r["noisy_loss"] for r in h]},
               colors={"clean subset": plots.COLORS["clean"],
                       "noisy subset": plots.COLORS["noisy"]},
               early_stop=_early_epoch(h), ylabel="training loss")
  axes[0, 0].set_title(f"Fig. 11: subset losses, {tag} (δ = {rec['rate']:g}; dotted: "
                       "early-stopping point)", fontsize=9)
  if linthresh:
    axes[0, 0].set_xscale("symlog", linthresh=linthresh, linscale=2)
    axes[0, 0].set_xlim(left=0)
  return fig


# ----------------------------------------------------------------------------
# One function per part: {filename: figure}.


_LINTHRESH = 20  # binary runs: the early stage (≈ 20 epochs) linear, the later stage log


def _fcn(config):
  b = config.binary
  return "MNIST {} vs {}, FCN {}".format(*b.data.classes, "×".join(map(str, b.model.hidden)))


def plot_binary(record, config) -> dict:
  runs = record["runs"]
  out = {f"fig5_binary_dynamics_{tag}.png": _dynamics(
      {tag: rec}, f"Fig. 5: {_fcn(config)}, δ = {rec['rate']}", linthresh=_LINTHRESH)
      for tag, rec in runs.items()}
  out["fig6_binary_ratio_assumption41.png"] = _ratio(
      {f"binary_{tag}": rec for tag, rec in runs.items()},
      f"Fig. 6 and Assumption 4.1: {_fcn(config)}", linthresh=_LINTHRESH)
  tag, rec = next(iter(runs.items()))
  out["fig11left_binary_subset_losses.png"] = _losses(f"binary_{tag}", rec,
                                                      linthresh=_LINTHRESH)
  return out


def plot_widths(record, config) -> dict:
  title = (f"Fig. 12: MNIST {'{} vs {}'.format(*config.binary.data.classes)}, FCN with "
           f"{len(config.binary.model.hidden)} hidden layers, δ = {config.widths.rate}")
  return {"fig12_widths.png": _dynamics(record["runs"], title, labelled=True,
                                        linthresh=_LINTHRESH)}


def plot_multiclass(record, config) -> dict:
  (tag, rec), = record["runs"].items()
  rate = rec["rate"]
  return {
      "fig1_fig7top_multiclass_dynamics.png": _dynamics(
          {tag: rec}, f"Figs. 1 and 7 (top): MNIST, CNN, δ = {rate}, single-logit gradients"),
      "fig8left_multiclass_ratio.png": _ratio(
          {f"multiclass_{tag}": rec},
          f"Fig. 8 (left) and Assumption 4.1: MNIST CNN, δ = {rate}, single-logit"),
      "fig10_single_logit_histograms.png": _fig10(rec["init_stats"], rate),
      "fig11middle_multiclass_subset_losses.png": _losses(f"multiclass_{tag}", rec),
  }


def plot_noise_levels(record, config) -> dict:
  runs = {f"δ = {rec['rate']}": rec for rec in record["runs"].values()}
  return {"fig13_noise_levels.png": _dynamics(
      runs, "Fig. 13: MNIST CNN at several noise levels", labelled=True)}


def plot_cifar(record, config) -> dict:
  (tag, rec), = record["runs"].items()
  return {
      "fig7bottom_cifar_dynamics.png": _dynamics(
          {tag: rec}, f"Fig. 7 (bottom): CIFAR-10, ResNet-9, δ = {rec['rate']}"),
      "fig8right_cifar_ratio.png": _ratio(
          {f"cifar10_{tag}": rec}, f"Fig. 8 (right): CIFAR-10, ResNet-9, δ = {rec['rate']}"),
      "fig11right_cifar_subset_losses.png": _losses(f"cifar10_{tag}", rec),
  }
