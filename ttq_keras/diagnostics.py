"""Finding a diverged ternary model, and naming the layer and tensor that went wrong.

`check_ternary_weights(model)` raises a ValueError naming the first ternary layer whose latent
kernel, Wp or Wn holds NaN or Inf (convert() and summary() call it first, so that a diverged
model is not blamed on the converter). `TTQGuard` is a Keras callback that runs the same check
every N training steps, also catches scales that changed sign, and stops training with a
`TrainingDivergedError` that says where and when.
"""

import math
from typing import List, Optional

import numpy as np

from ttq_keras._compat import keras
from ttq_keras.ternary_weights import _all_layers, is_ttq_wrapper, ternary_variables

__all__ = [
    "WeightProblem",
    "find_weight_problems",
    "check_ternary_weights",
    "TTQGuard",
    "TrainingDivergedError",
]

_ADVICE = (
    "training diverged; lower the learning rate, use quantize_model's default "
    'recipe="robust" (normalised scale gradients, function-preserving init, positive scales), '
    "or train with ttq_keras.TTQGuard to stop at the first bad step"
)


class TrainingDivergedError(RuntimeError):
    """Raised by TTQGuard when a ternary layer's weights become non-finite or flip sign."""


class WeightProblem:
    """One bad tensor: `layer` (wrapper name), `tensor` ("kernel", "Wp", "Wn"), `what`."""

    def __init__(self, layer, tensor, what):
        self.layer, self.tensor, self.what = layer, tensor, what

    def __str__(self):
        return f"layer {self.layer!r}: {self.tensor} {self.what}"

    __repr__ = __str__


def _nonfinite(values) -> Optional[str]:
    """None if every value is finite, else e.g. 'is NaN' / 'has 3 NaN of 864 values'."""
    values = np.asarray(values)
    nan, inf = int(np.isnan(values).sum()), int(np.isinf(values).sum())
    if not nan and not inf:
        return None
    kinds = " and ".join(k for k, n in (("NaN", nan), ("Inf", inf)) if n)
    if values.size == 1:
        return f"is {kinds}"
    counts = ", ".join(f"{n} {k}" for k, n in (("NaN", nan), ("Inf", inf)) if n)
    return f"has {counts} of {values.size} values"


def find_weight_problems(model, check_signs=False) -> List[WeightProblem]:
    """Every non-finite latent kernel / Wp / Wn of the TTQ layers of `model`, in model order.

    With `check_signs`, also every trained scale that is <= 0 (both ternary levels then share a
    sign, czhu95/ternarynet#7). Unbuilt layers are skipped.
    """
    problems = []
    for layer in _all_layers(model):
        if not is_ttq_wrapper(layer) or not layer.built:
            continue
        for variables in ternary_variables(layer):
            kernel_name = variables.kernel.name.split(":")[0].split("/")[-1]
            tensors = [(kernel_name, variables.kernel)]
            if variables.quantizer.mode == "ttq":
                tensors += [("Wp", variables.wp), ("Wn", variables.wn)]
            for tensor_name, variable in tensors:
                values = variable.numpy()
                what = _nonfinite(values)
                if what is None and check_signs and tensor_name in ("Wp", "Wn"):
                    bad = int(np.sum(values <= 0))
                    if bad:
                        what = (
                            f"flipped sign (min {float(np.min(values)):.4g}"
                            + (f", {bad} of {values.size} channels" if values.size > 1 else "")
                            + "); scales are positive magnitudes"
                        )
                if what is not None:
                    problems.append(WeightProblem(layer.name, tensor_name, what))
    return problems


def _describe(problems):
    """The first problem, then up to three more and how many there are."""
    text = str(problems[0])
    if len(problems) > 1:
        others = "; ".join(str(p) for p in problems[1:4])
        ellipsis = "; ..." if len(problems) > 4 else ""
        text += f" ({len(problems) - 1} more bad tensors: {others}{ellipsis})"
    return text


def check_ternary_weights(model) -> None:
    """Raises ValueError naming the first ternary layer/tensor holding NaN or Inf (and how many
    other tensors are bad), e.g. "layer 'quant_conv2d_3': Wp is NaN; training diverged, ..."."""
    problems = find_weight_problems(model)
    if problems:
        raise ValueError(f"{_describe(problems)}; {_ADVICE}.")


class TTQGuard(keras.callbacks.Callback):
    """Stops training at the first check where a ternary layer went bad, naming it.

    Every `check_every` training steps (and at the end of each epoch) it reads the latent
    kernels, Wp and Wn of every ternary layer (one device-to-host copy each; no op is added to
    the training step) and raises TrainingDivergedError naming the first layer, in model order,
    whose tensors hold NaN/Inf or whose Wp/Wn became <= 0 (`check_signs`), with the step. A
    non-finite loss is reported as well, with the bad layer if there is one. Keras's
    TerminateOnNaN only says that the loss is NaN.

    Args:
      check_every: steps between checks (the cost is one copy of every ternary kernel).
      check_signs: also fail when a trained scale is <= 0.
    """

    def __init__(self, check_every=100, check_signs=True):
        super().__init__()
        if not (isinstance(check_every, int) and check_every > 0):
            raise ValueError(f"`check_every` must be a positive int. Received: {check_every!r}")
        self.check_every = check_every
        self.check_signs = check_signs
        self._step = 0
        self._epoch = 0

    def _check(self, where, loss=None):
        problems = find_weight_problems(self.model, check_signs=self.check_signs)
        loss_bad = loss is not None and not math.isfinite(float(loss))
        if not problems and not loss_bad:
            return
        self.model.stop_training = True
        head = f"TTQGuard: at {where}"
        if loss_bad:
            head += f" the loss is {float(loss)}"
            head += "; " if problems else " but every ternary layer's weights are still finite"
        else:
            head += ": "
        if problems:
            head += f"first bad ternary layer: {_describe(problems)}"
        raise TrainingDivergedError(f"{head}; {_ADVICE}.")

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        self._step += 1
        if self._step % self.check_every == 0:
            loss = (logs or {}).get("loss")
            self._check(f"step {self._step} (epoch {self._epoch + 1}, batch {batch + 1})", loss)

    def on_epoch_end(self, epoch, logs=None):
        self._check(f"the end of epoch {epoch + 1} (step {self._step})", (logs or {}).get("loss"))
