"""Face-recognition backbones (torch ``nn.Module``s) and their registry."""

from perface.backbones.registry import (
    BackboneSpec,
    build_backbone,
    get_backbone_spec,
    list_backbones,
    register_backbone,
)

__all__ = ["BackboneSpec", "build_backbone", "get_backbone_spec", "list_backbones", "register_backbone"]
