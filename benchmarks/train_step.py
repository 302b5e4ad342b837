"""Training-step time of CIFAR ResNet-20 at batch 128 on CPU: float vs TTQ vs tfmot 8-bit QAT.

All three models are built and timed in one process, in interleaved rounds, so that machine
noise hits them alike; the result is the ratio of median step times to float.

    .venv/bin/python -m benchmarks.train_step [--steps 20] [--rounds 3] [--batch_size 128]
"""

import argparse
import statistics
import time

import numpy as np

import ttq_keras
from examples.common.models import resnet_cifar
from ttq_keras import keras, tf


def _compiled(model):
    model.compile(
        optimizer=keras.optimizers.SGD(0.1, momentum=0.9),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    return model


def build_models():
    float_model = resnet_cifar(20)
    models = {
        "float": _compiled(float_model),
        "ttq": _compiled(ttq_keras.quantize_model(float_model)),
    }
    models["tfmot_int8_qat"] = _compiled(tfmot_default_8bit(float_model))
    return models


def tfmot_default_8bit(model):
    """tfmot's default 8-bit QAT on every layer its registry supports.

    `tfmot.quantization.keras.quantize_model` itself refuses the pre-activation ResNet (a
    BatchNormalization that does not follow a convolution is "not supported"), so annotate the
    supported layers only, the documented way around it.
    """
    import tensorflow_model_optimization as tfmot
    from tensorflow_model_optimization.python.core.quantization.keras.default_8bit import (
        default_8bit_quantize_registry,
    )

    registry = default_8bit_quantize_registry.Default8BitQuantizeRegistry()
    annotate = tfmot.quantization.keras.quantize_annotate_layer

    def _annotate(layer):
        return annotate(layer) if registry.supports(layer) else layer

    annotated = keras.models.clone_model(model, clone_function=_annotate)
    annotated.set_weights(model.get_weights())
    return tfmot.quantization.keras.quantize_apply(annotated)


def time_steps(model, x, y, steps):
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        model.train_on_batch(x, y)
        times.append(time.perf_counter() - start)
    return times


def main():
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--steps", type=int, default=20, help="timed steps per model per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--batch_size", type=int, default=128)
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    x = rng.normal(size=(args.batch_size, 32, 32, 3)).astype(np.float32)
    y = rng.integers(0, 10, size=(args.batch_size,)).astype(np.int32)
    models = build_models()
    for model in models.values():
        time_steps(model, x, y, args.warmup)
    samples = {name: [] for name in models}
    for _ in range(args.rounds):
        for name, model in models.items():
            samples[name].extend(time_steps(model, x, y, args.steps))
    medians = {name: statistics.median(values) for name, values in samples.items()}
    print(
        f"ResNet-20 CIFAR training step, batch {args.batch_size}, "
        f"{args.rounds}x{args.steps} steps per model, TF {tf.__version__}, "
        f"intra-op threads {tf.config.threading.get_intra_op_parallelism_threads() or 'default'}"
    )
    print(f"{'model':<16} {'median ms':>10} {'ratio to float':>15}")
    for name, median in medians.items():
        print(f"{name:<16} {median * 1e3:>10.1f} {median / medians['float']:>15.2f}")


if __name__ == "__main__":
    main()
