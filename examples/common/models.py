"""The two architectures of the official TTQ code (ResNet for CIFAR-10, BN-AlexNet for ImageNet).

Both are built from stock tf_keras layers only (no Lambda, no custom layers), so that
`ttq_keras.quantize_model`, `ttq_keras.to_float_model`, `clone_model` and the TFLite converters
see nothing unusual.
"""

from ttq_keras import keras

layers = keras.layers


def _conv_init():
    # The official code draws conv weights from N(0, 2 / (k*k*C_out)): He-normal with fan_out.
    return keras.initializers.VarianceScaling(
        2.0, mode="fan_out", distribution="untruncated_normal"
    )


def _bn(name, epsilon=1e-5):
    # tensorpack's defaults in the official code: decay 0.9, epsilon 1e-5 (AlexNet: 1e-4).
    return layers.BatchNormalization(momentum=0.9, epsilon=epsilon, name=name)


def _channel_pad(x, pad, name):
    """Zero-pads the channel axis by `pad` on both sides with stock layers.

    (H, W, C) -> Permute (W, C, H) -> ZeroPadding2D on (W, C) -> Permute back (H, W, C+2p).
    Converts to TRANSPOSE + PAD + TRANSPOSE with static shapes. (A Reshape to 5-D would make
    the converter compute the batch size at run time with SHAPE/STRIDED_SLICE/PACK ops, whose
    dynamic output shapes cost TFLite and XNNPACK a re-plan on every invoke.)
    """
    x = layers.Permute((2, 3, 1), name=name + "_to_wch")(x)
    x = layers.ZeroPadding2D(((0, 0), (pad, pad)), name=name + "_zeropad")(x)
    return layers.Permute((3, 1, 2), name=name + "_to_hwc")(x)


def _residual(x, name, increase_dim=False, first=False):
    """Pre-activation basic block: [BN-ReLU]-conv-BN-ReLU-conv + option-A shortcut."""
    in_channels = x.shape[-1]
    out_channels = in_channels * 2 if increase_dim else in_channels
    stride = 2 if increase_dim else 1
    b = x
    if not first:  # the stem already ends with BN-ReLU
        b = _bn(name + "_preact_bn")(b)
        b = layers.ReLU(name=name + "_preact_relu")(b)
    b = layers.Conv2D(
        out_channels,
        3,
        strides=stride,
        padding="same",
        use_bias=False,
        kernel_initializer=_conv_init(),
        name=name + "_conv1",
    )(b)
    b = _bn(name + "_bn1")(b)
    b = layers.ReLU(name=name + "_relu1")(b)
    b = layers.Conv2D(
        out_channels,
        3,
        padding="same",
        use_bias=False,
        kernel_initializer=_conv_init(),
        name=name + "_conv2",
    )(b)
    shortcut = x
    if increase_dim:
        shortcut = layers.AveragePooling2D(2, name=name + "_pool")(shortcut)
        shortcut = _channel_pad(shortcut, in_channels // 2, name + "_shortcut")
    return layers.Add(name=name + "_add")([b, shortcut])


def resnet_cifar(depth=20, input_shape=(32, 32, 3), num_classes=10):
    """Pre-activation ResNet-(6n+2) of the official code (He et al., "identity mappings").

    Stem conv0-BN-ReLU (16 channels), three stages of n blocks with 16/32/64 channels, option-A
    shortcuts (2x2 average pool + zero-padded channels) when the width doubles, head
    BN-ReLU-global average pool-Dense(num_classes) with bias, returning logits. Convolutions have
    no bias and a He-normal (fan_out) init; BatchNorm momentum 0.9, epsilon 1e-5.

    Layer names follow the official variable scopes: conv0, res1.0_conv1, ..., linear.
    Odd input sizes work (e.g. 28x28 Fashion-MNIST runs its stages at 28, 14 and 7).
    """
    if depth < 8 or (depth - 2) % 6:
        raise ValueError(
            f"ResNet depth must be 6n+2 with n >= 1 (20, 32, 44, 56, ...). "
            f"Received: depth={depth}"
        )
    n = (depth - 2) // 6
    for size in input_shape[:2]:
        if size % 4:
            raise ValueError(
                f"Input height and width must be multiples of 4 (two stride-2 "
                f"stages). Received: input_shape={tuple(input_shape)}"
            )
    inputs = keras.Input(shape=input_shape, name="image")
    x = layers.Conv2D(
        16, 3, padding="same", use_bias=False, kernel_initializer=_conv_init(), name="conv0"
    )(inputs)
    x = _bn("conv0_bn")(x)
    x = layers.ReLU(name="conv0_relu")(x)
    for stage in range(3):
        for k in range(n):
            x = _residual(
                x,
                f"res{stage + 1}.{k}",
                increase_dim=(stage > 0 and k == 0),
                first=(stage == 0 and k == 0),
            )
    x = _bn("bnlast")(x)
    x = layers.ReLU(name="bnlast_relu")(x)
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    outputs = layers.Dense(num_classes, name="linear")(x)
    return keras.Model(inputs, outputs, name=f"resnet{depth}")


def _grouped_conv(x, filters, kernel_size, groups, name, mode):
    """A grouped convolution without bias.

    mode "groups": one Conv2D(groups=...) (one kernel, hence one Wp/Wn and one threshold shared by
    the groups, as in the official code). mode "split": `groups` separate Conv2D layers on channel
    slices (`_channel_slice`), concatenated; each group then has its own Wp/Wn and threshold.
    """
    if mode == "groups" or groups == 1:
        return layers.Conv2D(
            filters,
            kernel_size,
            padding="same",
            use_bias=False,
            groups=groups,
            kernel_initializer=_conv_init(),
            name=name,
        )(x)
    channels = x.shape[-1]
    per_group = channels // groups
    branches = []
    for g in range(groups):
        part = _channel_slice(x, g * per_group, (g + 1) * per_group, f"{name}_slice{g}")
        branches.append(
            layers.Conv2D(
                filters // groups,
                kernel_size,
                padding="same",
                use_bias=False,
                kernel_initializer=_conv_init(),
                name=f"{name}_g{g}",
            )(part)
        )
    return layers.Concatenate(name=name + "_concat")(branches)


def _channel_slice(x, start, stop, name):
    """x[..., start:stop] with stock layers: Reshape (H, W, C, 1), Cropping3D on C, Reshape."""
    h, w, c = x.shape[1:]
    y = layers.Reshape((h, w, c, 1), name=name + "_expand")(x)
    y = layers.Cropping3D(((0, 0), (0, 0), (start, c - stop)), name=name + "_crop")(y)
    return layers.Reshape((h, w, stop - start), name=name + "_squeeze")(y)


def alexnet_bn(input_shape=(224, 224, 3), num_classes=1000, width_mult=1.0, group_mode="split"):
    """BN AlexNet of the official TTQ/DoReFa code (no dropout, BN after every layer but conv0).

    conv0 96@12x12/4 VALID-ReLU; conv1 256@5x5 (2 groups)-BN-maxpool 3/2-ReLU;
    conv2 384@3x3-BN-maxpool-ReLU; conv3 384@3x3 (2 groups)-BN-ReLU;
    conv4 256@3x3 (2 groups)-BN-maxpool VALID-ReLU; fc0 4096-BN-ReLU; fc1 4096-BN-ReLU;
    fct num_classes with bias (logits). BN momentum 0.9, epsilon 1e-4. `width_mult` scales every
    channel and unit count (smoke runs); `group_mode` is "split" or "groups" (`_grouped_conv`).
    """
    if group_mode not in ("split", "groups"):
        raise ValueError(
            f"group_mode must be 'split' or 'groups'. Received: group_mode={group_mode!r}"
        )

    def ch(c):
        return max(2, int(round(c * width_mult / 2)) * 2)

    def bn(name):
        return _bn(name, epsilon=1e-4)

    inputs = keras.Input(shape=input_shape, name="image")
    x = layers.Conv2D(
        ch(96),
        12,
        strides=4,
        padding="valid",
        use_bias=False,
        kernel_initializer=_conv_init(),
        name="conv0",
    )(inputs)
    x = layers.ReLU(name="conv0_relu")(x)
    x = _grouped_conv(x, ch(256), 5, 2, "conv1", group_mode)
    x = bn("conv1_bn")(x)
    x = layers.MaxPooling2D(3, 2, padding="same", name="pool1")(x)
    x = layers.ReLU(name="conv1_relu")(x)
    x = layers.Conv2D(
        ch(384), 3, padding="same", use_bias=False, kernel_initializer=_conv_init(), name="conv2"
    )(x)
    x = bn("conv2_bn")(x)
    x = layers.MaxPooling2D(3, 2, padding="same", name="pool2")(x)
    x = layers.ReLU(name="conv2_relu")(x)
    x = _grouped_conv(x, ch(384), 3, 2, "conv3", group_mode)
    x = bn("conv3_bn")(x)
    x = layers.ReLU(name="conv3_relu")(x)
    x = _grouped_conv(x, ch(256), 3, 2, "conv4", group_mode)
    x = bn("conv4_bn")(x)
    x = layers.MaxPooling2D(3, 2, padding="valid", name="pool4")(x)
    x = layers.ReLU(name="conv4_relu")(x)
    x = layers.Flatten(name="flatten")(x)
    for i in range(2):
        x = layers.Dense(ch(4096), use_bias=False, name=f"fc{i}")(x)
        x = bn(f"fc{i}_bn")(x)
        x = layers.ReLU(name=f"fc{i}_relu")(x)
    outputs = layers.Dense(num_classes, name="fct")(x)
    return keras.Model(inputs, outputs, name="alexnet_bn")
