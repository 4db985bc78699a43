"""Face-recognition backbones (torch ``nn.Module``s) and their registry.

The contract every backbone implements is :class:`perface.backbones.base.Backbone` (not imported here: the
registry itself imports no torch).
"""

from perface.backbones.registry import (
    BackboneSpec,
    backbone_for_weights,
    build_backbone,
    get_backbone_spec,
    list_backbones,
    register_backbone,
)

__all__ = ["BackboneSpec", "backbone_for_weights", "build_backbone", "get_backbone_spec", "list_backbones",
           "register_backbone"]
