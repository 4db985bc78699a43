"""Reader for dlib's binary serialization format (``dlib/serialize.h``), as used by ``.dat`` network files.

Format facts used here:

* integers: one header byte whose low nibble is the number of little-endian payload bytes that follow and
  whose bit 7 marks a negative value;
* strings: an integer length followed by the bytes;
* floats (scalars): an integer mantissa followed by an integer exponent, value = mantissa * 2**exponent;
* tensors: integer version (2), then num_samples, k, nr, nc as integers, then the values as raw
  little-endian IEEE float32.

A network file holds its layers from the loss layer's header down to the input and then each layer's
details from the input side up; :func:`read_layers` finds each layer by its serialized type name
(``con_4``, ``affine_``, ``fc_2``, ...) and decodes the fields PerFace needs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np

from perface.errors import WeightsError


class DlibReader:
    """Sequential reader over the bytes of a dlib-serialized object."""

    def __init__(self, data: bytes, pos: int = 0, name: str = "<bytes>"):
        self.data = data
        self.pos = pos
        self.name = name

    def _fail(self, what: str) -> WeightsError:
        return WeightsError(f"{self.name}: corrupt dlib file ({what} at byte {self.pos}); reinstall the model file")

    def read_int(self) -> int:
        if self.pos >= len(self.data):
            raise self._fail("unexpected end of file")
        head = self.data[self.pos]
        size = head & 0x0F
        if size > 8:
            raise self._fail(f"integer of {size} bytes")
        start = self.pos + 1
        if start + size > len(self.data):
            raise self._fail("truncated integer")
        value = int.from_bytes(self.data[start : start + size], "little")
        self.pos = start + size
        return -value if head & 0x80 else value

    def read_str(self) -> str:
        n = self.read_int()
        if n < 0 or self.pos + n > len(self.data):
            raise self._fail("bad string length")
        s = self.data[self.pos : self.pos + n].decode("latin-1")
        self.pos += n
        return s

    def read_float(self) -> float:
        mantissa = self.read_int()
        exponent = self.read_int()
        return float(np.ldexp(float(mantissa), exponent))

    def read_tensor(self) -> np.ndarray:
        version = self.read_int()
        if version != 2:
            raise self._fail(f"tensor version {version}, expected 2")
        shape = tuple(self.read_int() for _ in range(4))
        count = int(np.prod(shape))
        end = self.pos + 4 * count
        if count < 0 or end > len(self.data):
            raise self._fail("truncated tensor data")
        values = np.frombuffer(self.data, dtype="<f4", count=count, offset=self.pos).astype(np.float32)
        self.pos = end
        return values.reshape(shape)


@dataclass
class DlibLayer:
    """One decoded layer: its dlib type name, tensors and integer/float attributes."""

    kind: str
    offset: int
    params: np.ndarray | None = None
    attrs: dict[str, float] = field(default_factory=dict)


# Layer type names PerFace decodes; others (relu_, add_prev_, tag, skip) carry no parameters.
_LAYER_NAMES = ("loss_metric_2", "input_rgb_image_sized", "con_4", "con_5", "affine_", "max_pool_2", "avg_pool_2", "fc_2")
_NAME_RE = re.compile(
    rb"\x01([\x04-\x20])(" + b"|".join(re.escape(n.encode()) for n in _LAYER_NAMES) + rb")"
)


def _decode(reader: DlibReader, kind: str) -> DlibLayer:
    layer = DlibLayer(kind=kind, offset=reader.pos)
    if kind.startswith("con_"):
        layer.params = reader.read_tensor()
        for key in ("num_filters", "nr", "nc", "stride_y", "stride_x", "padding_y", "padding_x"):
            layer.attrs[key] = reader.read_int()
    elif kind == "affine_":
        layer.params = reader.read_tensor()
    elif kind in ("max_pool_2", "avg_pool_2"):
        for key in ("nr", "nc", "stride_y", "stride_x", "padding_y", "padding_x"):
            layer.attrs[key] = reader.read_int()
    elif kind == "fc_2":
        layer.attrs["num_outputs"] = reader.read_int()
        layer.attrs["num_inputs"] = reader.read_int()
        layer.params = reader.read_tensor()
    elif kind == "loss_metric_2":
        layer.attrs["margin"] = reader.read_float()
        layer.attrs["distance_threshold"] = reader.read_float()
    return layer


def read_layers(data: bytes, name: str = "<bytes>") -> list[DlibLayer]:
    """Decode the parameterised layers of a dlib network file, in file order (input side first).

    Tensor payloads are skipped when searching for the next layer name, so float data cannot be mistaken
    for a layer header.
    """
    layers: list[DlibLayer] = []
    pos = 0
    while True:
        match = _NAME_RE.search(data, pos)
        if match is None:
            break
        if match.group(1)[0] != len(match.group(2)):  # the length byte must equal the name length
            pos = match.start() + 1
            continue
        reader = DlibReader(data, match.end(), name)
        layers.append(_decode(reader, match.group(2).decode()))
        pos = reader.pos
    return layers
