"""Does TTQ train wherever float trains? Float vs TTQ on a zoo of small models and optimizers.

Every cell (architecture x optimizer) trains, on a real Fashion-MNIST subset:

    scratch:   float and TTQ from the same random init, the same budget (--epochs);
    fine-tune: a float model trained --epochs, then --finetune_epochs more of float training vs
               --finetune_epochs of TTQ training from it (TTQ starts from the float weights,
               with ttq_keras.reestimate_batchnorm when the model has BatchNormalization,
               then ttq_keras.correct_ternarization(method="scales"); not for the paper
               recipe, which is the authors' code).

and prints float and TTQ test accuracy per recipe (quantize_model's `recipe=`). A TTQ run
"diverges" when its loss is non-finite, ttq_keras.TTQGuard finds a NaN/Inf weight, or it ends
within 5 points of chance while float trains. Numbers go in BENCHMARKS.md.

    nice .venv/bin/python -m benchmarks.robustness                 # default: robust vs paper
    nice .venv/bin/python -m benchmarks.robustness --archs mlp,resnet_bn --optimizers adam \
        --recipes robust --scale_gradients sum,mean,lsq           # ablation of one option
    nice .venv/bin/python -m benchmarks.robustness --recipes robust --calibration none,bias,scales
"""

import argparse
import gzip
import math
import os
import time

import numpy as np

import ttq_keras
from ttq_keras import keras, tf

layers = keras.layers
FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"
CHANCE = 0.1
COLLAPSE_MARGIN = 0.05  # an accuracy within 5 points of chance counts as collapsed

# ---------------------------------------------------------------------------------------------
# Data


def _read_idx(path):
    with gzip.open(path, "rb") as f:
        data = f.read()
    dims = data[3]
    shape = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(dims)]
    return np.frombuffer(data, np.uint8, offset=4 + 4 * dims).reshape(shape)


def load_fashion_mnist(directory, train_examples, test_examples, seed=0):
    """A seeded random subset of Fashion-MNIST: x in [0, 1], shape (N, 28, 28, 1)."""

    def _split(prefix, n):
        x = _read_idx(os.path.join(directory, f"{prefix}-images-idx3-ubyte.gz"))
        y = _read_idx(os.path.join(directory, f"{prefix}-labels-idx1-ubyte.gz"))
        idx = np.random.RandomState(seed).permutation(len(x))[:n]
        return (x[idx].astype(np.float32) / 255.0)[..., None], y[idx].astype(np.int32)

    return _split("train", train_examples), _split("t10k", test_examples)


# ---------------------------------------------------------------------------------------------
# The zoo: small models, several without a normalization after their ternary layers


def mlp():
    inp = keras.Input((28, 28, 1))
    x = layers.Flatten()(inp)
    x = layers.Dense(256, activation="relu", name="fc1")(x)
    x = layers.Dense(128, activation="relu", name="fc2")(x)
    x = layers.Dense(128, activation="relu", name="fc3")(x)
    return keras.Model(inp, layers.Dense(10, name="logits")(x), name="mlp")


def plain_cnn():
    inp = keras.Input((28, 28, 1))
    x = layers.Conv2D(16, 3, strides=2, activation="relu", padding="same", name="conv1")(inp)
    x = layers.Conv2D(32, 3, activation="relu", padding="same", name="conv2")(x)
    x = layers.Conv2D(32, 3, strides=2, activation="relu", padding="same", name="conv3")(x)
    x = layers.Flatten()(x)
    return keras.Model(inp, layers.Dense(10, name="logits")(x), name="plain_cnn")


def separable_cnn():
    inp = keras.Input((28, 28, 1))
    x = layers.Conv2D(16, 3, strides=2, activation="relu", padding="same", name="stem")(inp)
    for i, (width, stride) in enumerate([(32, 1), (32, 2)]):
        x = layers.DepthwiseConv2D(3, strides=stride, padding="same", name=f"dw{i}")(x)
        x = layers.ReLU()(x)
        x = layers.Conv2D(width, 1, activation="relu", name=f"pw{i}")(x)
    x = layers.Flatten()(x)
    return keras.Model(inp, layers.Dense(10, name="logits")(x), name="separable_cnn")


def resnet_bn():
    """A small post-activation ResNet with BN after every conv (the paper's setting)."""
    inp = keras.Input((28, 28, 1))
    x = layers.Conv2D(16, 3, strides=2, padding="same", use_bias=False, name="stem")(inp)
    x = layers.ReLU()(layers.BatchNormalization(name="stem_bn")(x))
    for i, (width, stride) in enumerate([(16, 1), (32, 2)]):
        shortcut = x
        y = layers.Conv2D(
            width, 3, strides=stride, padding="same", use_bias=False, name=f"b{i}_conv1"
        )(x)
        y = layers.ReLU()(layers.BatchNormalization(name=f"b{i}_bn1")(y))
        y = layers.Conv2D(width, 3, padding="same", use_bias=False, name=f"b{i}_conv2")(y)
        y = layers.BatchNormalization(name=f"b{i}_bn2")(y)
        if stride != 1 or shortcut.shape[-1] != width:
            shortcut = layers.Conv2D(width, 1, strides=stride, use_bias=False, name=f"b{i}_proj")(
                shortcut
            )
            shortcut = layers.BatchNormalization(name=f"b{i}_proj_bn")(shortcut)
        x = layers.ReLU()(layers.Add()([y, shortcut]))
    x = layers.Flatten()(x)
    return keras.Model(inp, layers.Dense(10, name="logits")(x), name="resnet_bn")


def resnet_conv_head():
    """Residual blocks without BN whose last op is a biased 3x3 conv (issue 10's NaN case)."""
    inp = keras.Input((28, 28, 1))
    x = layers.Conv2D(16, 3, strides=2, padding="same", activation="relu", name="stem")(inp)
    for i in range(2):
        y = layers.Conv2D(16, 3, padding="same", activation="relu", name=f"b{i}_conv1")(x)
        y = layers.Conv2D(16, 3, padding="same", name=f"b{i}_conv2")(y)
        x = layers.ReLU()(layers.Add()([x, y]))
    x = layers.Conv2D(32, 3, strides=2, padding="same", name="head_conv")(x)
    x = layers.Flatten()(layers.ReLU()(x))
    return keras.Model(inp, layers.Dense(10, name="logits")(x), name="resnet_conv_head")


def dense_3d():
    """Dense layers applied to a 3-D input (each image row is a token)."""
    inp = keras.Input((28, 28, 1))
    x = layers.Reshape((28, 28))(inp)
    x = layers.Dense(64, activation="relu", name="row1")(x)
    x = layers.Dense(64, activation="relu", name="row2")(x)
    x = layers.Dense(32, activation="relu", name="row3")(x)
    x = layers.Flatten()(x)
    return keras.Model(inp, layers.Dense(10, name="logits")(x), name="dense_3d")


def dilated_cnn():
    inp = keras.Input((28, 28, 1))
    x = layers.Conv2D(16, 3, strides=2, padding="same", activation="relu", name="conv1")(inp)
    x = layers.Conv2D(32, 3, dilation_rate=2, padding="same", activation="relu", name="dil2")(x)
    x = layers.Conv2D(32, 3, dilation_rate=4, padding="same", activation="relu", name="dil4")(x)
    x = layers.Conv2D(16, 3, dilation_rate=2, padding="same", activation="relu", name="dil2b")(x)
    x = layers.MaxPooling2D(2)(x)
    x = layers.Flatten()(x)
    return keras.Model(inp, layers.Dense(10, name="logits")(x), name="dilated_cnn")


# name -> (builder, keep_first_and_last_float)
ARCHS = {
    "mlp": (mlp, True),
    "mlp_all_ternary": (mlp, False),
    "plain_cnn": (plain_cnn, True),
    "separable_cnn": (separable_cnn, True),
    "resnet_bn": (resnet_bn, True),
    "resnet_conv_head": (resnet_conv_head, True),
    "dense_3d": (dense_3d, True),
    "dilated_cnn": (dilated_cnn, True),
}

OPTIMIZERS = {
    "sgd": lambda: keras.optimizers.SGD(0.01),
    "sgd_momentum": lambda: keras.optimizers.SGD(0.05, momentum=0.9),
    "adam": lambda: keras.optimizers.Adam(1e-3),
}

# ---------------------------------------------------------------------------------------------
# Training


def _has_batchnorm(model):
    return any(isinstance(layer, layers.BatchNormalization) for layer in model.layers)


def _compile(model, optimizer_name):
    model.compile(
        optimizer=OPTIMIZERS[optimizer_name](),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
        steps_per_execution=8,  # fewer Python round trips per step on these tiny models
    )


def _train(model, optimizer_name, data, epochs, batch_size, seed, guard):
    """Trains, then returns (test accuracy, final train loss, error text or None)."""
    (x_train, y_train), (x_test, y_test) = data
    _compile(model, optimizer_name)
    keras.utils.set_random_seed(seed)
    callbacks = [ttq_keras.TTQGuard(check_every=8, check_signs=False)] if guard else []
    error = None
    loss = float("nan")
    try:
        history = model.fit(
            x_train,
            y_train,
            batch_size=batch_size,
            epochs=epochs,
            shuffle=True,
            verbose=0,
            callbacks=callbacks,
        )
        loss = float(history.history["loss"][-1])
    except ttq_keras.TrainingDivergedError as e:
        error = str(e).split(";")[0]
    if error is None and not math.isfinite(loss):
        error = f"loss {loss}"
    accuracy = _evaluate(model, x_test, y_test)
    return accuracy, loss, error


def _evaluate(model, x, y):
    logits = model.predict(x, batch_size=512, verbose=0)
    if not np.all(np.isfinite(logits)):
        return float("nan")
    return float(np.mean(np.argmax(logits, axis=-1) == y))


def _quantize(float_model, keep_ends, variant):
    return ttq_keras.quantize_model(float_model, keep_first_and_last_float=keep_ends, **variant)


def _calibrate(q_model, float_model, batches, variant, args):
    """correct_ternarization as the variant asks (nothing for calibration "none")."""
    if variant["calibration"] == "none":
        return
    ttq_keras.correct_ternarization(
        q_model,
        float_model,
        batches,
        steps=args.calibration_steps,
        method=variant["calibration"],
        match=args.calibration_match,
    )


def run_cell(arch, optimizer_name, data, args, variants):
    """Float and TTQ (every variant) from scratch and fine-tuned, for one architecture x
    optimizer. Returns {"float_scratch": acc, ..., variant: {...}}."""
    builder, keep_ends = ARCHS[arch]
    keras.utils.set_random_seed(args.seed)
    init_model = builder()
    init_weights = init_model.get_weights()
    row = {"arch": arch, "optimizer": optimizer_name}

    float_model = builder()
    float_model.set_weights(init_weights)
    row["float_scratch"], _, _ = _train(
        float_model, optimizer_name, data, args.epochs, args.batch_size, args.seed, guard=False
    )
    pretrained = float_model.get_weights()
    float_ft = builder()
    float_ft.set_weights(pretrained)
    row["float_finetune"], _, _ = _train(
        float_ft,
        optimizer_name,
        data,
        args.finetune_epochs,
        args.batch_size,
        args.seed + 1,
        guard=False,
    )
    (x_train, _), (x_test, y_test) = data
    for name, variant in variants.items():
        result = {}
        batches = tf.data.Dataset.from_tensor_slices(x_train).batch(args.batch_size)
        start = builder()
        start.set_weights(init_weights)
        q = _quantize(start, keep_ends, variant["quantize"])
        if variant["calibrate_scratch"]:
            _calibrate(q, start, batches, variant, args)
        result["scratch"], result["scratch_loss"], result["scratch_error"] = _train(
            q, optimizer_name, data, args.epochs, args.batch_size, args.seed, guard=True
        )
        start = builder()
        start.set_weights(pretrained)
        q = _quantize(start, keep_ends, variant["quantize"])
        if variant.get("reestimate_bn") and _has_batchnorm(q):
            ttq_keras.reestimate_batchnorm(q, batches, steps=8)
        _calibrate(q, start, batches, variant, args)
        result["start"] = _evaluate(q, x_test, y_test)
        result["finetune"], result["finetune_loss"], result["finetune_error"] = _train(
            q,
            optimizer_name,
            data,
            args.finetune_epochs,
            args.batch_size,
            args.seed + 1,
            guard=True,
        )
        row[name] = result
    return row


# ---------------------------------------------------------------------------------------------
# Verdicts and the table


def _diverged(accuracy, error, float_accuracy):
    if error:
        return True
    if not math.isfinite(accuracy):
        return True
    return accuracy < CHANCE + COLLAPSE_MARGIN <= float_accuracy


def verdict(row, name, scratch_tolerance, finetune_tolerance):
    """'ok' or the list of failed targets of one variant in one cell."""
    r = row[name]
    failures = []
    if _diverged(r["scratch"], r["scratch_error"], row["float_scratch"]):
        failures.append("scratch diverged")
    elif row["float_scratch"] - r["scratch"] > scratch_tolerance:
        failures.append("scratch gap")
    if _diverged(r["finetune"], r["finetune_error"], row["float_finetune"]):
        failures.append("finetune diverged")
    elif row["float_finetune"] - r["finetune"] > finetune_tolerance:
        failures.append("finetune gap")
    return "ok" if not failures else ", ".join(failures)


def _pct(x):
    return "  nan" if not math.isfinite(x) else f"{100 * x:5.1f}"


def format_table(rows, names, args):
    head = ["arch", "optimizer", "float scratch", "float ft"]
    for name in names:
        head += [f"{name} scratch (gap)", f"{name} start", f"{name} ft (gap)", f"{name} verdict"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    passed = {name: 0 for name in names}
    for row in rows:
        cells = [
            row["arch"],
            row["optimizer"],
            _pct(row["float_scratch"]),
            _pct(row["float_finetune"]),
        ]
        for name in names:
            r = row[name]
            v = verdict(row, name, args.scratch_tolerance, args.finetune_tolerance)
            passed[name] += v == "ok"
            scratch = _pct(r["scratch"]) + f" ({100 * (r['scratch'] - row['float_scratch']):+.1f})"
            ft = _pct(r["finetune"]) + f" ({100 * (r['finetune'] - row['float_finetune']):+.1f})"
            if r["scratch_error"]:
                scratch += " NaN"
            if r["finetune_error"]:
                ft += " NaN"
            cells += [scratch, _pct(r["start"]), ft, v]
        lines.append("| " + " | ".join(cells) + " |")
    summary = "; ".join(f"{name}: {passed[name]}/{len(rows)} cells pass" for name in names)
    lines.append("")
    lines.append(
        f"Targets: TTQ never diverges where float trains, scratch gap >= "
        f"-{100 * args.scratch_tolerance:.0f} points, fine-tune gap >= "
        f"-{100 * args.finetune_tolerance:.0f} point(s). {summary}."
    )
    return "\n".join(lines)


def _value(text):
    return {"true": True, "false": False}.get(text.lower(), text)


def _variants(args):
    variants = {}
    for recipe in args.recipes.split(","):
        grid = [{}]
        for key in (
            "scale_gradient",
            "scale_init",
            "kernel_gradient",
            "positive_scales",
            "per_channel",
        ):
            values = getattr(args, key + "s")
            if values:
                grid = [dict(g, **{key: _value(v)}) for g in grid for v in values.split(",")]
        methods = args.calibration.split(",") if recipe != "paper" else ["none"]
        calibrations = [
            (method, _value(scratch))
            for method in dict.fromkeys(methods)
            for scratch in args.calibrate_scratch.split(",")
            if method != "none" or _value(scratch) is False
        ] or [("none", False)]
        for overrides in grid:
            for method, scratch in calibrations:
                parts = [recipe] + [str(v) for v in overrides.values()]
                if method != "none":
                    parts.append(f"cal={method}" + ("+scratch" if scratch else ""))
                variants["/".join(parts)] = {
                    "quantize": dict(recipe=recipe, **overrides),
                    "reestimate_bn": recipe != "paper" and not args.no_bn_reestimation,
                    "calibration": method,
                    "calibrate_scratch": scratch,
                }
    return variants


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--archs", default=",".join(ARCHS))
    parser.add_argument("--optimizers", default=",".join(OPTIMIZERS))
    parser.add_argument(
        "--recipes",
        default="robust,paper",
        help="quantize_model recipes to compare (robust, paper)",
    )
    parser.add_argument(
        "--scale_gradients",
        default="",
        help="override scale_gradient per variant, e.g. sum,mean,lsq",
    )
    parser.add_argument("--scale_inits", default="", help="override scale_init, e.g. ones,auto")
    parser.add_argument("--kernel_gradients", default="", help="override, e.g. scaled,ste")
    parser.add_argument("--positive_scaless", default="", help="override, e.g. true,false")
    parser.add_argument("--per_channels", default="", help="override per_channel, e.g. true,false")
    parser.add_argument("--no_bn_reestimation", action="store_true")
    parser.add_argument(
        "--calibration",
        default="scales",
        help="ttq_keras.correct_ternarization method applied right after quantize_model (and BN "
        "re-estimation) in the fine-tune runs of every recipe but paper: scales (default), "
        "bias or none; a comma list compares them (e.g. none,bias,scales)",
    )
    parser.add_argument("--no_calibration", action="store_true", help="same as --calibration none")
    parser.add_argument(
        "--calibrate_scratch",
        default="false",
        help="also calibrate the scratch runs against the float model at its random init "
        "(true, false, or false,true to compare); off by default: it moved 9 cells by 2-10 "
        "points, 6 of them down, see BENCHMARKS.md",
    )
    parser.add_argument("--calibration_steps", type=int, default=8)
    parser.add_argument(
        "--calibration_match",
        default="output",
        choices=("output", "pre_activation"),
        help="correct_ternarization's match= (output: post-ReLU where a ReLU follows)",
    )
    parser.add_argument("--train_examples", type=int, default=4096)
    parser.add_argument("--test_examples", type=int, default=2000)
    parser.add_argument("--epochs", type=int, default=2, help="from-scratch budget")
    parser.add_argument("--finetune_epochs", type=int, default=1)
    parser.add_argument("--batch_size", type=int, default=128)
    parser.add_argument("--scratch_tolerance", type=float, default=0.03)
    parser.add_argument("--finetune_tolerance", type=float, default=0.01)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data_dir", default=FASHION_MNIST_DIR)
    args = parser.parse_args(argv)
    for arch in args.archs.split(","):
        if arch not in ARCHS:
            parser.error(f"unknown arch {arch!r}; choose from {sorted(ARCHS)}")
    for opt in args.optimizers.split(","):
        if opt not in OPTIMIZERS:
            parser.error(f"unknown optimizer {opt!r}; choose from {sorted(OPTIMIZERS)}")
    if args.no_calibration:
        args.calibration = "none"
    for method in args.calibration.split(","):
        if method not in ("none",) + ttq_keras.calibration.CALIBRATION_METHODS:
            parser.error(f"unknown calibration {method!r}; choose from none, bias, scales")
    for value in args.calibrate_scratch.split(","):
        if not isinstance(_value(value), bool):
            parser.error(f"--calibrate_scratch takes true and/or false, not {value!r}")
    data = load_fashion_mnist(args.data_dir, args.train_examples, args.test_examples, args.seed)
    variants = _variants(args)
    rows = []
    started = time.time()
    for arch in args.archs.split(","):
        for opt in args.optimizers.split(","):
            row = run_cell(arch, opt, data, args, variants)
            rows.append(row)
            parts = [f"{k}: {_pct(row[k]['scratch'])}/{_pct(row[k]['finetune'])}" for k in variants]
            print(
                f"[{time.time() - started:6.0f}s] {arch:17s} {opt:12s} float "
                f"{_pct(row['float_scratch'])}/{_pct(row['float_finetune'])}  " + "  ".join(parts),
                flush=True,
            )
    print()
    print(
        f"Fashion-MNIST {args.train_examples} train / {args.test_examples} test, batch "
        f"{args.batch_size}, scratch {args.epochs} epochs, fine-tune {args.finetune_epochs} "
        f"epoch(s) after {args.epochs} float epochs; accuracy %, gap = TTQ - float; "
        f"{time.time() - started:.0f} s"
    )
    print(format_table(rows, list(variants), args))
    return rows


if __name__ == "__main__":
    main()
