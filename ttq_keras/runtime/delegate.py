"""Running packed ternary .tflite files (docs/format.md) with the TTQ delegate.

The packed ops (TTQ_CONV_2D, TTQ_DEPTHWISE_CONV_2D, TTQ_FULLY_CONNECTED) are custom ops that
no stock runtime knows; the C++ external delegate `libttq_delegate.so` (tflite_delegate/)
claims them. This module finds that library and attaches it to a LiteRT (`ai_edge_litert`)
interpreter, or to TensorFlow's `tf.lite.Interpreter` when LiteRT is not installed.

    import ttq_keras
    interpreter = ttq_keras.Interpreter(model_content=packed_bytes, num_threads=2)
    interpreter.allocate_tensors()
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], x)
    interpreter.invoke()
    y = interpreter.get_tensor(interpreter.get_output_details()[0]["index"])
    interpreter.delegated_ops()   # [DelegatedOp(node_index=0, op_name='TTQ_CONV_2D', ...), ...]

Numeric modes: "exact" (float activations; matches the float Keras model up to float rounding)
and "fast" (activations quantized dynamically to int8 per input row / image, int32 sums; error
at most max|x| / 254 times the row's sum of |weights| per output).

The library is looked up in `$TTQ_DELEGATE_LIB`, then in `ttq_keras/lib/libttq_delegate.so`
(where `make delegate` / `make setup` installs it).
"""

import contextlib
import ctypes
import dataclasses
import os
from typing import List, Optional

from ttq_keras.lite.format import TTQ_OPS

__all__ = ["load_delegate", "Interpreter", "DelegatedOp", "library_path", "usable_cpus", "MODES"]

MODES = ("exact", "fast")
LIBRARY_NAME = "libttq_delegate.so"
ENV_VAR = "TTQ_DELEGATE_LIB"
_RUNTIMES = ("auto", "litert", "tensorflow")


@dataclasses.dataclass(frozen=True)
class DelegatedOp:
    """One op the TTQ delegate took over.

    Attributes:
      node_index: the op's index in the model's (first) subgraph.
      op_name: its custom op name, e.g. "TTQ_CONV_2D".
      kernel: the kernel implementation chosen for it (e.g. "reference", "avx2_fp32").
      fused_nodes: indices of the builtin nodes the delegate runs inside this op's kernel (the
        MUL and ADD of an unfolded BatchNormalization feeding a TTQ convolution), or ().
    """

    node_index: int
    op_name: str
    kernel: str
    fused_nodes: tuple = ()


def library_path() -> str:
    """Path of libttq_delegate.so: `$TTQ_DELEGATE_LIB`, else `ttq_keras/lib/`.

    Raises:
      FileNotFoundError: the library is not built (the message says how to build it).
    """
    env = os.environ.get(ENV_VAR)
    if env:
        if not os.path.isfile(env):
            raise FileNotFoundError(
                f"{ENV_VAR}={env!r} does not name a file. Point it at a built "
                f"{LIBRARY_NAME} or unset it to use the one installed by `make delegate`."
            )
        return env
    package_dir = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # ttq_keras/
    packaged = os.path.join(package_dir, "lib", LIBRARY_NAME)
    if os.path.isfile(packaged):
        return packaged
    raise FileNotFoundError(
        f"The TTQ delegate library {LIBRARY_NAME} was not found (looked in {packaged} and "
        f"${ENV_VAR}). Build it from the repository root: run `make setup` (or just "
        "`make delegate`), which needs cmake, ninja, a C++17 compiler and Maven "
        "(scripts/install_build_deps.sh installs them), or set "
        f"{ENV_VAR}=/path/to/{LIBRARY_NAME}."
    )


def usable_cpus() -> int:
    """CPUs this process may run on (its affinity mask: taskset, cpusets), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # not Linux
        return max(1, os.cpu_count() or 1)


def _check_options(mode, num_threads):
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}. Received: mode={mode!r}")
    if isinstance(num_threads, bool) or not isinstance(num_threads, int) or num_threads < 1:
        raise ValueError(
            f"num_threads must be an integer >= 1. Received: num_threads={num_threads!r}"
        )


def _runtime_module(runtime):
    """(name, interpreter module) for 'auto' | 'litert' | 'tensorflow'."""
    if runtime not in _RUNTIMES:
        raise ValueError(f"runtime must be one of {_RUNTIMES}. Received: runtime={runtime!r}")
    if runtime in ("auto", "litert"):
        try:
            from ai_edge_litert import interpreter as litert_interpreter

            return "litert", litert_interpreter
        except ImportError:
            if runtime == "litert":
                raise ImportError(
                    "runtime='litert' needs the ai-edge-litert package: "
                    "`pip install ai-edge-litert` (or `pip install ttq_keras[litert]`)."
                ) from None
    from ttq_keras._compat import tf

    return "tensorflow", tf.lite


def load_delegate(
    mode: str = "exact",
    num_threads: int = 1,
    *,
    library: Optional[str] = None,
    runtime: str = "auto",
):
    """Loads libttq_delegate.so as an external delegate.

    Args:
      mode: "exact" (default) or "fast" (dynamic int8 activations).
      num_threads: threads each delegated op may use, >= 1.
      library: path of the library; default `library_path()`.
      runtime: "auto" (LiteRT if installed, else TensorFlow), "litert" or "tensorflow": whose
        `load_delegate` to use. Pass the result to that runtime's interpreter
        (`experimental_delegates=[delegate]`).

    Returns:
      The runtime's `Delegate` object.

    Raises:
      FileNotFoundError: the library is not built.
      ValueError: a bad option (the delegate's own message is included).
    """
    _check_options(mode, num_threads)
    path = library or library_path()
    name, module = _runtime_module(runtime)
    options = {"mode": mode, "num_threads": str(num_threads)}
    if name == "litert":
        return module.load_delegate(path, options)
    return module.experimental.load_delegate(path, options)


def _runtime_error_from_undecodable(error):
    """The RuntimeError a runtime meant to raise when its message held bytes that are not UTF-8
    (an op or tensor name of a corrupted file): its bindings raise UnicodeDecodeError instead."""
    raw = error.object if isinstance(error.object, bytes) else bytes(error.object)
    return RuntimeError(raw.decode("utf-8", errors="backslashreplace"))


def _reraise_delegate_error(error, what):
    """Raises a ValueError with the delegate's message(s) if `error` carries any."""
    message = str(error)
    if "TTQ delegate:" not in message:
        return
    # The runtime appends its own follow-up errors; keep the delegate's lines.
    lines = [line for line in message.splitlines() if "TTQ delegate:" in line]
    detail = " ".join(line[line.find("TTQ delegate:") :] for line in lines)
    raise ValueError(
        f"{what} is not a valid packed ternary model (docs/format.md): {detail}"
    ) from error


@contextlib.contextmanager
def _delegate_errors(what):
    """Turns a runtime error that carries the delegate's message into its ValueError."""
    try:
        yield
    except UnicodeDecodeError as e:  # a ValueError subclass: handled first
        error = _runtime_error_from_undecodable(e)
        _reraise_delegate_error(error, what)
        raise error from None
    except (RuntimeError, ValueError) as e:
        _reraise_delegate_error(e, what)
        raise


def _reject_what_crashes_the_runtime(model_path, model_content, what):
    """Raises ValueError for files that crash stock TFLite/LiteRT runtimes before the TTQ
    delegate is ever called, so ttq_keras.Interpreter fails cleanly on them.

    Known case: a model whose flatbuffer verifies but has no subgraph (TFLite 2.18's
    InterpreterBuilder and LiteRT 2.3.0 dereference null; found by
    tflite_delegate/fuzz/fuzz_tflite_file.cc). Only the root table is read, so this costs
    nothing for big models; anything that does not parse is left to the runtime's verifier.
    """
    data = model_content
    if data is None:
        with open(model_path, "rb") as f:
            data = f.read(1 << 20)  # the root table and its vtable are at the front
    try:
        from flatbuffers import encode, number_types
        from flatbuffers.table import Table

        buf = bytearray(data[: 1 << 20])
        root = encode.Get(number_types.UOffsetTFlags.packer_type, buf, 0)
        table = Table(buf, root)
        field = table.Offset(8)  # Model.subgraphs
        subgraphs = table.VectorLen(field) if field else 0
    except Exception:  # not parseable: the runtime's verifier rejects it with its own message
        return
    if subgraphs == 0:
        raise ValueError(f"{what} is not a valid TFLite model: it has no subgraph")


class Interpreter:
    """A LiteRT interpreter (TensorFlow's tf.lite.Interpreter without LiteRT) with the TTQ
    delegate attached.

    Every attribute of the underlying interpreter is available (`allocate_tensors`,
    `get_input_details`, `set_tensor`, `invoke`, `get_signature_runner`, ...).

    Args:
      model_path: path of a .tflite file; or
      model_content: its bytes.
      num_threads: threads for each delegated op (default 1), and for the runtime's own ops
        unless `runtime_threads` says otherwise. The delegate uses at most as many threads as
        the CPUs this process may run on (`usable_cpus()`, its affinity mask); the number it
        uses is `delegate_threads`.
      mode: "exact" (default) or "fast".
      runtime: "auto" (LiteRT if installed, else TensorFlow), "litert" or "tensorflow".
      library: path of libttq_delegate.so; default `library_path()`.
      default_delegates: let the runtime apply its default XNNPACK delegate to the other ops
        (default). With False they run on TFLite's builtin kernels; at 2+ threads that is often
        faster for small models, because XNNPACK's thread pool and ours then stop competing for
        the cores between ops (see BENCHMARKS.md).
      runtime_threads: threads for the runtime's own (non-TTQ) ops. None (default) chooses:
        1 when those ops are a small part of the model's work (then the two thread pools do
        not compete for the cores), else `num_threads` (ttq_keras.runtime.thread_plan).

    Raises:
      ValueError: the model breaks the packed format (the message names the node and the
        problem), or a bad argument.
      FileNotFoundError: the delegate library is not built.
    """

    def __init__(
        self,
        model_path: Optional[str] = None,
        model_content: Optional[bytes] = None,
        num_threads: Optional[int] = None,
        mode: str = "exact",
        *,
        runtime: str = "auto",
        library: Optional[str] = None,
        default_delegates: bool = True,
        runtime_threads: Optional[int] = None,
    ):
        if (model_path is None) == (model_content is None):
            raise ValueError("Pass exactly one of model_path and model_content.")
        threads = 1 if num_threads is None else num_threads
        _check_options(mode, threads)
        path = library or library_path()
        self.runtime, module = _runtime_module(runtime)
        self.mode = mode
        self.library = path
        # More delegate threads than usable CPUs only adds a spinning worker that takes time
        # slices from the thread doing the work (a make-demo run on one allowed core timed the
        # packed file at 1.42 ms with 2 threads, slower than the float and int8 files' 1.20 and
        # 1.06 ms).
        self.delegate_threads = min(threads, usable_cpus())
        self._delegate = load_delegate(
            mode, self.delegate_threads, library=path, runtime=self.runtime
        )
        what = model_path if model_path is not None else "model_content"
        _reject_what_crashes_the_runtime(model_path, model_content, what)
        if runtime_threads is None:
            from ttq_keras.runtime.thread_plan import runtime_threads as plan

            runtime_threads = plan(module, model_path, model_content, self.delegate_threads)
        elif (
            isinstance(runtime_threads, bool)
            or not isinstance(runtime_threads, int)
            or runtime_threads < 1
        ):
            raise ValueError(
                "runtime_threads must be None or an integer >= 1. "
                f"Received: runtime_threads={runtime_threads!r}"
            )
        self.num_threads = threads
        self.runtime_threads = runtime_threads
        extra = {}
        if not default_delegates:
            resolver_types = getattr(module, "OpResolverType", None)
            if resolver_types is None:  # tf.lite keeps it under experimental
                resolver_types = module.experimental.OpResolverType
            extra["experimental_op_resolver_type"] = (
                resolver_types.BUILTIN_WITHOUT_DEFAULT_DELEGATES
            )
        with _delegate_errors(what):
            self._interpreter = module.Interpreter(
                model_path=model_path,
                model_content=model_content,
                num_threads=runtime_threads,
                experimental_delegates=[self._delegate],
                **extra,
            )
        self._what = what

    def allocate_tensors(self):
        """Allocates the tensors; the delegate checks every TTQ op's input shape here."""
        with _delegate_errors(self._what):
            return self._interpreter.allocate_tensors()

    def invoke(self):
        with _delegate_errors(self._what):
            return self._interpreter.invoke()

    def __getattr__(self, name):
        # Only called for attributes not found on this object: forward to the interpreter.
        if name == "_interpreter":
            raise AttributeError(name)
        return getattr(self._interpreter, name)

    @property
    def delegate(self):
        """The runtime Delegate object attached to this interpreter."""
        return self._delegate

    def delegated_ops(self) -> List[DelegatedOp]:
        """The ops the TTQ delegate took over, in execution order."""
        lib = ctypes.CDLL(self.library)  # the same handle the runtime loaded
        lib.TfLiteTtqDelegateNumDelegatedNodes.argtypes = [ctypes.c_void_p]
        lib.TfLiteTtqDelegateNumDelegatedNodes.restype = ctypes.c_int
        get = lib.TfLiteTtqDelegateGetDelegatedNode
        get.argtypes = [
            ctypes.c_void_p,
            ctypes.c_int,
            ctypes.POINTER(ctypes.c_int),
            ctypes.POINTER(ctypes.c_char_p),
            ctypes.POINTER(ctypes.c_char_p),
        ]
        get.restype = ctypes.c_int
        # Libraries built before fusion have no TfLiteTtqDelegateGetFusedNodes: nothing fused.
        get_fused = getattr(lib, "TfLiteTtqDelegateGetFusedNodes", None)
        if get_fused is not None:
            get_fused.argtypes = [
                ctypes.c_void_p,
                ctypes.c_int,
                ctypes.POINTER(ctypes.c_int),
                ctypes.c_int,
            ]
            get_fused.restype = ctypes.c_int
        pointer = self._delegate._get_native_delegate_pointer()  # noqa: SLF001
        ops = []
        for i in range(lib.TfLiteTtqDelegateNumDelegatedNodes(pointer)):
            node, op, kernel = ctypes.c_int(), ctypes.c_char_p(), ctypes.c_char_p()
            if get(pointer, i, ctypes.byref(node), ctypes.byref(op), ctypes.byref(kernel)) != 0:
                continue
            fused = ()
            if get_fused is not None:
                buffer = (ctypes.c_int * 8)()
                count = get_fused(pointer, i, buffer, len(buffer))
                fused = tuple(buffer[k] for k in range(min(max(count, 0), len(buffer))))
            ops.append(DelegatedOp(node.value, op.value.decode(), kernel.value.decode(), fused))
        return ops

    def ttq_ops(self) -> List[int]:
        """Node indices of every TTQ custom op in the model (delegated or not)."""
        return [
            d["index"]
            for d in self._interpreter._get_ops_details()  # noqa: SLF001
            if d["op_name"] in TTQ_OPS
        ]

    def __repr__(self):
        return (
            f"<ttq_keras.Interpreter runtime={self.runtime} mode={self.mode} "
            f"delegated={len(self.delegated_ops())}>"
        )
