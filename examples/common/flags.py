"""absl flags shared by the examples.

Flags whose default depends on the experiment (learning rate, epochs, ...) default to None here;
each example fills in its paper recipe through `apply_defaults`.
"""

import sys

from absl import flags, logging

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
flags.DEFINE_float("threshold", 0.05, "TTQ threshold t: delta = t * max|w| per layer.")
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


def quiet_logging():
    """absl INFO lines from TF's SavedModel/TFLite code are noise here; --verbosity overrides."""
    if not FLAGS["verbosity"].present:
        logging.set_verbosity(logging.WARNING)


def apply_defaults(defaults):
    """Sets every flag in `defaults` that the user did not pass on the command line."""
    for name, value in defaults.items():
        if not FLAGS[name].present:
            FLAGS[name].value = value


def flag_values():
    """The values of the shared and registered example flags, for results.json."""
    names = [f.name for f in FLAGS.get_flags_for_module(__name__)] + sorted(_EXTRA)
    return {n: FLAGS[n].value for n in names}


_EXTRA = set()


def register_extra(*names):
    """Adds example-specific flags to the set recorded in results.json."""
    _EXTRA.update(names)


class EntryPoints:
    """The two ways an example runs: `app.run(cli)` from the shell, `run_main(argv)` in tests.

    Both remember the argv the example was started with (`argv`), so that its report can print
    the exact command.
    """

    def __init__(self, main):
        self._main = main
        self.argv = []

    def run_main(self, argv):
        """In-process entry point (tests): parses `argv` (argv[0] = program name), runs main."""
        FLAGS.unparse_flags()
        FLAGS(argv)
        self.argv[:] = argv
        try:
            return self._main(argv[:1])
        finally:
            self.argv.clear()

    def cli(self, argv):
        self.argv[:] = sys.argv
        self._main(argv)  # returns the results dict; app.run would treat it as an exit status
