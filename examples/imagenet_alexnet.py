r"""TTQ on the BN AlexNet of the official code, trained from scratch on ImageNet (TFDS).

Paper recipe (docs section 3.4): conv0 (first conv) and fct (last dense) stay float, the other
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


from absl import app
from absl import flags as absl_flags

from examples.common import data as data_lib
from examples.common import experiment
from examples.common import flags as common_flags
from examples.common import models
from examples.common.flags import FLAGS

absl_flags.DEFINE_string("manual_dir", None, "TFDS manual_dir holding the ImageNet tar files.")
absl_flags.DEFINE_boolean("synthetic", False, "Random images and labels (smoke run).")
absl_flags.DEFINE_integer("image_size", 224, "Input size (>= 64; 224 in the paper).")
absl_flags.DEFINE_integer("num_classes", None, "Classes (default: 1000, or the dataset's).")
absl_flags.DEFINE_float("width_mult", 1.0, "Multiplies every channel/unit count (smoke runs).")
absl_flags.DEFINE_enum(
    "group_mode",
    "split",
    ["split", "groups"],
    "Grouped convs as two Conv2D branches (split) or Conv2D(groups=2).",
)
absl_flags.adopt_module_key_flags(common_flags)  # list the shared flags in --help
common_flags.register_extra(
    "manual_dir", "synthetic", "image_size", "num_classes", "width_mult", "group_mode"
)

MODULE = "examples.imagenet_alexnet"

PAPER_FLAGS = dict(
    batch_size=128,
    float_epochs=0,
    ttq_epochs=100,
    lr=1e-4,
    lr_boundaries=["0.56", "0.64"],
    lr_factors=["0.2", "0.04"],
    weight_decay=5e-6,
)

SYNTHETIC_FLAGS = dict(train_examples=256, test_examples=64, tflite_eval_examples=32)


def _is_fc(layer_name):
    return layer_name.startswith("fc")


def make_data(cfg):
    batch_size, size = cfg["batch_size"], cfg["image_size"]
    if cfg["synthetic"]:
        images = data_lib.synthetic_image_data(
            cfg["train_examples"],
            cfg["test_examples"],
            size,
            cfg["num_classes"] or 1000,
            seed=cfg["seed"],
        )
        n_eval = cfg["tflite_eval_examples"] or len(images.x_test)
        data = experiment.Data(
            train=data_lib.train_dataset(images, batch_size, pad=size // 8, seed=cfg["seed"]),
            test=data_lib.eval_dataset(images, batch_size),
            train_examples=len(images.x_train),
            steps_per_epoch=len(images.x_train) // batch_size,
            eval_images=images.normalize(images.x_test[:n_eval]),
            eval_labels=images.y_test[:n_eval],
            representative_images=images.normalize(images.x_train[:32]),
        )
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
            f"--num_classes={cfg['num_classes']} but imagenet2012 has " f"{num_classes} classes."
        )
    train_examples = cfg["train_examples"] or 1281167
    n_eval = cfg["tflite_eval_examples"] or 1000
    eval_images, eval_labels = experiment.numpy_eval_arrays(test, n_eval)
    rep, _ = experiment.numpy_eval_arrays(train, 64)
    data = experiment.Data(
        train=train,
        test=test,
        train_examples=train_examples,
        steps_per_epoch=train_examples // batch_size,
        eval_images=eval_images,
        eval_labels=eval_labels,
        representative_images=rep,
    )
    return data, num_classes, "ImageNet (imagenet2012)"


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    common_flags.quiet_logging()
    common_flags.apply_defaults(PAPER_FLAGS)
    if FLAGS.synthetic:
        common_flags.apply_defaults(SYNTHETIC_FLAGS)
    if FLAGS.output_dir is None:
        FLAGS.output_dir = "output/alexnet" + ("_synthetic" if FLAGS.synthetic else "")
    if FLAGS.image_size < 64:
        raise app.UsageError(f"--image_size must be >= 64. Received: {FLAGS.image_size}")
    cfg = common_flags.flag_values()
    data, num_classes, source = make_data(cfg)
    notes = [f"Grouped convs built with group_mode={cfg['group_mode']!r}."]
    shape = (cfg["image_size"], cfg["image_size"], 3)
    recipe = experiment.Recipe(
        optimizer="adam",
        float_lr=cfg["lr"],
        ttq_lr=cfg["ttq_lr"] if cfg["ttq_lr"] is not None else cfg["lr"],
        lr_boundaries=tuple(float(b) for b in cfg["lr_boundaries"]),
        lr_factors=tuple(float(f) for f in cfg["lr_factors"]),
        weight_decay=cfg["weight_decay"],
        weight_decay_include=_is_fc,
        ttq_from_float=False,
    )
    return experiment.run(
        title=f"TTQ BN-AlexNet on {source} ({cfg['image_size']}px, width x{cfg['width_mult']})",
        build_model=lambda: models.alexnet_bn(
            shape, num_classes, cfg["width_mult"], cfg["group_mode"]
        ),
        data=data,
        recipe=recipe,
        cfg=cfg,
        command=experiment.command_line(MODULE, _ENTRY.argv or argv),
        notes=notes,
    )


_ENTRY = common_flags.EntryPoints(lambda argv: main(argv))
run_main = _ENTRY.run_main


if __name__ == "__main__":
    app.run(_ENTRY.cli)
