"""Removal of the tensors, buffers and operator codes of a ModelT that nothing refers to.

After the packed rewrite the float weights of the rewritten ops are dead; dropping them (and
renumbering every reference) is what makes the packed file small.
"""

import numpy as np

from ttq_keras.lite import flatbuffer_io as fbio

__all__ = ["remove_unused"]


def remove_unused(model):
    """Drops tensors, buffers and operator codes nothing refers to; renumbers references."""
    used_buffers = {0}
    used_codes = set()
    for s, sg in enumerate(model.subgraphs):
        used = set(fbio.ints(sg.inputs)) | set(fbio.ints(sg.outputs))
        for op in sg.operators or []:
            used_codes.add(int(op.opcodeIndex))
            for field in (op.inputs, op.outputs, op.intermediates):
                used.update(i for i in fbio.ints(field) if i >= 0)
        for sig in model.signatureDefs or []:
            if sig.subgraphIndex == s:
                used.update(
                    int(t.tensorIndex) for t in list(sig.inputs or []) + list(sig.outputs or [])
                )
        order = sorted(used)
        remap = {old: new for new, old in enumerate(order)}

        def _re(v):
            if v is None:
                return None
            return np.asarray([remap[i] if i >= 0 else -1 for i in fbio.ints(v)], np.int32)

        sg.tensors = [sg.tensors[i] for i in order]
        sg.inputs = _re(sg.inputs)
        sg.outputs = _re(sg.outputs)
        for op in sg.operators or []:
            op.inputs = _re(op.inputs)
            op.outputs = _re(op.outputs)
            if op.intermediates is not None:
                op.intermediates = _re(op.intermediates)
        for sig in model.signatureDefs or []:
            if sig.subgraphIndex == s:
                for t in list(sig.inputs or []) + list(sig.outputs or []):
                    t.tensorIndex = remap[int(t.tensorIndex)]
        used_buffers.update(int(t.buffer) for t in sg.tensors)
    for md in model.metadata or []:
        used_buffers.add(int(md.buffer))
    used_buffers.update(fbio.ints(model.metadataBuffer))
    order = sorted(used_buffers)
    bremap = {old: new for new, old in enumerate(order)}
    model.buffers = [model.buffers[i] for i in order]
    for sg in model.subgraphs:
        for t in sg.tensors:
            t.buffer = bremap[int(t.buffer)]
    for md in model.metadata or []:
        md.buffer = bremap[int(md.buffer)]
    if model.metadataBuffer is not None:
        model.metadataBuffer = np.asarray(
            [bremap[i] for i in fbio.ints(model.metadataBuffer)], np.int32
        )
    order = sorted(used_codes)
    cremap = {old: new for new, old in enumerate(order)}
    model.operatorCodes = [model.operatorCodes[i] for i in order]
    for sg in model.subgraphs:
        for op in sg.operators or []:
            op.opcodeIndex = cremap[int(op.opcodeIndex)]
