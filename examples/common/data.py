"""Input pipelines for the examples.

Small image datasets (CIFAR-10, Fashion-MNIST) are held in memory as uint8 NumPy arrays and fed
through `tf.data` with the official TTQ CIFAR augmentation: zero-pad 4 pixels on each side, take a
random crop of the original size, flip left-right at random, subtract the per-pixel mean of the
training set and divide by 128 (the official code subtracts the mean and then scales by x/128 - 1;
the constant -1 is absorbed by the BatchNorm after conv0, so it is left out here).

Fashion-MNIST is read from the four IDX files (`*-idx3-ubyte.gz`, `*-idx1-ubyte.gz`), e.g. the ones
installed by Debian's `dataset-fashion-mnist` into /usr/share/datasets/fashion-mnist, so it needs
no network. Images stay 28x28x1; the ResNet adapts its input shape (stages run at 28, 14 and 7).

ImageNet is streamed from TFDS (`imagenet2012`, which needs the tar files in its manual_dir); the
AlexNet augmentation of the official code is in `imagenet_train_preprocess`.
"""

import dataclasses
import functools
import gzip
import os
import struct

import numpy as np

from ttq_keras import tf

DEFAULT_FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"

_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


@dataclasses.dataclass
class ImageData:
    """An in-memory image classification dataset (uint8 NHWC images, int labels)."""

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    num_classes: int

    @property
    def input_shape(self):
        return tuple(self.x_train.shape[1:])

    @functools.cached_property
    def mean_image(self):
        """Per-pixel mean of the training images, float32 of shape input_shape."""
        return self.x_train.astype(np.float64).mean(axis=0).astype(np.float32)

    def subset(self, train_examples=None, test_examples=None, seed=0):
        """Returns a copy limited to the first examples of a fixed random permutation."""
        x_train, y_train, x_test, y_test = self.x_train, self.y_train, self.x_test, self.y_test
        if train_examples and train_examples < len(x_train):
            idx = np.random.RandomState(seed).permutation(len(x_train))[:train_examples]
            x_train, y_train = x_train[idx], y_train[idx]
        if test_examples and test_examples < len(x_test):
            x_test, y_test = x_test[:test_examples], y_test[:test_examples]
        return ImageData(self.name, x_train, y_train, x_test, y_test, self.num_classes)

    def normalize(self, x):
        """NumPy version of the eval preprocessing: (x - mean) / 128 as float32."""
        return (x.astype(np.float32) - self.mean_image) / 128.0


def read_idx(path):
    """Reads an IDX file (optionally gzip-compressed) into a NumPy array.

    Raises:
        ValueError: if the file is not a valid IDX file or its size does not match its header.
    """
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0:
        raise ValueError(f"{path}: not an IDX file (expected magic 0x0000TTDD, got {data[:4]!r}).")
    type_code, ndim = data[2], data[3]
    if type_code not in _IDX_DTYPES:
        raise ValueError(f"{path}: unknown IDX element type 0x{type_code:02x}.")
    dims = struct.unpack(f">{ndim}I", data[4 : 4 + 4 * ndim])
    dtype = np.dtype(_IDX_DTYPES[type_code])
    offset = 4 + 4 * ndim
    expected = int(np.prod(dims)) * dtype.itemsize
    if len(data) - offset != expected:
        raise ValueError(
            f"{path}: header says shape {dims} ({expected} bytes) but the file holds "
            f"{len(data) - offset} bytes of data."
        )
    return np.frombuffer(data, dtype=dtype, offset=offset).reshape(dims)


def _find_idx(directory, stem):
    for name in (stem + ".gz", stem, stem.replace("-idx", ".idx") + ".gz"):
        path = os.path.join(directory, name)
        if os.path.exists(path):
            return path
    raise FileNotFoundError(
        f"Fashion-MNIST file {stem}(.gz) not found in {directory}. Install Debian's "
        "dataset-fashion-mnist (sudo apt-get install dataset-fashion-mnist, or `make dataset`) or "
        "pass --fashion_mnist_dir pointing at the four IDX files."
    )


def load_fashion_mnist(directory=None):
    """Loads Fashion-MNIST from IDX files; images are uint8 (N, 28, 28, 1)."""
    directory = directory or DEFAULT_FASHION_MNIST_DIR
    arrays = {}
    for split, prefix in (("train", "train"), ("test", "t10k")):
        x = read_idx(_find_idx(directory, f"{prefix}-images-idx3-ubyte"))
        y = read_idx(_find_idx(directory, f"{prefix}-labels-idx1-ubyte"))
        if x.ndim != 3 or len(x) != len(y):
            raise ValueError(
                f"Fashion-MNIST {split}: expected images (N, 28, 28) and N labels, got {x.shape} and "
                f"{y.shape}."
            )
        arrays[split] = (x[..., None].astype(np.uint8), y.astype(np.int64))
    return ImageData("fashion_mnist", *arrays["train"], *arrays["test"], num_classes=10)


def load_tfds_numpy(name, data_dir=None, download=True, train_split="train", test_split="test"):
    """Loads a small TFDS image dataset (e.g. cifar10) fully into memory."""
    import tensorflow_datasets as tfds

    def load(split):
        # Batches of 1024 rather than batch_size=-1: a single huge element is slow to build and
        # crashes TF on datasets of unknown cardinality (e.g. tfds.testing.mock_data).
        ds = tfds.load(name, split=split, data_dir=data_dir, download=download, as_supervised=True)
        xs, ys = [], []
        for x, y in tfds.as_numpy(ds.batch(1024)):
            xs.append(x)
            ys.append(y)
        if not xs:
            raise ValueError(f"TFDS dataset {name!r} split {split!r} is empty.")
        return np.concatenate(xs).astype(np.uint8), np.concatenate(ys).astype(np.int64)

    builder = tfds.builder(name, data_dir=data_dir)
    num_classes = builder.info.features["label"].num_classes
    x_train, y_train = load(train_split)
    x_test, y_test = load(test_split)
    return ImageData(name, x_train, y_train, x_test, y_test, num_classes)


def load_image_data(dataset, data_dir=None, download=True, fashion_mnist_dir=None):
    """`fashion_mnist` reads the offline IDX files; anything else is a TFDS name."""
    if dataset == "fashion_mnist":
        return load_fashion_mnist(fashion_mnist_dir)
    return load_tfds_numpy(dataset, data_dir=data_dir, download=download)


def _augment_fn(mean, pad, flip):
    mean = tf.constant(mean)
    height, width, channels = mean.shape

    def augment(image, label):
        image = tf.cast(image, tf.float32)
        if pad:
            image = tf.pad(image, [[pad, pad], [pad, pad], [0, 0]])
            image = tf.image.random_crop(image, [height, width, channels])
        if flip:
            image = tf.image.random_flip_left_right(image)
        return (image - mean) / 128.0, label

    return augment


def train_dataset(data, batch_size, pad=4, flip=True, seed=None, drop_remainder=True):
    """Shuffled, augmented, batched training set of an `ImageData` (one pass = one epoch)."""
    ds = tf.data.Dataset.from_tensor_slices((data.x_train, data.y_train))
    ds = ds.shuffle(len(data.x_train), seed=seed, reshuffle_each_iteration=True)
    ds = ds.map(_augment_fn(data.mean_image, pad, flip), num_parallel_calls=tf.data.AUTOTUNE)
    return ds.batch(batch_size, drop_remainder=drop_remainder).prefetch(tf.data.AUTOTUNE)


def eval_dataset(data, batch_size, split="test"):
    """Normalized, unaugmented, batched test (or train) set of an `ImageData`."""
    x, y = (data.x_test, data.y_test) if split == "test" else (data.x_train, data.y_train)
    mean = tf.constant(data.mean_image)
    ds = tf.data.Dataset.from_tensor_slices((x, y))
    ds = ds.map(
        lambda im, lb: ((tf.cast(im, tf.float32) - mean) / 128.0, lb),
        num_parallel_calls=tf.data.AUTOTUNE,
    )
    return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)


# ---------------------------------------------------------------------------------------------
# ImageNet (AlexNet example)

IMAGENET_MEAN = np.array([123.68, 116.78, 103.94], np.float32)


def imagenet_train_preprocess(image, image_size):
    """Official AlexNet train augmentation, scaled to `image_size` (224 in the paper).

    The short side is resized to a random value in [size, size * 308/224), each axis is then
    jittered by U(0.85, 1.15) (bicubic), a random size x size crop is taken, flipped at random; the
    per-channel ImageNet mean is subtracted and the result divided by 255.
    """
    image = tf.cast(image, tf.float32)
    shape = tf.cast(tf.shape(image)[:2], tf.float32)
    short = tf.random.uniform([], image_size, image_size * 308.0 / 224.0)
    scale = short / tf.reduce_min(shape)
    jitter = tf.random.uniform([2], 0.85, 1.15)
    new_hw = tf.maximum(tf.cast(tf.round(shape * scale * jitter), tf.int32), image_size)
    image = tf.image.resize(image, new_hw, method="bicubic")
    image = tf.image.random_crop(image, [image_size, image_size, 3])
    image = tf.image.random_flip_left_right(image)
    return (tf.clip_by_value(image, 0.0, 255.0) - IMAGENET_MEAN) / 255.0


def imagenet_eval_preprocess(image, image_size):
    """Short side to size * 256/224, centre crop size x size, mean subtraction, /255."""
    image = tf.cast(image, tf.float32)
    shape = tf.cast(tf.shape(image)[:2], tf.float32)
    scale = (image_size * 256.0 / 224.0) / tf.reduce_min(shape)
    new_hw = tf.maximum(tf.cast(tf.round(shape * scale), tf.int32), image_size)
    image = tf.image.resize(image, new_hw, method="bilinear")
    image = tf.image.resize_with_crop_or_pad(image, image_size, image_size)
    return (image - IMAGENET_MEAN) / 255.0


def imagenet_datasets(
    data_dir,
    manual_dir,
    batch_size,
    image_size=224,
    train_examples=None,
    test_examples=None,
    download=True,
):
    """TFDS imagenet2012 train/validation pipelines and the number of classes."""
    import tensorflow_datasets as tfds

    config = tfds.download.DownloadConfig(manual_dir=manual_dir) if manual_dir else None
    builder = tfds.builder("imagenet2012", data_dir=data_dir)
    if download:
        builder.download_and_prepare(download_config=config)
    # JPEG bytes are shuffled and decoded in the map: decoded images would make the shuffle
    # buffer gigabytes large.
    skip = {"image": tfds.decode.SkipDecoding()}
    train = builder.as_dataset(split="train", as_supervised=True, shuffle_files=True, decoders=skip)
    test = builder.as_dataset(split="validation", as_supervised=True, decoders=skip)
    if train_examples:
        train = train.take(train_examples)
    if test_examples:
        test = test.take(test_examples)

    def decode(data):
        return tf.io.decode_image(data, channels=3, expand_animations=False)

    train = train.shuffle(4096).map(
        lambda x, y: (imagenet_train_preprocess(decode(x), image_size), y),
        num_parallel_calls=tf.data.AUTOTUNE,
    )
    test = test.map(
        lambda x, y: (imagenet_eval_preprocess(decode(x), image_size), y),
        num_parallel_calls=tf.data.AUTOTUNE,
    )
    train = train.batch(batch_size, drop_remainder=True).prefetch(tf.data.AUTOTUNE)
    test = test.batch(batch_size).prefetch(tf.data.AUTOTUNE)
    return train, test, builder.info.features["label"].num_classes


def synthetic_image_data(num_train, num_test, image_size, num_classes, channels=3, seed=0):
    """Random uint8 images with random labels (smoke runs only: nothing to learn)."""
    rng = np.random.RandomState(seed)
    shape = (image_size, image_size, channels)
    return ImageData(
        "synthetic",
        rng.randint(0, 256, (num_train,) + shape).astype(np.uint8),
        rng.randint(0, num_classes, num_train).astype(np.int64),
        rng.randint(0, 256, (num_test,) + shape).astype(np.uint8),
        rng.randint(0, num_classes, num_test).astype(np.int64),
        num_classes,
    )
