"""The PerFace model object and perface.load on real LFW faces."""

import json

import numpy as np
import pytest
import torch

import perface
from perface.errors import ModelLoadError, NoFaceError, UnknownBackboneError
from perface.model import PerFace


@pytest.fixture(scope="module")
def base():
    return perface.load("base", engine="torch")


def _lfw_pairs(lfw, fold: int = 0):
    lines = (lfw / "pairs.txt").read_text().splitlines()
    n_folds, n = map(int, lines[0].split())
    rows = lines[1 + fold * 2 * n : 1 + (fold + 1) * 2 * n]
    pairs = []
    for row in rows:
        f = row.split()
        if len(f) == 3:
            a, b, same = (f[0], int(f[1])), (f[0], int(f[2])), True
        else:
            a, b, same = (f[0], int(f[1])), (f[2], int(f[3])), False
        pairs.append((lfw / "images" / a[0] / f"{a[0]}_{a[1]:04d}.jpg", lfw / "images" / b[0] / f"{b[0]}_{b[1]:04d}.jpg", same))
    return pairs


def test_embed_shapes_and_norms(base, lfw):
    files = sorted((lfw / "images" / "George_W_Bush").iterdir())[:5]
    emb = base.embed(files)
    assert emb.shape == (5, 128) and emb.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)
    # paths, PIL images and arrays give the same embedding
    from PIL import Image

    img = Image.open(files[0])
    np.testing.assert_allclose(base.embed([img, np.asarray(img.convert("RGB"))]), emb[[0, 0]], atol=1e-6)


def test_same_person_scores_higher(base, lfw):
    img = lfw / "images"
    same = base.score(img / "Aaron_Peirsol/Aaron_Peirsol_0001.jpg", img / "Aaron_Peirsol/Aaron_Peirsol_0002.jpg")
    diff = base.score(img / "Aaron_Peirsol/Aaron_Peirsol_0001.jpg", img / "Abdullah_Gul/Abdullah_Gul_0001.jpg")
    assert -1.0 <= diff < same <= 1.0


def test_lfw_fold1_verification_accuracy(base, lfw):
    """Base model on LFW pairs.txt fold 1 (600 pairs): >= 95% at the best threshold."""
    pairs = _lfw_pairs(lfw, 0)
    assert len(pairs) == 600
    files = sorted({str(p) for a, b, _ in pairs for p in (a, b)})
    results = base.embed_faces(files, on_no_face="whole-image", workers=2)
    emb = {r.path: r.embedding for r in results}
    assert all(r.status == "ok" for r in results)
    sims = np.array([float(emb[str(a)] @ emb[str(b)]) for a, b, _ in pairs])
    labels = np.array([s for _, _, s in pairs])
    accs = [((sims >= t) == labels).mean() for t in np.unique(sims)]
    assert max(accs) >= 0.95


def test_embed_tensor_path_is_differentiable():
    model = PerFace(pretrained=False)
    x = torch.randn(2, 3, 150, 150, requires_grad=True)
    z = model.embed(x)
    assert z.shape == (2, 128)
    z.sum().backward()
    assert x.grad is not None
    sim = model(x, x)
    torch.testing.assert_close(sim, torch.ones(2), atol=1e-5, rtol=0)


def test_identity_head_keeps_base_embeddings(base, lfw):
    with_head = PerFace(head_dim=128)
    files = sorted((lfw / "images" / "Colin_Powell").iterdir())[:3]
    np.testing.assert_allclose(with_head.embed(files), base.embed(files), atol=1e-6)


def test_save_and_load_round_trip(tmp_path, lfw):
    model = PerFace(head_dim=64, name="tiny-head")
    path = model.save(tmp_path / "m.pt")
    loaded = perface.load(path)
    assert loaded.name == "tiny-head" and loaded.embedding_dim == 64
    files = sorted((lfw / "images" / "Colin_Powell").iterdir())[:2]
    np.testing.assert_allclose(loaded.embed(files), model.embed(files), atol=1e-6)


def test_face_options_travel_with_pt_and_onnx_and_flags_override_them(tmp_path, photos, capsys):
    from perface.cli.main import main
    from perface.export import export_onnx
    from perface.onnx_model import read_metadata
    from perface.preprocessing import FaceOptions

    recorded = FaceOptions(detector="hog", upsample=1, max_side=800, face="center", on_no_face="whole-image")
    pt = PerFace(name="centre-model", face_options=recorded).save(tmp_path / "m.pt")
    assert perface.load(pt).face_options == recorded
    onnx = export_onnx(perface.load(pt, engine="torch"), tmp_path / "m.onnx").path
    assert perface.load(onnx).face_options == recorded
    assert FaceOptions.from_dict(json.loads(read_metadata(onnx)["perface.face_options"])) == recorded
    # keyword arguments of perface.load override single fields and keep the rest
    assert perface.load(pt, detector="cnn", face=0).face_options == recorded.override(detector="cnn", face=0)
    # the command line: no flag = the recorded options; a flag overrides that field; --json reports them
    group = str(photos / "couple.jpg")
    for model, flags, expected in ((pt, [], recorded), (onnx, [], recorded),
                                   (pt, ["--face", "largest", "--upsample", "0"], recorded.override(face="largest", upsample=0))):
        assert main(["score", "--json", "--model", str(model), *flags, group, group]) == 0
        out = json.loads(capsys.readouterr().out)
        assert out["face_options"] == expected.to_dict()


def test_load_errors(tmp_path):
    with pytest.raises(UnknownBackboneError, match="dlib_resnet"):
        perface.load("dlib_resnt")
    with pytest.raises(UnknownBackboneError, match="no packaged weights"):
        perface.load("iresnet50")
    with pytest.raises(ModelLoadError, match="not found"):
        perface.load(tmp_path / "missing.onnx")
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not onnx")
    with pytest.raises(ModelLoadError, match="bad.onnx"):
        perface.load(bad)
    junk = tmp_path / "junk.pt"
    junk.write_text("junk")
    with pytest.raises(ModelLoadError, match="junk.pt"):
        perface.load(junk)


def test_no_face_is_an_error_unless_asked(base, data_root):
    blank = np.full((300, 300, 3), 200, np.uint8)
    with pytest.raises(NoFaceError):
        base.embed([blank])
    assert base.embed([blank], on_no_face="whole-image").shape == (1, 128)


def test_embed_faces_continues_past_bad_items(base, photos, tmp_path):
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff garbage")
    blank = tmp_path / "blank.png"
    from PIL import Image

    Image.new("RGB", (120, 120), "gray").save(blank)
    results = base.embed_faces([photos / "couple.jpg", broken, blank, photos / "img47.jpg"], face="all")
    status = [(r.path.rsplit("/", 1)[-1], r.status, r.face_index) for r in results]
    assert status == [("couple.jpg", "ok", 0), ("couple.jpg", "ok", 1), ("broken.jpg", "error", -1),
                      ("blank.png", "no_face", -1), ("img47.jpg", "ok", 0)]
    assert "broken.jpg" in results[2].error


def test_import_perface_is_light():
    import subprocess
    import sys

    code = "import sys, perface; perface.list_backbones(); print('torch' in sys.modules, 'dlib' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["False", "False"]


def test_flip_tta_sums_both_orientations(lfw, tmp_path):
    plain, tta = PerFace(), PerFace(flip_tta=True)
    files = sorted((lfw / "images" / "Colin_Powell").iterdir())[:3]
    chips = torch.from_numpy(plain.preprocessing.normalize(np.stack([plain.faces(f)[0].chip for f in files])))
    with torch.no_grad():
        expected = torch.nn.functional.normalize(plain._raw(chips) + plain._raw(torch.flip(chips, dims=[3])), dim=1)
        got = tta.embed_tensor(chips)
        torch.testing.assert_close(got, expected, atol=1e-6, rtol=0)
        # a mirrored face gets the same embedding, which a single orientation does not give
        torch.testing.assert_close(tta.embed_tensor(torch.flip(chips, dims=[3])), got, atol=1e-5, rtol=0)
        assert (plain.embed_tensor(torch.flip(chips, dims=[3])) - plain.embed_tensor(chips)).abs().max() > 1e-3
    np.testing.assert_allclose(tta.embed(files), got.numpy(), atol=1e-5)  # image path = tensor path
    loaded = perface.load(tta.save(tmp_path / "tta.pt"))
    assert loaded.flip_tta and loaded.config()["flip_tta"] is True
    np.testing.assert_allclose(loaded.embed(files), got.numpy(), atol=1e-6)
    assert PerFace.from_config({k: v for k, v in plain.config().items() if k != "flip_tta"}).flip_tta is False


def test_two_branch_model_scores_the_weighted_sum_of_its_branches(lfw, tmp_path, monkeypatch):
    """PerFace(perceptual_weight=w): cos = (1 - w) cos(base) + w cos(perceptual branch), each branch with flip
    TTA; a fresh branch scores exactly like the base model; config and weights travel in .pt files."""
    w = 0.3
    base, model = PerFace(flip_tta=True), PerFace(flip_tta=True, perceptual_weight=w, perceptual_stages=2)
    files = sorted((lfw / "images" / "Colin_Powell").iterdir())[:2] + sorted((lfw / "images" / "Tony_Blair").iterdir())[:2]
    chips = torch.from_numpy(base.preprocessing.normalize(np.stack([base.faces(f)[0].chip for f in files])))
    with torch.no_grad():
        zb = base.embed_tensor(chips)
        z = model.embed_tensor(chips)
        assert z.shape == (4, 256) and model.embedding_dim == 256
        torch.testing.assert_close(z @ z.T, zb @ zb.T, atol=1e-6, rtol=0)
        # change the branch (its last two stages and fc); the reference is a plain model with those weights
        g = torch.Generator().manual_seed(0)
        for p in model.perceptual.parameters():
            p.add_(0.05 * p.abs().mean() * torch.randn(p.shape, generator=g))
        reference = PerFace(flip_tta=True)
        reference.backbone.load_state_dict({**base.backbone.state_dict(), **model.perceptual.net.state_dict()})
        zp = reference.embed_tensor(chips)
        expected = (1 - w) * (zb @ zb.T) + w * (zp @ zp.T)
        z = model.embed_tensor(chips)
        torch.testing.assert_close(z @ z.T, expected, atol=1e-6, rtol=0)
        assert (zp @ zp.T - zb @ zb.T).abs().max() > 1e-2  # the change is visible
        torch.testing.assert_close(model(chips[:2], chips[2:]), expected[[0, 1], [2, 3]], atol=1e-6, rtol=0)
        # the base model's weights are untouched: its half of the embedding is the base embedding
        torch.testing.assert_close(z[:, :128] / (1 - w) ** 0.5, zb, atol=1e-6, rtol=0)
    np.testing.assert_allclose(model.embed(files), z.numpy(), atol=1e-5)
    loaded = perface.load(model.save(tmp_path / "two.pt"), engine="torch")
    assert loaded.config()["perceptual_weight"] == w and loaded.config()["perceptual_stages"] == 2
    np.testing.assert_allclose(loaded.embed(files), z.numpy(), atol=1e-6)
    # the default engine exports both branches into one ONNX graph (parity-checked on export)
    monkeypatch.setenv("PERFACE_CACHE", str(tmp_path / "cache"))
    onnx = perface.load(tmp_path / "two.pt", engine="onnx")
    np.testing.assert_allclose(onnx.embed(files), z.numpy(), atol=1e-4)


def test_two_branch_settings_errors():
    from perface.errors import SettingsError

    with pytest.raises(SettingsError, match="perceptual_weight must be in"):
        PerFace(pretrained=False, perceptual_weight=1.0)
    with pytest.raises(SettingsError, match="stages must be in 1..5"):
        PerFace(pretrained=False, perceptual_weight=0.5, perceptual_stages=6)
    with pytest.raises(SettingsError, match="needs perceptual_weight"):
        PerFace(pretrained=False, perceptual_stages=1)
