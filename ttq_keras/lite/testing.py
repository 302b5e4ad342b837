"""Small models and helpers for the converter / reference tests and benchmarks (not public API).

Every builder returns a float tf_keras model; `randomize_quantized` then gives a model from
`quantize_model` non-trivial state: different Wp/Wn per layer (and per channel when the
quantizer is per-channel) and random BatchNormalization statistics, so that folding is really
exercised by the converter.
"""

import numpy as np

from ttq_keras._compat import keras

__all__ = [
    "resnet_like",
    "resnet20_cifar",
    "mobilenet_block",
    "mlp",
    "dilated_conv",
    "alexnet_fc",
    "randomize_quantized",
    "randomize_batchnorm",
]

L = keras.layers


def _conv_bn(x, filters, kernel, strides=1, padding="same", relu=True, name=None):
    x = L.Conv2D(filters, kernel, strides, padding=padding, use_bias=False, name=name)(x)
    x = L.BatchNormalization(name=f"{name}_bn")(x)
    return L.ReLU(name=f"{name}_relu")(x) if relu else x


def _basic_block(x, filters, strides, name, projection_padding="same"):
    shortcut = x
    y = _conv_bn(x, filters, 3, strides, name=f"{name}_a")
    y = _conv_bn(y, filters, 3, 1, relu=False, name=f"{name}_b")
    if strides != 1 or x.shape[-1] != filters:
        shortcut = L.Conv2D(filters, 1, strides, padding=projection_padding, name=f"{name}_proj")(x)
    return L.ReLU(name=f"{name}_out")(L.Add(name=f"{name}_add")([y, shortcut]))


def resnet_like(input_shape=(12, 12, 3), classes=10):
    """ResNet-20-style functional model: Conv+BN+ReLU, residual adds, stride 2, 'same' and
    'valid' padding, Dense head."""
    inp = keras.Input(input_shape, name="image")
    x = _conv_bn(inp, 8, 3, name="stem")
    x = _basic_block(x, 8, 1, "block1")
    x = _basic_block(x, 12, 2, "block2", projection_padding="valid")
    x = L.Conv2D(12, 3, padding="valid", name="valid_conv")(x)
    x = L.GlobalAveragePooling2D(name="gap")(x)
    out = L.Dense(classes, name="logits")(x)
    return keras.Model(inp, out, name="resnet_like")


def resnet20_cifar(classes=10):
    """CIFAR ResNet-20 (He et al. 2016, option B shortcuts): 3 stages x 3 blocks, 16/32/64."""
    inp = keras.Input((32, 32, 3), name="image")
    x = _conv_bn(inp, 16, 3, name="stem")
    for stage, filters in enumerate((16, 32, 64)):
        for block in range(3):
            strides = 2 if stage > 0 and block == 0 else 1
            x = _basic_block(x, filters, strides, f"s{stage}b{block}")
    x = L.GlobalAveragePooling2D(name="gap")(x)
    out = L.Dense(classes, name="logits")(x)
    return keras.Model(inp, out, name="resnet20")


def mobilenet_block(input_shape=(10, 10, 4), classes=5):
    """MobileNet-like: depthwise conv with depth multiplier 2, BN, ReLU6, pointwise conv."""
    inp = keras.Input(input_shape, name="image")
    x = L.Conv2D(8, 3, strides=2, padding="same", use_bias=False, name="stem")(inp)
    x = L.BatchNormalization(name="stem_bn")(x)
    x = L.ReLU(6.0, name="stem_relu6")(x)
    x = L.DepthwiseConv2D(3, depth_multiplier=2, padding="same", use_bias=False, name="dw")(x)
    x = L.BatchNormalization(name="dw_bn")(x)
    x = L.ReLU(6.0, name="dw_relu6")(x)
    x = L.Conv2D(12, 1, use_bias=False, name="pw")(x)
    x = L.BatchNormalization(name="pw_bn")(x)
    x = L.ReLU(6.0, name="pw_relu6")(x)
    x = L.DepthwiseConv2D(3, strides=2, padding="valid", name="dw2")(x)
    x = L.GlobalAveragePooling2D(name="gap")(x)
    out = L.Dense(classes, activation="softmax", name="probs")(x)
    return keras.Model(inp, out, name="mobilenet_block")


def mlp(input_shape=(4, 12), classes=6):
    """MLP: Dense on a 3-D input (keep_num_dims), Flatten, Dense+BN+ReLU, Dense head."""
    inp = keras.Input(input_shape, name="features")
    x = L.Dense(10, activation="relu", name="per_step")(inp)
    x = L.Flatten(name="flatten")(x)
    x = L.Dense(24, use_bias=False, name="hidden")(x)
    x = L.BatchNormalization(name="hidden_bn")(x)
    x = L.ReLU(name="hidden_relu")(x)
    out = L.Dense(classes, name="logits")(x)
    return keras.Model(inp, out, name="mlp")


def dilated_conv(input_shape=(14, 14, 3)):
    """Conv2D with dilation (same and valid padding) and with use_bias=False."""
    inp = keras.Input(input_shape, name="image")
    x = L.Conv2D(6, 3, dilation_rate=2, padding="same", use_bias=False, name="dilated_same")(inp)
    x = L.ReLU(name="relu")(x)
    x = L.Conv2D(5, 3, dilation_rate=(2, 3), padding="valid", name="dilated_valid")(x)
    x = L.Conv2D(4, 3, padding="same", use_bias=False, name="plain_nobias")(x)
    x = L.MaxPooling2D(2, name="pool")(x)
    x = L.Flatten(name="flatten")(x)
    out = L.Dense(3, name="logits")(x)
    return keras.Model(inp, out, name="dilated_conv")


def alexnet_fc(classes=1000):
    """AlexNet's fully connected stack 9216 -> 4096 -> 4096 -> 1000."""
    inp = keras.Input((9216,), name="features")
    x = L.Dense(4096, activation="relu", name="fc6")(inp)
    x = L.Dense(4096, activation="relu", name="fc7")(x)
    out = L.Dense(classes, name="fc8")(x)
    return keras.Model(inp, out, name="alexnet_fc")


def randomize_batchnorm(model, seed=0):
    """Random gamma (some negative), beta, moving mean and variance for every BN layer."""
    rng = np.random.default_rng(seed)
    for layer in model._flatten_layers(include_self=False, recursive=True):  # noqa: SLF001
        if isinstance(layer, L.BatchNormalization):
            gamma, beta, mean, var = layer.get_weights()
            n = gamma.shape
            gamma = rng.uniform(0.3, 2.0, n) * rng.choice([1.0, -1.0], n, p=[0.8, 0.2])
            gamma.reshape(-1)[0] *= -np.sign(gamma.reshape(-1)[0])  # at least one negative
            layer.set_weights(
                [
                    gamma.astype(np.float32),
                    rng.normal(0, 0.5, n).astype(np.float32),
                    rng.normal(0, 0.5, n).astype(np.float32),
                    rng.uniform(0.2, 3.0, n).astype(np.float32),
                ]
            )


def randomize_quantized(q_model, seed=0):
    """Different Wp/Wn per TTQ layer (and channel) and random BN statistics, in place."""
    rng = np.random.default_rng(seed)
    for layer in q_model._flatten_layers(include_self=False, recursive=True):  # noqa: SLF001
        for w in layer.weights if hasattr(layer, "quantize_config") else []:
            if w.name.endswith(("_wp:0", "_wn:0")) and w.trainable:
                w.assign(rng.uniform(0.2, 1.5, w.shape).astype(np.float32))
    randomize_batchnorm(q_model, seed + 1)
    return q_model
