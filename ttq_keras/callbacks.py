"""`TTQCallback`: logs Wp, Wn and sparsity per ternary layer to TensorBoard."""

import os

import numpy as np

from ttq_keras._compat import keras, tf
from ttq_keras.ternary_weights import ternary_layers

__all__ = ["TTQCallback"]


class TTQCallback(keras.callbacks.Callback):
    """Writes, for every ternary layer, scalars `<layer>/wp`, `<layer>/wn`, `<layer>/sparsity`
    and histograms of the scales (per-channel mode) and of the latent and ternary kernels.

    Args:
      log_dir: TensorBoard log directory; events go to `<log_dir>/ttq`.
      update_freq: "epoch" or an integer number of batches.
      histograms: also write histograms (costs a copy of every kernel per write).
    """

    def __init__(self, log_dir, update_freq="epoch", histograms=True):
        super().__init__()
        if update_freq != "epoch" and not (isinstance(update_freq, int) and update_freq > 0):
            raise ValueError(
                f"`update_freq` must be 'epoch' or a positive int. Received: {update_freq!r}"
            )
        self.log_dir = os.path.join(log_dir, "ttq")
        self.update_freq = update_freq
        self.histograms = histograms
        self._writer = None
        self._step = 0

    def _write(self, step):
        if self._writer is None:
            self._writer = tf.summary.create_file_writer(self.log_dir)
        with self._writer.as_default():
            for info in ternary_layers(self.model):
                tf.summary.scalar(f"{info.name}/wp", float(np.mean(info.wp)), step=step)
                tf.summary.scalar(f"{info.name}/wn", float(np.mean(info.wn)), step=step)
                tf.summary.scalar(f"{info.name}/sparsity", info.sparsity, step=step)
                if self.histograms:
                    tf.summary.histogram(f"{info.name}/wp_hist", info.wp, step=step)
                    tf.summary.histogram(f"{info.name}/wn_hist", info.wn, step=step)
                    tf.summary.histogram(
                        f"{info.name}/latent_kernel", info.latent_kernel, step=step
                    )
                    tf.summary.histogram(
                        f"{info.name}/ternary_kernel", info.ternary_kernel(), step=step
                    )
        self._writer.flush()

    def on_train_batch_end(self, batch, logs=None):
        self._step += 1
        if self.update_freq != "epoch" and self._step % self.update_freq == 0:
            self._write(self._step)

    def on_epoch_end(self, epoch, logs=None):
        if self.update_freq == "epoch":
            self._write(epoch)

    def on_train_end(self, logs=None):
        if self._writer is not None:
            self._writer.close()
            self._writer = None
