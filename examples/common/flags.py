"""absl flags shared by the examples, and the per-recipe defaults and run records built on them.

Flags whose default depends on the recipe (learning rate, epochs, ...) default to None here; each
example gives them its paper values with `set_defaults` (absl's `FLAGS.set_default`), so a flag
passed on the command line always wins.
"""

import shlex

from absl import flags, logging

from ttq_keras import tf

FLAGS = flags.FLAGS

flags.DEFINE_string("output_dir", None, "Where the report, checkpoints and TensorBoard logs go.")
flags.DEFINE_enum(
    "strategy", "default", ["default", "mirrored", "multi_worker", "tpu"], "tf.distribute strategy."
)
flags.DEFINE_string("tpu", None, "TPU address for --strategy=tpu.")
flags.DEFINE_string("data_dir", None, "TFDS data_dir.")
flags.DEFINE_boolean("download", True, "Let TFDS download/prepare the dataset if needed.")
flags.DEFINE_integer("batch_size", None, "Global batch size.")
flags.DEFINE_integer("float_epochs", None, "Epochs of float (pre-)training.")
flags.DEFINE_integer("ttq_epochs", None, "Epochs of TTQ training.")
flags.DEFINE_float("lr", None, "Initial learning rate of the float phase.")
flags.DEFINE_float("ttq_lr", None, "Initial learning rate of the TTQ phase (default: --lr).")
flags.DEFINE_list(
    "lr_boundaries",
    None,
    "LR drop points as fractions of each phase's steps (paper schedule scaled).",
)
flags.DEFINE_list("lr_factors", None, "LR multipliers after each boundary.")
flags.DEFINE_float("weight_decay", None, "Weight decay: coefficient * sum(w^2) / 2.")
flags.DEFINE_float(
    "threshold",
    None,
    "TTQ threshold t (default: the recipe's: robust 0.7 * mean|w|, paper 0.05 * max|w|).",
)
flags.DEFINE_enum(
    "threshold_statistic",
    None,
    ["max", "mean"],
    "delta = t * max|w| or t * mean|w| per layer (default: the recipe's).",
)
flags.DEFINE_boolean(
    "keep_first_and_last_float", True, "Keep the first conv and the last dense layer in float."
)
flags.DEFINE_boolean("per_channel", False, "Per-output-channel Wp/Wn instead of per layer.")
flags.DEFINE_enum("recipe", "robust", ["robust", "paper"], "quantize_model's recipe.")
flags.DEFINE_enum("scale_init", None, ["ones", "data", "auto"], "Wp/Wn init (default: recipe's).")
flags.DEFINE_integer("bn_reestimation_steps", 20, "Batches to re-estimate BN after ternarizing.")
flags.DEFINE_enum("ttq_mode", "ttq", ["ttq", "twn"], "Trained scales (ttq) or TWN scales.")
flags.DEFINE_integer("train_examples", None, "Use only this many training examples.")
flags.DEFINE_integer("test_examples", None, "Use only this many test examples.")
flags.DEFINE_string(
    "pretrained",
    None,
    "Float weights (model.save_weights file or checkpoint) to start TTQ from; "
    "skips float training.",
)
flags.DEFINE_boolean(
    "retrain",
    False,
    "Ignore finished phases saved in --output_dir (by default a rerun reuses "
    "them and an interrupted phase resumes from its last epoch).",
)
flags.DEFINE_integer("validation_freq", 1, "Evaluate on the test set every N epochs.")
flags.DEFINE_boolean(
    "eval_before_finetune",
    True,
    "Report the test accuracy of the ternarized model before TTQ training.",
)
flags.DEFINE_boolean("tflite", True, "Export float/int8/packed .tflite and benchmark them.")
flags.DEFINE_integer(
    "tflite_eval_examples", None, "Test examples run through each .tflite (default: all)."
)
flags.DEFINE_integer("latency_runs", 50, "Invokes timed per .tflite (median reported).")
flags.DEFINE_integer("num_threads", 2, "TFLite interpreter threads.")
flags.DEFINE_integer("seed", 0, "Random seed.")
flags.DEFINE_integer("verbose", 1, "Keras fit verbosity (1 = progress bar, 2 = one line/epoch).")


def set_defaults(**defaults):
    """`FLAGS.set_default` for each name: a flag the user did not pass takes the new default."""
    for name, value in defaults.items():
        FLAGS.set_default(name, value)


def quiet_logging():
    """Hides the INFO lines of TF's Python side (SavedModel, TFLite); --verbosity overrides."""
    if not FLAGS["verbosity"].present:
        logging.set_verbosity(logging.WARNING)
        tf.get_logger().setLevel("ERROR")


def flag_values(module):
    """{name: value} of the flags `module` (the example) defines or adopts, for results.json."""
    return {f.name: f.value for f in FLAGS.get_key_flags_for_module(module)}


def command_line(module_name, module):
    """`python -m module_name` with every flag of `module` that is not at its default.

    Running it again reproduces (or resumes) the run; it goes into the report.
    """
    args = [
        f.serialize() for f in FLAGS.get_key_flags_for_module(module) if not f.using_default_value
    ]
    return " ".join(["python", "-m", module_name] + [shlex.quote(a) for a in args])
