"""Small models and data shared by the tests."""

import numpy as np

from ttq_keras import keras


def small_cnn(seed=0, input_shape=(10, 10, 3), classes=5):
    """Conv-BN-ReLU x2, depthwise, dense head: every supported layer type, with BN to fold."""
    keras.utils.set_random_seed(seed)
    inputs = keras.Input(input_shape, name="image")
    x = keras.layers.Conv2D(8, 3, padding="same", use_bias=False, name="conv0")(inputs)
    x = keras.layers.BatchNormalization(name="bn0")(x)
    x = keras.layers.ReLU(name="relu0")(x)
    x = keras.layers.Conv2D(12, 3, strides=2, padding="valid", name="conv1")(x)
    x = keras.layers.BatchNormalization(name="bn1")(x)
    x = keras.layers.ReLU(name="relu1")(x)
    x = keras.layers.DepthwiseConv2D(3, depth_multiplier=2, padding="same", name="dw")(x)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    x = keras.layers.Dense(16, activation="relu", name="fc0")(x)
    outputs = keras.layers.Dense(classes, name="head")(x)
    return keras.Model(inputs, outputs, name="small_cnn")


def mlp(seed=0, features=20, hidden=(32, 24), classes=4):
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((features,), name="features")
    x = inputs
    for i, units in enumerate(hidden):
        x = keras.layers.Dense(units, activation="relu", name=f"dense{i}")(x)
    outputs = keras.layers.Dense(classes, name="logits")(x)
    return keras.Model(inputs, outputs, name="mlp")


def classification_data(n=256, features=20, classes=4, seed=0):
    """A linearly separable-ish problem: labels from a random linear map."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, features)).astype(np.float32)
    w = rng.normal(size=(features, classes)).astype(np.float32)
    y = np.argmax(x @ w, axis=1).astype(np.int32)
    return x, y


def randomize_scales(model, seed=0):
    """Gives every TTQ layer distinct, non-trivial Wp/Wn (and returns them by variable name)."""
    rng = np.random.default_rng(seed)
    values = {}
    for variable in model.weights:
        if variable.name.endswith(("_wp:0", "_wn:0")):
            value = rng.uniform(0.3, 2.0, size=variable.shape).astype(np.float32)
            variable.assign(value)
            values[variable.name] = value
    return values


def randomize_batchnorm(model, seed=0):
    """Non-trivial BatchNormalization statistics, so that folding is really exercised."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            gamma, beta, mean, var = layer.get_weights()
            layer.set_weights([
                rng.uniform(0.5, 1.5, gamma.shape).astype(np.float32),
                rng.normal(0, 0.2, beta.shape).astype(np.float32),
                rng.normal(0, 0.2, mean.shape).astype(np.float32),
                rng.uniform(0.5, 2.0, var.shape).astype(np.float32),
            ])
