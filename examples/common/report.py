"""Export, evaluation and the report (report.md, results.json, PNG plots) of an example run."""

import json
import os
import warnings

import numpy as np
from ai_edge_litert.interpreter import Interpreter as StockInterpreter

import ttq_keras
from examples.common import progress
from ttq_keras import tf
from ttq_keras.runtime.benchmark import time_interleaved

# ---------------------------------------------------------------------------------------------
# Per-layer ternary statistics


def layer_stats(model):
    """Per-layer statistics from ttq_keras.ternary_layers: sparsity, +/- fractions, Wp, Wn."""
    stats = []
    for t in ttq_keras.ternary_layers(model):
        codes = np.asarray(t.codes)
        wp, wn = np.asarray(t.wp, np.float64), np.asarray(t.wn, np.float64)
        stats.append(
            {
                "name": t.inner_name,
                "kind": t.kind,
                "shape": list(codes.shape),
                "weights": int(codes.size),
                "sparsity": float(np.mean(codes == 0)),
                "positive": float(np.mean(codes == 1)),
                "negative": float(np.mean(codes == -1)),
                "wp": float(wp.mean()),
                "wn": float(wn.mean()),
                "per_channel": bool(wp.size > 1 or wn.size > 1),
            }
        )
    return stats


def overall_sparsity(stats):
    total = sum(s["weights"] for s in stats)
    return float(sum(s["sparsity"] * s["weights"] for s in stats) / total) if total else 0.0


# ---------------------------------------------------------------------------------------------
# TFLite export


def int8_tflite(float_model, representative_images):
    """Full-integer post-training quantization (int8 weights and activations, float I/O)."""
    converter = tf.lite.TFLiteConverter.from_keras_model(float_model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]

    def representative_dataset():
        for image in representative_images:
            yield [image[None].astype(np.float32)]

    converter.representative_dataset = representative_dataset
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    with warnings.catch_warnings():
        # Float inputs and outputs are what is asked for here; TF warns that int8 inputs
        # would need their statistics.
        warnings.filterwarnings("ignore", "Statistics for quantized inputs were expected")
        return converter.convert()


def make_interpreter(content, num_threads, packed=False, mode="exact"):
    """The stock LiteRT interpreter (XNNPACK), or ttq_keras.Interpreter for a packed file."""
    if packed:
        interpreter = ttq_keras.Interpreter(
            model_content=content, num_threads=num_threads, mode=mode
        )
    else:
        interpreter = StockInterpreter(model_content=content, num_threads=num_threads)
    interpreter.allocate_tensors()
    return interpreter


def _set_image(interpreter, image):
    inp = interpreter.get_input_details()[0]
    interpreter.set_tensor(inp["index"], image[None].astype(inp["dtype"]))


def tflite_accuracy(interpreter, images, labels):
    """Top-1 accuracy, one image per invoke (normalized float32 images)."""
    output_index = interpreter.get_output_details()[0]["index"]
    correct = 0
    for image, label in zip(images, labels):
        _set_image(interpreter, image)
        interpreter.invoke()
        correct += int(np.argmax(interpreter.get_tensor(output_index)[0]) == label)
    return correct / max(1, len(labels))


def export_and_benchmark(
    ttq_model,
    output_dir,
    eval_images,
    eval_labels,
    representative_images,
    num_threads=2,
    latency_runs=50,
):
    """Writes float/int8/packed .tflite files of the TTQ model; sizes, accuracies, latencies.

    All three files hold the same (ternary) network: float32 weights
    (`ttq_keras.convert(model, packed=False)`), int8 post-training quantization of
    `ttq_keras.to_float_model(model)`, and the packed ternary format (`ttq_keras.convert(model)`,
    run with the TTQ delegate through `ttq_keras.Interpreter`, in exact mode and, as
    "packed_fast", in fast mode). Latencies are medians of `latency_runs` invocations per file,
    timed interleaved. Any failure raises.
    """
    results = {}
    logits = ttq_model.predict(eval_images, batch_size=256, verbose=0)
    results["keras"] = {
        "accuracy": float(np.mean(np.argmax(logits, -1) == eval_labels)),
        "eval_examples": int(len(eval_labels)),
    }
    # Packed first: a broken converter or delegate stops the run before the slower int8 export.
    builds = {
        "packed": ("ttq_keras.convert", lambda: ttq_keras.convert(ttq_model)),
        "float": (
            "ttq_keras.convert, packed=False",
            lambda: ttq_keras.convert(ttq_model, packed=False),
        ),
        "int8": (
            "post-training quantization",
            lambda: int8_tflite(ttq_keras.to_float_model(ttq_model), representative_images),
        ),
    }
    interpreters = {}
    for name, (how, build) in builds.items():
        with progress.stage(f"Converting to {name} .tflite ({how})"):
            content = build()
        path = os.path.join(output_dir, f"model_{name}.tflite")
        with open(path, "wb") as f:
            f.write(content)
        runtime = "TTQ delegate" if name == "packed" else "LiteRT"
        with progress.stage(f"Running {name} .tflite ({runtime}) on {len(eval_labels)} images"):
            interpreter = make_interpreter(content, num_threads, packed=(name == "packed"))
            accuracy = tflite_accuracy(interpreter, eval_images, eval_labels)
        interpreters[name] = interpreter
        results[name] = {
            "path": os.path.basename(path),
            "bytes": len(content),
            "accuracy": accuracy,
            "eval_examples": int(len(eval_labels)),
            "num_threads": num_threads,
        }
        if name == "packed":
            # The delegate's int8-activation mode, the like-for-like rival of the int8 file.
            with progress.stage(f"Running packed .tflite, fast mode, on {len(eval_labels)} images"):
                fast = make_interpreter(content, num_threads, packed=True, mode="fast")
                interpreters["packed_fast"] = fast
                results["packed_fast"] = dict(
                    results["packed"],
                    accuracy=tflite_accuracy(fast, eval_images, eval_labels),
                    mode="fast",
                )
    # Timed side by side (interleaved rounds), so that the machine's load and speed drift hit
    # every file alike.
    with progress.stage(f"Timing the .tflite files ({latency_runs} interleaved invokes each)"):
        for interpreter in interpreters.values():
            _set_image(interpreter, eval_images[0])
        latencies = time_interleaved(interpreters, runs=latency_runs)
    for name, timing in latencies.items():
        results[name]["latency_ms"] = timing["median_ms"]
    return results


# ---------------------------------------------------------------------------------------------
# Plots


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_curves(histories, path):
    """Loss and accuracy per epoch; phases (float, ttq) follow each other on one axis."""
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    offset = 0
    colours = {"float": "tab:blue", "ttq": "tab:red"}
    for phase, hist in histories.items():
        n = len(hist.get("loss", []))
        if not n:
            continue
        epochs = np.arange(offset + 1, offset + n + 1)
        c = colours.get(phase, None)
        for ax, key in zip(axes, ("loss", "accuracy")):
            ax.plot(epochs, hist[key], "-", color=c, label=f"{phase} train")
            val = np.asarray(hist.get("val_" + key, []), dtype=float)
            if len(val) == n and np.isfinite(val).any():
                ok = np.isfinite(val)
                ax.plot(epochs[ok], val[ok], "o--", color=c, label=f"{phase} test")
        if offset:
            for ax in axes:
                ax.axvline(offset + 0.5, color="gray", lw=0.8)
        offset += n
    for ax, key in zip(axes, ("loss", "accuracy")):
        ax.set_xlabel("epoch")
        ax.set_ylabel(key)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle("Training curves (float pre-training, then TTQ fine-tuning)")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def plot_weight_histograms(model, path, max_layers=4):
    """Latent and ternary weight histograms of a few ternary layers (first, middle, last)."""
    plt = _plt()
    tls = ttq_keras.ternary_layers(model)
    if not tls:
        return
    picks = sorted({int(round(i)) for i in np.linspace(0, len(tls) - 1, min(max_layers, len(tls)))})
    fig, axes = plt.subplots(len(picks), 2, figsize=(10, 2.6 * len(picks)), squeeze=False)
    for row, i in enumerate(picks):
        t = tls[i]
        latent = np.asarray(t.latent_kernel).ravel()
        ax = axes[row][0]
        ax.hist(latent, bins=100, color="tab:gray")
        delta = t.delta
        for d in (-delta, delta):
            ax.axvline(d, color="tab:red", lw=0.8)
        ax.set_title(f"{t.inner_name}: latent weights (red: ±Δ = ±{delta:.3g})", fontsize=9)
        ternary = np.asarray(t.ternary_kernel()).ravel()
        ax = axes[row][1]
        values, counts = np.unique(np.round(ternary, 6), return_counts=True)
        if len(values) > 12:  # per-channel scales: too many distinct values for bars
            ax.hist(ternary, bins=100, color="tab:purple")
        else:
            width = 0.05 * max(1e-6, float(np.abs(values).max()))
            ax.bar(values, counts / ternary.size, width=width, color="tab:purple")
        codes = np.asarray(t.codes)
        ax.set_title(
            f"{t.inner_name}: ternary weights, sparsity {np.mean(codes == 0):.1%}, "
            f"Wp {np.mean(t.wp):.3f}, Wn {np.mean(t.wn):.3f}",
            fontsize=9,
        )
        ax.set_ylabel("fraction")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def plot_sparsity(stats, path):
    plt = _plt()
    names = [s["name"] for s in stats]
    x = np.arange(len(names))
    neg = np.array([s["negative"] for s in stats])
    zero = np.array([s["sparsity"] for s in stats])
    pos = np.array([s["positive"] for s in stats])
    fig, ax = plt.subplots(figsize=(max(6, 0.35 * len(names) + 2), 4))
    ax.bar(x, neg, color="tab:blue", label="−Wn")
    ax.bar(x, zero, bottom=neg, color="lightgray", label="0")
    ax.bar(x, pos, bottom=neg + zero, color="tab:orange", label="+Wp")
    ax.plot(x, neg + zero, "k.", ms=3)
    ax.set_xticks(x)
    ax.set_xticklabels(names, rotation=90, fontsize=7)
    ax.set_ylabel("fraction of weights")
    ax.set_ylim(0, 1)
    ax.set_title(
        f"Ternary value distribution per layer (overall sparsity " f"{overall_sparsity(stats):.1%})"
    )
    ax.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


# ---------------------------------------------------------------------------------------------
# Text report


def _pct(v):
    return "—" if v is None else f"{100 * v:.2f}%"


def _kib(v):
    return "—" if v is None else f"{v / 1024:.1f} KiB"


def results_table(results):
    """The markdown results table printed at the end of a run (and put in report.md)."""
    f, t = results.get("float", {}), results.get("ttq", {})
    lines = [
        "| | float | TTQ |",
        "|---|---|---|",
        f"| test accuracy (Keras) | {_pct(f.get('test_accuracy'))} | {_pct(t.get('test_accuracy'))} |",
        *(
            [
                f"| test accuracy right after quantize_model | | "
                f"{_pct(t['test_accuracy_before_training'])} |"
            ]
            if t.get("test_accuracy_before_training") is not None
            else []
        ),
        f"| epochs x train examples | {f.get('epochs', 0)} x {f.get('train_examples', 0)} | "
        f"{t.get('epochs', 0)} x {t.get('train_examples', 0)} |",
        f"| training time | {f.get('train_seconds', 0):.0f} s | {t.get('train_seconds', 0):.0f} s |",
        f"| weight sparsity (ternary layers) | — | {_pct(t.get('sparsity'))} |",
    ]
    if f.get("test_accuracy") is not None and t.get("test_accuracy") is not None:
        delta = 100 * (t["test_accuracy"] - f["test_accuracy"])
        lines.append(f"| TTQ − float | | {delta:+.2f} points |")
    if results.get("wall_seconds"):
        lines.append(f"| whole run (wall clock) | {results['wall_seconds'] / 60:.1f} min | |")
    tfl = results.get("tflite", {})
    if tfl:
        counts = [e.get("eval_examples") for e in tfl.values() if e.get("eval_examples")]
        acc = f"accuracy (first {counts[0]} test images)" if counts else "accuracy"
        lines += [
            "",
            f"| .tflite (TTQ network) | size | {acc} | latency (batch 1) |",
            "|---|---|---|---|",
        ]
        if "keras" in tfl:
            lines.append(
                f"| (Keras TTQ model, reference) | — | {_pct(tfl['keras']['accuracy'])} | — |"
            )
        labels = {"packed": "packed (exact)", "packed_fast": "packed (fast mode)"}
        for name in ("float", "int8", "packed", "packed_fast"):
            e = tfl.get(name)
            if e is None:
                continue
            lat = e.get("latency_ms")
            lat = "—" if lat is None else f"{lat:.2f} ms ({e.get('num_threads')} threads)"
            label = labels.get(name, name)
            lines.append(
                f"| {label} | {_kib(e.get('bytes'))} | {_pct(e.get('accuracy'))} | {lat} |"
            )
    return "\n".join(lines)


def layers_table(stats):
    lines = [
        "| layer | kind | weights | sparsity | + | − | Wp | Wn |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for s in stats:
        lines.append(
            f"| {s['name']} | {s['kind']} | {s['weights']} | {s['sparsity']:.1%} | "
            f"{s['positive']:.1%} | {s['negative']:.1%} | {s['wp']:.4f} | {s['wn']:.4f} |"
        )
    return "\n".join(lines)


def write_results(output_dir, results):
    """results.json: every number of the run."""
    with open(os.path.join(output_dir, "results.json"), "w") as f:
        json.dump(results, f, indent=2, sort_keys=True, default=float)


def write_report(output_dir, title, results, command, notes=(), plots=()):
    """Writes report.md under output_dir; returns the results table string."""
    table = results_table(results)
    parts = [f"# {title}", "", "Command:", "", "```", command, "```", "", "## Results", "", table]
    stats = results.get("ttq", {}).get("layers")
    if stats:
        parts += ["", "## Ternary layers", "", layers_table(stats)]
    for name, caption in plots:
        if os.path.exists(os.path.join(output_dir, name)):
            parts += ["", f"## {caption}", "", f"![{caption}]({name})"]
    if notes:
        parts += ["", "## Notes", ""] + [f"- {n}" for n in notes]
    with open(os.path.join(output_dir, "report.md"), "w") as f:
        f.write("\n".join(parts) + "\n")
    return table


PLOTS = (
    ("curves.png", "Training curves"),
    ("weight_histograms.png", "Latent and ternary weights"),
    ("sparsity.png", "Sparsity per layer"),
)


def make_plots(output_dir, ttq_model, stats, histories):
    plot_curves(histories, os.path.join(output_dir, "curves.png"))
    plot_weight_histograms(ttq_model, os.path.join(output_dir, "weight_histograms.png"))
    plot_sparsity(stats, os.path.join(output_dir, "sparsity.png"))
