"""insightface ArcFace iResNet backbones (``arcface_torch/backbones/iresnet.py``).

Module attribute names equal arcface_torch's, so an arcface_torch backbone ``state_dict`` loads directly
with ``load_state_dict``. Weights from insightface's ONNX files (``w600k_r50.onnx`` in ``buffalo_l``,
``glintr100.onnx`` in ``antelopev2``) and arcface_torch ``.pth`` files are read by
:mod:`perface.backbones.insightface_import`, which also holds the registry builder (this module imports
nothing from it).
"""

from __future__ import annotations

import torch
from torch import nn

from perface.backbones.base import Backbone
from perface.errors import SettingsError

#: Blocks per stage (layer1..layer4) for each depth arcface_torch ships.
IRESNET_LAYERS: dict[int, tuple[int, int, int, int]] = {
    18: (2, 2, 2, 2),
    34: (3, 4, 6, 3),
    50: (3, 4, 14, 3),
    100: (3, 13, 30, 3),
    200: (6, 26, 60, 6),
}
#: Output channels of layer1..layer4.
STAGE_PLANES = (64, 128, 256, 512)
#: Side of the last feature map for a 112x112 input (four stride-2 stages).
FEATURE_MAP_SIZE = 7
BN_EPS = 1e-5


def _conv3x3(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_planes, out_planes, kernel_size=3, stride=stride, padding=1, bias=False)


class IBasicBlock(nn.Module):
    """Pre-activation-style residual block of the iResNet.

    ``bn1 -> conv1 (3x3) -> bn2 -> prelu -> conv2 (3x3, stride) -> bn3``, plus the identity or
    ``downsample`` (1x1 conv with stride, then BN).

    Args:
        inplanes: Input channels C_in.
        planes: Output channels C_out.
        stride: Stride of ``conv2`` (and of the downsample conv).
        downsample: Shortcut module, required when ``stride != 1`` or ``inplanes != planes``.

    Shapes:
        (N, C_in, H, W) -> (N, C_out, H / stride, W / stride).
    """

    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(inplanes, eps=BN_EPS)
        self.conv1 = _conv3x3(inplanes, planes)
        self.bn2 = nn.BatchNorm2d(planes, eps=BN_EPS)
        self.prelu = nn.PReLU(planes)
        self.conv2 = _conv3x3(planes, planes, stride)
        self.bn3 = nn.BatchNorm2d(planes, eps=BN_EPS)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.bn1(x)
        out = self.conv1(out)
        out = self.bn2(out)
        out = self.prelu(out)
        out = self.conv2(out)
        out = self.bn3(out)
        identity = x if self.downsample is None else self.downsample(x)
        return out + identity


class IResNet(Backbone):
    """ArcFace iResNet mapping normalised 112x112 face chips to raw embeddings.

    Backbone contract (:class:`~perface.backbones.base.Backbone`): stem ``conv1 -> bn1 -> prelu``, ``stages``
    ``layer1..layer4``, head ``bn2 -> flatten -> dropout -> fc -> features`` (BatchNorm1d whose weight is
    fixed at 1, as arcface_torch trains it).

    Args:
        layers: Blocks in layer1..layer4, e.g. ``(3, 4, 14, 3)`` for iResNet-50 (see :data:`IRESNET_LAYERS`).
        dropout: Dropout probability before ``fc`` (arcface_torch trains with 0).
        num_features: Embedding width.

    Shapes:
        input: (N, 3, 112, 112) float32, pixels normalised as ``(x - 127.5) / 127.5`` (RGB).
        output: (N, num_features) raw embeddings, not L2-normalised.
    """

    def __init__(self, layers: tuple[int, ...] | list[int], dropout: float = 0.0, num_features: int = 512) -> None:
        super().__init__()
        if len(layers) != len(STAGE_PLANES) or any(n < 1 for n in layers):
            raise SettingsError(f"layers must be four positive block counts, got {tuple(layers)}")
        self.layers = tuple(int(n) for n in layers)
        self.num_features = num_features
        self.inplanes = STAGE_PLANES[0]
        self.conv1 = nn.Conv2d(3, self.inplanes, kernel_size=3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(self.inplanes, eps=BN_EPS)
        self.prelu = nn.PReLU(self.inplanes)
        self.layer1 = self._make_layer(STAGE_PLANES[0], self.layers[0], stride=2)
        self.layer2 = self._make_layer(STAGE_PLANES[1], self.layers[1], stride=2)
        self.layer3 = self._make_layer(STAGE_PLANES[2], self.layers[2], stride=2)
        self.layer4 = self._make_layer(STAGE_PLANES[3], self.layers[3], stride=2)
        self.bn2 = nn.BatchNorm2d(STAGE_PLANES[3], eps=BN_EPS)
        self.dropout = nn.Dropout(p=dropout)
        self.fc = nn.Linear(STAGE_PLANES[3] * FEATURE_MAP_SIZE * FEATURE_MAP_SIZE, num_features)
        self.features = nn.BatchNorm1d(num_features, eps=BN_EPS)
        nn.init.constant_(self.features.weight, 1.0)
        self.features.weight.requires_grad = False  # arcface_torch keeps the feature scale fixed

        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.normal_(m.weight, 0, 0.1)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.constant_(m.weight, 1)
                nn.init.constant_(m.bias, 0)

    @property
    def depth(self) -> int | None:
        """The arcface_torch depth of this block layout (e.g. 50), or None for a custom layout."""
        for depth, layers in IRESNET_LAYERS.items():
            if layers == self.layers:
                return depth
        return None

    def _make_layer(self, planes: int, blocks: int, stride: int) -> nn.Sequential:
        downsample = None
        if stride != 1 or self.inplanes != planes:
            downsample = nn.Sequential(
                nn.Conv2d(self.inplanes, planes, kernel_size=1, stride=stride, bias=False),
                nn.BatchNorm2d(planes, eps=BN_EPS),
            )
        layers = [IBasicBlock(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes
        layers.extend(IBasicBlock(self.inplanes, planes) for _ in range(1, blocks))
        return nn.Sequential(*layers)

    @property
    def stages(self) -> list[nn.Sequential]:
        """The four residual stages ``layer1..layer4``, input side first."""
        return [self.layer1, self.layer2, self.layer3, self.layer4]

    def stem(self, x: torch.Tensor) -> torch.Tensor:
        return self.prelu(self.bn1(self.conv1(x)))

    def head(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(self.fc(self.dropout(torch.flatten(self.bn2(x), 1))))

    def stem_modules(self) -> list[nn.Module]:
        return [self.conv1, self.bn1, self.prelu]

    def head_modules(self) -> list[nn.Module]:
        return [self.bn2, self.dropout, self.fc, self.features]

    def fixed_parameters(self) -> list[nn.Parameter]:
        return [self.features.weight]


def build_iresnet(depth: int, **kwargs) -> IResNet:
    """A randomly initialised (arcface_torch initialisation) iResNet of a standard depth, in train mode.

    Weights files are read by :func:`perface.backbones.insightface_import.build_iresnet_backbone` (the
    registry's builder) and the loaders beside it.

    Args:
        depth: 18, 34, 50, 100 or 200 (keys of :data:`IRESNET_LAYERS`).
        **kwargs: Passed to :class:`IResNet` (``dropout``, ``num_features``).

    Raises:
        SettingsError: ``depth`` is not supported.
    """
    return IResNet(iresnet_layers(depth), **kwargs)


def iresnet_layers(depth: int) -> tuple[int, int, int, int]:
    """Blocks per stage of a standard depth.

    Raises:
        SettingsError: ``depth`` is not one of :data:`IRESNET_LAYERS`.
    """
    if depth not in IRESNET_LAYERS:
        raise SettingsError(f"unsupported iResNet depth {depth}; choose one of {sorted(IRESNET_LAYERS)}")
    return IRESNET_LAYERS[depth]
