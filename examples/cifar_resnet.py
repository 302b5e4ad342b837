r"""TTQ on a pre-activation ResNet-(6n+2): CIFAR-10 (TFDS) or Fashion-MNIST (offline IDX files).

Paper recipe (Zhu et al., ICLR 2017, and the official code; docs section 3.3): train the float
ResNet (or load it with --pretrained), ternarize it with ttq_keras.quantize_model (t = 0.05, first
conv and last dense kept float) and fine-tune with momentum SGD 0.9, LR 0.1 dropped x0.1 / x0.01 at
50% / 75% of each phase, weight decay 2e-4 on every kernel and on Wp/Wn, 4-pixel pad + random
crop + flip. Reports float and TTQ test accuracy of the same run, per-layer sparsity and Wp/Wn,
.tflite sizes (float / int8 / packed ternary) and writes report.md, results.json and plots.

    python -m examples.cifar_resnet --depth 20 --output_dir output/cifar_r20
    python -m examples.cifar_resnet --dataset fashion_mnist --depth 20 --output_dir output/fm
    python -m examples.cifar_resnet --demo          # the `make demo` budget (~15 min, 2 cores)

Interrupted runs resume from the last epoch when the same command is run again.
"""


import numpy as np
from absl import app
from absl import flags as absl_flags

from examples.common import data as data_lib
from examples.common import experiment
from examples.common import flags as common_flags
from examples.common import models
from examples.common.flags import FLAGS

absl_flags.DEFINE_integer("depth", 20, "ResNet depth 6n+2: 20, 32, 44, 56, ...")
absl_flags.DEFINE_string(
    "dataset",
    "cifar10",
    "cifar10 (or any TFDS image dataset with 'train'/'test' splits), or "
    "fashion_mnist to read the offline IDX files (no network needed).",
)
absl_flags.DEFINE_string(
    "fashion_mnist_dir",
    None,
    "Folder with the Fashion-MNIST IDX .gz files "
    f"(default {data_lib.DEFAULT_FASHION_MNIST_DIR}).",
)
absl_flags.DEFINE_boolean(
    "demo", False, "The `make demo` budget: Fashion-MNIST ResNet-20, see DEMO_FLAGS."
)
absl_flags.adopt_module_key_flags(common_flags)  # list the shared flags in --help
common_flags.register_extra("depth", "dataset", "fashion_mnist_dir", "demo")

MODULE = "examples.cifar_resnet"

# Section 3.3 of docs/ttq_algorithm.md. 160 epochs per phase ("most models converge after 160
# epochs"); the LR drops of the official scripts at epochs 82 and 123 become 50% / 75%.
PAPER_FLAGS = dict(
    batch_size=128,
    float_epochs=160,
    ttq_epochs=160,
    lr=0.1,
    lr_boundaries=["0.5", "0.75"],
    lr_factors=["0.1", "0.01"],
    weight_decay=2e-4,
)

# `make demo`: about 15 minutes on 2 CPU cores (measured numbers in examples/README.md).
DEMO_FLAGS = dict(
    dataset="fashion_mnist",
    depth=20,
    train_examples=20000,
    float_epochs=3,
    ttq_epochs=3,
    tflite_eval_examples=2000,
    latency_runs=30,
    verbose=2,
    output_dir="output_demo",
)


def load_data(cfg):
    """The in-memory dataset of --dataset, cut to --train_examples / --test_examples."""
    images = data_lib.load_image_data(
        cfg["dataset"],
        data_dir=cfg["data_dir"],
        download=cfg["download"],
        fashion_mnist_dir=cfg["fashion_mnist_dir"],
    )
    return images.subset(cfg["train_examples"], cfg["test_examples"], seed=cfg["seed"])


def make_data(images, cfg):
    batch_size = cfg["batch_size"]
    if len(images.x_train) < batch_size:
        raise ValueError(
            f"--train_examples ({len(images.x_train)}) must be at least "
            f"--batch_size ({batch_size})."
        )
    n_eval = cfg["tflite_eval_examples"] or len(images.x_test)
    rep = np.random.RandomState(cfg["seed"]).permutation(len(images.x_train))[:128]
    return experiment.Data(
        train=data_lib.train_dataset(images, batch_size, seed=cfg["seed"]),
        test=data_lib.eval_dataset(images, max(batch_size, 256)),
        train_examples=len(images.x_train),
        steps_per_epoch=len(images.x_train) // batch_size,
        eval_images=images.normalize(images.x_test[:n_eval]),
        eval_labels=images.y_test[:n_eval],
        representative_images=images.normalize(images.x_train[rep]),
    )


def recipe_from(cfg):
    return experiment.Recipe(
        optimizer="sgd",
        float_lr=cfg["lr"],
        ttq_lr=cfg["ttq_lr"] if cfg["ttq_lr"] is not None else cfg["lr"],
        lr_boundaries=tuple(float(b) for b in cfg["lr_boundaries"]),
        lr_factors=tuple(float(f) for f in cfg["lr_factors"]),
        weight_decay=cfg["weight_decay"],
        ttq_from_float=True,
    )


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    common_flags.quiet_logging()
    common_flags.apply_defaults(PAPER_FLAGS)
    if FLAGS.demo:
        common_flags.apply_defaults(DEMO_FLAGS)
    if FLAGS.output_dir is None:
        FLAGS.output_dir = f"output/{FLAGS.dataset}_resnet{FLAGS.depth}"
    cfg = common_flags.flag_values()
    images = load_data(cfg)
    notes = []
    if images.name == "fashion_mnist":
        notes.append(
            "Fashion-MNIST images are used at their native 28x28x1 (stages at 28/14/7), "
            "not padded to 32x32; augmentation is the CIFAR one (pad 4, crop, flip)."
        )
    data = make_data(images, cfg)
    title = (
        f"TTQ ResNet-{cfg['depth']} on {images.name} "
        f"({data.train_examples} train / {len(images.x_test)} test examples)"
    )
    return experiment.run(
        title=title,
        build_model=lambda: models.resnet_cifar(
            cfg["depth"], images.input_shape, images.num_classes
        ),
        data=data,
        recipe=recipe_from(cfg),
        cfg=cfg,
        command=experiment.command_line(MODULE, _ENTRY.argv or argv),
        notes=notes,
    )


_ENTRY = common_flags.EntryPoints(lambda argv: main(argv))
run_main = _ENTRY.run_main


if __name__ == "__main__":
    app.run(_ENTRY.cli)
