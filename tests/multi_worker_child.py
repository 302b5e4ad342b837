"""One process of the multi-worker test: trains a small TTQ model a few steps and saves it.

    TF_CONFIG='{"cluster": {"worker": ["127.0.0.1:P0", "127.0.0.1:P1"]},
                "task": {"type": "worker", "index": 0}}' \\
        python -m tests.multi_worker_child --output w0.npz

With TF_CONFIG it trains under tf.distribute.MultiWorkerMirroredStrategy (each worker reads its
shard of every global batch); without it, in one process with the whole global batch. Both
see the same examples per step, so the saved kernels, Wp and Wn must agree.
"""

import argparse
import os

import numpy as np

import ttq_keras
from tests import testing_utils
from ttq_keras import keras, tf

GLOBAL_BATCH = 32
STEPS = 6


def dataset_fn(x, y):
    def _fn(input_context):
        batch = input_context.get_per_replica_batch_size(GLOBAL_BATCH)
        ds = tf.data.Dataset.from_tensor_slices((x, y))
        # Worker i of n reads examples i, i+n, ...; step k of every worker then covers examples
        # [k*GLOBAL_BATCH, (k+1)*GLOBAL_BATCH) together, as the single-process batch k does.
        ds = ds.shard(input_context.num_input_pipelines, input_context.input_pipeline_id)
        return ds.batch(batch, drop_remainder=True).repeat()

    return _fn


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--output", required=True)
    args = parser.parse_args()
    if os.environ.get("TF_CONFIG"):
        strategy = tf.distribute.MultiWorkerMirroredStrategy()
    else:
        strategy = tf.distribute.get_strategy()
    x, y = testing_utils.classification_data(n=GLOBAL_BATCH * STEPS, features=20, classes=4)
    with strategy.scope():
        model = ttq_keras.quantize_model(testing_utils.mlp(seed=0), keep_first_and_last_float=False)
        model.compile(
            optimizer=keras.optimizers.SGD(0.1, momentum=0.9),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        )
    initial = {f"initial/{i.name}/wp": i.wp for i in ttq_keras.ternary_layers(model)}
    model.fit(
        keras.utils.experimental.DatasetCreator(dataset_fn(x, y)),
        epochs=1,
        steps_per_epoch=STEPS,
        verbose=0,
        callbacks=[ttq_keras.TTQGuard(check_every=2)],
    )
    arrays = dict(initial)
    for info in ttq_keras.ternary_layers(model):
        arrays[f"{info.name}/kernel"] = info.latent_kernel
        arrays[f"{info.name}/wp"] = info.wp
        arrays[f"{info.name}/wn"] = info.wn
    np.savez(args.output, **arrays)


if __name__ == "__main__":
    main()
