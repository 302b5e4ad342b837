"""The run shared by the examples: float phase, TTQ phase, evaluation, export and report.

    float model --(float training | --pretrained | saved phase)--> float test accuracy
        --ttq_keras.quantize_model--> TTQ model (from the float weights, or from scratch)
        --(TTQ training)--> TTQ test accuracy, per-layer sparsity and Wp/Wn
        --> float / int8 / packed .tflite sizes (+ accuracy and latency where runnable)
        --> report.md, results.json, curves.png, weight_histograms.png, sparsity.png
"""

import dataclasses
import os
import shlex
import time
from typing import Callable, Optional

import numpy as np

from examples.common import report, training
from examples.common.compat import keras, tf, ttq_keras


@dataclasses.dataclass
class Data:
    """What a run needs from a dataset."""

    train: "tf.data.Dataset"  # batched, augmented, one pass per epoch
    test: "tf.data.Dataset"  # batched, normalized
    train_examples: int
    steps_per_epoch: int
    eval_images: np.ndarray  # normalized float32 test images for the .tflite runs
    eval_labels: np.ndarray
    representative_images: np.ndarray  # for int8 calibration


@dataclasses.dataclass
class Recipe:
    """Optimizer and regularization of one experiment (section 3.3 / 3.4 of ttq_algorithm.md)."""

    optimizer: str  # "sgd" (momentum 0.9) or "adam" (epsilon 1e-5)
    float_lr: float
    ttq_lr: float
    lr_boundaries: tuple  # fractions of a phase's steps
    lr_factors: tuple
    weight_decay: float
    weight_decay_include: Optional[Callable[[str], bool]] = None  # by original layer name
    ttq_from_float: bool = True  # CIFAR fine-tunes the float model; AlexNet starts from scratch

    def make_optimizer(self, lr, total_steps):
        schedule = training.piecewise_schedule(lr, total_steps, self.lr_boundaries, self.lr_factors)
        if self.optimizer == "sgd":
            return keras.optimizers.SGD(schedule, momentum=0.9)
        if self.optimizer == "adam":
            return keras.optimizers.Adam(schedule, epsilon=1e-5)
        raise ValueError(f"Unknown optimizer {self.optimizer!r}; expected 'sgd' or 'adam'.")


def _evaluate(model, test_ds):
    loss, acc = model.evaluate(test_ds, verbose=0)[:2]
    return float(loss), float(acc)


def run(*, title, build_model, data, recipe, cfg, command, notes=None):
    """Runs one experiment and writes its report. Returns the results dict.

    Args:
      title: report heading.
      build_model: () -> uncompiled float tf_keras model returning logits (called in scope).
      data: a `Data`.
      recipe: a `Recipe`.
      cfg: dict of flag values (see examples/common/flags.py).
      command: the command line, for the report.
      notes: list of strings added to the report.
    """
    started = time.time()
    notes = list(notes or [])
    training.require_core("quantize_model", "ternary_layers", "to_float_model")
    output_dir = cfg["output_dir"]
    os.makedirs(output_dir, exist_ok=True)
    keras.utils.set_random_seed(cfg["seed"])
    strategy = training.get_strategy(cfg["strategy"], cfg.get("tpu"))
    chief = training.is_chief(strategy)
    steps = data.steps_per_epoch
    results = {
        "title": title,
        "config": cfg,
        "command": command,
        "float": {"train_examples": data.train_examples},
        "ttq": {"train_examples": data.train_examples},
    }
    verbose = cfg["verbose"]
    histories = {}

    # ---------------------------------------------------------------- float phase
    with strategy.scope():
        float_model = build_model()
        float_epochs = cfg["float_epochs"]
        training.compile_model(
            float_model, recipe.make_optimizer(recipe.float_lr, max(1, float_epochs * steps))
        )
        training.add_weight_decay(float_model, recipe.weight_decay, recipe.weight_decay_include)
    results["model"] = {"name": float_model.name, "params": int(float_model.count_params())}
    float_trained = False
    if cfg.get("pretrained"):
        print(f"Loading pretrained float weights from {cfg['pretrained']}")
        training.load_weights(float_model, cfg["pretrained"])
        float_epochs, float_trained = 0, True
        results["float"]["pretrained"] = cfg["pretrained"]
    elif float_epochs > 0:
        if training.saved_weights_exist(output_dir, "float") and not cfg["retrain"]:
            print("Float phase already finished in this output_dir: loading its weights.")
            training.load_phase_weights(float_model, output_dir, "float")
        else:
            if cfg["retrain"]:
                training.reset_phase(output_dir, "float")
            print(f"== Float training: {float_epochs} epochs x {steps} steps")
            seconds = training.run_phase(
                float_model,
                "float",
                data.train,
                data.test,
                float_epochs,
                output_dir,
                verbose,
                cfg["validation_freq"],
            )
            results["float"]["train_seconds"] = seconds
            if chief:
                training.save_phase_weights(float_model, output_dir, "float")
        float_trained = True
    results["float"]["epochs"] = float_epochs
    if float_trained:
        loss, acc = _evaluate(float_model, data.test)
        results["float"].update(test_loss=loss, test_accuracy=acc)
        print(f"Float test accuracy: {acc:.4f}")
    histories["float"] = training.read_history(output_dir, "float")

    # ---------------------------------------------------------------- TTQ phase
    ttq_epochs = cfg["ttq_epochs"]
    with strategy.scope():
        start_model = float_model if (recipe.ttq_from_float and float_trained) else build_model()
        if not (recipe.ttq_from_float and float_trained):
            notes.append("TTQ trained from scratch (random init), not from the float weights.")
        ttq_model = ttq_keras.quantize_model(
            start_model,
            threshold=cfg["threshold"],
            keep_first_and_last_float=cfg["keep_first_and_last_float"],
            per_channel=cfg["per_channel"],
            scale_init=cfg["scale_init"],
            mode=cfg["ttq_mode"],
            recipe=cfg.get("recipe", "robust"),
        )
        training.compile_model(
            ttq_model, recipe.make_optimizer(recipe.ttq_lr, max(1, ttq_epochs * steps))
        )
        decayed = training.add_weight_decay(
            ttq_model, recipe.weight_decay, recipe.weight_decay_include
        )
    results["ttq"]["weight_decay_variables"] = len(decayed)
    has_bn = any(isinstance(lay, keras.layers.BatchNormalization) for lay in ttq_model.layers)
    if cfg.get("bn_reestimation_steps") and start_model is float_model and has_bn:
        ttq_keras.reestimate_batchnorm(ttq_model, data.train, cfg["bn_reestimation_steps"])
    if cfg["eval_before_finetune"] and recipe.ttq_from_float and float_trained:
        loss, acc = _evaluate(ttq_model, data.test)
        results["ttq"]["test_accuracy_before_training"] = acc
        print(f"Ternarized float model before TTQ training: test accuracy {acc:.4f}")
    if training.saved_weights_exist(output_dir, "ttq") and not cfg["retrain"]:
        print("TTQ phase already finished in this output_dir: loading its weights.")
        training.load_phase_weights(ttq_model, output_dir, "ttq")
    elif ttq_epochs > 0:
        if cfg["retrain"]:
            training.reset_phase(output_dir, "ttq")
        print(f"== TTQ training: {ttq_epochs} epochs x {steps} steps, t={cfg['threshold']}")
        seconds = training.run_phase(
            ttq_model,
            "ttq",
            data.train,
            data.test,
            ttq_epochs,
            output_dir,
            verbose,
            cfg["validation_freq"],
            extra_callbacks=training.ttq_callbacks(output_dir),
        )
        results["ttq"]["train_seconds"] = seconds
        if chief:
            training.save_phase_weights(ttq_model, output_dir, "ttq")
    results["ttq"]["epochs"] = ttq_epochs
    loss, acc = _evaluate(ttq_model, data.test)
    results["ttq"].update(test_loss=loss, test_accuracy=acc)
    print(f"TTQ test accuracy: {acc:.4f}")
    histories["ttq"] = training.read_history(output_dir, "ttq")
    results["history"] = histories

    # ---------------------------------------------------------------- statistics and export
    if hasattr(ttq_keras, "summary"):
        try:
            ttq_keras.summary(ttq_model)
        except Exception as e:  # noqa: BLE001
            notes.append(f"ttq_keras.summary failed: {type(e).__name__}: {e}")
    stats = report.layer_stats(ttq_model)
    results["ttq"]["layers"] = stats
    results["ttq"]["sparsity"] = report.overall_sparsity(stats)
    if not chief:
        return results
    if cfg["tflite"]:
        start = time.time()
        n = cfg.get("tflite_eval_examples") or len(data.eval_labels)
        results["tflite"] = report.export_and_benchmark(
            ttq_model,
            output_dir,
            data.eval_images[:n],
            data.eval_labels[:n],
            data.representative_images,
            num_threads=cfg["num_threads"],
            latency_runs=cfg["latency_runs"],
            notes=notes,
        )
        results["tflite_seconds"] = time.time() - start
    report.make_plots(output_dir, ttq_model, stats, histories, cfg["threshold"], notes)
    results["notes"] = notes
    results["wall_seconds"] = time.time() - started
    table = report.write_report(output_dir, title, results, results["command"], notes, report.PLOTS)
    print("\n" + title + "\n\n" + table + "\n")
    for n in notes:
        print("note:", n)
    print(f"\nReport: {os.path.join(output_dir, 'report.md')}")
    return results


def command_line(module, argv):
    """`python -m module args...` for the report (argv[0] is the program name)."""
    return " ".join(["python", "-m", module] + [shlex.quote(a) for a in list(argv)[1:]])


def numpy_eval_arrays(test_ds, limit):
    """Unbatches up to `limit` examples of a batched (image, label) dataset into NumPy."""
    images, labels = [], []
    count = 0
    for x, y in test_ds:
        images.append(x.numpy())
        labels.append(y.numpy())
        count += len(y)
        if limit and count >= limit:
            break
    images = np.concatenate(images)[:limit] if images else np.zeros((0,))
    labels = np.concatenate(labels)[:limit] if labels else np.zeros((0,))
    return images.astype(np.float32), labels
