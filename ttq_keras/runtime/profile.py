"""Per-op time of a model run with the TTQ delegate (`python -m ttq_keras.runtime.benchmark M --profile`).

The delegate records, for every TTQ node, the steady-clock (CLOCK_MONOTONIC) nanoseconds at
which its last Invoke started and ended (`TfLiteTtqDelegateGetNodeTiming`). Python reads the
same clock (`time.monotonic_ns`) right before and after `interpreter.invoke()`. The runtime
executes the nodes in index order, so the time between two consecutive TTQ nodes is exactly the
builtin ops whose indices lie between them (an ADD, a MEAN, ... on XNNPACK or the builtin
kernels), and the time before the first / after the last TTQ node is the builtin ops there plus
the call overhead of `invoke()`. Builtin nodes the delegate fused into a TTQ op (the MUL and ADD
of an unfolded BatchNormalization) are part of that op's segment. Each segment's median over
the runs is reported.

    from ttq_keras.runtime.profile import profile_model, format_profile
    print(format_profile(profile_model("model_packed.tflite", num_threads=2, mode="fast")))
"""

import ctypes
import dataclasses
import statistics
import time
from typing import List, Optional

from ttq_keras.runtime.benchmark import set_random_inputs
from ttq_keras.runtime.delegate import Interpreter

__all__ = ["OpTime", "Profile", "profile_interpreter", "profile_model", "format_profile"]


@dataclasses.dataclass(frozen=True)
class OpTime:
    """One timed segment of an invoke.

    Attributes:
      nodes: the model's node indices in this segment (one TTQ node with the builtin nodes
        fused into it, or the builtin ops between two TTQ nodes).
      op_names: their op names, e.g. ("TTQ_CONV_2D",), ("MUL", "ADD", "TTQ_CONV_2D") or
        ("ADD",).
      kernel: the TTQ kernel's name, or "builtin" for the runtime's own ops.
      median_us: median time of the segment over the runs, in microseconds.
      includes_call_overhead: True for the first and last segment (they include the time from
        Python's invoke() call to the first node, and from the last node back to Python).
      threads: for a TTQ op, the threads its last run used: the interpreter's num_threads, or 1
        where the op measured faster on the calling thread alone (the delegate times both
        briefly for the whole graph and keeps the faster); None for builtin ops.
    """

    nodes: tuple
    op_names: tuple
    kernel: str
    median_us: float
    includes_call_overhead: bool = False
    threads: Optional[int] = None

    @property
    def is_ttq(self) -> bool:
        return self.kernel != "builtin"


@dataclasses.dataclass(frozen=True)
class Profile:
    ops: List[OpTime]
    total_median_us: float  # median of the whole invoke() as Python sees it
    runs: int

    @property
    def ttq_us(self) -> float:
        return sum(op.median_us for op in self.ops if op.is_ttq)

    @property
    def builtin_us(self) -> float:
        return sum(op.median_us for op in self.ops if not op.is_ttq)


def _timing_function(library):
    lib = ctypes.CDLL(library)
    try:
        get = lib.TfLiteTtqDelegateGetNodeTiming
    except AttributeError:
        raise RuntimeError(
            f"{library} has no TfLiteTtqDelegateGetNodeTiming: rebuild it (`make delegate`)."
        ) from None
    get.argtypes = [
        ctypes.c_void_p,
        ctypes.c_int,
        ctypes.POINTER(ctypes.c_int64),
        ctypes.POINTER(ctypes.c_int64),
    ]
    get.restype = ctypes.c_int
    return get


def _threads_function(library):
    """TfLiteTtqDelegateGetNodeThreads, or None for a library built before it existed."""
    get = getattr(ctypes.CDLL(library), "TfLiteTtqDelegateGetNodeThreads", None)
    if get is not None:
        get.argtypes = [ctypes.c_void_p, ctypes.c_int]
        get.restype = ctypes.c_int
    return get


def _segments(interpreter):
    """[(nodes, op_names, kernel, record index or None)] in execution order."""
    details = [
        d for d in interpreter._get_ops_details() if d["op_name"] != "DELEGATE"  # noqa: SLF001
    ]
    delegated = interpreter.delegated_ops()
    ttq_nodes = {op.node_index: (i, op) for i, op in enumerate(delegated)}
    fused = {n for op in delegated for n in op.fused_nodes}
    segments, pending = [], []
    for d in sorted(details, key=lambda d: d["index"]):
        if d["index"] in fused:
            continue
        if d["index"] in ttq_nodes:
            i, op = ttq_nodes[d["index"]]
            segments.append(("gap", tuple(pending)))
            segments.append(("ttq", (i, op)))
            pending = []
        else:
            pending.append((d["index"], d["op_name"]))
    segments.append(("gap", tuple(pending)))
    return segments


def profile_interpreter(interpreter, runs: int = 100, warmup: int = 30, feeds=None) -> Profile:
    """Profiles an allocated `ttq_keras.Interpreter` whose inputs are set (or given as
    `feeds`, a list of (tensor index, array)). Runs `warmup` + `runs` invocations (the default
    warm-up covers the delegate's choice between one thread and all, 18 runs)."""
    if isinstance(runs, bool) or not isinstance(runs, int) or runs < 1:
        raise ValueError(f"runs must be an integer >= 1. Received: runs={runs!r}")
    for index, x in feeds or ():
        interpreter.set_tensor(index, x)
    get = _timing_function(interpreter.library)
    get_threads = _threads_function(interpreter.library)
    pointer = interpreter.delegate._get_native_delegate_pointer()  # noqa: SLF001
    segments = _segments(interpreter)
    names = {d["index"]: d["op_name"] for d in interpreter._get_ops_details()}  # noqa: SLF001
    records = [s[1][0] for s in segments if s[0] == "ttq"]
    start, end = ctypes.c_int64(), ctypes.c_int64()
    for _ in range(warmup):
        interpreter.invoke()
    samples = [[] for _ in segments]
    totals = []
    for _ in range(runs):
        t0 = time.monotonic_ns()
        interpreter.invoke()
        t1 = time.monotonic_ns()
        marks = [t0]
        for i in records:
            if get(pointer, i, ctypes.byref(start), ctypes.byref(end)) != 0:
                raise RuntimeError(f"no timing for delegated node {i}")
            marks += [start.value, end.value]
        marks.append(t1)
        for k in range(len(segments)):
            samples[k].append(marks[k + 1] - marks[k])
        totals.append(t1 - t0)
    ops = []
    last = len(segments) - 1
    for k, (kind, info) in enumerate(segments):
        median_us = statistics.median(samples[k]) / 1e3
        if kind == "ttq":
            i, op = info
            ops.append(
                OpTime(
                    tuple(op.fused_nodes) + (op.node_index,),
                    tuple(names[n] for n in op.fused_nodes) + (op.op_name,),
                    op.kernel,
                    median_us,
                    threads=get_threads(pointer, i) if get_threads is not None else None,
                )
            )
        elif info or k in (0, last):
            ops.append(
                OpTime(
                    tuple(n for n, _ in info),
                    tuple(name for _, name in info),
                    "builtin",
                    median_us,
                    includes_call_overhead=k in (0, last),
                )
            )
    return Profile(ops, statistics.median(totals) / 1e3, runs)


def profile_model(
    model,
    *,
    num_threads: int = 1,
    mode: str = "exact",
    runs: int = 100,
    warmup: int = 30,
    default_delegates: bool = True,
    seed: int = 0,
) -> Profile:
    """Profiles `model` (a path or the bytes of a .tflite file) on a fixed random input."""
    kwargs = (
        {"model_content": bytes(model)}
        if isinstance(model, (bytes, bytearray))
        else {"model_path": str(model)}
    )
    interpreter = Interpreter(
        num_threads=num_threads, mode=mode, default_delegates=default_delegates, **kwargs
    )
    interpreter.allocate_tensors()
    set_random_inputs(interpreter, seed)
    return profile_interpreter(interpreter, runs=runs, warmup=warmup)


def format_profile(p: Profile, title: Optional[str] = None) -> str:
    """A text table: one line per TTQ op and per run of builtin ops, then the totals."""
    lines = [title] if title else []
    lines.append(
        f"{'nodes':>9}  {'op':<24} {'kernel':<28} {'threads':>7} {'median us':>10} {'share':>6}"
    )
    denom = sum(op.median_us for op in p.ops) or 1.0
    for op in p.ops:
        if op.nodes:
            nodes = str(op.nodes[0]) if len(op.nodes) == 1 else f"{op.nodes[0]}-{op.nodes[-1]}"
        else:
            nodes = "-"
        names = "+".join(sorted(set(op.op_names))) if op.op_names else "(no op)"
        if op.includes_call_overhead:
            names += " +call"
        threads = "" if op.threads is None else str(op.threads)
        lines.append(
            f"{nodes:>9}  {names:<24.24} {op.kernel:<28.28} {threads:>7} {op.median_us:10.1f} "
            f"{100.0 * op.median_us / denom:5.1f}%"
        )
    lines.append(
        f"TTQ ops {p.ttq_us:.1f} us, builtin ops and call overhead {p.builtin_us:.1f} us "
        f"(sums of per-op medians); whole invoke median {p.total_median_us:.1f} us over "
        f"{p.runs} runs"
    )
    return "\n".join(lines)
