"""How many threads the runtime's own ops get next to the TTQ delegate.

`ttq_keras.Interpreter(num_threads=N)` gives the TTQ delegate N threads for every packed op. The
runtime (LiteRT / tf.lite) runs the remaining builtin ops (ADD, MEAN, a float first layer, ...)
on XNNPACK or its builtin kernels with a thread pool of its own. Two pools on the same cores
take turns spinning: measured on a 2-core machine (`python -m ttq_keras.runtime.benchmark M --profile`,
ResNet-20), each small XNNPACK ADD between two TTQ convs took 70-80 us at 2 threads against
5-10 us at 1, because XNNPACK's workers had to be woken while the delegate's workers held the
cores. When the builtin ops are a small part of the work, giving the runtime one thread removes
that contention and costs nothing; when they are a large part (a big float layer kept out of
the ternary conversion), the runtime keeps N threads.

    runtime_threads(model_path=None, model_content=None, num_threads=2) -> 1 or num_threads
"""

import math

__all__ = ["runtime_threads", "op_costs", "BUILTIN_SHARE_FOR_THREADS", "BUILTIN_MACS_FOR_THREADS"]

# The runtime keeps num_threads when its own ops are at least this share of the model's
# multiply-accumulates and at least this many of them (below ~2M MACs an op is a few
# microseconds on one core: a thread hand-off costs about as much).
BUILTIN_SHARE_FOR_THREADS = 0.1
BUILTIN_MACS_FOR_THREADS = 2_000_000

_TTQ_OPS = ("TTQ_CONV_2D", "TTQ_DEPTHWISE_CONV_2D", "TTQ_FULLY_CONNECTED")


def _elements(shape):
    return int(math.prod(max(int(s), 1) for s in shape)) if len(shape) else 1


def op_costs(interpreter):
    """[(op name, multiply-accumulates, is_ttq)] for every op of an (unallocated) interpreter;
    ops without a weight tensor count one MAC per output element."""
    tensors = {d["index"]: d for d in interpreter.get_tensor_details()}
    costs = []
    for op in interpreter._get_ops_details():  # noqa: SLF001
        name = op["op_name"]
        if name == "DELEGATE":
            continue
        outputs = [int(i) for i in op["outputs"] if int(i) >= 0]
        inputs = [int(i) for i in op["inputs"] if int(i) >= 0]
        out = sum(_elements(tensors[i]["shape"]) for i in outputs if i in tensors)

        def shape(k):
            return list(tensors[inputs[k]]["shape"]) if len(inputs) > k else []

        if name in _TTQ_OPS:
            codes = shape(1)  # [C_out, ceil(K / 5)]
            macs = out * 5 * (codes[-1] if codes else 1)
        elif name == "CONV_2D":
            macs = out * _elements(shape(1)[1:])  # OHWI filter
        elif name == "DEPTHWISE_CONV_2D":
            f = shape(1)  # [1, KH, KW, C·m]
            macs = out * _elements(f[1:3]) if len(f) == 4 else out
        elif name == "FULLY_CONNECTED":
            f = shape(1)  # [out, in]
            macs = out * (int(f[-1]) if f else 1)
        elif name in ("BATCH_MATMUL", "TRANSPOSE_CONV"):
            a = shape(0)
            macs = out * (int(a[-1]) if a else 1)
        else:
            macs = out
        costs.append((name, macs, name in _TTQ_OPS))
    return costs


def runtime_threads(module, model_path=None, model_content=None, num_threads=1):
    """The runtime's thread count for a model run with `num_threads` delegate threads.

    `module` is the runtime's interpreter module (`ai_edge_litert.interpreter` or `tf.lite`);
    a probe interpreter without delegates reads the ops and shapes (nothing is allocated).
    """
    if num_threads <= 1:
        return 1
    resolver_types = getattr(module, "OpResolverType", None) or module.experimental.OpResolverType
    try:
        probe = module.Interpreter(
            model_path=model_path,
            model_content=model_content,
            experimental_op_resolver_type=resolver_types.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
        )
        costs = op_costs(probe)
    except Exception:  # noqa: BLE001  (a bad file: the real interpreter reports it)
        return num_threads
    total = sum(c for _, c, _ in costs) or 1
    builtin = sum(c for _, c, ttq in costs if not ttq)
    if builtin >= BUILTIN_MACS_FOR_THREADS and builtin >= BUILTIN_SHARE_FOR_THREADS * total:
        return num_threads
    return 1
