"""Clean-priority learning, Fig. 1: the U-shaped test error under label noise.

The clean-priority MNIST CNN is trained with mini-batch SGD on labels of which 30% are
flipped (symmetric, exactly round(0.3·n_c) per class, each to a uniformly random other
class). The test error first falls well below the noise level, then rises as the net
memorizes the flipped labels; the training error against the given labels eventually
falls below the noise level.

  python -m experiments.u_curve --preset quick   # ≈3–4 min on 2 CPU cores, mnist5k
  python -m experiments.u_curve --preset paper   # full MNIST via TFDS, GPU/TPU

Expect (quick): best test error ≈0.05–0.10 early on, final test error ≈0.2–0.3,
final train error (given labels) below 0.3.
"""

import jax
import matplotlib
import ml_collections

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top

from noisejax import data, experiment, losses, models, noise, train
from noisejax.experiment import Claim


def get_config(preset: str) -> ml_collections.ConfigDict:
  """quick: mnist5k (4,000 train / 1,000 test), 20 epochs; paper: MNIST, 60,000 / 10,000.

  The paper does not state its Fig. 1 schedule; quick keeps the architecture, noise
  and optimizer and only the data size (mnist5k) and epoch count are scaled.
  """
  config = ml_collections.ConfigDict()
  config.seed = 0
  config.data = ml_collections.ConfigDict(dict(name="mnist5k", data_dir=None, limit=None))
  config.noise = ml_collections.ConfigDict(dict(kind="symmetric", rate=0.3))
  config.model = ml_collections.ConfigDict(dict(name="clean_priority_cnn"))
  config.loss = ml_collections.ConfigDict(dict(name="cross_entropy"))
  config.optim = ml_collections.ConfigDict(dict(
      name="momentum", lr=0.05, momentum=0.9, weight_decay=0.0, schedule="constant",
      batch_size=128, epochs=20, eval_every=0, checkpoint_every=5))
  if preset == "paper":
    config.data.name = "mnist"
    config.optim.epochs = 100
  return config


def plot_u_curve(history, noise_rate, early):
  fig, ax = plt.subplots(figsize=(6, 4))
  epochs = [r["epoch"] for r in history]
  ax.plot(epochs, [r["train_error"] for r in history], label="train (given labels)")
  ax.plot(epochs, [r["clean_error"] for r in history], label="train, clean subset")
  ax.plot(epochs, [r["noisy_error"] for r in history], label="train, noisy subset (given labels)")
  ax.plot(epochs, [r["test_error"] for r in history], label="test", color="k", lw=2)
  ax.axhline(noise_rate, ls="--", color="gray", label=f"noise level {noise_rate:g}")
  ax.axvline(early["epoch"], ls=":", color="k", label="early-stopping point")
  ax.set(xlabel="epoch", ylabel="classification error", ylim=(0, 1),
         title="U-shaped test error under label noise (clean-priority Fig. 1)")
  ax.legend(fontsize=7)
  return fig


def run(config, run: experiment.Run) -> list[Claim]:
  key_noise, key_init, key_train = jax.random.split(jax.random.key(config.seed), 3)
  train_set = data.load(config.data.name, "train", data_dir=config.data.data_dir,
                        limit=config.data.limit)
  test_set = data.load(config.data.name, "test", data_dir=config.data.data_dir)
  noisy = noise.corrupt(key_noise, train_set.y, train_set.num_classes, config.noise.kind,
                        config.noise.rate)
  run.save_noise(noisy)

  model = models.get_model(config.model.name, train_set.num_classes)
  loss_fn = losses.make_loss(config.loss.name, train_set.num_classes)
  batch_size = config.optim.batch_size or len(train_set.y)
  tx = train.make_optimizer(config.optim, len(train_set.y) // max(1, batch_size))
  state = train.create_state(model, key_init, train_set.x[:1], tx)
  splits = train.Data(train_set.x, noisy, test_set.x, test_set.y)
  _, history = train.fit(config.optim, run, state, loss_fn, splits, key=key_train)

  early = train.early_stopping_point(history)
  final = history[-1]
  run.savefig(plot_u_curve(history, noisy.rate, early), "u_curve.png")

  paper = "clean-priority"
  return [
      Claim("u_curve/best_test_below_noise", paper,
            "At the early-stopping point the test error is below the noise level (Fig. 1).",
            f"best test error < noise rate {noisy.rate:.3f}", early["test_error"],
            early["test_error"] < noisy.rate),
      Claim("u_curve/u_shape", paper,
            "The test error is U-shaped: its minimum is below the final test error.",
            "best test error < final test error",
            {"best": early["test_error"], "best_epoch": early["epoch"],
             "final": final["test_error"]},
            early["test_error"] < final["test_error"]),
      Claim("u_curve/memorizes_noise", paper,
            "Training on, the net fits the noise: the training error against the given labels "
            "falls below the noise level.",
            f"final train error (given labels) < noise rate {noisy.rate:.3f}",
            {"final_train_error": final["train_error"],
             "final_noisy_subset_error": final["noisy_error"]},
            final["train_error"] < noisy.rate),
  ]


if __name__ == "__main__":
  experiment.main("u_curve", get_config, run)
