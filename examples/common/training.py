"""Training pieces shared by the examples: strategies, schedules, weight decay, phases."""

import csv
import os
import shutil
import time

import ttq_keras
from ttq_keras import keras, tf

# ---------------------------------------------------------------------------------------------
# Distribution


def get_strategy(name, tpu_address=None):
    """tf.distribute strategy for --strategy {default, mirrored, multi_worker, tpu}."""
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multi_worker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    if name == "tpu":
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu_address or "")
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
        return tf.distribute.TPUStrategy(resolver)
    raise ValueError(
        f"--strategy must be one of default, mirrored, multi_worker, tpu. "
        f"Received: strategy={name!r}"
    )


def is_chief(strategy):
    """True on the worker that writes checkpoints and reports (every non-multi-worker strategy)."""
    return strategy.extended.should_checkpoint


# ---------------------------------------------------------------------------------------------
# Optimisation


def piecewise_schedule(base_lr, total_steps, boundaries, factors):
    """Step-wise LR: base_lr * factors[i] after fraction boundaries[i] of total_steps.

    The official recipes are written in epochs (CIFAR: x0.1 at 82, x0.01 at 123, x0.002 at 300 of
    400; AlexNet: x0.2 at 56, x0.04 at 64 of 100); passing them as fractions scales the schedule to
    whatever --*_epochs budget is used.
    """
    if len(boundaries) != len(factors):
        raise ValueError(
            f"LR boundaries and factors must have the same length. Received: "
            f"{len(boundaries)} boundaries and {len(factors)} factors"
        )
    steps = [max(1, int(round(b * total_steps))) for b in boundaries]
    for i in range(1, len(steps)):
        steps[i] = max(steps[i], steps[i - 1] + 1)
    values = [float(base_lr)] + [float(base_lr) * f for f in factors]
    if not steps:
        return float(base_lr)
    return keras.optimizers.schedules.PiecewiseConstantDecay(steps, values)


def weight_decay_variables(model, include=None):
    """Variables the official regex `.*/W` decays: every conv/dense kernel plus Wp and Wn.

    For a TTQ wrapper (tfmot QuantizeWrapperV2) these are the latent kernel and the trainable
    quantizer variables (Wp, Wn) given by `ttq_keras.ternary_variables`; tfmot replaces the
    inner layer's `kernel` attribute by the quantized tensor, so the variables are taken from
    there rather than from the inner layer. `include(layer_name) -> bool` restricts the set by
    the original layer name (AlexNet decays only the fc layers).
    """
    kernel_types = (keras.layers.Conv2D, keras.layers.Dense, keras.layers.DepthwiseConv2D)
    chosen = []
    for layer in model.layers:
        inner = getattr(layer, "layer", None)
        base = inner if inner is not None else layer
        if not isinstance(base, kernel_types):
            continue
        if include is not None and not include(base.name):
            continue
        ternary = ttq_keras.ternary_variables(layer) if inner is not None else []
        if ternary:
            for t in ternary:
                chosen.extend([t.kernel] + [v for v in (t.wp, t.wn) if v.trainable])
        else:
            chosen.extend(v for v in base.trainable_weights if "kernel" in v.name.split("/")[-1])
    return chosen


def add_weight_decay(model, coefficient, include=None):
    """Adds coefficient * sum(v**2) / 2 over `weight_decay_variables` as a model loss.

    Returns the decayed variables (for the report). Call it on the model that is trained (after
    quantize_model, which clones the graph and does not carry callable losses over).
    """
    variables = weight_decay_variables(model, include)
    if coefficient and variables:
        model.add_loss(lambda: coefficient * tf.add_n([tf.nn.l2_loss(v) for v in variables]))
    return variables


def compile_model(model, optimizer):
    model.compile(
        optimizer=optimizer,
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
    )


# ---------------------------------------------------------------------------------------------
# Phases (float pre-training, TTQ fine-tuning) with resumption


def _weights_path(output_dir, phase):
    return os.path.join(output_dir, "checkpoints", phase, "weights")


def saved_weights_exist(output_dir, phase):
    return os.path.exists(_weights_path(output_dir, phase) + ".index")


def save_phase_weights(model, output_dir, phase):
    path = _weights_path(output_dir, phase)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    model.save_weights(path)
    return path


def load_weights(model, path):
    """model.load_weights for .h5 files and TF checkpoints (extra checkpoint values ignored)."""
    status = model.load_weights(path)
    if status is not None:  # a TF checkpoint (an .h5 file returns None)
        status.expect_partial()


def load_phase_weights(model, output_dir, phase):
    load_weights(model, _weights_path(output_dir, phase))


def reset_phase(output_dir, phase):
    """Forgets a phase's saved weights, backup and CSV log (for --retrain)."""
    for path in (
        os.path.join(output_dir, "checkpoints", phase),
        os.path.join(output_dir, "backup", phase),
    ):
        shutil.rmtree(path, ignore_errors=True)
    log = os.path.join(output_dir, f"history_{phase}.csv")
    if os.path.exists(log):
        os.remove(log)


def run_phase(
    model,
    phase,
    train_ds,
    val_ds,
    epochs,
    output_dir,
    verbose=1,
    validation_freq=1,
    extra_callbacks=(),
    steps_per_epoch=None,
):
    """model.fit with BackupAndRestore, TensorBoard and a CSV log under output_dir.

    If the run is interrupted, running the same command again resumes from the last finished
    epoch (tf_keras.callbacks.BackupAndRestore). Returns the wall-clock seconds spent.
    """
    callbacks = [
        keras.callbacks.BackupAndRestore(os.path.join(output_dir, "backup", phase)),
        keras.callbacks.TensorBoard(
            os.path.join(output_dir, "tensorboard", phase), update_freq="epoch", profile_batch=0
        ),
        keras.callbacks.CSVLogger(os.path.join(output_dir, f"history_{phase}.csv"), append=True),
    ]
    callbacks.extend(extra_callbacks)
    start = time.time()
    if epochs > 0:
        model.fit(
            train_ds,
            epochs=epochs,
            validation_data=val_ds,
            validation_freq=validation_freq,
            callbacks=callbacks,
            verbose=verbose,
            steps_per_epoch=steps_per_epoch,
        )
    return time.time() - start


def read_history(output_dir, phase):
    """The CSV log of a phase as {column: [values]}, one value per epoch (resumes de-duplicated)."""
    path = os.path.join(output_dir, f"history_{phase}.csv")
    if not os.path.exists(path):
        return {}
    rows = {}
    with open(path) as f:
        for row in csv.DictReader(f):
            if row.get("epoch", "") in ("", "epoch"):
                continue
            rows[int(row["epoch"])] = row
    history = {}
    for epoch in sorted(rows):
        for key, value in rows[epoch].items():
            try:
                history.setdefault(key, []).append(float(value))
            except (TypeError, ValueError):
                history.setdefault(key, []).append(float("nan"))
    return history


def ttq_callbacks(output_dir):
    """ttq_keras.TTQCallback (Wp, Wn and sparsity per layer to TensorBoard) and ttq_keras.TTQGuard
    (stops with the name of the first layer whose Wp, Wn or kernel went NaN/Inf)."""
    return [
        ttq_keras.TTQCallback(os.path.join(output_dir, "tensorboard", "ttq_layers")),
        ttq_keras.TTQGuard(check_every=100),
    ]
