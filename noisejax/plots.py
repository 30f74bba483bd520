"""Figures: one matplotlib setup, one palette, the recurring panels.

Every experiment draws with these so clean / noisy / other samples have the same colour
and name in every figure. Plot functions return figures; only the runner saves them
(`save`). Recurring panels:

  curves(ax, x, {label: values}, ...)  training curves with the noise level and the
                                        early-stopping point marked
  mean_band(ax, x, values_SxT, ...)     the mean over seeds with a ±1 std band
  loss_histograms(ax, losses, is_noisy) clean vs noisy per-sample losses, one binning and
                                        normalization (density) for both
"""

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top,wrong-import-position
import numpy as np  # pylint: disable=g-import-not-at-top,wrong-import-position

COLORS = {"clean": "tab:blue", "noisy": "tab:red", "other": "tab:green", "test": "black",
          "train": "tab:gray"}
LABELS = {"clean": "clean", "noisy": "noisy", "other": "other", "test": "test",
          "train": "train"}
DPI = 110


def figure(nrows=1, ncols=1, *, width=5.5, height=3.8, **kwargs):
  """(fig, axes) with axes always a 2-D array."""
  return plt.subplots(nrows, ncols, figsize=(width * ncols, height * nrows), squeeze=False,
                      **kwargs)


def save(fig, path):
  fig.savefig(path, dpi=DPI, bbox_inches="tight")
  plt.close(fig)
  return path


def close(fig):
  plt.close(fig)


def mark_noise_level(ax, rate, color="gray"):
  ax.axhline(rate, ls="--", color=color, lw=1, label=f"noise level {rate:g}")


def mark_early_stopping(ax, x, color="k", label="early-stopping point"):
  ax.axvline(x, ls=":", color=color, lw=1, label=label)


def curves(ax, x, series: dict, *, colors=None, styles=None, noise_level=None,
           early_stop=None, xlabel="epoch", ylabel="classification error", legend=True):
  """One line per series; optional noise-level line and early-stopping marker."""
  for i, (label, values) in enumerate(series.items()):
    color = (colors or {}).get(label, f"C{i}")
    ax.plot(x, values, (styles or {}).get(label, "-"), color=color, lw=1.4, label=label)
  if noise_level is not None:
    mark_noise_level(ax, noise_level)
  if early_stop is not None:
    mark_early_stopping(ax, early_stop)
  ax.set(xlabel=xlabel, ylabel=ylabel)
  if legend:
    ax.legend(fontsize=7)


def mean_band(ax, x, values_SxT, *, color=None, label=None, ls="-", band="std"):
  """The mean over seeds (axis 0) with a ±1 standard-deviation (or min–max) band."""
  values_SxT = np.atleast_2d(np.asarray(values_SxT, dtype=float))
  mean = np.nanmean(values_SxT, axis=0)
  line, = ax.plot(x, mean, ls, color=color, lw=1.5,
                  label=f"{label} (mean of {len(values_SxT)})" if label and len(values_SxT) > 1
                  else label)
  if len(values_SxT) > 1:
    if band == "std":
      spread = np.nanstd(values_SxT, axis=0)
      low, high = mean - spread, mean + spread
    else:
      low, high = np.nanmin(values_SxT, axis=0), np.nanmax(values_SxT, axis=0)
    ax.fill_between(x, low, high, color=line.get_color(), alpha=0.2, lw=0)
  return line


def loss_histograms(ax, losses_N, is_noisy_N, *, bins=40, log=False, xlabel="loss",
                    title=None, names=("clean", "noisy")):
  """Histograms of the clean and the noisy samples' losses on one set of bins, as
  densities (each subset integrates to 1)."""
  losses_N = np.asarray(losses_N, dtype=float).ravel()
  mask = np.asarray(is_noisy_N, dtype=bool).ravel()
  if log:
    positive = np.clip(losses_N, 1e-12, None)
    edges = np.geomspace(positive.min() / 1.2, positive.max() * 1.2, bins)
    losses_N = positive
    ax.set_xscale("log")
  else:
    edges = np.linspace(0, max(float(losses_N.max()), 1e-6), bins)
  for subset, selected in ((names[0], ~mask), (names[1], mask)):
    key = "clean" if subset == names[0] else "noisy"
    if selected.any():
      ax.hist(losses_N[selected], bins=edges, density=True, alpha=0.6, color=COLORS[key],
              label=f"{subset} ({int(selected.sum())})")
  ax.set(xlabel=xlabel, ylabel="density")
  if title:
    ax.set_title(title, fontsize=9)
  ax.legend(fontsize=7)
