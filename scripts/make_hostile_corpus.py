"""Writes the hostile-input corpus tests/data/hostile/ (docs/format.md section 5).

    .venv/bin/python scripts/make_hostile_corpus.py [--out tests/data/hostile]

Every file is a .tflite derived from a few valid packed models -- three one-op models (conv,
depthwise, fully connected) and two models written by `ttq_keras.convert` -- by one hostile
change: truncated buffers; wrong, huge and negative dims (2^31 channels, kernel sizes whose
product overflows int32 / int64, a huge batch); negative or zero strides and dilations; NaN and
Inf scales; unknown versions; mismatched code lengths; the wrong number of inputs; tensors of
the wrong type; broken custom options; and seeded random byte flips. MANIFEST.json maps each
file to what a reader must do with it ("reject", "accept" or "either": a flip may land in
bytes no reader looks at) and why. tests/hostile_corpus_test.py runs every file through
ttq_keras.Interpreter and the NumPy reference. Deterministic: the same files on every run.
"""

import ttq_keras  # noqa: F401  isort: skip  (sets TF_USE_LEGACY_KERAS before TF loads)

import argparse
import json
import os
import sys

import numpy as np
from flatbuffers import flexbuffers
from tensorflow.lite.python import schema_py_generated as schema_fb
from tensorflow.lite.tools import flatbuffer_utils

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from tests import testing_utils as tu  # noqa: E402
from ttq_keras.lite.packing import pack_trits  # noqa: E402

INT32_MAX = 2**31 - 1
T = schema_fb.TensorType


def _one_op_models():
    rng = np.random.default_rng(12)

    def op(kind, c_out, k, options, output_shape):
        rows = rng.choice([-1, 0, 1], size=(c_out, k)).astype(np.int8)
        return tu.TtqOp(
            kind=kind,
            rows=rows,
            pos=rng.uniform(0.2, 1.5, c_out).astype(np.float32),
            neg=rng.uniform(0.2, 1.5, c_out).astype(np.float32),
            bias=rng.uniform(-0.5, 0.5, c_out).astype(np.float32),
            options=options,
            output_shape=output_shape,
        )

    conv_opts = dict(
        version=1,
        activation="RELU",
        in_channels=3,
        out_channels=4,
        kernel_height=3,
        kernel_width=3,
        stride_height=1,
        stride_width=2,
        dilation_height=1,
        dilation_width=1,
        padding="SAME",
    )
    dw_opts = dict(
        conv_opts,
        activation="NONE",
        out_channels=6,
        depth_multiplier=2,
        padding="VALID",
        stride_width=1,
        dilation_height=2,
    )
    fc_opts = dict(
        version=1, activation="RELU6", in_features=7, out_features=5, keep_num_dims=False
    )
    return {
        "conv": tu.build_packed_model([1, 6, 6, 3], [op("conv2d", 4, 27, conv_opts, [1, 6, 3, 4])]),
        "depthwise": tu.build_packed_model(
            [1, 7, 6, 3], [op("depthwise_conv2d", 6, 9, dw_opts, [1, 3, 4, 6])]
        ),
        "fc": tu.build_packed_model([2, 7], [op("dense", 5, 7, fc_opts, [2, 5])]),
    }


def _converted_models():
    out = {}
    # File name -> float Keras model of tests/testing_utils.py (mlp: the 3-D input one).
    for name, build in (("mobilenet_block", tu.mobilenet_block), ("mlp", tu.mlp_3d_input)):
        ttq_keras.keras.utils.set_random_seed(0)  # the Keras initializers: same files every run
        q = ttq_keras.quantize_model(build(), keep_first_and_last_float=False)
        tu.randomize_quantized(q, seed=3)
        out[f"converted_{name}"] = bytes(ttq_keras.convert(q))
    return out


# ---- object-level mutations of a one-op model ------------------------------------------------


def _load(data):
    return schema_fb.ModelT.InitFromObj(schema_fb.Model.GetRootAsModel(bytearray(data), 0))


def _save(model):
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


def _ttq(model):
    sg = model.subgraphs[0]
    for op in sg.operators:
        if model.operatorCodes[op.opcodeIndex].customCode:
            return sg, op
    raise AssertionError("no TTQ op")


def _ttq_op_inputs(sg):
    for op in sg.operators:
        return op.inputs


def _options(op):
    return dict(flexbuffers.Loads(bytes(np.asarray(op.customOptions, np.uint8))))


def _set_options(op, options=None, raw=None):
    data = raw if raw is not None else bytes(flexbuffers.Dumps(options))
    op.customOptions = np.frombuffer(data, np.uint8)


def mutate(base, fn):
    model = _load(base)
    sg, op = _ttq(model)
    fn(model, sg, op)
    return _save(model)


def with_option(key, value):
    def fn(model, sg, op):
        o = _options(op)
        if value is _DROP:
            del o[key]
        else:
            o[key] = value
        _set_options(op, o)

    return fn


_DROP = object()


def tensor_field(input_index, **fields):
    """Sets fields (shape, type, buffer data) of the op's input `input_index` (-1: output)."""

    def fn(model, sg, op):
        t = sg.tensors[op.outputs[0] if input_index == -1 else op.inputs[input_index]]
        for name, value in fields.items():
            if name == "shape":
                t.shape = np.asarray(value, np.int32)
                t.shapeSignature = None
            elif name == "type":
                t.type = value
            elif name == "data":
                model.buffers[t.buffer].data = np.frombuffer(bytes(value), np.uint8)
            elif name == "scale_value":  # set element 0 of a float32 constant
                buf = model.buffers[t.buffer]
                arr = np.frombuffer(bytes(np.asarray(buf.data, np.uint8)), np.float32).copy()
                arr[0] = value
                buf.data = np.frombuffer(arr.tobytes(), np.uint8)
            elif name == "code_byte":  # set byte `index` of the codes to `value`
                index, byte = value
                buf = model.buffers[t.buffer]
                arr = np.asarray(buf.data, np.uint8).copy()
                arr[index] = byte
                buf.data = arr
            elif name == "no_buffer":
                t.buffer = 0

    return fn


def op_inputs(fn_inputs):
    def fn(model, sg, op):
        op.inputs = np.asarray(fn_inputs(list(op.inputs), sg), np.int32)

    return fn


def op_outputs(fn_outputs):
    def fn(model, sg, op):
        op.outputs = np.asarray(fn_outputs(list(op.outputs), sg), np.int32)

    return fn


def opcode_version(v):
    def fn(model, sg, op):
        model.operatorCodes[op.opcodeIndex].version = v

    return fn


def options_format(v):
    def fn(model, sg, op):
        op.customOptionsFormat = v

    return fn


def raw_options(data):
    def fn(model, sg, op):
        _set_options(op, raw=data)

    return fn


def input_shape(shape):
    """Declared shape of the op's input, which is also the model's input here."""
    return tensor_field(0, shape=shape)


# ---- the corpus ------------------------------------------------------------------------------


_FUZZ_NO_SUBGRAPH_B64 = (
    "CAAAAFRGTDMi////FAAAALAAAADIAAAAaAMAAAMAAAAFAAAAmAAAAGwAAABEAAAAJAAAAAQAAACq////BAAAABAAAADG"
    "C1G9Cz4/PmaL7j0/+YG9xv///wQAAAAQAAAA0Y63Px7InD6pDa8/J6RZP+L///8EAAAAEAAAAN2Itj+inFE/dtmeP9xG"
    "lT8AAAYACAAEAAYAAAAEAAAAGAAAAMwaKpgHBTjHgHCFAl8plcg7BrrBVVLTAwQABAAEAAAAFwAAAHR0cSBkZWxlZ2F0"
    "ZSB0ZXN0IG1vZGVsAAEAAAAUAAAAAAAGABgAFAAQAAwACAAEAA4AAAAUAAAAHAAAACQBAAAoAQAALAEAAAQAAABtYWlu"
    "AAAAAAEAAAAUAAAAEAAQAAAADAAIAAAAAAAEABAAAAAMAAAAzAAAANAAAAC9AAAAdmVyc2lvbgBhY3RpdmF0aW9uAARS"
    "RUxVAGluX2NoYW5uZWVzAG91dF9jaGFubmVscwBrZXJuZWxfaGVpZ2h0AGtlcm5lbF93aWR0aABzdHJpZGVfaGVpZ2h0"
    "AHN0cmlkZV93aWR0aABkaWxhdGlvbl9oZWlnaHQAZGlsYXRpb25fd2lkdGgAcGFkZGluZwAEU0FNRQALji8ggGhbdxZR"
    "RKALAQuQAQEDAwMEGwECARQEdgQEBAQEFAQEBBYkAQAAAAEAAAAFAAAABQAAAAAAAAABAAAAAgAAAAMAAAD/////AQAA"
    "AAUAAAABAAAAAAAAAAYAAAAcAQAA3AAAAKAAAABkAAAAOAAAAAQAAAAI////CAAAABQAAAAKAAAAb3AwL291dHB1dAAA"
    "BAAAAAEAAAAGAAAAAwAAAAQAAACs////DAAAAAQAAAAUAAAACAAAAG9wMC9iaWFzAAAAAAEAAAAEAAAA1P///wwAAAAD"
    "AAAAGAAAAA4AAABvcDAvbmVnX3NjYWxlcwAAAQAAAAQAAAAMABAADAAAAAgABAAMAAAADAAAAAIAAAAAAAAAgAAAAAAA"
    "AAAAAAAAAAUAAAAAAAAAAQAAAAAAAAAUB2sHBy0nAQEAAAAFAAAABQAAAAAAAAABAAAAAgAAAAMAAAAEAAAAAQAAAAUA"
    "AAABAAAAAAAAAAYAAAAUAQAA1AAAAJgAAABcAAAAMAAAAAQAAAAQ////CAAAABQAAAAKAAAAbwAABgAAAAYAAAADAAAA"
    "AQAAABAAAAAMABAADwAIAAAABAAMAAAAIAAAAAgAAAAAAAAgCwAAAFRUUV9DT05WXzJEAA=="
)


def _fuzzer_find_no_subgraph():
    """The 949-byte input fuzz_tflite_file found (a verified model without subgraphs)."""
    import base64

    return base64.b64decode(_FUZZ_NO_SUBGRAPH_B64)


def build_corpus():
    bases = _one_op_models()
    bases.update(_converted_models())
    files = {}

    def add(name, data, expect, why):
        assert name not in files, name
        files[name] = (data, expect, why)

    for name, data in bases.items():
        add(f"valid_{name}", data, "accept", "a valid packed model (control)")

    # Truncated buffers.
    for name in ("conv", "fc", "converted_mlp"):
        data = bases[name]
        for cut in sorted({0, 4, 8, 16, 64, len(data) // 4, len(data) // 2, len(data) - 1}):
            add(f"truncated_{name}_{cut}", data[:cut], "reject", f"first {cut} bytes only")

    conv, dw, fc = bases["conv"], bases["depthwise"], bases["fc"]
    # Wrong, huge and negative dims.
    dims = {
        "input_channels_wrong": (conv, input_shape([1, 6, 6, 4])),
        "input_rank3": (conv, input_shape([6, 6, 3])),
        "input_negative_height": (conv, input_shape([1, -6, 6, 3])),
        "input_zero_width": (conv, input_shape([1, 6, 0, 3])),
        "input_huge_batch": (conv, input_shape([INT32_MAX, 6, 6, 3])),
        "input_batch_2p20": (conv, input_shape([2**20, 64, 64, 3])),
        "input_dims_overflow_int64": (conv, input_shape([INT32_MAX, INT32_MAX, INT32_MAX, 3])),
        "fc_input_huge_rows": (fc, input_shape([2**30, 7])),
        "fc_input_not_multiple": (fc, input_shape([2, 6])),
        "fc_input_negative": (fc, input_shape([-2, 7])),
        "in_channels_2p31": (conv, with_option("in_channels", 2**31)),
        "in_channels_int32_max": (conv, with_option("in_channels", INT32_MAX)),
        "out_channels_2p31": (conv, with_option("out_channels", 2**31)),
        "out_channels_negative": (conv, with_option("out_channels", -4)),
        "kernel_product_overflows_int32": (  # 32768 * 32768 * 3 > 2^31
            conv,
            lambda m, s, o: [
                with_option(k, 32768)(m, s, o) for k in ("kernel_height", "kernel_width")
            ],
        ),
        "kernel_product_overflows_int64": (
            conv,
            lambda m, s, o: [
                with_option(k, INT32_MAX)(m, s, o)
                for k in ("kernel_height", "kernel_width", "in_channels")
            ],
        ),
        "kernel_hw_overflow_int32": (
            conv,
            lambda m, s, o: [
                with_option(k, 65536)(m, s, o) for k in ("kernel_height", "kernel_width")
            ],
        ),
        "kernel_zero": (conv, with_option("kernel_width", 0)),
        "in_features_2p31": (fc, with_option("in_features", 2**31)),
        "out_features_huge": (fc, with_option("out_features", INT32_MAX)),
        "codes_shape_huge": (conv, tensor_field(1, shape=[INT32_MAX, INT32_MAX])),
        "codes_shape_negative": (conv, tensor_field(1, shape=[-4, 6])),
        "scales_shape_huge": (conv, tensor_field(2, shape=[INT32_MAX])),
        "output_shape_huge": (conv, tensor_field(-1, shape=[INT32_MAX, INT32_MAX, 1, 4])),
        "depthwise_multiplier_mismatch": (dw, with_option("depth_multiplier", 3)),
        "depthwise_multiplier_zero": (dw, with_option("depth_multiplier", 0)),
        "depthwise_multiplier_huge": (
            dw,
            lambda m, s, o: [
                with_option("depth_multiplier", 2**30)(m, s, o),
                with_option("out_channels", 3 * 2**30)(m, s, o),
            ],
        ),
    }
    for name, (base, fn) in dims.items():
        add(f"dims_{name}", mutate(base, fn), "reject", name.replace("_", " "))

    # Strides and dilations: zero, negative, int32 min, and a SAME-padded huge dilation.
    for key in ("stride_height", "stride_width", "dilation_height", "dilation_width"):
        for value in (0, -1, -(2**31)):
            add(
                f"geometry_{key}_{value}",
                mutate(conv, with_option(key, value)),
                "reject",
                f"{key} = {value}",
            )
    add(
        "geometry_dilation_huge_same",
        mutate(conv, with_option("dilation_height", 2**30)),
        "reject",
        "SAME padding with dilation 2^30: taps past coordinate 2^31",
    )
    add(
        "geometry_stride_huge_valid",
        mutate(
            conv,
            lambda m, s, o: [
                with_option("padding", "VALID")(m, s, o),
                with_option("stride_height", INT32_MAX)(m, s, o),
            ],
        ),
        "accept",
        "VALID with a huge stride: one output row, a valid model",
    )

    # NaN / Inf scales and bias.
    for index, name in ((2, "pos_scales"), (3, "neg_scales"), (4, "bias")):
        for label, value in (("nan", np.nan), ("inf", np.inf), ("neginf", -np.inf)):
            add(
                f"nonfinite_{name}_{label}",
                mutate(conv, tensor_field(index, scale_value=value)),
                "reject",
                f"{name}[0] = {label}",
            )

    # Versions.
    for value in (0, 2, -1, 2**40):
        add(
            f"version_{value}",
            mutate(fc, with_option("version", value)),
            "reject",
            f"format version {value}",
        )
    add("version_string", mutate(fc, with_option("version", "1")), "reject", "version '1'")
    add("version_missing", mutate(fc, with_option("version", _DROP)), "reject", "no version")
    add(
        "opcode_version_2",
        mutate(fc, opcode_version(2)),
        "accept",
        "operator code version 2: readers go by the options' version (a delegate never sees it)",
    )

    # Code lengths and bytes.
    c27 = np.asarray(pack_trits(np.zeros((4, 27), np.int8)))
    add(
        "codes_row_floor",
        mutate(conv, tensor_field(1, shape=[4, 5], data=c27[:, :5].tobytes())),
        "reject",
        "floor(K/5) bytes per row",
    )
    add(
        "codes_row_plus_one",
        mutate(conv, tensor_field(1, shape=[4, 7], data=np.zeros((4, 7), np.uint8).tobytes())),
        "reject",
        "ceil(K/5) + 1 bytes per row",
    )
    add(
        "codes_buffer_short",
        mutate(conv, tensor_field(1, data=c27.tobytes()[:-3])),
        "reject",
        "codes buffer 3 bytes shorter than its shape",
    )
    add(
        "codes_buffer_empty",
        mutate(conv, tensor_field(1, no_buffer=True)),
        "reject",
        "codes without a buffer",
    )
    add("codes_flat_shape", mutate(conv, tensor_field(1, shape=[24])), "reject", "1-D codes")
    add("codes_byte_243", mutate(conv, tensor_field(1, code_byte=(3, 243))), "reject", "byte 243")
    add("codes_byte_255", mutate(conv, tensor_field(1, code_byte=(0, 255))), "reject", "byte 255")
    # K = 27: the last byte of a row holds 2 taps; 3 * 9 = 27 sets padding trit 2 of byte 5.
    add(
        "codes_padding_trit",
        mutate(conv, tensor_field(1, code_byte=(5, 27))),
        "reject",
        "non-zero padding trit",
    )
    ones = lambda n: np.ones(n, np.float32).tobytes()  # noqa: E731
    add(
        "scales_one_short",
        mutate(conv, tensor_field(2, shape=[3], data=ones(3))),
        "reject",
        "3 pos_scales for 4 channels",
    )
    add(
        "bias_one_more",
        mutate(conv, tensor_field(4, shape=[5], data=ones(5))),
        "reject",
        "5 biases for 4 channels",
    )

    # Number of inputs and outputs.
    add("inputs_4", mutate(conv, op_inputs(lambda ins, sg: ins[:4])), "reject", "no bias input")
    add("inputs_6", mutate(conv, op_inputs(lambda ins, sg: ins + [ins[4]])), "reject", "6 inputs")
    add(
        "inputs_optional_bias",
        mutate(conv, op_inputs(lambda ins, sg: ins[:4] + [-1])),
        "reject",
        "bias input -1 (omitted)",
    )
    add(
        "inputs_index_out_of_range",
        mutate(conv, op_inputs(lambda ins, sg: ins[:4] + [999])),
        "reject",
        "bias input index 999",
    )
    add(
        "output_is_input",
        mutate(conv, op_outputs(lambda outs, sg: [list(_ttq_op_inputs(sg))[0]])),
        "reject",
        "the output tensor is the op's input (found by fuzz_one_op)",
    )
    add(
        "outputs_2",
        mutate(conv, op_outputs(lambda outs, sg: outs + [outs[0]])),
        "reject",
        "two outputs",
    )
    add(
        "inputs_swapped_codes_bias",
        mutate(conv, op_inputs(lambda ins, sg: [ins[0], ins[4], ins[2], ins[3], ins[1]])),
        "reject",
        "codes and bias swapped",
    )

    # Tensor types.
    for index, label, ttype in (
        (0, "input_int8", T.INT8),
        (0, "input_uint8", T.UINT8),
        (1, "codes_int8", T.INT8),
        (1, "codes_float32", T.FLOAT32),
        (2, "pos_scales_float16", T.FLOAT16),
        (4, "bias_int32", T.INT32),
        (-1, "output_int32", T.INT32),
        (3, "neg_scales_uint8", T.UINT8),
    ):
        base = fc if index in (0, -1) else conv
        add(
            f"type_{label}",
            mutate(base, tensor_field(index, type=ttype)),
            "reject",
            label.replace("_", " "),
        )

    # Custom options.
    add("options_empty", mutate(fc, raw_options(b"")), "reject", "no custom options")
    add("options_garbage", mutate(fc, raw_options(bytes(range(7, 47)))), "reject", "garbage")
    add("options_one_byte", mutate(fc, raw_options(b"\x01")), "reject", "1-byte options")
    add(
        "options_not_flexbuffers",
        mutate(fc, options_format(1)),
        "accept",
        "custom_options_format 1, options still a FlexBuffer map (a delegate never sees it)",
    )
    add(
        "options_padding_full",
        mutate(conv, with_option("padding", "FULL")),
        "reject",
        "padding FULL",
    )
    add(
        "options_activation_tanh", mutate(conv, with_option("activation", "TANH")), "reject", "TANH"
    )
    add("options_stride_string", mutate(conv, with_option("stride_width", "2")), "reject", "'2'")
    add("options_stride_float", mutate(conv, with_option("stride_width", 2.0)), "reject", "2.0")
    add(
        "options_keep_num_dims_int",
        mutate(fc, with_option("keep_num_dims", 1)),
        "reject",
        "keep_num_dims as an int",
    )
    add("options_in_features_bool", mutate(fc, with_option("in_features", True)), "reject", "bool")
    add(
        "options_missing_padding",
        mutate(conv, with_option("padding", _DROP)),
        "reject",
        "no padding",
    )
    add(
        "options_extra_key",
        mutate(conv, with_option("groups", 2)),
        "accept",
        "an unknown extra key is ignored",
    )
    opts = bytes(np.asarray(_ttq(_load(fc))[1].customOptions, np.uint8))
    for cut in (1, len(opts) // 2, len(opts) - 1):
        add(
            f"options_truncated_{cut}",
            mutate(fc, raw_options(opts[:cut])),
            "reject",
            f"first {cut} option bytes",
        )

    # A verified flatbuffer without subgraphs (crashes TFLite 2.18's and LiteRT's builder).
    def no_subgraph(model, sg, op):
        model.subgraphs = []

    add("model_no_subgraph", mutate(fc, no_subgraph), "reject", "no subgraph")
    add(
        "model_crash_c8ab_no_subgraph",
        _fuzzer_find_no_subgraph(),
        "reject",
        "the fuzz_tflite_file input that crashed TFLite: a flipped subgraphs offset",
    )

    # Seeded random byte flips of the one-op models and a converted model.
    rng = np.random.default_rng(2026)
    for name in ("conv", "depthwise", "fc", "converted_mlp"):
        data = bases[name]
        for i in range(8):
            b = bytearray(data)
            for _ in range(int(rng.integers(1, 6))):
                b[int(rng.integers(0, len(b)))] = int(rng.integers(0, 256))
            add(f"flip_{name}_{i}", bytes(b), "either", "random byte flips")
    return files


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default = os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "..", "tests", "data", "hostile"
    )
    parser.add_argument("--out", default=default)
    args = parser.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    for f in os.listdir(args.out):
        if f.endswith(".tflite"):
            os.remove(os.path.join(args.out, f))
    files = build_corpus()
    manifest = {}
    for name, (data, expect, why) in sorted(files.items()):
        with open(os.path.join(args.out, f"{name}.tflite"), "wb") as f:
            f.write(data)
        manifest[f"{name}.tflite"] = {"expect": expect, "why": why}
    with open(os.path.join(args.out, "MANIFEST.json"), "w") as f:
        json.dump(manifest, f, indent=1, sort_keys=True)
        f.write("\n")
    print(f"wrote {len(files)} files to {os.path.normpath(args.out)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
