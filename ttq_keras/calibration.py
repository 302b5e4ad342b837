"""Data-driven correction of a freshly ternarized model: bias correction and scale matching.

Ternarizing a float layer changes its output statistics: the ternary kernel {+Wp, 0, -Wn}
shifts the mean of every output channel (the dropped small weights and the rounding of the
large ones do not cancel on real inputs) and its scale differs from what the inputs need. A
BatchNormalization after the layer re-learns both (`ttq_keras.reestimate_batchnorm`); a layer
without one passes the error on, and the errors of successive layers compound (the
ternarized float model of a plain CNN starts tens of points below the float one).

`correct_ternarization` fixes that on a few batches of data, layer by layer in topological
order, each layer seeing the inputs produced by the already corrected layers before it
(the empirical variant of the bias correction of Nagel et al. 2019, "Data-Free Quantization
Through Weight Equalization and Bias Correction": the expectations are measured on data).
With y_P = conv(x_q, [codes == +1]) and y_N = conv(x_q, [codes == -1]) on the quantized
model's input x_q, the ternary layer computes y_Q = Wp·y_P − Wn·y_N + b before its activation;
y_F is the float layer's pre-activation output on the float model's input.

    method="bias":   fits b per output channel; Wp, Wn stay.
    method="scales": fits Wp and Wn too (one pair per layer, or per channel with
                     per_channel=True), given the ternary codes; Wp, Wn >= the quantizer's
                     min_scale.

    match="pre_activation": least squares Σ (y_Q − y_F)². For the bias alone that is Nagel et
                     al.'s b <- b + E[y_F] − E[y_Q] per channel; with the scales it is a 2x2
                     problem per layer (or per channel), solved in closed form (centered per
                     channel for the bias).
    match="output" (default): the same where no ReLU follows the layer; where one does (fused
                     activation="relu", or a ReLU layer as the only reader), the post-ReLU
                     output is matched: Σ_{y_F > 0} (y_Q − y_F)² + Σ_{y_F <= 0} max(y_Q, 0)²,
                     convex, solved by a few active-set least-squares (Newton) steps. Matching
                     the pre-activation means instead can revive channels that are dead in the
                     float model (their ternary pre-activation has the float mean but a larger
                     spread): in the benchmark's dilated CNN the last ternary layer then fired
                     on 81% of its channels instead of 25%, the float logits layer read its
                     untrained weights for them, and fine-tuning collapsed to chance.

Neither changes the ternary codes (the latent kernels are untouched).
"""

from typing import Iterable, List, NamedTuple

import numpy as np

from ttq_keras._compat import keras, tf
from ttq_keras.batchnorm import _consumers, normalized_layer_names
from ttq_keras.ternary_weights import (
    _ttq_weight_vars,
    is_ttq_wrapper,
    ternary_layers,
    wrapped_layer_variables,
)

__all__ = ["CorrectedLayer", "correct_ternarization", "CALIBRATION_METHODS"]

CALIBRATION_METHODS = ("bias", "scales")
MATCHES = ("output", "pre_activation")


class CorrectedLayer(NamedTuple):
    """What `correct_ternarization` did to one ternary layer.

    `relu`: the layer's post-ReLU output was matched (match="output" and a ReLU follows).
    `mse_before` / `mse_after`: mean squared difference between the layer's output (after
    the ReLU if `relu`, else before the activation) in the quantized model and in the float
    model, over the calibration data, before and after the correction (each on the quantized
    model's inputs as corrected so far).
    """

    name: str
    bias_corrected: bool
    scales_refit: bool
    relu: bool
    mse_before: float
    mse_after: float


def _is_graph_model(model):
    return isinstance(model, keras.Sequential) or getattr(model, "_is_graph_network", False)


def _layer_input(model, layer, what):
    """The input tensor of `layer` in `model`'s own graph. Layers can be shared with other
    models (tfmot's quantize_apply reuses the float layers of its intermediate clone), so
    `layer.input` may belong to another graph: use the node that `model` owns."""
    keys = getattr(model, "_network_nodes", set())
    nodes = [
        node
        for i, node in enumerate(layer._inbound_nodes)  # pylint: disable=protected-access
        if f"{layer.name}_ib-{i}" in keys
    ]
    if len(nodes) != 1:
        raise ValueError(
            f"correct_ternarization: layer {layer.name!r} is called {len(nodes)} times in the "
            f"{what} model {model.name!r}; only layers called once are supported."
        )
    tensor = nodes[0].input_tensors
    if isinstance(tensor, (list, tuple)):
        if len(tensor) != 1:
            raise ValueError(
                f"correct_ternarization: layer {layer.name!r} of the {what} model "
                f"{model.name!r} takes several inputs."
            )
        tensor = tensor[0]
    return tensor


def _linear_clone(layer, kernel, input_shape):
    """A copy of `layer` without bias and activation whose kernel is `kernel`."""
    config = layer.get_config()
    config.update(activation="linear", use_bias=False, name=f"{layer.name}_calibration")
    for key in ("kernel_regularizer", "depthwise_regularizer", "activity_regularizer"):
        if key in config:
            config[key] = None
    clone = type(layer).from_config(config)
    clone.build(input_shape)
    clone.set_weights([np.asarray(kernel, dtype=np.float32)])
    return clone


def _fit_pair(pp, nn, pn, pf, nf, a0, c0, floor):
    """argmin over a, c >= floor of Σ (a·y_P − c·y_N − y_F)² from its moments; keeps a0 (c0)
    when y_P (y_N) carries no signal."""

    # With u = a, v = -c: minimise u²pp + v²nn + 2uv·pn − 2u·pf − 2v·nf; u >= floor, v <= -floor.
    def objective(u, v):
        return u * u * pp + v * v * nn + 2 * u * v * pn - 2 * u * pf - 2 * v * nf

    tiny = 1e-30
    has_p, has_n = pp > tiny, nn > tiny
    candidates = []
    if has_p and has_n:
        det = pp * nn - pn * pn
        if det > 1e-12 * pp * nn:
            u, v = (pf * nn - nf * pn) / det, (nf * pp - pf * pn) / det
            if u >= floor and v <= -floor:
                return float(u), float(-v)
    # The optimum is on an edge: fix one scale (at the floor, or at its value when its term
    # is empty) and solve for the other, clipped to its bound.
    fixed_u = [floor] if has_p else [a0]
    fixed_v = [-floor] if has_n else [-c0]
    for u in fixed_u:
        v = min((nf - u * pn) / nn, -floor) if has_n else -c0
        candidates.append((u, v))
    for v in fixed_v:
        u = max((pf - v * pn) / pp, floor) if has_p else a0
        candidates.append((u, v))
    u, v = min(candidates, key=lambda uv: objective(*uv))
    return float(u), float(-v)


def _batches(data, steps):
    if isinstance(data, np.ndarray) or tf.is_tensor(data):
        raise ValueError(
            "correct_ternarization: `data` must yield batches (e.g. "
            "tf.data.Dataset.from_tensor_slices(x).batch(128)), not be one array."
        )
    result = []
    for batch in data:
        if len(result) >= steps:
            break
        result.append(batch[0] if isinstance(batch, (tuple, list)) else batch)
    if not result:
        raise ValueError("correct_ternarization: `data` yielded no batch.")
    return result


def correct_ternarization(
    q_model,
    float_model,
    data: Iterable,
    steps: int = 8,
    method: str = "scales",
    match: str = "output",
    include_normalized: bool = False,
) -> List[CorrectedLayer]:
    """Refits the biases and Wp/Wn of a ternarized model to the float model, on a few batches.

    For each ternary layer of `q_model` in topological order, compares its output with that
    of the same layer of `float_model` over `steps` batches of `data` and refits, given the
    ternary codes, the bias per output channel and (method="scales") Wp and Wn by least
    squares (per layer, or per channel for per_channel quantizers; kept >= the quantizer's
    min_scale; not in "twn" mode, whose scales are not variables). Where a ReLU follows the
    layer the post-ReLU output is matched (match="output"); match="pre_activation" matches
    the output before the activation, which for method="bias" is Nagel et al.'s bias
    correction (every channel's mean equals the float one). See the module docstring. The
    float layer sees the float model's activations, the ternary layer those of the quantized
    model with the earlier layers already corrected, so the correction also absorbs the error
    that reaches the layer from upstream. No optimizer step is taken; the latent kernels, the
    ternary codes and every other weight stay as they are. Inference mode (training=False)
    throughout.

    Call it right after `quantize_model` (and after `reestimate_batchnorm` for a model with
    BatchNormalization), with the float model that was quantized. Measured on
    benchmarks/robustness.py (BENCHMARKS.md): the ternarized models start up to 27 points
    nearer float, and 15 of 24 cells instead of 8 meet the targets (13 instead of 8 with
    another seed).

    Args:
      q_model: a model made by `ttq_keras.quantize_model(float_model, ...)`.
      float_model: the float model it was made from, unchanged (layers with the original names).
      data: an iterable of batches, `x` or `(x, y, ...)` (a tf.data.Dataset works).
      steps: how many batches of `data` to use (8 x 128 images is plenty for small models).
        Per layer at most 2^21 output values per array are kept (positions are subsampled
        evenly from each batch above that).
      method: "scales" (Wp, Wn and the bias) or "bias" (the bias only).
      match: "output" or "pre_activation", see above.
      include_normalized: also correct layers whose output goes straight into a
        BatchNormalization/LayerNormalization (skipped by default: the normalization absorbs
        mean and scale, and `reestimate_batchnorm` refreshes it).

    Returns:
      One `CorrectedLayer` per ternary layer considered, with the mean squared error of its
      output before and after (normalized layers skipped are not listed; a layer without a
      bias under method="bias" is listed with bias_corrected=False).

    Raises:
      ValueError: `q_model` has no ternary layer, `float_model` lacks a ternary layer's float
      counterpart or it differs (the layer is named), a layer is shared, `data` yields no batch,
      or a bad `steps` / `method` / `match`.
    """
    if method not in CALIBRATION_METHODS:
        raise ValueError(
            f"`method` must be one of {CALIBRATION_METHODS}. Received: method={method!r}"
        )
    if match not in MATCHES:
        raise ValueError(f"`match` must be one of {MATCHES}. Received: match={match!r}")
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 1:
        raise ValueError(f"`steps` must be a positive integer. Received: steps={steps!r}")
    for model, what in ((q_model, "quantized"), (float_model, "float")):
        if not isinstance(model, keras.Model) or not _is_graph_model(model):
            raise ValueError(
                f"correct_ternarization needs Sequential or Functional models; the {what} "
                f"model is a {type(model).__name__}."
            )
    if q_model is float_model:
        raise ValueError("correct_ternarization: `q_model` and `float_model` are the same model.")
    infos = ternary_layers(q_model)
    if not infos:
        raise ValueError(
            f"correct_ternarization: model {q_model.name!r} has no ternary layer (make it with "
            "ttq_keras.quantize_model)."
        )
    if any(is_ttq_wrapper(layer) for layer in float_model.layers):
        raise ValueError(
            f"correct_ternarization: `float_model` {float_model.name!r} is itself quantized; "
            "pass the float model that quantize_model was given."
        )
    float_names = {layer.name for layer in float_model.layers}
    normalized = set() if include_normalized else normalized_layer_names(float_model)
    plan = []
    for info in infos:
        if info.inner_name not in float_names:
            raise ValueError(
                f"correct_ternarization: ternary layer {info.name!r} has no float counterpart "
                f"{info.inner_name!r} in model {float_model.name!r}."
            )
        if info.inner_name in normalized:
            continue
        float_layer = float_model.get_layer(info.inner_name)
        attr = info.wrapper.quantize_config.weight_attrs[0]
        float_kernel = getattr(float_layer, attr, None)
        if type(float_layer) is not type(info.layer) or float_kernel is None:
            raise ValueError(
                f"correct_ternarization: layer {info.inner_name!r} is a "
                f"{type(float_layer).__name__} in the float model but the ternary layer "
                f"{info.name!r} wraps a {type(info.layer).__name__}."
            )
        if tuple(float_kernel.shape) != info.codes.shape:
            raise ValueError(
                f"correct_ternarization: the kernel of {info.inner_name!r} has shape "
                f"{tuple(float_kernel.shape)} in the float model and {info.codes.shape} in the "
                f"ternary layer {info.name!r}."
            )
        if len(_ttq_weight_vars(info.wrapper)) != 1:
            raise ValueError(
                f"correct_ternarization: layer {info.name!r} has several ternary kernels."
            )
        plan.append((info, float_layer))
    batches = _batches(data, steps)
    consumers = _consumers(float_model)
    return [
        _correct_layer(
            q_model,
            float_model,
            info,
            float_layer,
            batches,
            method,
            relu=match == "output" and _relu_follows(float_model, float_layer, consumers),
        )
        for info, float_layer in plan
    ]


def _is_relu(layer):
    if isinstance(layer, keras.layers.ReLU):
        config = layer.get_config()
        return (
            config.get("max_value") is None
            and not config.get("negative_slope")
            and not config.get("threshold")
        )
    if isinstance(layer, keras.layers.Activation):
        return layer.get_config().get("activation") == "relu"
    return False


def _relu_follows(float_model, layer, consumers):
    """True when the layer's output goes through a ReLU: its fused activation, or every layer
    reading it is a plain ReLU / Activation("relu")."""
    if getattr(layer, "activation", None) is keras.activations.relu:
        return True
    if layer.get_config().get("activation") not in (None, "linear"):
        return False
    users = consumers.get(layer.name, [])
    output_names = {t.node.layer.name for t in float_model.outputs if hasattr(t, "node")}
    return bool(users) and layer.name not in output_names and all(_is_relu(u) for u in users)


def _masked_moments(yp, yn, target, mask):
    """Per-channel sums over the rows in `mask` (None: all rows) of y_P, y_N, the target and
    their products."""
    if mask is not None:
        w = mask.astype(np.float64)
        yp, yn, target = yp * w, yn * w, target * w
        n = w.sum(axis=0)
    else:
        n = np.full(yp.shape[1], float(yp.shape[0]))
    return dict(
        n=n,
        P=yp.sum(axis=0),
        N=yn.sum(axis=0),
        T=target.sum(axis=0),
        PP=np.einsum("ij,ij->j", yp, yp),
        NN=np.einsum("ij,ij->j", yn, yn),
        PN=np.einsum("ij,ij->j", yp, yn),
        PT=np.einsum("ij,ij->j", yp, target),
        NT=np.einsum("ij,ij->j", yn, target),
    )


def _least_squares(m, a0, c0, b0, fit_scales, fit_bias, shared_scales, floor):
    """argmin of Σ (a·y_P − c·y_N + b − target)² over the rows the moments `m` were taken on:
    (a, c) per channel or shared by all channels, a, c >= floor; b per channel. A channel with
    no row keeps its bias."""
    n = m["n"]
    has_rows = n > 0
    safe_n = np.maximum(n, 1.0)
    a, c = a0, c0
    if fit_scales:

        def moment(k1, k2):
            value = m[k1 + k2]
            return value - m[k1] * m[k2] / safe_n if fit_bias else value

        pp, nn, pn = moment("P", "P"), moment("N", "N"), moment("P", "N")
        pt, nt = moment("P", "T"), moment("N", "T")
        if shared_scales:
            u, v = _fit_pair(pp.sum(), nn.sum(), pn.sum(), pt.sum(), nt.sum(), a0[0], c0[0], floor)
            a, c = np.full_like(a0, u), np.full_like(c0, v)
        else:
            pairs = [
                _fit_pair(pp[k], nn[k], pn[k], pt[k], nt[k], a0[k], c0[k], floor)
                for k in range(len(a0))
            ]
            a, c = np.array([p[0] for p in pairs]), np.array([p[1] for p in pairs])
    b = b0
    if fit_bias:
        b = np.where(has_rows, (m["T"] - a * m["P"] + c * m["N"]) / safe_n, b0)
    return a, c, b


def _output_error(yp, yn, yf, a, c, b, relu):
    """Squared error of the layer's output (after the ReLU when one follows) per element, and
    the convex objective that is minimised: with a ReLU, Σ over y_F > 0 of (y_Q − y_F)² plus
    Σ over y_F <= 0 of max(y_Q, 0)² (y_Q = a·y_P − c·y_N + b), an upper bound of the
    post-ReLU error that keeps channels dead where they are dead in the float model."""
    yq = a * yp - c * yn + b
    if not relu:
        sse = np.sum((yq - yf) ** 2)
        return sse, sse
    alive = yf > 0
    objective = np.sum(np.where(alive, yq - yf, np.maximum(yq, 0.0)) ** 2)
    return np.sum((np.maximum(yq, 0.0) - np.maximum(yf, 0.0)) ** 2), objective


def _fit(yp, yn, yf, a0, c0, b0, fit_scales, fit_bias, shared_scales, floor, relu):
    """(a, c, b) minimising the layer's output error (`_output_error`'s objective). Without a
    ReLU it is one least-squares solve; with one, the objective is convex and piecewise
    quadratic, minimised by active-set Newton steps (least squares over the rows where the
    float or the ternary output is positive, with a step-halving safeguard)."""
    if not relu:
        m = _masked_moments(yp, yn, yf, None)
        return _least_squares(m, a0, c0, b0, fit_scales, fit_bias, shared_scales, floor)
    target = np.maximum(yf, 0.0)
    a, c, b = a0, c0, b0
    _, best = _output_error(yp, yn, yf, a, c, b, relu)
    for _ in range(_NEWTON_STEPS):
        mask = (yf > 0) | (a * yp - c * yn + b > 0)
        m = _masked_moments(yp, yn, target, mask)
        step = _least_squares(m, a, c, b, fit_scales, fit_bias, shared_scales, floor)
        t = 1.0
        while t >= 1.0 / 64:
            candidate = tuple(old + t * (new - old) for old, new in zip((a, c, b), step))
            _, value = _output_error(yp, yn, yf, *candidate, relu)
            if value <= best:
                break
            t /= 2
        else:
            break  # no descent: at the minimum (up to rounding)
        converged = best - value <= 1e-9 * max(best, 1e-30)
        (a, c, b), best = candidate, value
        if converged:
            break
    return a, c, b


_NEWTON_STEPS = 30
# Cap on the elements (rows x channels) of y_P, y_N, y_F kept per layer; above it, rows
# (samples x positions) are subsampled evenly from every batch.
_MAX_ELEMENTS = 1 << 21


def _correct_layer(q_model, float_model, info, float_layer, batches, method, relu):
    wrapper = info.wrapper
    _, quantizer, scale_vars = _ttq_weight_vars(wrapper)[0]
    variables = wrapped_layer_variables(wrapper)
    bias_var = variables.get("bias") if getattr(info.layer, "use_bias", False) else None
    # The layers' inputs, recomputed per layer and batch (the quantized model's change as the
    # layers before this one are corrected; storing every activation would cost memory).
    q_input = keras.Model(q_model.inputs, _layer_input(q_model, wrapper, "quantized"))
    f_input = keras.Model(float_model.inputs, _layer_input(float_model, float_layer, "float"))
    input_shape = f_input.output_shape
    attr = wrapper.quantize_config.weight_attrs[0]
    float_clone = _linear_clone(float_layer, getattr(float_layer, attr).numpy(), input_shape)
    pos_clone = _linear_clone(info.layer, (info.codes == 1), input_shape)
    neg_clone = _linear_clone(info.layer, (info.codes == -1), input_shape)
    float_bias = (
        float_layer.bias.numpy().astype(np.float64)
        if getattr(float_layer, "use_bias", False)
        else 0.0
    )

    rows = {"P": [], "N": [], "F": []}
    rng = np.random.default_rng(0)
    for x in batches:
        xf, xq = f_input(x, training=False), q_input(x, training=False)
        outputs = {"F": float_clone(xf), "P": pos_clone(xq), "N": neg_clone(xq)}
        channels = outputs["F"].shape[-1]
        flat = {k: np.asarray(v).reshape(-1, channels) for k, v in outputs.items()}
        keep = max(1, _MAX_ELEMENTS // (channels * len(batches)))
        if flat["F"].shape[0] > keep:
            chosen = np.sort(rng.choice(flat["F"].shape[0], keep, replace=False))
            flat = {k: v[chosen] for k, v in flat.items()}
        for key, value in flat.items():
            rows[key].append(value)
    yp, yn, yf = (np.concatenate(rows[k]).astype(np.float64) for k in "PNF")
    yf += float_bias

    channels = yf.shape[1]
    if info.wp.size not in (1, channels):
        raise ValueError(
            f"correct_ternarization: layer {info.name!r} has {info.wp.size} scales for "
            f"{channels} output channels."
        )
    a0 = np.broadcast_to(info.wp.astype(np.float64).reshape(-1), (channels,)).copy()
    c0 = np.broadcast_to(info.wn.astype(np.float64).reshape(-1), (channels,)).copy()
    b0 = bias_var.numpy().astype(np.float64) if bias_var is not None else np.zeros(channels)
    size = yf.size
    mse_before = float(_output_error(yp, yn, yf, a0, c0, b0, relu)[0] / size)

    refit = method == "scales" and quantizer.mode == "ttq"
    a, c, b = _fit(
        yp,
        yn,
        yf,
        a0,
        c0,
        b0,
        fit_scales=refit,
        fit_bias=bias_var is not None,
        shared_scales=info.wp.size == 1,
        floor=float(quantizer.min_scale),
        relu=relu,
    )
    if refit:
        wp_shape = tuple(scale_vars["wp"].shape)
        dtype = scale_vars["wp"].dtype
        scale = (lambda v: v[0]) if not wp_shape else (lambda v: v.reshape(wp_shape))
        scale_vars["wp"].assign(tf.cast(scale(a), dtype))
        scale_vars["wn"].assign(tf.cast(scale(c), dtype))
    if bias_var is not None:
        bias_var.assign(tf.cast(b, bias_var.dtype))
    mse_after = float(_output_error(yp, yn, yf, a, c, b, relu)[0] / size)
    return CorrectedLayer(
        name=info.name,
        bias_corrected=bias_var is not None,
        scales_refit=refit,
        relu=relu,
        mse_before=mse_before,
        mse_after=mse_after,
    )
