"""Writes tests/data/format_v1.json, the machine-readable statement of format v1 (docs/format.md).

Both languages' tests read that file: tests/format_vectors_test.py (the Python packing and
`ttq_keras.lite.format`) and tflite_delegate/tests/{packing,op_options,delegate}_test.cc (the
C++ delegate). It holds:

  - the op names, the option keys of each op with their types, the activation and padding
    strings, the accepted integer range;
  - packing vectors: trits -> codes, for every row length class (K < 5, K = 5, padding of 1..4
    trits, several rows, every byte value);
  - packing rejects: code bytes over 242, non-zero padding trits, values that are not trits;
  - option vectors: options -> FlexBuffer bytes for each op kind (the writer's canonical bytes,
    plus encodings another writer may produce: unsigned, indirect and 8-byte ints, unknown keys);
  - option rejects: bytes every reader must reject, each with an error class and the substrings
    (`mentions`) that every reader's message must contain, so that the message names the problem.

The output is deterministic: the same code gives the same bytes. Run after changing the format:

    .venv/bin/python scripts/make_format_vectors.py           # rewrite the file
    .venv/bin/python scripts/make_format_vectors.py --check   # exit 1 if it is out of date
"""

import argparse
import json
import os
import sys

import numpy as np
from flatbuffers import flexbuffers

from ttq_keras.lite import format as ttq_format
from ttq_keras.lite.packing import pack_trits

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUTPUT = os.path.join(REPO_ROOT, "tests", "data", "format_v1.json")

# TFLite tensor dimensions are int32: a count or size beyond this can match no tensor.
INT_MAX = 2**31 - 1
TYPE_NAMES = {int: "int", str: "string", bool: "bool"}

CONV = {
    "version": 1,
    "activation": "RELU",
    "in_channels": 3,
    "out_channels": 4,
    "kernel_height": 3,
    "kernel_width": 2,
    "stride_height": 2,
    "stride_width": 1,
    "dilation_height": 1,
    "dilation_width": 2,
    "padding": "SAME",
}
DEPTHWISE = dict(CONV, activation="RELU6", out_channels=6, padding="VALID", depth_multiplier=2)
FULLY_CONNECTED = {
    "version": 1,
    "activation": "NONE",
    "in_features": 300,
    "out_features": 10,
    "keep_num_dims": True,
}
# One valid option set per op: the base of every reject case.
BASE = {
    ttq_format.TTQ_CONV_2D: CONV,
    ttq_format.TTQ_DEPTHWISE_CONV_2D: DEPTHWISE,
    ttq_format.TTQ_FULLY_CONNECTED: FULLY_CONNECTED,
}
SHORT = {
    ttq_format.TTQ_CONV_2D: "conv",
    ttq_format.TTQ_DEPTHWISE_CONV_2D: "depthwise",
    ttq_format.TTQ_FULLY_CONNECTED: "fc",
}


def _bytes(buf):
    return [int(b) for b in bytes(buf)]


def _encode(options):
    return _bytes(flexbuffers.Dumps(options))


def _encode_with(options, int_writer):
    """A FlexBuffer map whose ints are written by `int_writer(builder, value)`."""
    fbb = flexbuffers.Builder()
    with fbb.Map():
        for key, value in options.items():
            fbb.Key(key)
            if isinstance(value, int) and not isinstance(value, bool):
                int_writer(fbb, value)
            else:
                fbb.Add(value)
    return _bytes(fbb.Finish())


# ---- packing -------------------------------------------------------------------------------


def _pack_case(name, trits, note=""):
    trits = np.asarray(trits, np.int8)
    case = {"name": name, "k": int(trits.shape[1]), "trits": trits.tolist()}
    case["codes"] = pack_trits(trits).tolist()
    if note:
        case["note"] = note
    return case


def packing_vectors():
    rng = np.random.default_rng(20171)
    unit = np.eye(5, dtype=np.int8)
    every_byte = np.array([[(b // 3**i) % 3 for i in range(5)] for b in range(243)], np.int8)
    every_byte[every_byte == 2] = -1
    cases = [
        _pack_case("k1_each_trit", [[0], [1], [-1]], "digit 0 = zero, 1 = +, 2 = -"),
        _pack_case("k5_place_values_positive", unit, "byte = d0 + 3 d1 + 9 d2 + 27 d3 + 81 d4"),
        _pack_case("k5_place_values_negative", -unit),
        _pack_case("k5_extremes", [[0] * 5, [1] * 5, [-1] * 5], "242 is the largest byte"),
        _pack_case("k6_one_padding_byte", [[1, -1, 0, 0, 0, 1]]),
        _pack_case("k7_three_padding_trits", [[1, -1, 0, 1, -1, -1, 1]]),
        _pack_case("k10_no_padding_two_rows", rng.integers(-1, 2, (2, 10))),
    ]
    for k in (2, 3, 4, 8, 9, 11, 27):
        cases.append(_pack_case(f"k{k}_random_rows", rng.integers(-1, 2, (3, k))))
    cases.append(_pack_case("k5_every_byte", every_byte, "row b packs to byte b, b = 0..242"))
    return cases


def packing_rejects():
    byte = {"error_class": "code_byte_over_242"}
    pad = {"error_class": "padding_trit_not_zero", "mentions": ["padding trit"]}
    return [
        dict(
            byte, name="byte_243", k=5, codes=[[0], [243]], row=1, byte=0, mentions=["243", "242"]
        ),
        dict(
            byte,
            name="byte_255",
            k=10,
            codes=[[0, 0], [0, 255]],
            row=1,
            byte=1,
            mentions=["255", "242"],
        ),
        dict(pad, name="k3_tap3_positive", k=3, codes=[[27]], row=0, tap=3),
        dict(pad, name="k3_tap4_negative", k=3, codes=[[162]], row=0, tap=4),
        dict(pad, name="k6_tap6_positive", k=6, codes=[[0, 3]], row=0, tap=6),
        dict(pad, name="k9_tap9_second_row", k=9, codes=[[0, 0], [0, 81]], row=1, tap=9),
    ]


def trit_rejects():
    bad = {"error_class": "not_a_trit", "mentions": ["-1, 0"]}
    return [
        dict(bad, name="value_2", trits=[[0, 1, 2]], row=0, tap=2),
        dict(bad, name="value_minus_2", trits=[[0, 0, 0], [1, -2, 0]], row=1, tap=1),
    ]


# ---- options -------------------------------------------------------------------------------


def option_vectors():
    fc_6x3 = dict(FULLY_CONNECTED, in_features=6, out_features=3, keep_num_dims=False)
    conv_1x1 = dict(
        CONV,
        activation="NONE",
        in_channels=1,
        out_channels=1,
        kernel_height=1,
        kernel_width=1,
        stride_height=1,
        stride_width=1,
        dilation_width=1,
        padding="VALID",
    )
    fc_max = dict(FULLY_CONNECTED, in_features=INT_MAX, out_features=1)

    def canonical(name, op, options, note=""):
        case = {"name": name, "op": op, "options": options, "canonical": True}
        case["flexbuffer"] = _encode(options)
        if note:
            case["note"] = note
        return case

    def other(name, op, options, flexbuffer, note):
        return {
            "name": name,
            "op": op,
            "options": options,
            "canonical": False,
            "flexbuffer": flexbuffer,
            "note": note,
        }

    fc, conv, dw = (
        ttq_format.TTQ_FULLY_CONNECTED,
        ttq_format.TTQ_CONV_2D,
        ttq_format.TTQ_DEPTHWISE_CONV_2D,
    )
    extra = dict(CONV, comment="written by a newer tool")
    return [
        canonical("conv_relu_same", conv, CONV),
        canonical("conv_1x1_valid_none", conv, conv_1x1),
        canonical("depthwise_relu6_valid", dw, DEPTHWISE),
        canonical("fc_none_keep_num_dims", fc, FULLY_CONNECTED),
        canonical("fc_6x3", fc, fc_6x3),
        canonical("fc_in_features_int32_max", fc, fc_max, "the largest accepted int"),
        other(
            "fc_uint_ints",
            fc,
            FULLY_CONNECTED,
            _encode_with(FULLY_CONNECTED, lambda b, v: b.UInt(v)),
            "ints stored as FlexBuffer UInt",
        ),
        other(
            "fc_indirect_ints",
            fc,
            FULLY_CONNECTED,
            _encode_with(FULLY_CONNECTED, lambda b, v: b.IndirectInt(v)),
            "ints stored as FlexBuffer IndirectInt",
        ),
        other(
            "conv_8_byte_ints",
            conv,
            CONV,
            _encode_with(CONV, lambda b, v: b.Int(v, 8)),
            "ints stored 8 bytes wide",
        ),
        other(
            "conv_unknown_key_ignored",
            conv,
            CONV,
            _encode(extra),
            "readers ignore keys they do not know",
        ),
    ]


def _reject(name, op, flexbuffer, error_class, mentions, note=""):
    case = {
        "name": name,
        "op": op,
        "flexbuffer": flexbuffer,
        "error_class": error_class,
        "mentions": mentions,
    }
    if note:
        case["note"] = note
    return case


def _with(options, **changes):
    out = dict(options)
    out.update(changes)
    return out


def _without(options, key):
    return {k: v for k, v in options.items() if k != key}


def option_rejects():
    cases = []
    wrong_value = {int: "1", str: 1, bool: 1}
    for op, keys in ttq_format.OPTION_KEYS.items():
        base, short = BASE[op], SHORT[op]
        for key, typ in keys.items():
            cases.append(
                _reject(
                    f"{short}_missing_{key}",
                    op,
                    _encode(_without(base, key)),
                    "missing_key",
                    [f"'{key}'", "missing"],
                )
            )
        for key, typ in keys.items():
            bad = wrong_value[typ]
            cases.append(
                _reject(
                    f"{short}_{key}_is_{TYPE_NAMES[type(bad)]}",
                    op,
                    _encode(_with(base, **{key: bad})),
                    "wrong_type",
                    [f"'{key}'", "must be"],
                )
            )
        for key in keys:
            if key in ttq_format.POSITIVE_KEYS:
                cases.append(
                    _reject(
                        f"{short}_{key}_zero",
                        op,
                        _encode(_with(base, **{key: 0})),
                        "out_of_range",
                        [key],
                    )
                )
    fc, conv, dw = (
        ttq_format.TTQ_FULLY_CONNECTED,
        ttq_format.TTQ_CONV_2D,
        ttq_format.TTQ_DEPTHWISE_CONV_2D,
    )
    fc_base = FULLY_CONNECTED
    cases += [
        _reject(
            "fc_in_features_is_float",
            fc,
            _encode(_with(fc_base, in_features=300.0)),
            "wrong_type",
            ["'in_features'", "must be"],
        ),
        _reject(
            "fc_in_features_is_bool",
            fc,
            _encode(_with(fc_base, in_features=True)),
            "wrong_type",
            ["'in_features'", "must be"],
        ),
        _reject(
            "fc_version_2",
            fc,
            _encode(_with(fc_base, version=2)),
            "unsupported_version",
            ["format version 2"],
        ),
        _reject(
            "fc_version_0",
            fc,
            _encode(_with(fc_base, version=0)),
            "unsupported_version",
            ["format version 0"],
        ),
        _reject(
            "conv_version_minus_1",
            conv,
            _encode(_with(CONV, version=-1)),
            "unsupported_version",
            ["format version -1"],
        ),
        _reject(
            "fc_activation_tanh",
            fc,
            _encode(_with(fc_base, activation="TANH")),
            "bad_enum",
            ["activation", "'TANH'"],
        ),
        _reject(
            "conv_activation_lowercase",
            conv,
            _encode(_with(CONV, activation="relu")),
            "bad_enum",
            ["activation", "'relu'"],
            "names are case-sensitive",
        ),
        _reject(
            "conv_padding_full",
            conv,
            _encode(_with(CONV, padding="FULL")),
            "bad_enum",
            ["padding", "'FULL'"],
        ),
        _reject(
            "depthwise_padding_lowercase",
            dw,
            _encode(_with(DEPTHWISE, padding="same")),
            "bad_enum",
            ["padding", "'same'"],
        ),
        _reject(
            "conv_stride_height_minus_1",
            conv,
            _encode(_with(CONV, stride_height=-1)),
            "out_of_range",
            ["stride_height", "-1"],
        ),
        _reject(
            "fc_in_features_int32_max_plus_1",
            fc,
            _encode(_with(fc_base, in_features=INT_MAX + 1)),
            "out_of_range",
            ["in_features", str(INT_MAX + 1)],
            "ints are int32, like TFLite's dims",
        ),
        _reject(
            "fc_in_features_2_pow_40",
            fc,
            _encode(_with(fc_base, in_features=2**40)),
            "out_of_range",
            ["in_features"],
        ),
        _reject(
            "depthwise_out_channels_not_in_times_multiplier",
            dw,
            _encode(_with(DEPTHWISE, out_channels=5)),
            "depthwise_channels",
            ["out_channels (5) must equal in_channels"],
        ),
    ]
    # Not option values but bytes: no map, a broken map, duplicate keys.
    good = _encode(CONV)
    duplicate = flexbuffers.Builder()
    with duplicate.Map():
        for key, value in FULLY_CONNECTED.items():
            duplicate.Key(key)
            duplicate.Add(value)
        duplicate.Key("in_features")
        duplicate.Int(301)
    # Key 0's offset made 1: it points at the keys vector's size byte, and no zero follows
    # before the end of the buffer (flatbuffers 2.0.8's verifier alone lets this through).
    keys = flexbuffers.GetRoot(bytearray(bytes(good))).AsMap.Keys
    unterminated = list(good)
    unterminated[keys._buf._offset] = 1  # the Buf offset of the keys vector's first element
    cases += [
        _reject("empty", conv, [], "missing_options", ["custom options are missing"]),
        _reject(
            "key_not_nul_terminated", conv, unterminated, "malformed_flexbuffer", ["FlexBuffer"]
        ),
        _reject("root_is_int", conv, _encode(1), "not_a_map", ["FlexBuffer", "map"]),
        _reject("root_is_vector", conv, _encode([1, 2, 3]), "not_a_map", ["FlexBuffer", "map"]),
        _reject("root_is_string", conv, _encode("TTQ_CONV_2D"), "not_a_map", ["FlexBuffer", "map"]),
        _reject("two_bytes", conv, [1, 1], "malformed_flexbuffer", ["FlexBuffer"]),
        _reject("truncated_by_5", conv, good[:-5], "malformed_flexbuffer", ["FlexBuffer"]),
        _reject(
            "truncated_half", conv, good[: len(good) // 2], "malformed_flexbuffer", ["FlexBuffer"]
        ),
        _reject("root_byte_width_3", conv, good[:-1] + [3], "malformed_flexbuffer", ["FlexBuffer"]),
        _reject(
            "root_offset_past_start",
            conv,
            good[:-3] + [255, 36, 1],
            "malformed_flexbuffer",
            ["FlexBuffer"],
        ),
        _reject(
            "fc_duplicate_key",
            fc,
            _bytes(duplicate.Finish()),
            "duplicate_key",
            ["FlexBuffer", "in_features"],
            "a map holds each key once",
        ),
    ]
    return cases


def build():
    ops = {}
    for op, keys in ttq_format.OPTION_KEYS.items():
        ops[op] = {"keys": {key: TYPE_NAMES[typ] for key, typ in keys.items()}}
    return {
        "about": (
            "Format v1 of ttq_keras's packed ternary TFLite ops (docs/format.md) as test "
            "vectors that every reader and writer must agree with. Generated by "
            "scripts/make_format_vectors.py: do not edit by hand."
        ),
        "format_version": ttq_format.FORMAT_VERSION,
        "ops": ops,
        "activations": list(ttq_format.ACTIVATIONS),
        "paddings": list(ttq_format.PADDINGS),
        "positive_keys": list(ttq_format.POSITIVE_KEYS),
        "int_range": [1, INT_MAX],
        "trits_per_byte": ttq_format.TRITS_PER_BYTE,
        "max_code_byte": ttq_format.MAX_CODE_BYTE,
        "packing": {
            "vectors": packing_vectors(),
            "reject_codes": packing_rejects(),
            "reject_trits": trit_rejects(),
        },
        "options": {"vectors": option_vectors(), "reject": option_rejects()},
    }


def dumps(data):
    """JSON with one line per case, so a diff shows which vector changed."""

    def block(value, indent):
        pad = " " * indent
        if isinstance(value, dict) and any(isinstance(v, (dict, list)) for v in value.values()):
            if indent >= 4 and "name" in value:
                return json.dumps(value)
            items = [f"{pad}  {json.dumps(k)}: {block(v, indent + 2)}" for k, v in value.items()]
            return "{\n" + ",\n".join(items) + "\n" + pad + "}"
        if isinstance(value, list) and value and isinstance(value[0], dict):
            items = [f"{pad}  {block(v, indent + 2)}" for v in value]
            return "[\n" + ",\n".join(items) + "\n" + pad + "]"
        return json.dumps(value)

    return block(data, 0) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--check",
        action="store_true",
        help="exit 1 if the committed file differs from what this script writes",
    )
    parser.add_argument("--output", default=OUTPUT)
    args = parser.parse_args(argv)
    text = dumps(build())
    if args.check:
        try:
            with open(args.output, encoding="utf-8") as f:
                current = f.read()
        except FileNotFoundError:
            current = None
        if current != text:
            print(
                f"{args.output} is out of date: run python scripts/make_format_vectors.py",
                file=sys.stderr,
            )
            return 1
        print(f"{args.output} is up to date")
        return 0
    os.makedirs(os.path.dirname(args.output), exist_ok=True)
    with open(args.output, "w", encoding="utf-8") as f:
        f.write(text)
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
