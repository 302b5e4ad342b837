"""NumPy kernels of the TFLite builtin ops that the converter emits around the TTQ ops.

Float32 graphs as produced by `tf.lite.TFLiteConverter` for common CNNs and MLPs: enough for
the NumPy interpreter (`ttq_keras.lite.interpreter`) to run a whole packed model and compare it
with the float one. Every kernel takes the op's input arrays and its builtin options object.
"""

import numpy as np
from tensorflow.lite.python import schema_py_generated as schema_fb

from ttq_keras.lite.reference_kernels import apply_activation, patches

__all__ = ["BUILTIN_KERNELS", "SUPPORTED_BUILTINS", "dequantize"]

_PAD = {schema_fb.Padding.SAME: "SAME", schema_fb.Padding.VALID: "VALID"}


def _conv_builtin(x, w, b, opt):
    o_, kh, kw, i_ = w.shape
    cols = patches(
        x,
        kh,
        kw,
        opt.strideH,
        opt.strideW,
        opt.dilationHFactor or 1,
        opt.dilationWFactor or 1,
        _PAD[opt.padding],
    )
    n, oh, ow = cols.shape[:3]
    if cols.shape[-1] != i_:
        if x.shape[-1] % i_ == 0:
            raise NotImplementedError("grouped CONV_2D")
        raise ValueError(f"CONV_2D: input has {x.shape[-1]} channels, filter expects {i_}")
    y = cols.reshape(n, oh, ow, -1).astype(np.float64) @ w.reshape(o_, -1).T.astype(np.float64)
    if b is not None:
        y = y + b
    return apply_activation(y, opt.fusedActivationFunction)


def _depthwise_builtin(x, w, b, opt):
    _, kh, kw, c_out = w.shape
    cols = patches(
        x,
        kh,
        kw,
        opt.strideH,
        opt.strideW,
        opt.dilationHFactor or 1,
        opt.dilationWFactor or 1,
        _PAD[opt.padding],
    ).astype(np.float64)
    mult = c_out // x.shape[-1]
    cols = cols[..., np.arange(c_out) // mult]
    y = (cols * w.reshape(kh * kw, c_out)).sum(axis=3)
    if b is not None:
        y = y + b
    return apply_activation(y, opt.fusedActivationFunction)


def _fc_builtin(x, w, b, opt):
    k = w.shape[1]
    y = x.reshape(-1, k).astype(np.float64) @ w.T.astype(np.float64)
    if b is not None:
        y = y + b
    if opt is not None and opt.keepNumDims:
        y = y.reshape(tuple(x.shape[:-1]) + (w.shape[0],))
    return apply_activation(y, opt.fusedActivationFunction if opt is not None else 0)


def _pool(x, opt, kind):
    pad = _PAD[opt.padding]
    geo = (opt.filterHeight, opt.filterWidth, opt.strideH, opt.strideW, 1, 1, pad)
    cols = patches(x, *geo).astype(np.float64)
    mask = patches(np.ones_like(x[..., :1]), *geo)  # 1 where a tap is inside the input
    if kind == "max":
        y = np.where(mask > 0, cols, -np.inf).max(axis=3)
    else:  # TFLite's average pool divides by the number of taps inside the input
        y = cols.sum(axis=3) / mask.sum(axis=3)
    return apply_activation(y, opt.fusedActivationFunction)


def _reshape(x, shape_in, opt):
    if shape_in is not None:
        shape = [int(d) for d in np.asarray(shape_in).reshape(-1)]
    elif opt is not None and opt.newShape is not None:
        shape = [int(d) for d in opt.newShape]
    else:
        raise ValueError("RESHAPE without a shape")
    if shape.count(-1) == 0 and int(np.prod(shape)) != x.size and shape and shape[0] == 1:
        shape[0] = -1  # shapes baked with batch 1 by the converter
    return x.reshape(shape)


def _space_to_batch(x, block, pads):
    n, h, w, c = x.shape
    bh, bw = (int(v) for v in block)
    xp = np.pad(x, ((0, 0), tuple(pads[0]), tuple(pads[1]), (0, 0)))
    hp, wp = xp.shape[1:3]
    y = xp.reshape(n, hp // bh, bh, wp // bw, bw, c).transpose(2, 4, 0, 1, 3, 5)
    return y.reshape(bh * bw * n, hp // bh, wp // bw, c)


def _batch_to_space(x, block, crops):
    bn, h, w, c = x.shape
    bh, bw = (int(v) for v in block)
    n = bn // (bh * bw)
    y = x.reshape(bh, bw, n, h, w, c).transpose(2, 3, 0, 4, 1, 5).reshape(n, h * bh, w * bw, c)
    (ct, cb), (cl, cr) = crops
    return y[:, ct : h * bh - cb, cl : w * bw - cr, :]


def _strided_slice(x, begin, end, strides, opt):
    idx = []
    for d in range(len(begin)):
        b = None if (opt.beginMask >> d) & 1 else int(begin[d])
        e = None if (opt.endMask >> d) & 1 else int(end[d])
        if (opt.shrinkAxisMask >> d) & 1:
            idx.append(int(begin[d]))
        else:
            idx.append(slice(b, e, int(strides[d])))
    if opt.ellipsisMask or opt.newAxisMask:
        raise NotImplementedError("STRIDED_SLICE with ellipsis/new-axis masks")
    return np.asarray(x[tuple(idx)])


def _binary(fn):
    def op(args, opt):
        y = fn(args[0].astype(np.float64), args[1].astype(np.float64))
        act = getattr(opt, "fusedActivationFunction", 0) if opt is not None else 0
        return apply_activation(y, act)

    return op


def _mean(args, opt, fn=np.mean):
    axes = tuple(int(a) % args[0].ndim for a in np.asarray(args[1]).reshape(-1))
    return fn(args[0].astype(np.float64), axis=axes, keepdims=bool(opt.keepDims if opt else 0))


def _softmax(args, opt):
    x = args[0].astype(np.float64) * (opt.beta if opt is not None else 1.0)
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _concat(args, opt):
    return apply_activation(np.concatenate(args, axis=opt.axis), opt.fusedActivationFunction)


BUILTIN_KERNELS = {
    "ADD": _binary(np.add),
    "SUB": _binary(np.subtract),
    "MUL": _binary(np.multiply),
    "DIV": _binary(np.divide),
    "MAXIMUM": _binary(np.maximum),
    "MINIMUM": _binary(np.minimum),
    "RELU": lambda a, o: np.maximum(a[0], 0),
    "RELU6": lambda a, o: np.clip(a[0], 0, 6),
    "RELU_N1_TO_1": lambda a, o: np.clip(a[0], -1, 1),
    "LEAKY_RELU": lambda a, o: np.where(a[0] >= 0, a[0], a[0] * o.alpha),
    "LOGISTIC": lambda a, o: 1.0 / (1.0 + np.exp(-a[0].astype(np.float64))),
    "TANH": lambda a, o: np.tanh(a[0].astype(np.float64)),
    "HARD_SWISH": lambda a, o: a[0] * np.clip(a[0] + 3.0, 0, 6) / 6.0,
    "SOFTMAX": _softmax,
    "MEAN": _mean,
    "SUM": lambda a, o: _mean(a, o, np.sum),
    "REDUCE_MAX": lambda a, o: _mean(a, o, np.max),
    "REDUCE_PROD": lambda a, o: _mean(a, o, np.prod),
    "GATHER": lambda a, o: np.take(a[0], np.asarray(a[1]).astype(np.int64), axis=o.axis),
    "CAST": lambda a, o: a[0],
    "CONCATENATION": _concat,
    "PAD": lambda a, o: np.pad(a[0], np.asarray(a[1]).astype(np.int64)),
    "PADV2": lambda a, o: np.pad(
        a[0], np.asarray(a[1]).astype(np.int64), constant_values=a[2].reshape(())
    ),
    "RESHAPE": lambda a, o: _reshape(a[0], a[1] if len(a) > 1 else None, o),
    "SQUEEZE": lambda a, o: np.squeeze(
        a[0], axis=tuple(int(d) for d in o.squeezeDims) if o.squeezeDims is not None else None
    ),
    "EXPAND_DIMS": lambda a, o: np.expand_dims(a[0], int(np.asarray(a[1]).reshape(()))),
    "TRANSPOSE": lambda a, o: np.transpose(a[0], [int(p) for p in a[1]]),
    "SHAPE": lambda a, o: np.asarray(a[0].shape, np.int32),
    "PACK": lambda a, o: np.stack(a, axis=o.axis),
    "STRIDED_SLICE": lambda a, o: _strided_slice(a[0], a[1], a[2], a[3], o),
    "SPACE_TO_BATCH_ND": lambda a, o: _space_to_batch(a[0], a[1], np.asarray(a[2])),
    "BATCH_TO_SPACE_ND": lambda a, o: _batch_to_space(a[0], a[1], np.asarray(a[2])),
    "CONV_2D": lambda a, o: _conv_builtin(a[0], a[1], a[2] if len(a) > 2 else None, o),
    "DEPTHWISE_CONV_2D": lambda a, o: _depthwise_builtin(
        a[0], a[1], a[2] if len(a) > 2 else None, o
    ),
    "FULLY_CONNECTED": lambda a, o: _fc_builtin(a[0], a[1], a[2] if len(a) > 2 else None, o),
    "AVERAGE_POOL_2D": lambda a, o: _pool(a[0], o, "avg"),
    "MAX_POOL_2D": lambda a, o: _pool(a[0], o, "max"),
}
SUPPORTED_BUILTINS = tuple(sorted(BUILTIN_KERNELS)) + ("DEQUANTIZE", "QUANTIZE (float16 only)")


def dequantize(x, t):
    q = t.quantization
    if x.dtype in (np.float16, np.float32):
        return x.astype(np.float32)
    scale = np.asarray(q.scale, np.float32)
    zp = np.asarray(q.zeroPoint, np.int64)
    if scale.size > 1:
        shape = [1] * x.ndim
        shape[q.quantizedDimension] = -1
        scale, zp = scale.reshape(shape), zp.reshape(shape)
    return ((x.astype(np.int64) - zp) * scale).astype(np.float32)
