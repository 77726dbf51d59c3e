#!/usr/bin/env python3
"""Writes the seed corpus of the fuzz targets (fuzz/targets.h) into fuzz/corpus/<target>/: small
valid files and one file for each kind of bad input the readers must refuse. The files are kept in
the repository; run this again after changing it (it rewrites only the seeds it names, so inputs
added by hand, such as crash reproducers, stay)."""
import gzip
import json
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))


def put(target, name, data):
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def gz(data):
    return gzip.compress(data, mtime=0)


# ---- IDX: [num_classes - 1][flags][u32 LE: labels length][labels file][images file] ----


def idx_images(count, rows, cols, pixels, magic=0x00000803):
    return struct.pack(">IIII", magic, count, rows, cols) + bytes(pixels)


def idx_labels(labels, magic=0x00000801, count=None):
    return struct.pack(">II", magic, len(labels) if count is None else count) + bytes(labels)


def idx_input(images, labels, num_classes=10, flags=0):
    return bytes([num_classes - 1, flags]) + struct.pack("<I", len(labels)) + labels + images


PIXELS = [15 * i for i in range(18)]  # 3 images of 2x3
IMAGES = idx_images(3, 2, 3, PIXELS)
LABELS = idx_labels([7, 0, 9])

put("idx", "valid", idx_input(IMAGES, LABELS))
put("idx", "valid_gzip", idx_input(gz(IMAGES), gz(LABELS)))
put("idx", "valid_gz_suffix", idx_input(gz(IMAGES), LABELS, flags=3))
put("idx", "valid_two_classes", idx_input(IMAGES, idx_labels([1, 0, 1]), num_classes=2))
put("idx", "valid_empty", idx_input(idx_images(0, 28, 28, []), idx_labels([])))
put("idx", "truncated_header", idx_input(IMAGES[:10], LABELS))
put("idx", "truncated_body", idx_input(IMAGES[:-5], LABELS))
put("idx", "truncated_labels", idx_input(IMAGES, LABELS[:-1]))
put("idx", "truncated_gzip", idx_input(gz(IMAGES)[:-12], LABELS))
put("idx", "wrong_magic", idx_input(idx_images(3, 2, 3, PIXELS, magic=0x00000801), LABELS))
put("idx", "wrong_element_type", idx_input(idx_images(3, 2, 3, PIXELS, magic=0x00000D03), LABELS))
put("idx", "swapped_files", idx_input(LABELS, IMAGES))
put("idx", "huge_claim", idx_input(idx_images(60000000, 28, 28, PIXELS), LABELS))
put("idx", "huge_claim_gzip", idx_input(gz(idx_images(60000000, 28, 28, PIXELS)), LABELS))
put("idx", "overflowing_dims", idx_input(idx_images(0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF, []), LABELS))
put("idx", "zero_rows", idx_input(idx_images(3, 0, 3, []), LABELS))
put("idx", "label_out_of_range", idx_input(IMAGES, idx_labels([7, 10, 9])))
put("idx", "count_mismatch", idx_input(IMAGES, idx_labels([7, 0])))
put("idx", "labels_claim_more", idx_input(IMAGES, idx_labels([7, 0, 9], count=1 << 30)))
put("idx", "trailing_bytes", idx_input(IMAGES + b"\x00\x01", LABELS))
put("idx", "empty_files", idx_input(b"", b""))

# ---- CIFAR-10: the bytes are test_batch.bin ----


def cifar_record(label, seed):
    return bytes([label]) + bytes((seed + 7 * i) % 256 for i in range(3072))


put("cifar10", "valid_one", cifar_record(3, 0))
put("cifar10", "valid_two", cifar_record(0, 1) + cifar_record(9, 2))
put("cifar10", "partial_record", cifar_record(3, 0) + cifar_record(4, 1)[:100])
put("cifar10", "label_ten", cifar_record(10, 0))
put("cifar10", "empty", b"")
put("cifar10", "one_byte", b"\x05")
put("cifar10", "gzip", gz(cifar_record(3, 0)))

# ---- safetensors: the bytes are the file ----


def safetensors(tensors, metadata=None, header_override=None, pad=True, data_override=None):
    """tensors: list of (name, dtype, shape, values)."""
    header, data = {}, b""
    if metadata is not None:
        header["__metadata__"] = metadata
    for name, dtype, shape, values in tensors:
        raw = struct.pack("<%d%s" % (len(values), "d" if dtype == "F64" else "f"), *values)
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
    text = json.dumps(header_override if header_override is not None else header,
                      separators=(",", ":")).encode()
    if pad:
        text += b" " * ((8 - len(text) % 8) % 8)
    return struct.pack("<Q", len(text)) + text + (data if data_override is None else data_override)


NET = [  # a TwoLayerNet(2, 3, 2): what fuzz::safetensors loads into
    ("W1", "F32", [2, 3], [0.5, -1, 2, 0.25, 0, -3]),
    ("b1", "F32", [3], [0.1, 0.2, 0.3]),
    ("W2", "F32", [3, 2], [1, 2, 3, 4, 5, 6]),
    ("b2", "F32", [2], [-1, 1]),
]
VALID = safetensors(NET, {"format": "two_layer_net"})
put("safetensors", "valid_net", VALID)
put("safetensors", "valid_net_f64", safetensors([(n, "F64", s, v) for n, _, s, v in NET]))
put("safetensors", "valid_empty", safetensors([]))
put("safetensors", "valid_scalar_and_empty",
    safetensors([("s", "F64", [], [2.5]), ("e", "F32", [0, 4], [])]))
put("safetensors", "wrong_shape_for_net",
    safetensors([("W1", "F32", [3, 2], [0] * 6)] + NET[1:]))
put("safetensors", "missing_parameter", safetensors(NET[:3]))
put("safetensors", "truncated_data", VALID[:-3])
put("safetensors", "truncated_header", VALID[:20])
put("safetensors", "short", VALID[:5])
put("safetensors", "header_length_lies", struct.pack("<Q", 1 << 40) + VALID[8:])
put("safetensors", "header_not_json", struct.pack("<Q", 8) + b"{not js}")
put("safetensors", "header_not_object", struct.pack("<Q", 8) + b"[1,2,3] ")
put("safetensors", "trailing_bytes", VALID + b"\0\0\0\0")
put("safetensors", "bad_dtype",
    safetensors([], header_override={"x": {"dtype": "I8", "shape": [1], "data_offsets": [0, 1]}},
                data_override=b"\1"))
put("safetensors", "overlap",
    safetensors([], header_override={"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]},
                                     "b": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}},
                data_override=b"\0" * 4))
put("safetensors", "gap",
    safetensors([], header_override={"a": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}},
                data_override=b"\0" * 8))
put("safetensors", "offsets_beyond_file",
    safetensors([], header_override={"a": {"dtype": "F32", "shape": [1 << 20],
                                           "data_offsets": [0, 4 << 20]}},
                data_override=b"\0" * 4))
put("safetensors", "overflowing_shape",
    safetensors([], header_override={"a": {"dtype": "F64", "shape": [1 << 62, 1 << 62],
                                           "data_offsets": [0, 0]}}))
put("safetensors", "negative_shape",
    safetensors([], header_override={"a": {"dtype": "F32", "shape": [-1],
                                           "data_offsets": [0, 0]}}))
put("safetensors", "bad_metadata", safetensors([], metadata={"epochs": 3}))
put("safetensors", "empty_name",
    safetensors([], header_override={"": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}},
                data_override=b"\0" * 4))

# ---- cli: the arguments after the program's name, separated by NUL bytes ----


def args(*a):
    return "\0".join(a).encode()


put("cli", "none", b"")
put("cli", "help", args("--help"))
put("cli", "spiral", args("--dataset", "spiral", "--epochs", "3", "--hidden", "20", "--quiet"))
put("cli", "all_options",
    args("--dataset", "mnist", "--data-dir", "/tmp", "--hidden", "100", "--epochs", "2",
         "--batch-size", "64", "--optimizer", "adam", "--lr", "1e-3", "--lr-decay", "0.9",
         "--schedule", "cosine", "--momentum", "0.5", "--reg", "1e-4", "--seed", "42",
         "--threads", "2", "--val-size", "100", "--train-limit", "1000", "--test-limit", "500",
         "--out", "runs/x", "--quiet"))
put("cli", "equals_form", args("--lr=0.01", "--momentum=0", "--reg=0"))
put("cli", "negative_epochs", args("--epochs", "-3"))
put("cli", "unknown_dataset", args("--dataset", "imagenet"))
put("cli", "unknown_flag", args("--no-such-flag"))
put("cli", "not_a_number", args("--lr", "abc"))
put("cli", "unknown_optimizer", args("--optimizer", "rmsprop"))
put("cli", "missing_value", args("--hidden"))
put("cli", "missing_file", args("--load", "/nonexistent/model.safetensors"))
put("cli", "extra_positional", args("spiral"))
put("cli", "repeated", args("--seed", "1", "--seed", "2"))
