r"""TTQ on the BN AlexNet of the official code, trained from scratch on ImageNet (TFDS).

Paper recipe (ImageNet experiment and the official code): conv0 (first conv) and fct (last dense) stay float, the other
five layers are ternary (t = 0.05; the official log used 0.049); Adam LR 1e-4, epsilon 1e-5, LR x0.2
at epoch 56 and again at 64 of 100 (here 56% / 64% of --ttq_epochs); weight decay 5e-6 on the fc
layers only (fc0/fc1 kernels with their Wp/Wn, and fct); batch 128. No float pre-training:
--float_epochs > 0 trains a float baseline of the same net for comparison, and TTQ still starts from
scratch.

Grouped convolutions (conv1, conv3, conv4 have 2 groups): with --group_mode=split (default) each
group is its own Conv2D on half of the channels, concatenated, so each half has its own Wp/Wn and
threshold (the official code shares them across groups). The packed .tflite format has no grouped
conv, which is why split is the default; --group_mode=groups uses Conv2D(groups=2) when
ttq_keras.quantize_model accepts it.

    python -m examples.imagenet_alexnet --data_dir ~/tensorflow_datasets \
        --manual_dir ~/imagenet_tars --output_dir output/alexnet
    python -m examples.imagenet_alexnet --synthetic --image_size 64 --width_mult 0.125  # smoke
"""

import sys

from absl import app, flags

from examples.common import data as data_lib
from examples.common import experiment
from examples.common import flags as common_flags
from examples.common import models, progress

FLAGS = flags.FLAGS

flags.DEFINE_string("manual_dir", None, "TFDS manual_dir holding the ImageNet tar files.")
flags.DEFINE_boolean("synthetic", False, "Random images and labels (smoke run).")
flags.DEFINE_integer("image_size", 224, "Input size (>= 64; 224 in the paper).", lower_bound=64)
flags.DEFINE_integer("num_classes", None, "Classes (default: 1000, or the dataset's).")
flags.DEFINE_float("width_mult", 1.0, "Multiplies every channel/unit count (smoke runs).")
flags.DEFINE_enum(
    "group_mode",
    "split",
    ["split", "groups"],
    "Grouped convs as two Conv2D branches (split) or Conv2D(groups=2).",
)
flags.adopt_module_key_flags(common_flags)  # list the shared flags in --help

MODULE = "examples.imagenet_alexnet"

PAPER_RECIPE = dict(
    batch_size=128,
    float_epochs=0,
    ttq_epochs=100,
    lr=1e-4,
    lr_boundaries=["0.56", "0.64"],
    lr_factors=["0.2", "0.04"],
    weight_decay=5e-6,
)

SYNTHETIC = dict(train_examples=256, test_examples=64, tflite_eval_examples=32)


def set_recipe_defaults():
    """The paper recipe, then the --synthetic budget, as defaults: flags the user passes win."""
    common_flags.set_defaults(**PAPER_RECIPE)
    if FLAGS.synthetic:
        common_flags.set_defaults(**SYNTHETIC)
    common_flags.set_defaults(
        output_dir="output/alexnet" + ("_synthetic" if FLAGS.synthetic else "")
    )


def _is_fc(layer_name):
    return layer_name.startswith("fc")


def make_data(cfg):
    """(experiment.Data, number of classes, description of the source)."""
    batch_size, size = cfg["batch_size"], cfg["image_size"]
    if cfg["synthetic"]:
        images = data_lib.synthetic_image_data(
            cfg["train_examples"],
            cfg["test_examples"],
            size,
            cfg["num_classes"] or 1000,
            seed=cfg["seed"],
        )
        data = experiment.Data.from_images(images, cfg, pad=size // 8, representative_examples=32)
        return data, images.num_classes, "synthetic random data"
    train, test, num_classes = data_lib.imagenet_datasets(
        cfg["data_dir"],
        cfg["manual_dir"],
        batch_size,
        size,
        cfg["train_examples"],
        cfg["test_examples"],
        download=cfg["download"],
    )
    if cfg["num_classes"] and cfg["num_classes"] != num_classes:
        raise app.UsageError(
            f"--num_classes={cfg['num_classes']} but imagenet2012 has {num_classes} classes."
        )
    train_examples = cfg["train_examples"] or 1281167
    eval_images, eval_labels = experiment.numpy_eval_arrays(
        test, cfg["tflite_eval_examples"] or 1000
    )
    representative, _ = experiment.numpy_eval_arrays(train, 64)
    data = experiment.Data(
        train=train,
        test=test,
        train_examples=train_examples,
        steps_per_epoch=train_examples // batch_size,
        eval_images=eval_images,
        eval_labels=eval_labels,
        representative_images=representative,
    )
    return data, num_classes, "ImageNet (imagenet2012)"


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
    with progress.stage("Preparing the data"):
        data, num_classes, source = make_data(cfg)
    shape = (cfg["image_size"], cfg["image_size"], 3)
    experiment.run(
        strategy=strategy,
        title=f"TTQ BN-AlexNet on {source} ({cfg['image_size']}px, width x{cfg['width_mult']})",
        build_model=lambda: models.alexnet_bn(
            shape, num_classes, cfg["width_mult"], cfg["group_mode"]
        ),
        data=data,
        recipe=experiment.Recipe.from_flags(
            cfg, "adam", weight_decay_include=_is_fc, ttq_from_float=False
        ),
        cfg=cfg,
        command=common_flags.command_line(MODULE, this_module),
        notes=[f"Grouped convs built with group_mode={cfg['group_mode']!r}."],
    )


if __name__ == "__main__":
    common_flags.set_defaults(**PAPER_RECIPE)  # so that --help shows the recipe's defaults
    app.run(main)
