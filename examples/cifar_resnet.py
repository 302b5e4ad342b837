r"""TTQ on a pre-activation ResNet-(6n+2): CIFAR-10 (TFDS) or Fashion-MNIST (offline IDX files).

Paper recipe (Zhu et al., ICLR 2017, CIFAR-10 experiment, and the official code): train the float
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

import sys

from absl import app, flags

from examples.common import data as data_lib
from examples.common import experiment
from examples.common import flags as common_flags
from examples.common import models, progress

FLAGS = flags.FLAGS

flags.DEFINE_integer("depth", 20, "ResNet depth 6n+2: 20, 32, 44, 56, ...")
flags.DEFINE_string(
    "dataset",
    "cifar10",
    "cifar10 (or any TFDS image dataset with 'train'/'test' splits), or "
    "fashion_mnist to read the offline IDX files (no network needed).",
)
flags.DEFINE_string(
    "fashion_mnist_dir",
    None,
    "Folder with the Fashion-MNIST IDX .gz files "
    f"(default {data_lib.DEFAULT_FASHION_MNIST_DIR}).",
)
flags.DEFINE_boolean("demo", False, "The `make demo` budget: Fashion-MNIST ResNet-20, see DEMO.")
flags.adopt_module_key_flags(common_flags)  # list the shared flags in --help

MODULE = "examples.cifar_resnet"

# The paper's CIFAR-10 recipe. 160 epochs per phase ("most models converge after 160
# epochs"); the LR drops of the official scripts at epochs 82 and 123 become 50% / 75%.
PAPER_RECIPE = dict(
    batch_size=128,
    float_epochs=160,
    ttq_epochs=160,
    lr=0.1,
    lr_boundaries=["0.5", "0.75"],
    lr_factors=["0.1", "0.01"],
    weight_decay=2e-4,
)

# `make demo`: about 15 minutes on 2 CPU cores (measured numbers in examples/README.md).
DEMO = dict(
    dataset="fashion_mnist",
    depth=20,
    train_examples=20000,
    float_epochs=3,
    ttq_epochs=3,
    tflite_eval_examples=2000,
    latency_runs=30,
    output_dir="output_demo",
)


def set_recipe_defaults():
    """The paper recipe, then the --demo budget, as defaults: flags the user passes win."""
    common_flags.set_defaults(**PAPER_RECIPE)
    if FLAGS.demo:
        common_flags.set_defaults(**DEMO)
    else:
        common_flags.set_defaults(output_dir=f"output/{FLAGS.dataset}_resnet{FLAGS.depth}")


def load_images(cfg):
    """The in-memory dataset of --dataset, cut to --train_examples / --test_examples."""
    images = data_lib.load_image_data(
        cfg["dataset"],
        data_dir=cfg["data_dir"],
        download=cfg["download"],
        fashion_mnist_dir=cfg["fashion_mnist_dir"],
    )
    return images.subset(cfg["train_examples"], cfg["test_examples"], seed=cfg["seed"])


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    common_flags.quiet_logging()
    set_recipe_defaults()
    this_module = sys.modules[__name__]
    cfg = common_flags.flag_values(this_module)
    # Before any TF op (loading the data runs some): MultiWorkerMirroredStrategy configures the
    # collective ops, which TF allows only at program startup.
    strategy = experiment.make_strategy(cfg)
    with progress.stage(f"Loading {cfg['dataset']}"):
        images = load_images(cfg)
    notes = []
    if images.name == "fashion_mnist":
        notes.append(
            "Fashion-MNIST images are used at their native 28x28x1 (stages at 28/14/7), "
            "not padded to 32x32; augmentation is the CIFAR one (pad 4, crop, flip)."
        )
    data = experiment.Data.from_images(images, cfg, eval_batch_size=max(cfg["batch_size"], 256))
    experiment.run(
        strategy=strategy,
        title=(
            f"TTQ ResNet-{cfg['depth']} on {images.name} "
            f"({data.train_examples} train / {len(images.x_test)} test examples)"
        ),
        build_model=lambda: models.resnet_cifar(
            cfg["depth"], images.input_shape, images.num_classes
        ),
        data=data,
        recipe=experiment.Recipe.from_flags(cfg, "sgd", ttq_from_float=True),
        cfg=cfg,
        command=common_flags.command_line(MODULE, this_module),
        notes=notes,
    )


if __name__ == "__main__":
    common_flags.set_defaults(**PAPER_RECIPE)  # so that --help shows the recipe's defaults
    app.run(main)
