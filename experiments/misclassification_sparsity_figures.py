"""Figures of experiments/misclassification_sparsity.py: each a function of one record.

Runs without label noise (p = 0) are drawn in the palette's clean colour, runs with it in
the noisy colour; a second loss is dashed-dotted.
"""

import numpy as np

from noisejax import plots, sparsity


def _p_color(p):
  return plots.COLORS["clean"] if p == 0 else plots.COLORS["noisy"]


def plot_fig1(record, config) -> dict:
  """Fig. 1: (a) training and test error on clean labels, (b) E_x A_N(x), seed means."""
  steps_T, width, curves = record["steps"], record["width"], record["curves"]
  seeds = curves["test_error"].shape[1]
  fig, axes = plots.figure(1, 3)
  for i, p in enumerate(record["p"]):
    color = _p_color(p)
    for ax, kind in ((axes[0, 0], "error"), (axes[0, 1], "active")):
      for split, ls in (("train", "--"), ("test", "-")):
        name = f"{split}_{kind}" if kind == "error" else f"{kind}_{split}"
        plots.mean_band(ax, steps_T, curves[name][i], color=color, ls=ls,
                        label=f"{split}{' inputs' if kind == 'active' else ''}, p = {p:g}")
  axes[0, 0].set(xlabel="SGD step (batch 1)", ylabel="classification error", ylim=(0, 0.6),
                 title="(a) errors (clean labels)")
  axes[0, 1].set(xlabel="SGD step (batch 1)", ylabel=f"E_x A_N(x) (of {width})",
                 title="(b) typical number of active neurons")
  for ax in axes[0, :2]:
    ax.legend(fontsize=7)
    ax.ticklabel_format(axis="x", style="sci", scilimits=(0, 0))
  a = record["a_of_p"]  # App. A: a(p) after a.steps steps, mean ± std over seeds
  for split, marker in (("train", "o-"), ("test", "s--")):
    values_PxS = np.asarray(a[f"active_{split}"])
    axes[0, 2].errorbar(a["p"], values_PxS.mean(1), values_PxS.std(1), fmt=marker,
                        color=plots.COLORS["noisy"], ms=3, label=f"{split} inputs")
  axes[0, 2].set(xlabel="p (resampling rate)", ylabel=f"E_x A_N(x) (of {width})",
                 title=f"App. A: a(p) after {a['steps']} steps")
  axes[0, 2].legend(fontsize=7)
  fig.suptitle(f"Fig. 1: hypercube boundary, d = {config.fig1.d}, h = "
               f"{config.fig1.optim.lr:.3g}, {seeds} seeds")
  return {"fig1_hypercube.png": fig}


def plot_mnist(record, config) -> dict:
  """Fig. 5 (active fraction and errors over epochs) and Fig. 6 (firing histograms)."""
  epochs_T, runs = record["epochs"], record["runs"]
  fig, axes = plots.figure(1, 2)
  for name, r in runs.items():
    p = float(name.rsplit("_p", 1)[1])
    ls = "-" if name.startswith(record["losses"][0]) else "-."
    curves, color = r["curves"], _p_color(p)  # S×T: the mean over seeds with a ±1 std band
    plots.mean_band(axes[0, 0], epochs_T, curves["active_train"], color=color, ls=ls, label=name)
    axes[0, 1].plot(epochs_T, curves["train_error"].mean(0), ls, color=color, lw=0.8,
                    alpha=0.6, label=f"train, {name}")
    plots.mean_band(axes[0, 1], epochs_T, curves["test_error"], color=color, ls=ls,
                    label=f"test, {name}")
  axes[0, 0].set(xlabel="epoch", ylabel="fraction of active hidden neurons",
                 title="(a) typical fraction of active neurons (training inputs)")
  axes[0, 1].set(xlabel="epoch", ylabel="classification error", ylim=(0, 0.3),
                 title="(b) training (clean labels) and test error")
  for ax in axes[0]:
    ax.legend(fontsize=7)
  seeds = len(next(iter(runs.values()))["final"])
  fig.suptitle(f"Fig. 5: MNIST, {record['hidden']} ReLU neurons, batch-1 SGD, {seeds} seeds")
  figs = {"fig5_mnist.png": fig}
  first = record["losses"][0]
  for p in record["p"]:
    figs[f"fig6_histograms_p{p:g}.png"] = _firing_histograms(
        runs[f"{first}_p{p:g}"]["final"][0]["firing_counts"], record["chosen"],
        config.mnist.association_ratio, f"Fig. 6: {first}, p = {p:g}")
  return figs


def _firing_histograms(counts_UxC, chosen, ratio, title):
  mask, assoc = map(np.asarray, sparsity.class_associated(counts_UxC, ratio))
  num_classes = counts_UxC.shape[1]
  cols = 6
  rows = int(np.ceil(len(chosen) / cols))
  fig, axes = plots.figure(rows, cols, width=2.2, height=1.6, sharex=True)
  for ax in axes.ravel()[len(chosen):]:
    ax.set_visible(False)
  for j, (ax, u) in enumerate(zip(axes.ravel(), chosen)):
    colors = [plots.COLORS["train"]] * num_classes
    if mask[u]:
      colors[assoc[u]] = plots.COLORS["noisy"]
    ax.bar(np.arange(num_classes), counts_UxC[u], color=colors)
    ax.set_title(f"{j + 1}: neuron {u}", fontsize=7)
    ax.tick_params(labelsize=6)
    ax.set_xticks(range(num_classes))
  fig.suptitle(f"{title}: firing counts per digit; red = digit associated "
               f"({int(mask.sum())} of {len(mask)} neurons)", fontsize=9)
  fig.tight_layout()
  return fig


def plot_cifar(record, config) -> dict:
  """§6.4: the active fraction of every layer (test inputs), with and without LS."""
  names = list(record["ce"]["sparsity_test"])
  fig, axes = plots.figure(1, 1, width=11, height=4)
  ax = axes[0, 0]
  for key, label, color in (("ce", "cross-entropy", plots.COLORS["clean"]),
                            ("ls", f"label smoothing {config.cifar.smoothing:g}",
                             plots.COLORS["other"])):
    ax.plot(range(len(names)), [record[key]["sparsity_test"][k] for k in names], "o-",
            color=color, label=label)
  ax.set_xticks(range(len(names)))
  ax.set_xticklabels(names, rotation=70, fontsize=6)
  ax.set(ylabel="fraction of active units (test inputs)",
         title=f"§6.4: {config.cifar.model.name} on CIFAR-10, activity per layer")
  ax.legend()
  return {"sec64_cifar_sparsity.png": fig}
