"""The run shared by the examples: float phase, TTQ phase, evaluation, export and report.

    float model --(float training | --pretrained | saved phase)--> float test accuracy
        --ttq_keras.quantize_model--> TTQ model (from the float weights, or from scratch)
        --(TTQ training)--> TTQ test accuracy, per-layer sparsity and Wp/Wn
        --> float / int8 / packed .tflite sizes (+ accuracy and latency where runnable)
        --> report.md, results.json, curves.png, weight_histograms.png, sparsity.png
"""

import dataclasses
import os
import time
from typing import Callable, Optional

import numpy as np

import ttq_keras
from examples.common import data as data_lib
from examples.common import progress, report, training
from ttq_keras import keras, tf


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

    @classmethod
    def from_images(cls, images, cfg, pad=4, eval_batch_size=None, representative_examples=128):
        """The pipelines of an in-memory `data.ImageData` under the run's flags.

        `pad` is the random-crop padding in pixels; the int8 calibration images are a fixed
        random sample of the training set.
        """
        batch_size = cfg["batch_size"]
        if len(images.x_train) < batch_size:
            raise ValueError(
                f"--train_examples ({len(images.x_train)}) must be at least "
                f"--batch_size ({batch_size})."
            )
        n_eval = cfg["tflite_eval_examples"] or len(images.x_test)
        rng = np.random.RandomState(cfg["seed"])
        representative = rng.permutation(len(images.x_train))[:representative_examples]
        return cls(
            train=data_lib.train_dataset(images, batch_size, pad=pad, seed=cfg["seed"]),
            test=data_lib.eval_dataset(images, eval_batch_size or batch_size),
            train_examples=len(images.x_train),
            steps_per_epoch=len(images.x_train) // batch_size,
            eval_images=images.normalize(images.x_test[:n_eval]),
            eval_labels=images.y_test[:n_eval],
            representative_images=images.normalize(images.x_train[representative]),
        )


@dataclasses.dataclass
class Recipe:
    """Optimizer and regularization of one experiment (the paper's CIFAR-10 or ImageNet recipe)."""

    optimizer: str  # "sgd" (momentum 0.9) or "adam" (epsilon 1e-5)
    float_lr: float
    ttq_lr: float
    lr_boundaries: tuple  # fractions of a phase's steps
    lr_factors: tuple
    weight_decay: float
    weight_decay_include: Optional[Callable[[str], bool]] = None  # by original layer name
    ttq_from_float: bool = True  # CIFAR fine-tunes the float model; AlexNet starts from scratch

    @classmethod
    def from_flags(cls, cfg, optimizer, weight_decay_include=None, ttq_from_float=True):
        """The recipe of the flags --lr, --ttq_lr (default --lr), --lr_boundaries, ..."""
        return cls(
            optimizer=optimizer,
            float_lr=cfg["lr"],
            ttq_lr=cfg["ttq_lr"] if cfg["ttq_lr"] is not None else cfg["lr"],
            lr_boundaries=tuple(float(b) for b in cfg["lr_boundaries"]),
            lr_factors=tuple(float(f) for f in cfg["lr_factors"]),
            weight_decay=cfg["weight_decay"],
            weight_decay_include=weight_decay_include,
            ttq_from_float=ttq_from_float,
        )

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


_PHASE_NAMES = {"float": "Float", "ttq": "TTQ"}


def _train_phase(model, phase, data, epochs, cfg, results, chief, extra_callbacks=()):
    """Trains one phase (or loads it when this output_dir already finished it)."""
    output_dir = cfg["output_dir"]
    if epochs <= 0:
        return
    if training.saved_weights_exist(output_dir, phase) and not cfg["retrain"]:
        with progress.stage(f"Loading the finished {phase} phase from {output_dir}"):
            training.load_phase_weights(model, output_dir, phase)
        return
    if cfg["retrain"]:
        training.reset_phase(output_dir, phase)
    title = f"{_PHASE_NAMES[phase]} training: {epochs} epochs x {data.steps_per_epoch} steps"
    with progress.stage(title, own_lines=True):
        results[phase]["train_seconds"] = training.run_phase(
            model,
            phase,
            data.train,
            data.test,
            epochs,
            output_dir,
            cfg["verbose"],
            cfg["validation_freq"],
            extra_callbacks=extra_callbacks,
        )
    # Every worker saves (each into its own --output_dir): under MultiWorkerMirroredStrategy
    # saving reads the synchronised variables with collective ops, so a save on the chief alone
    # leaves the others one collective behind (shape mismatch or a hang).
    training.save_phase_weights(model, output_dir, phase)


def make_strategy(cfg):
    """The --strategy of `cfg`. Call it before any other TF op: a multi-worker strategy can only
    be created at program startup ("Collective ops must be configured at program startup")."""
    return training.get_strategy(cfg["strategy"], cfg["tpu"])


def run(*, title, build_model, data, recipe, cfg, command, notes=None, strategy=None):
    """Runs one experiment and writes its report. Returns the results dict.

    Args:
      title: report heading.
      build_model: () -> uncompiled float tf_keras model returning logits (called in scope).
      data: a `Data`.
      recipe: a `Recipe`.
      cfg: dict of flag values (see examples/common/flags.py).
      command: the command line, for the report.
      notes: list of strings added to the report.
      strategy: the tf.distribute strategy from `make_strategy(cfg)` (made here if None, which
        is too late for --strategy multi_worker once other TF ops have run).

    Raises:
      Whatever the export or the .tflite runs raise (a broken `ttq_keras.convert` or delegate
      fails the run): the finished phases are saved, so the same command again skips training.
    """
    started = time.time()
    notes = list(notes or [])
    output_dir = cfg["output_dir"]
    os.makedirs(output_dir, exist_ok=True)
    keras.utils.set_random_seed(cfg["seed"])
    if strategy is None:
        strategy = make_strategy(cfg)
    chief = training.is_chief(strategy)
    steps = data.steps_per_epoch
    results = {
        "title": title,
        "config": cfg,
        "command": command,
        "float": {"train_examples": data.train_examples},
        "ttq": {"train_examples": data.train_examples},
    }
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
    if cfg["pretrained"]:
        with progress.stage(f"Loading pretrained float weights from {cfg['pretrained']}"):
            training.load_weights(float_model, cfg["pretrained"])
        float_epochs = 0
        results["float"]["pretrained"] = cfg["pretrained"]
    else:
        _train_phase(float_model, "float", data, float_epochs, cfg, results, chief)
    float_trained = bool(cfg["pretrained"]) or float_epochs > 0
    results["float"]["epochs"] = float_epochs
    if float_trained:
        with progress.stage("Evaluating the float model"):
            loss, acc = _evaluate(float_model, data.test)
        results["float"].update(test_loss=loss, test_accuracy=acc)
        print(f"Float test accuracy: {acc:.4f}")
    histories["float"] = training.read_history(output_dir, "float")

    # ---------------------------------------------------------------- TTQ phase
    ttq_epochs = cfg["ttq_epochs"]
    from_float = recipe.ttq_from_float and float_trained
    if not from_float:
        notes.append("TTQ trained from scratch (random init), not from the float weights.")
    with strategy.scope(), progress.stage("Ternarizing (ttq_keras.quantize_model)"):
        ttq_model = ttq_keras.quantize_model(
            float_model if from_float else build_model(),
            threshold=cfg["threshold"],
            threshold_statistic=cfg["threshold_statistic"],
            keep_first_and_last_float=cfg["keep_first_and_last_float"],
            per_channel=cfg["per_channel"],
            scale_init=cfg["scale_init"],
            mode=cfg["ttq_mode"],
            recipe=cfg["recipe"],
        )
        training.compile_model(
            ttq_model, recipe.make_optimizer(recipe.ttq_lr, max(1, ttq_epochs * steps))
        )
        decayed = training.add_weight_decay(
            ttq_model, recipe.weight_decay, recipe.weight_decay_include
        )
    results["ttq"]["weight_decay_variables"] = len(decayed)
    has_bn = any(isinstance(lay, keras.layers.BatchNormalization) for lay in ttq_model.layers)
    if cfg["bn_reestimation_steps"] and from_float and has_bn:
        with progress.stage("Re-estimating BatchNorm statistics of the ternarized model"):
            ttq_keras.reestimate_batchnorm(ttq_model, data.train, cfg["bn_reestimation_steps"])
    if cfg["eval_before_finetune"] and from_float:
        with progress.stage("Evaluating the ternarized model before TTQ training"):
            loss, acc = _evaluate(ttq_model, data.test)
        results["ttq"]["test_accuracy_before_training"] = acc
        print(f"Ternarized float model before TTQ training: test accuracy {acc:.4f}")
    _train_phase(
        ttq_model,
        "ttq",
        data,
        ttq_epochs,
        cfg,
        results,
        chief,
        extra_callbacks=training.ttq_callbacks(output_dir),
    )
    results["ttq"]["epochs"] = ttq_epochs
    with progress.stage("Evaluating the TTQ model"):
        loss, acc = _evaluate(ttq_model, data.test)
    results["ttq"].update(test_loss=loss, test_accuracy=acc)
    print(f"TTQ test accuracy: {acc:.4f}")
    histories["ttq"] = training.read_history(output_dir, "ttq")
    results["history"] = histories

    # ---------------------------------------------------------------- statistics and export
    ttq_keras.summary(ttq_model)
    stats = report.layer_stats(ttq_model)
    results["ttq"]["layers"] = stats
    results["ttq"]["sparsity"] = report.overall_sparsity(stats)
    if not chief:
        return results
    report.write_results(output_dir, results)  # the numbers are safe before export and plots
    if cfg["tflite"]:
        start = time.time()
        n = cfg["tflite_eval_examples"] or len(data.eval_labels)
        try:
            results["tflite"] = report.export_and_benchmark(
                ttq_model,
                output_dir,
                data.eval_images[:n],
                data.eval_labels[:n],
                data.representative_images,
                num_threads=cfg["num_threads"],
                latency_runs=cfg["latency_runs"],
            )
        except Exception as e:
            e.add_note(
                f"The trained phases are saved in {output_dir}: the same command again skips "
                "training and retries the export (--notflite skips the .tflite files)."
            )
            raise
        results["tflite_seconds"] = time.time() - start
    with progress.stage("Plotting"):
        report.make_plots(output_dir, ttq_model, stats, histories)
    results["notes"] = notes
    results["wall_seconds"] = time.time() - started
    report.write_results(output_dir, results)
    table = report.write_report(output_dir, title, results, command, notes, report.PLOTS)
    print("\n" + title + "\n\n" + table + "\n")
    for n in notes:
        print("note:", n)
    print(f"\nReport: {os.path.join(output_dir, 'report.md')}")
    return results


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
