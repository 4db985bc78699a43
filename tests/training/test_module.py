"""PerFaceModule's staged, cached embedding path against the inference model's own."""

import numpy as np
import torch

from perface.training.module import PerFaceModule
from perface.training.triplet_dataset import mirror_key


def _chips(model, lfw, n=3):
    files = sorted((lfw / "images" / "Colin_Powell").iterdir())[:n]
    return torch.from_numpy(model.preprocessing.normalize(np.stack([model.faces(f)[0].chip for f in files])))


def test_cached_validation_embeddings_match_inference_with_flip_tta(lfw):
    module = PerFaceModule(trainable_stages=2, flip_tta=True, identity_weight=1.0).eval()
    x = _chips(module.model, lfw)
    ids = torch.arange(len(x))
    with torch.no_grad():
        expected = module.model.embed_tensor(x)
        torch.testing.assert_close(module._embed(x, ids, use_cache=True), expected, atol=1e-5, rtol=0)
        assert set(module._features) == {0, 1, 2, mirror_key(0), mirror_key(1), mirror_key(2)}
        torch.testing.assert_close(module._embed(x, ids, use_cache=True), expected, atol=1e-5, rtol=0)  # from cache
        torch.testing.assert_close(module._embed(x, ids, use_cache=False), expected, atol=1e-5, rtol=0)
    module.train()
    with torch.no_grad():
        one_side = module._embed(x, ids, use_cache=True)  # training embeds the orientation it is given
        torch.testing.assert_close(one_side, module.base_top.embed_tensor(x), atol=1e-5, rtol=0)
    assert not module.base_top.flip_tta and module.model.flip_tta
