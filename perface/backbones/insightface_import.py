"""Import ArcFace iResNet weights from insightface ONNX files and arcface_torch ``.pth`` state dicts.

insightface's recognition ONNX files (``w600k_r50.onnx`` in ``buffalo_l``, ``glintr100.onnx`` in
``antelopev2``) were exported from arcface_torch by ``torch.onnx.export`` in eval mode with constant
folding. The export fuses every BatchNorm that follows a conv into that conv's weight and bias, and
keeps the others (block ``bn1``, the final ``bn2`` and the ``features`` BatchNorm1d) as
``BatchNormalization`` nodes. Initializer names carry no meaning, so :func:`load_insightface_onnx` walks
the graph by data flow, recognises each iResNet part, checks every shape and puts the weights back into
an :class:`~perface.backbones.iresnet.IResNet`. A fused conv keeps its weight and its bias goes to the BN
that follows it in the module, set to identity-plus-bias; the result equals the ONNX model's output.
"""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from perface.backbones.iresnet import IRESNET_LAYERS, STAGE_PLANES, IBasicBlock, IResNet, build_iresnet, iresnet_layers
from perface.errors import ModelLoadError, WeightsError

#: Nodes that pass their first input through unchanged at inference; removed before the walk.
_PASSTHROUGH_OPS = frozenset({"Identity", "Dropout"})
#: Element-wise ops that old (mxnet-converted) insightface models apply to the input pixels.
_INPUT_NORMALISATION_OPS = frozenset({"Sub", "Mul", "Div", "Add"})
_CHIP_SHAPE = (3, 112, 112)


# --------------------------------------------------------------------------------------------- ONNX


@dataclass
class _Node:
    name: str
    op: str
    inputs: list[str]
    outputs: list[str]
    attrs: dict


@dataclass
class _Conv:
    node: str
    weight: np.ndarray
    bias: np.ndarray | None
    strides: tuple[int, ...]
    pads: tuple[int, ...]
    dilations: tuple[int, ...]
    group: int


@dataclass
class _BatchNorm:
    node: str
    scale: np.ndarray
    bias: np.ndarray
    mean: np.ndarray
    var: np.ndarray
    eps: float


@dataclass
class _PRelu:
    node: str
    slope: np.ndarray


@dataclass
class _Block:
    bn1: _BatchNorm
    conv1: _Conv
    bn2: _BatchNorm | None  # None: fused into conv1
    prelu: _PRelu
    conv2: _Conv
    bn3: _BatchNorm | None  # None: fused into conv2
    downsample: tuple[_Conv, _BatchNorm | None] | None  # None: identity shortcut


@dataclass
class _Linear:
    node: str
    weight: np.ndarray  # (out_features, in_features)
    bias: np.ndarray | None


@dataclass
class _ParsedIResNet:
    stem_conv: _Conv | None = None
    stem_bn: _BatchNorm | None = None
    stem_prelu: _PRelu | None = None
    blocks: list[_Block] = field(default_factory=list)
    bn2: _BatchNorm | None = None
    fc: _Linear | None = None
    features: _BatchNorm | None = None


class _OnnxGraph:
    """Data-flow view of an ONNX graph with passthrough nodes removed and constants resolved."""

    def __init__(self, model, path: Path) -> None:
        from onnx import numpy_helper
        from onnx.helper import get_attribute_value

        self.path = path
        graph = model.graph
        self.tensors: dict[str, np.ndarray] = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
        alias: dict[str, str] = {}
        self.nodes: list[_Node] = []
        for proto in graph.node:
            inputs = [alias.get(name, name) for name in proto.input]
            attrs = {a.name: get_attribute_value(a) for a in proto.attribute}
            if proto.op_type == "Constant" and "value" in attrs:
                self.tensors[proto.output[0]] = numpy_helper.to_array(attrs["value"])
            elif proto.op_type == "Unsqueeze" and all(name in self.tensors for name in inputs):
                # Exports without constant folding reshape PReLU slopes (C,) -> (C, 1, 1) this way.
                axes = attrs["axes"] if "axes" in attrs else self.tensors[inputs[1]].tolist()  # opset < 13 / >= 13
                self.tensors[proto.output[0]] = np.expand_dims(self.tensors[inputs[0]], tuple(axes))
            elif proto.op_type in _PASSTHROUGH_OPS and inputs:
                alias[proto.output[0]] = inputs[0]
            else:
                self.nodes.append(_Node(proto.name or proto.op_type, proto.op_type, inputs, list(proto.output), attrs))
        self.outputs = {alias.get(o.name, o.name) for o in graph.output}
        self.inputs = [i for i in graph.input if i.name not in self.tensors]
        self._consumers: dict[str, list[_Node]] = defaultdict(list)
        self._producer: dict[str, _Node] = {}
        for node in self.nodes:
            for name in node.inputs:
                if name:
                    self._consumers[name].append(node)
            for name in node.outputs:
                self._producer[name] = node

    def structure_error(self, message: str) -> ModelLoadError:
        return ModelLoadError(
            f"{self.path}: not an insightface iResNet recognition model ({message}); give an arcface_torch "
            "iResNet exported to ONNX, such as w600k_r50.onnx from buffalo_l"
        )

    def consumers(self, name: str) -> list[_Node]:
        return self._consumers.get(name, [])

    def producer(self, name: str) -> _Node | None:
        return self._producer.get(name)

    def only_consumer(self, name: str, ops: str | tuple[str, ...], what: str) -> _Node:
        """The single node reading ``name``; it must be one of ``ops``."""
        ops = (ops,) if isinstance(ops, str) else ops
        found = self.consumers(name)
        if len(found) != 1 or found[0].op not in ops:
            got = ", ".join(n.op for n in found) or "nothing"
            raise self.structure_error(f"expected {what} ({'/'.join(ops)}) after {name!r}, found {got}")
        return found[0]

    def const(self, node: _Node, index: int, what: str) -> np.ndarray:
        name = node.inputs[index] if index < len(node.inputs) else ""
        if name not in self.tensors:
            raise self.structure_error(f"{what} of node {node.name!r} is not a constant")
        return self.tensors[name]

    def conv(self, node: _Node, what: str) -> _Conv:
        weight = self.const(node, 1, f"{what} weight")
        if weight.ndim != 4:
            raise self.structure_error(f"{what} ({node.name!r}) has a {weight.ndim}-d weight, expected 4-d")
        bias = self.const(node, 2, f"{what} bias") if len(node.inputs) > 2 and node.inputs[2] else None
        spatial = weight.ndim - 2
        return _Conv(
            node=node.name,
            weight=weight,
            bias=bias,
            strides=tuple(node.attrs.get("strides", [1] * spatial)),
            pads=tuple(node.attrs.get("pads", [0] * 2 * spatial)),
            dilations=tuple(node.attrs.get("dilations", [1] * spatial)),
            group=int(node.attrs.get("group", 1)),
        )

    def batch_norm(self, node: _Node, what: str) -> _BatchNorm:
        return _BatchNorm(
            node=node.name,
            scale=self.const(node, 1, f"{what} scale"),
            bias=self.const(node, 2, f"{what} bias"),
            mean=self.const(node, 3, f"{what} mean"),
            var=self.const(node, 4, f"{what} variance"),
            eps=float(node.attrs.get("epsilon", 1e-5)),
        )

    def conv_maybe_bn(self, node: _Node, what: str) -> tuple[_Conv, _BatchNorm | None, str]:
        """A conv and the BatchNormalization after it if it was not fused; returns the output name."""
        conv = self.conv(node, what)
        after = self.consumers(node.outputs[0])
        if len(after) == 1 and after[0].op == "BatchNormalization":
            return conv, self.batch_norm(after[0], f"{what} BN"), after[0].outputs[0]
        return conv, None, node.outputs[0]

    def prelu(self, node: _Node, what: str) -> _PRelu:
        return _PRelu(node=node.name, slope=self.const(node, 1, f"{what} slope"))


def _parse_onnx(graph: _OnnxGraph) -> _ParsedIResNet:
    """Recognise stem, blocks and head by data flow; shapes are checked later, on assignment."""
    if len(graph.inputs) != 1:
        raise graph.structure_error(f"expected one input, found {len(graph.inputs)}")
    graph_input = graph.inputs[0]
    dims = [d.dim_value if d.HasField("dim_value") else None for d in graph_input.type.tensor_type.shape.dim]
    if len(dims) != 4 or any(d is not None and d != want for d, want in zip(dims[1:], _CHIP_SHAPE)):
        raise graph.structure_error(f"input {graph_input.name!r} has shape {dims}, expected (N, 3, 112, 112)")
    first = graph.consumers(graph_input.name)
    if any(node.op in _INPUT_NORMALISATION_OPS for node in first):
        raise ModelLoadError(
            f"{graph.path}: the graph normalises its input itself ({'/'.join(n.op for n in first)} nodes on "
            f"{graph_input.name!r}), as older mxnet-converted insightface models do; that variant is not "
            "supported. Use an insightface model exported from arcface_torch (buffalo_l's w600k_r50.onnx, "
            "antelopev2's glintr100.onnx) or an arcface_torch .pth"
        )

    parsed = _ParsedIResNet()
    stem = graph.only_consumer(graph_input.name, "Conv", "the stem conv")
    parsed.stem_conv, parsed.stem_bn, x = graph.conv_maybe_bn(stem, "stem conv")
    if parsed.stem_conv.weight.shape != (STAGE_PLANES[0], 3, 3, 3):
        raise graph.structure_error(
            f"stem conv {stem.name!r} has weight shape {parsed.stem_conv.weight.shape}, expected (64, 3, 3, 3)"
        )
    prelu = graph.only_consumer(x, "PRelu", "the stem PReLU")
    parsed.stem_prelu = graph.prelu(prelu, "stem PReLU")
    x = prelu.outputs[0]

    while True:
        bn_nodes = [n for n in graph.consumers(x) if n.op == "BatchNormalization"]
        if len(bn_nodes) != 1:
            raise graph.structure_error(f"expected one BatchNormalization reading {x!r}, found {len(bn_nodes)}")
        bn = bn_nodes[0]
        after_bn = graph.consumers(bn.outputs[0])
        if len(after_bn) == 1 and after_bn[0].op == "Conv":
            block, x = _parse_block(graph, x, bn, after_bn[0], len(parsed.blocks))
            parsed.blocks.append(block)
        elif len(after_bn) == 1 and after_bn[0].op in ("Flatten", "Reshape"):
            if len(graph.consumers(x)) != 1:
                raise graph.structure_error(f"the last block output {x!r} feeds more than the final BatchNorm")
            parsed.bn2 = graph.batch_norm(bn, "final bn2")
            _parse_head(graph, after_bn[0], parsed)
            return parsed
        else:
            got = ", ".join(n.op for n in after_bn) or "nothing"
            raise graph.structure_error(f"BatchNormalization {bn.name!r} is followed by {got}")


def _parse_block(graph: _OnnxGraph, x: str, bn1: _Node, conv1: _Node, index: int) -> tuple[_Block, str]:
    what = f"block {index}"
    conv1_params, bn2, out = graph.conv_maybe_bn(conv1, f"{what} conv1")
    prelu = graph.only_consumer(out, "PRelu", f"the {what} PReLU")
    conv2 = graph.only_consumer(prelu.outputs[0], "Conv", f"the {what} conv2")
    conv2_params, bn3, out = graph.conv_maybe_bn(conv2, f"{what} conv2")
    add = graph.only_consumer(out, "Add", f"the {what} residual Add")
    if len(add.inputs) != 2 or out not in add.inputs:
        raise graph.structure_error(f"residual Add {add.name!r} of {what} does not read the residual branch")
    shortcut = add.inputs[1] if add.inputs[0] == out else add.inputs[0]
    downsample = None
    if shortcut != x:
        node = graph.producer(shortcut)
        ds_bn = None
        if node is not None and node.op == "BatchNormalization":
            ds_bn = graph.batch_norm(node, f"{what} downsample BN")
            node = graph.producer(node.inputs[0])
        if node is None or node.op != "Conv" or node.inputs[0] != x:
            raise graph.structure_error(f"the shortcut of {what} is neither the block input nor a conv of it")
        downsample = (graph.conv(node, f"{what} downsample conv"), ds_bn)
    block = _Block(
        bn1=graph.batch_norm(bn1, f"{what} bn1"),
        conv1=conv1_params,
        bn2=bn2,
        prelu=graph.prelu(prelu, f"{what} PReLU"),
        conv2=conv2_params,
        bn3=bn3,
        downsample=downsample,
    )
    return block, add.outputs[0]


def _parse_head(graph: _OnnxGraph, flatten: _Node, parsed: _ParsedIResNet) -> None:
    if flatten.op == "Flatten" and int(flatten.attrs.get("axis", 1)) != 1:
        raise graph.structure_error(f"Flatten {flatten.name!r} uses axis {flatten.attrs['axis']}, expected 1")
    fc = graph.only_consumer(flatten.outputs[0], ("Gemm", "MatMul"), "the fc layer")
    if fc.op == "Gemm":
        if int(fc.attrs.get("transA", 0)) != 0:
            raise graph.structure_error(f"fc Gemm {fc.name!r} transposes its input")
        weight = graph.const(fc, 1, "fc weight")
        if int(fc.attrs.get("transB", 0)) == 0:
            weight = weight.T
        weight = weight * float(fc.attrs.get("alpha", 1.0))
        bias = None
        if len(fc.inputs) > 2 and fc.inputs[2]:
            bias = graph.const(fc, 2, "fc bias") * float(fc.attrs.get("beta", 1.0))
        out = fc.outputs[0]
    else:
        weight = graph.const(fc, 1, "fc weight").T
        add = graph.only_consumer(fc.outputs[0], "Add", "the fc bias Add")
        other = add.inputs[1] if add.inputs[0] == fc.outputs[0] else add.inputs[0]
        if other not in graph.tensors:
            raise graph.structure_error(f"fc bias Add {add.name!r} does not add a constant")
        bias = graph.tensors[other]
        out = add.outputs[0]
    parsed.fc = _Linear(node=fc.name, weight=weight, bias=bias)
    after = graph.consumers(out)
    if len(after) == 1 and after[0].op == "BatchNormalization":
        parsed.features = graph.batch_norm(after[0], "features BatchNorm1d")
        out = after[0].outputs[0]
        after = graph.consumers(out)
    if after or out not in graph.outputs:
        raise graph.structure_error(f"the embedding {out!r} is not the graph output (it feeds {len(after)} nodes)")


def _stage_layers(graph: _OnnxGraph, blocks: list[_Block]) -> tuple[int, ...]:
    """Blocks per stage: each stage starts with the block that has a downsample shortcut."""
    starts = [i for i, block in enumerate(blocks) if block.downsample is not None]
    if len(starts) != len(STAGE_PLANES) or starts[0] != 0:
        raise graph.structure_error(
            f"found {len(blocks)} residual blocks with downsampling at blocks {starts}, expected four stages "
            "each starting with a downsampling block"
        )
    ends = starts[1:] + [len(blocks)]
    return tuple(end - start for start, end in zip(starts, ends))


def _depth_for(layers: tuple[int, ...], path: Path) -> int:
    for depth, known in IRESNET_LAYERS.items():
        if known == layers:
            return depth
    known = ", ".join(f"r{d} {list(v)}" for d, v in IRESNET_LAYERS.items())
    raise WeightsError(f"{path}: blocks per stage {list(layers)} match no iResNet depth ({known})")


def _check_depth(found: int, requested: int | None, path: Path) -> None:
    if requested is not None and requested != found:
        raise WeightsError(
            f"{path} holds an iResNet-{found} but iResNet-{requested} was requested; use iresnet{found} "
            "or the matching weights file"
        )


class _Assigner:
    """Copies arrays into module tensors, checking every shape against the module."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def tensor(self, target: torch.Tensor, value: np.ndarray, node: str, where: str) -> None:
        if tuple(value.shape) != tuple(target.shape):
            raise WeightsError(
                f"{self.path}: node {node!r} gives {where} shape {tuple(value.shape)}, the iResNet expects "
                f"{tuple(target.shape)}; the file is not an arcface_torch iResNet of this layout"
            )
        with torch.no_grad():
            target.copy_(torch.tensor(value, dtype=torch.float32))

    def conv(self, module: nn.Conv2d, conv: _Conv, where: str) -> None:
        self.tensor(module.weight, conv.weight, conv.node, f"{where}.weight")
        attrs = (conv.strides, conv.pads, conv.dilations, conv.group)
        want = (module.stride, module.padding * 2, module.dilation, module.groups)
        if attrs != want:
            raise WeightsError(
                f"{self.path}: conv {conv.node!r} ({where}) has strides/pads/dilations/group {attrs}, the "
                f"iResNet expects {want}"
            )

    def batch_norm(self, module: nn.BatchNorm1d | nn.BatchNorm2d, bn: _BatchNorm, where: str) -> None:
        self.tensor(module.weight, bn.scale, bn.node, f"{where}.weight")
        self.tensor(module.bias, bn.bias, bn.node, f"{where}.bias")
        self.tensor(module.running_mean, bn.mean, bn.node, f"{where}.running_mean")
        # Same 1/sqrt(var + eps) under the module's eps.
        self.tensor(module.running_var, bn.var + (bn.eps - module.eps), bn.node, f"{where}.running_var")

    def conv_bn(self, conv_module: nn.Conv2d, bn_module: nn.BatchNorm2d, conv: _Conv, bn: _BatchNorm | None,
                conv_where: str, bn_where: str) -> None:
        """A conv and its BN; a conv bias (BN fused by the exporter) moves into the BN."""
        self.conv(conv_module, conv, conv_where)
        channels = conv_module.out_channels
        if bn is None:
            bias = np.zeros(channels, np.float32) if conv.bias is None else conv.bias
            bn = _BatchNorm(conv.node, np.ones(channels), bias, np.zeros(channels),
                            np.full(channels, 1.0 - bn_module.eps), bn_module.eps)
        elif conv.bias is not None:
            if conv.bias.shape != bn.mean.shape:
                raise WeightsError(f"{self.path}: conv {conv.node!r} bias shape {conv.bias.shape} does not "
                                   f"match its BatchNorm {bn.node!r} ({bn.mean.shape})")
            bn = _BatchNorm(bn.node, bn.scale, bn.bias, bn.mean - conv.bias, bn.var, bn.eps)
        self.batch_norm(bn_module, bn, bn_where)

    def prelu(self, module: nn.PReLU, prelu: _PRelu, where: str) -> None:
        self.tensor(module.weight, prelu.slope.reshape(-1), prelu.node, f"{where}.weight")

    def linear_bn(self, fc: nn.Linear, features: nn.BatchNorm1d, linear: _Linear, bn: _BatchNorm | None) -> None:
        self.tensor(fc.weight, linear.weight, linear.node, "fc.weight")
        if bn is None:  # no features BatchNorm in the file: make ours the identity
            n = fc.out_features
            bn = _BatchNorm(linear.node, np.ones(n), np.zeros(n), np.zeros(n), np.full(n, 1.0 - features.eps),
                            features.eps)
        bias = np.zeros(fc.out_features, np.float32) if linear.bias is None else linear.bias.reshape(-1)
        self.tensor(fc.bias, bias, linear.node, "fc.bias")
        self.batch_norm(features, bn, "features")


def _read_onnx(path: Path) -> tuple[_ParsedIResNet, tuple[int, ...]]:
    """Parse an insightface ONNX file: its iResNet parts and blocks per stage."""
    import onnx

    if not path.is_file():
        raise ModelLoadError(f"{path}: ONNX file not found; check the path")
    try:
        model_proto = onnx.load(str(path))
    except Exception as exc:  # onnx raises DecodeError, ValueError, OSError... for a bad file
        raise ModelLoadError(f"{path}: cannot read as ONNX ({exc}); the file is corrupt or not an ONNX model") from exc
    graph = _OnnxGraph(model_proto, path)
    parsed = _parse_onnx(graph)
    return parsed, _stage_layers(graph, parsed.blocks)


def load_insightface_onnx(path: str | os.PathLike, depth: int | None = None, **kwargs) -> IResNet:
    """Import an insightface recognition ONNX file into an :class:`IResNet`.

    Args:
        path: ONNX file exported from an arcface_torch iResNet (``w600k_r50.onnx``, ``glintr100.onnx``).
        depth: Expected depth; None accepts whatever the file holds (inferred from its block count).
        **kwargs: Passed to :class:`IResNet` (``dropout``; ``num_features`` defaults to the file's width).

    Returns:
        The model in eval mode. Input (N, 3, 112, 112) chips normalised as ``(x - 127.5) / 127.5`` (RGB,
        like the ONNX file), output (N, 512) raw embeddings equal to the ONNX model's.

    Raises:
        ModelLoadError: The file is missing or not ONNX, is not an iResNet, or normalises its own input
            (older mxnet-converted insightface models).
        WeightsError: A tensor shape or conv setting does not fit the iResNet, or ``depth`` differs.
    """
    path = Path(path)
    parsed, layers = _read_onnx(path)
    found = _depth_for(layers, path)
    _check_depth(found, depth, path)

    kwargs.setdefault("num_features", int(parsed.fc.weight.shape[0]))
    model = IResNet(layers, **kwargs)
    put = _Assigner(path)
    put.conv_bn(model.conv1, model.bn1, parsed.stem_conv, parsed.stem_bn, "conv1", "bn1")
    put.prelu(model.prelu, parsed.stem_prelu, "prelu")
    modules: list[tuple[str, IBasicBlock]] = [
        (f"layer{stage + 1}.{i}", block)
        for stage in range(len(STAGE_PLANES))
        for i, block in enumerate(getattr(model, f"layer{stage + 1}"))
    ]
    for (name, module), block in zip(modules, parsed.blocks):
        put.batch_norm(module.bn1, block.bn1, f"{name}.bn1")
        put.conv_bn(module.conv1, module.bn2, block.conv1, block.bn2, f"{name}.conv1", f"{name}.bn2")
        put.prelu(module.prelu, block.prelu, f"{name}.prelu")
        put.conv_bn(module.conv2, module.bn3, block.conv2, block.bn3, f"{name}.conv2", f"{name}.bn3")
        if block.downsample is not None:
            ds_conv, ds_bn = block.downsample
            put.conv_bn(module.downsample[0], module.downsample[1], ds_conv, ds_bn,
                        f"{name}.downsample.0", f"{name}.downsample.1")
    put.batch_norm(model.bn2, parsed.bn2, "bn2")
    put.linear_bn(model.fc, model.features, parsed.fc, parsed.features)
    return model.eval()


# ---------------------------------------------------------------------------------------------- .pth

_DDP_PREFIX = "module."


def _unwrap_state_dict(obj, path: Path) -> dict[str, torch.Tensor]:
    if isinstance(obj, Mapping):
        for key in ("state_dict_backbone", "state_dict"):  # arcface_torch checkpoint_gpu_*.pt, generic wrap
            if isinstance(obj.get(key), Mapping):
                obj = obj[key]
                break
    if not isinstance(obj, Mapping) or not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise ModelLoadError(
            f"{path}: not a state dict of tensors; save the backbone with torch.save(backbone.state_dict(), path)"
        )
    state = {}
    for key, value in obj.items():
        key = str(key)
        state[key[len(_DDP_PREFIX):] if key.startswith(_DDP_PREFIX) else key] = value
    return state


def _layers_from_keys(state: Mapping[str, torch.Tensor], path: Path) -> tuple[int, ...]:
    layers = []
    for stage in range(1, len(STAGE_PLANES) + 1):
        prefix = f"layer{stage}."
        indices = {int(k.split(".")[1]) for k in state if k.startswith(prefix) and k.split(".")[1].isdigit()}
        if not indices or indices != set(range(max(indices) + 1)):
            raise ModelLoadError(
                f"{path}: no arcface_torch iResNet keys for layer{stage} (expected {prefix}0.bn1.weight, ...); "
                "the file is not an arcface_torch iResNet backbone"
            )
        layers.append(max(indices) + 1)
    return tuple(layers)


def _read_pth(path: Path) -> tuple[dict[str, torch.Tensor], tuple[int, ...]]:
    """An arcface_torch state dict (unwrapped, ``module.`` stripped) and its blocks per stage."""
    if not path.is_file():
        raise ModelLoadError(f"{path}: weights file not found; check the path")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises UnpicklingError, RuntimeError, EOFError... for a bad file
        raise ModelLoadError(
            f"{path}: cannot read as a torch state dict ({exc}); save the backbone with "
            "torch.save(backbone.state_dict(), path)"
        ) from exc
    state = _unwrap_state_dict(obj, path)
    return state, _layers_from_keys(state, path)


def load_arcface_torch_pth(path: str | os.PathLike, depth: int | None = None, **kwargs) -> IResNet:
    """Load an arcface_torch iResNet backbone state dict.

    Args:
        path: ``backbone.pth`` (a plain state dict), a dict wrapping it under ``"state_dict"`` (or
            arcface_torch's ``checkpoint_gpu_*.pt`` with ``"state_dict_backbone"``); ``module.`` (DDP)
            prefixes are stripped.
        depth: 18, 34, 50, 100 or 200; None infers it from the ``layerN.i`` keys.
        **kwargs: Passed to :class:`IResNet` (``dropout``; ``num_features`` defaults to ``fc.weight``'s rows).

    Returns:
        The model in eval mode, mapping (N, 3, 112, 112) normalised chips to (N, 512) raw embeddings.

    Raises:
        ModelLoadError: The file is missing, unreadable, or not an iResNet state dict.
        WeightsError: Keys or shapes do not fit, or ``depth`` differs from the file's.
    """
    path = Path(path)
    state, layers = _read_pth(path)
    found = _depth_for(layers, path)
    _check_depth(found, depth, path)
    if "fc.weight" in state:
        kwargs.setdefault("num_features", int(state["fc.weight"].shape[0]))
    model = IResNet(layers, **kwargs)

    expected = model.state_dict()
    missing = [k for k in expected if k not in state and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in state if k not in expected]
    wrong = [f"{k} {tuple(state[k].shape)} (expected {tuple(v.shape)})"
             for k, v in expected.items() if k in state and state[k].shape != v.shape]
    if missing or unexpected or wrong:
        parts = [f"{label}: {', '.join(items[:5])}{' ...' if len(items) > 5 else ''}"
                 for label, items in (("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong))
                 if items]
        raise WeightsError(f"{path} does not fit iResNet-{found} ({'; '.join(parts)})")
    model.load_state_dict(state, strict=False)
    return model.eval()


# ---------------------------------------------------------------------------------- format dispatch

#: Weights file suffixes this module reads.
ONNX_SUFFIXES = (".onnx",)
PTH_SUFFIXES = (".pth", ".pt")


def _format(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix in ONNX_SUFFIXES:
        return "onnx"
    if suffix in PTH_SUFFIXES:
        return "pth"
    raise ModelLoadError(
        f"{path}: unknown weights format {suffix!r}; give an insightface recognition .onnx file "
        "or an arcface_torch backbone .pth"
    )


def iresnet_depth(path: str | os.PathLike) -> int:
    """The iResNet depth (18, 34, 50, 100, 200) an insightface ``.onnx`` or arcface_torch ``.pth`` file holds.

    Reads and checks the file's structure (for ONNX the whole graph) without building a model.

    Raises:
        ModelLoadError: The file is missing, unreadable, of an unknown format or not an iResNet.
        WeightsError: Its blocks per stage match no standard depth.
    """
    path = Path(path)
    if _format(path) == "onnx":
        _, layers = _read_onnx(path)
    else:
        _, layers = _read_pth(path)
    return _depth_for(layers, path)


def load_iresnet_weights(path: str | os.PathLike, depth: int | None = None, **kwargs) -> IResNet:
    """An :class:`IResNet` with the weights of an insightface ``.onnx`` or arcface_torch ``.pth``/``.pt`` file
    (chosen by suffix; see :func:`load_insightface_onnx`, :func:`load_arcface_torch_pth`), in eval mode."""
    path = Path(path)
    if _format(path) == "onnx":
        return load_insightface_onnx(path, depth=depth, **kwargs)
    return load_arcface_torch_pth(path, depth=depth, **kwargs)


def build_iresnet_backbone(depth: int, pretrained: bool = False, weights: str | os.PathLike | None = None,
                           **kwargs) -> IResNet:
    """Registry builder of ``iresnet18/34/50/100``.

    Args:
        depth: 18, 34, 50, 100 or 200.
        pretrained: iResNets have no packaged weights; must be False (the registry passes False for them).
        weights: An insightface recognition ``.onnx`` file or an arcface_torch backbone ``.pth``/``.pt``;
            None keeps the random arcface_torch initialisation.
        **kwargs: Passed to :class:`IResNet` (``dropout``, ``num_features``).

    Returns:
        The model; in eval mode when ``weights`` were loaded, in train mode otherwise.

    Raises:
        SettingsError: ``depth`` is not supported.
        ModelLoadError: ``pretrained`` was asked for, or ``weights`` cannot be read or has an unknown suffix.
        WeightsError: ``weights`` does not fit an iResNet of this ``depth``.
    """
    if pretrained:
        raise ModelLoadError(f"iresnet{depth} has no packaged weights; pass weights= an insightface .onnx file "
                             "(e.g. buffalo_l's w600k_r50.onnx) or an arcface_torch .pth")
    if weights is None:
        return build_iresnet(depth, **kwargs)
    iresnet_layers(depth)  # an unsupported depth is a SettingsError before the file is read
    return load_iresnet_weights(weights, depth=depth, **kwargs)
