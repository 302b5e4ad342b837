"""What happens inside TTQ training, step by step: the instrument behind the robust recipe.

Trains one model of the robustness zoo on a Fashion-MNIST subset with a plain GradientTape loop
and prints, every few steps: the loss; per ternary layer Wp, Wn, the latent kernel's max|w|
and RMS, the threshold Δ = t·max|w|, the fractions of positive / negative codes, the gradient
norms of the kernel and of the scales; and the fraction of dead ReLU channels (no positive
output on a probe batch) after each ReLU layer of a chain model.

    nice .venv/bin/python -m benchmarks.ttq_dynamics --arch plain_cnn               # default
    nice .venv/bin/python -m benchmarks.ttq_dynamics --scale_gradient lsq --kernel_gradient scaled \
        --threshold 0.05 --threshold_statistic max       # the previous robust recipe: collapses
    nice .venv/bin/python -m benchmarks.ttq_dynamics --float                         # reference
"""

import argparse

import numpy as np

import ttq_keras
from benchmarks import robustness
from ttq_keras import keras, tf


def _relu_outputs(model, x):
    """Outputs of every layer with a ReLU activation (or a ReLU layer), for a chain model."""
    outputs = []
    for layer in model.layers[1:]:
        x = layer(x)
        inner = getattr(layer, "layer", layer)
        if isinstance(inner, keras.layers.ReLU) or (
            getattr(inner, "activation", None) is keras.activations.relu
        ):
            outputs.append(x)
    return outputs


def _dead_fraction(activation):
    channels = activation.numpy().reshape(-1, activation.shape[-1])
    return float(np.mean(np.all(channels <= 0, axis=0)))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--arch", default="plain_cnn", choices=sorted(robustness.ARCHS))
    parser.add_argument("--optimizer", default="sgd_momentum", choices=robustness.OPTIMIZERS)
    parser.add_argument("--steps", type=int, default=64)
    parser.add_argument("--every", type=int, default=4)
    parser.add_argument("--train_examples", type=int, default=4096)
    parser.add_argument("--float", action="store_true", help="train the float model instead")
    parser.add_argument("--recipe", default="robust")
    parser.add_argument("--scale_gradient", default=None)
    parser.add_argument("--kernel_gradient", default=None)
    parser.add_argument("--threshold", type=float, default=None, help="default: the recipe's")
    parser.add_argument("--threshold_statistic", default=None, choices=["max", "mean"])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    (x_train, y_train), (x_test, y_test) = robustness.load_fashion_mnist(
        robustness.FASHION_MNIST_DIR, args.train_examples, 2000, args.seed
    )
    builder, keep_ends = robustness.ARCHS[args.arch]
    keras.utils.set_random_seed(args.seed)
    model = builder()
    if not args.float:
        model = ttq_keras.quantize_model(
            model,
            keep_first_and_last_float=keep_ends,
            recipe=args.recipe,
            scale_gradient=args.scale_gradient,
            kernel_gradient=args.kernel_gradient,
            threshold=args.threshold,
            threshold_statistic=args.threshold_statistic,
        )
    optimizer = robustness.OPTIMIZERS[args.optimizer]()
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    ternary = [
        (layer.name, variables)
        for layer in model.layers
        for variables in ttq_keras.ternary_variables(layer)
    ]
    index = {id(v): i for i, v in enumerate(model.trainable_variables)}

    @tf.function
    def train_step(x, y):
        with tf.GradientTape() as tape:
            loss = loss_fn(y, model(x, training=True))
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        return loss, grads

    data = iter(
        tf.data.Dataset.from_tensor_slices((x_train, y_train))
        .shuffle(len(x_train), seed=args.seed)
        .repeat()
        .batch(128)
    )
    probe = x_test[:64]
    for step in range(args.steps):
        loss, grads = train_step(*next(data))
        if step % args.every and step != args.steps - 1 and np.isfinite(float(loss)):
            continue
        line = f"step {step:3d} loss {float(loss):7.3f}"
        for name, v in ternary:
            kernel = v.kernel.numpy()
            top = float(np.abs(kernel).max())
            delta = float(v.quantizer.delta(kernel))

            def _grad_norm(variable):
                i = index.get(id(variable))
                return float(np.linalg.norm(grads[i].numpy())) if i is not None else 0.0

            line += (
                f" | {name} Wp {np.mean(v.wp.numpy()):.3f} Wn {np.mean(v.wn.numpy()):.3f}"
                f" max|w| {top:.3f} rms {np.sqrt(np.mean(kernel**2)):.3f} delta {delta:.4f}"
                f" +{np.mean(kernel > delta):.2f} -{np.mean(kernel < -delta):.2f}"
                f" |g_w| {_grad_norm(v.kernel):.3f} |g_Wp| {_grad_norm(v.wp):.3f}"
                f" |g_Wn| {_grad_norm(v.wn):.3f}"
            )
        dead = [_dead_fraction(a) for a in _relu_outputs(model, probe)]
        line += " | dead ReLU channels " + " ".join(f"{d:.2f}" for d in dead)
        print(line, flush=True)
    logits = model.predict(x_test, batch_size=512, verbose=0)
    print(f"test accuracy {np.mean(np.argmax(logits, axis=-1) == y_test):.4f}")


if __name__ == "__main__":
    main()
