"""insightface as the reference: ArcFace alignment, recognition ONNX embeddings, model-pack folders, cv2.

* Alignment: :func:`perface.face.align.align_arcface` against ``insightface.utils.face_align.norm_crop`` on real
  LFW and web photos, the same five points in.
* Embeddings: an iResNet exported the insightface way, embedded by ``insightface.model_zoo.get_model(...)
  .get_feat`` and by ``perface.load`` (ONNX Runtime engine and torch).
* ``perface.load(FOLDER)``: the recognition model of an insightface model pack, chosen as insightface's
  ``FaceAnalysis`` chooses it.
* cv2 with insightface installed (it requires opencv-python, PerFace opencv-python-headless).
"""

from __future__ import annotations

import json
import warnings
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path

import cv2
import insightface
import numpy as np
import onnx
import pytest
import torch
from insightface.app import FaceAnalysis
from insightface.app.common import Face as InsightFace
from insightface.model_zoo import get_model
from insightface.model_zoo.package_manifest import load_model_package
from insightface.utils import face_align
from onnx import TensorProto, helper
from skimage import transform as sk_transform

import perface
from perface.backbones.iresnet import build_iresnet
from perface.errors import ModelLoadError
from perface.face.align import ARCFACE_TEMPLATE, align_arcface, arcface_matrix
from perface.face.landmarks import arcface_points
from perface.face.pipeline import FacePipeline
from perface.io.image import load_image
from perface.loading import pack_recognition_model
from perface.preprocessing import ARCFACE, FaceOptions
from tests.helpers.insightface import export_insightface_onnx, randomise

#: Largest |ours - norm_crop| over all pixels of all chips, in 8-bit grey levels (measured: 1, on 0.017% of the
#: values on average). insightface estimates its matrix in float32 (scikit-image >= 0.26 keeps the dtype of the
#: float32 points), ours in float64; the matrices differ by up to 4e-5 and that moves a bilinear sample
#: across a rounding boundary now and then. With scikit-image's matrix estimated in float64 the chips are equal.
ALIGN_MAX_ABS = 1
#: Largest fraction of a chip's values that may differ by that one grey level (measured: at most 0.064%).
ALIGN_MAX_FRACTION = 0.002
#: |perface - insightface get_feat| on L2-normalised embeddings of the same chips (measured: 2.9e-7 with the ONNX
#: Runtime engine, 3.9e-7 with torch).
EMBED_TOL = 1e-4

LFW_PEOPLE = ("AJ_Cook", "Aaron_Eckhart", "Alexander_Lukashenko", "Angela_Lansbury", "Anthony_Rackauckas",
              "George_W_Bush")
PHOTOS = ("couple.jpg", "img1.jpg", "img10.jpg")  # two faces, a large photo, a small one


@pytest.fixture(scope="module", autouse=True)
def _own_cache(tmp_path_factory):
    """Engine exports of this module's random weights (about 100 MB each) go to a temporary cache."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PERFACE_CACHE", str(tmp_path_factory.mktemp("cache")))
        yield


@pytest.fixture(scope="module")
def faces(lfw, photos):
    """(name, RGB image, five ArcFace points) for every face HOG finds in 6 LFW photos and 3 web photos."""
    pipeline = FacePipeline(ARCFACE, FaceOptions(detector="hog", upsample=0))
    paths = [next((lfw / "images" / person).glob("*_0001.jpg")) for person in LFW_PEOPLE]
    paths += [photos / name for name in PHOTOS]
    out = []
    for path in paths:
        image = load_image(path)
        found = pipeline.detect(image)
        assert found, path
        out += [(f"{path.name}#{i}", image, arcface_points(face.landmarks)) for i, face in enumerate(found)]
    assert len(out) >= 10
    return out


@pytest.fixture(scope="module")
def chips(faces) -> np.ndarray:
    """perface's ArcFace chips of ``faces``: uint8 (N, 112, 112, 3) RGB."""
    return np.stack([align_arcface(image, points) for _, image, points in faces])


# ----------------------------------------------------------------------------------------------- alignment


@contextmanager
def _quiet():
    """scikit-image 0.26 deprecates ``SimilarityTransform.estimate``, which insightface calls."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*estimate.* is deprecated", category=FutureWarning)
        yield


def _norm_crop(image: np.ndarray, points: np.ndarray) -> np.ndarray:
    """insightface's chip of an RGB image (it takes BGR, as cv2 reads): RGB out."""
    with _quiet():
        bgr = face_align.norm_crop(np.ascontiguousarray(image[..., ::-1]), landmark=points, image_size=112)
    return np.ascontiguousarray(bgr[..., ::-1])


def _similarity_float64(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """scikit-image's least-squares similarity (what insightface uses) from float64 points: (2, 3)."""
    src, dst = np.asarray(src, np.float64), np.asarray(dst, np.float64)
    if hasattr(sk_transform.SimilarityTransform, "from_estimate"):  # scikit-image >= 0.26
        return sk_transform.SimilarityTransform.from_estimate(src, dst).params[:2]
    tform = sk_transform.SimilarityTransform()
    tform.estimate(src, dst)
    return tform.params[:2]


def test_alignment_matches_insightface_norm_crop(faces, chips):
    assert np.array_equal(ARCFACE_TEMPLATE, face_align.arcface_dst)
    worst, fractions = 0, []
    for (name, image, points), ours in zip(faces, chips):
        theirs = _norm_crop(image, points)
        assert theirs.shape == ours.shape == (112, 112, 3) and theirs.dtype == ours.dtype == np.uint8
        diff = np.abs(ours.astype(np.int16) - theirs.astype(np.int16))
        worst = max(worst, int(diff.max()))
        fractions.append(float((diff > 0).mean()))
        assert diff.max() <= ALIGN_MAX_ABS, name
    assert max(fractions) <= ALIGN_MAX_FRACTION, fractions


def test_alignment_difference_is_insightface_float32_matrix(faces, chips):
    """The one-grey-level differences come from the precision of insightface's matrix, not the warp: with
    scikit-image's similarity estimated from float64 points the matrix agrees with ours to 1e-9 and
    ``cv2.warpAffine`` with norm_crop's settings gives our chips exactly."""
    for (name, image, points), ours in zip(faces, chips):
        with _quiet():
            insightface_matrix = face_align.estimate_norm(points, image_size=112)  # float32 points in
        assert np.abs(insightface_matrix - arcface_matrix(points)).max() < 1e-4, name
        matrix = _similarity_float64(points, face_align.arcface_dst)
        assert np.abs(matrix - arcface_matrix(points)).max() < 1e-9, name
        warped = cv2.warpAffine(image, matrix, (112, 112), borderValue=0.0)  # norm_crop's call
        assert np.array_equal(warped, ours), name


# ----------------------------------------------------------------------------------------------- embeddings


@pytest.fixture(scope="module")
def r18_file(tmp_path_factory, chips) -> Path:
    """A random iResNet-18 (BN statistics from the real chips) exported the insightface way."""
    model = randomise(build_iresnet(18), seed=18, calibration=ARCFACE.normalize(chips))
    path = tmp_path_factory.mktemp("insightface") / "w600k_r18.onnx"  # named like buffalo_l's w600k_r50.onnx
    export_insightface_onnx(model, path, torch.from_numpy(ARCFACE.normalize(chips[:1])))
    return path


@pytest.fixture(scope="module")
def insightface_features(r18_file, chips) -> np.ndarray:
    """``get_feat`` of the chips (BGR, as insightface takes them), L2-normalised."""
    rec = get_model(str(r18_file), providers=["CPUExecutionProvider"])
    assert rec.taskname == "recognition" and rec.input_size == (112, 112)
    # torch exports start with a Conv, not mxnet's Sub/Mul: insightface then normalises with 127.5 / 127.5,
    # which is perface's ARCFACE preprocessing.
    assert (rec.input_mean, rec.input_std) == (127.5, 127.5)
    assert ARCFACE.mean == (rec.input_mean,) * 3 and ARCFACE.std == (rec.input_std,) * 3
    feats = rec.get_feat([np.ascontiguousarray(chip[..., ::-1]) for chip in chips])
    assert feats.shape == (len(chips), 512)
    return feats / np.linalg.norm(feats, axis=1, keepdims=True)


@pytest.mark.parametrize("engine", ["auto", "torch"])
def test_embeddings_match_insightface_get_feat(r18_file, chips, insightface_features, engine):
    model = perface.load(r18_file, engine=engine)
    assert type(model).__name__ == ("PerFace" if engine == "torch" else "OnnxPerFace")
    assert model.preprocessing.alignment == "arcface" and model.preprocessing.size == 112
    ours = model.embed_chips(chips)
    assert ours.shape == insightface_features.shape
    assert np.abs(ours - insightface_features).max() < EMBED_TOL
    # Not trivially equal: different faces get different embeddings.
    assert (ours @ ours.T)[~np.eye(len(ours), dtype=bool)].max() < 0.999


def test_image_embedding_matches_insightface_get(r18_file, photos):
    """End to end on a photo: perface finds, aligns and embeds the face; insightface's ``ArcFaceONNX.get``
    aligns (norm_crop) and embeds the same face from the same five points."""
    model = perface.load(r18_file)
    rec = get_model(str(r18_file), providers=["CPUExecutionProvider"])
    path = photos / "img10.jpg"
    image = load_image(path)
    face = model.detect(path)[0]
    with _quiet():
        theirs = rec.get(np.ascontiguousarray(image[..., ::-1]), InsightFace(kps=arcface_points(face.landmarks)))
    theirs = theirs / np.linalg.norm(theirs)
    ours = model.embed(path)[0]
    # The chips may differ by one grey level on a few pixels (ALIGN_MAX_ABS), hence the looser tolerance
    # (measured: cosine 0.9999999, max |difference| 7.7e-5).
    assert float(ours @ theirs) > 0.9999


# --------------------------------------------------------------------------------------- model-pack folders


def _graph_file(path: Path, inputs: dict[str, list], outputs: dict[str, int], body: list) -> Path:
    """A small valid ONNX model: ``inputs`` name -> shape (None: dynamic); the first input is average-pooled to
    ``pooled`` (n, C) by the graph, and ``body`` maps that to ``outputs`` name -> width (n, width)."""

    def info(name, shape):
        return helper.make_tensor_value_info(name, TensorProto.FLOAT, [d if d is not None else "n" for d in shape])

    first = next(iter(inputs))
    nodes = [helper.make_node("GlobalAveragePool", [first], ["avg"]),
             helper.make_node("Flatten", ["avg"], ["pooled"], axis=1), *body[0]]
    graph = helper.make_graph(nodes, path.stem, [info(n, s) for n, s in inputs.items()],
                              [info(n, [None, w]) for n, w in outputs.items()], initializer=body[1])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 11)])
    model.ir_version = 7
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, str(path))
    return path


def _dense(src: str, dst: str, rows: int, width: int, seed: int):
    weight = np.random.default_rng(seed).standard_normal((rows, width)).astype(np.float32)
    return helper.make_node("MatMul", [src, f"{dst}_w"], [dst]), helper.make_tensor(
        f"{dst}_w", TensorProto.FLOAT, weight.shape, weight.ravel().tolist())


def _detector(path: Path) -> Path:
    """Shaped like SCRFD (det_10g): one image input of any size, 9 outputs (scores, boxes, keypoints x 3)."""
    widths = {f"out{i}": (1, 4, 10)[i // 3] for i in range(9)}
    layers = [_dense("pooled", name, 3, width, i) for i, (name, width) in enumerate(widths.items())]
    body = ([node for node, _ in layers], [weight for _, weight in layers])
    return _graph_file(path, {"input.1": [None, 3, None, None]}, widths, body)


def _head(path: Path, size: int, width: int, second_input: int = 0) -> Path:
    """One (n, 3, size, size) input -> (n, width): shaped like a landmark (192), attribute (96) or recognition
    (112) model; with ``second_input`` a (n, second_input) input added on, like inswapper (128)."""
    node, weight = _dense("pooled", "fc1" if not second_input else "image_part", 3, width, size)
    nodes, weights = [node], [weight]
    inputs = {"data": [None, 3, size, size]}
    if second_input:
        inputs["source"] = [None, second_input]
        node, weight = _dense("source", "source_part", second_input, width, size + 1)
        nodes += [node, helper.make_node("Add", ["image_part", "source_part"], ["fc1"])]
        weights.append(weight)
    return _graph_file(path, inputs, {"fc1": width}, (nodes, weights))


@pytest.fixture(scope="module")
def decoys(tmp_path_factory) -> Path:
    """A folder with a buffalo_l-like set of non-recognition models (no recognition model)."""
    folder = tmp_path_factory.mktemp("decoys")
    _detector(folder / "det_10g.onnx")
    _head(folder / "1k3d68.onnx", 192, 3309)
    _head(folder / "2d106det.onnx", 192, 212)
    _head(folder / "genderage.onnx", 96, 3)
    _head(folder / "inswapper_128.onnx", 128, 512, second_input=512)
    _head(folder / "tiny_80.onnx", 80, 4)  # square but under 112 px: insightface routes it nowhere
    return folder


def _pack(tmp_path: Path, decoys: Path, recognition: Path, skip: tuple = ()) -> Path:
    """buffalo_l-like: the decoys (less ``skip``) and the recognition model, hard links to the files."""
    folder = tmp_path / "buffalo_l"
    folder.mkdir()
    for decoy in decoys.glob("*.onnx"):
        if decoy.name not in skip:
            (folder / decoy.name).hardlink_to(decoy)
    (folder / recognition.name).hardlink_to(recognition)
    return folder


def test_pack_folder_loads_its_recognition_model(tmp_path, decoys, r18_file, chips, insightface_features):
    folder = _pack(tmp_path, decoys, r18_file)
    assert pack_recognition_model(folder) == folder / "w600k_r18.onnx"
    model = perface.load(folder)  # same weights and name as r18_file: its engine export is found in the cache
    assert model.name == "w600k_r18"
    assert np.abs(model.embed_chips(chips) - insightface_features).max() < EMBED_TOL


def test_pack_choice_is_insightface_face_analysis_choice(tmp_path, decoys, r18_file):
    """insightface's own FaceAnalysis, on the same folder, keeps the same recognition model; with two
    recognition models both take the first in sorted order (perface warns which one it ignored)."""
    # FaceAnalysis itself fails on a folder holding inswapper (INSwapper has no ``taskname``); perface does not.
    folder = _pack(tmp_path, decoys, r18_file, skip=("inswapper_128.onnx",))
    _head(folder / "x_small_rec.onnx", 112, 128)  # also shaped like a recognition model
    app = FaceAnalysis(name=str(folder), providers=["CPUExecutionProvider"])
    assert {"detection", "recognition", "genderage"} <= set(app.models)
    with pytest.warns(UserWarning, match=r"using w600k_r18\.onnx .* not x_small_rec\.onnx"):
        chosen = pack_recognition_model(folder)
    assert Path(app.models["recognition"].model_file) == chosen == folder / "w600k_r18.onnx"


def test_pack_without_recognition_model_names_its_files(decoys, tmp_path):
    with pytest.raises(ModelLoadError) as err:
        perface.load(decoys)
    message = str(err.value)
    assert str(decoys) in message and "no insightface recognition model" in message
    for expected in ("det_10g.onnx (detection: 9 outputs)", "1k3d68.onnx (landmarks: input ?x3x192x192)",
                     "2d106det.onnx (landmarks", "genderage.onnx (attributes: input ?x3x96x96)",
                     "inswapper_128.onnx (face swapper", "tiny_80.onnx (unrouted: input ?x3x80x80"):
        assert expected in message
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("not a model")
    with pytest.raises(ModelLoadError, match=r"empty: no insightface recognition model .* found no \.onnx files"):
        perface.load(empty)


def test_pack_folder_error_through_cli(decoys, capsys):
    from perface.cli.main import main

    assert main(["info", "--model", str(decoys)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("perface: ") and "det_10g.onnx (detection" in err[0]


def _manifest(folder: Path, recognition: dict) -> None:
    (folder / "MODEL.LICENSE").write_text("test")
    (folder / "manifest.json").write_text(json.dumps({
        "manifest_version": 2, "model_id": "test_pack", "license": "MODEL.LICENSE",
        "tasks": {"detection": {"file": "det_10g.onnx"}, "recognition": recognition}}))


def test_pack_manifest_version_2_names_the_recognition_model(tmp_path, decoys, r18_file):
    folder = _pack(tmp_path, decoys, r18_file)
    (folder / "models").mkdir()
    (folder / "models" / "arcface.onnx").hardlink_to(r18_file)
    _manifest(folder, {"file": "models/arcface.onnx"})  # the manifest, not the shapes, decides
    expected = load_model_package(folder).task("recognition").path  # insightface's parser
    assert pack_recognition_model(folder) == expected == (folder / "models" / "arcface.onnx").resolve()

    # A file that resolves outside the package (here a symbolic link) is refused, as insightface refuses it.
    (folder / "models" / "outside.onnx").symlink_to(r18_file)
    _manifest(folder, {"file": "models/outside.onnx"})
    with pytest.raises(ValueError, match="escapes the package"):
        load_model_package(folder)
    with pytest.raises(ModelLoadError, match="not an .onnx file inside the package folder"):
        pack_recognition_model(folder)

    _manifest(folder, {"file": "models/arcface.onnx", "preprocessing": "embedded"})
    assert load_model_package(folder).task("recognition").metadata["preprocessing"] == "embedded"
    with pytest.raises(ModelLoadError, match="manifest.json: the recognition model takes preprocessing 'embedded'"):
        pack_recognition_model(folder)
    _manifest(folder, {"file": "models/missing.onnx"})
    with pytest.raises(ModelLoadError, match="missing.onnx not found"):
        pack_recognition_model(folder)


# ----------------------------------------------------------------------------------------------- opencv


def test_cv2_works_beside_insightface(faces):
    """insightface requires opencv-python (the GUI build), PerFace opencv-python-headless: both write the
    same cv2 package. Whichever pip wrote last, cv2 must import beside insightface and do what both use."""
    installed = {}
    for dist in ("opencv-python", "opencv-python-headless"):
        try:
            installed[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            pass
    assert "opencv-python-headless" in installed
    # cv2 is one of the installed builds: the version every installed OpenCV wheel claims.
    assert {v.rsplit(".", 1)[0] for v in installed.values()} == {cv2.__version__}, (installed, cv2.__version__)
    assert int(insightface.__version__.split(".")[0]) >= 2
    _, image, points = faces[0]
    ok, encoded = cv2.imencode(".png", image)
    assert ok and np.array_equal(cv2.imdecode(encoded, cv2.IMREAD_UNCHANGED), image)
    blob = cv2.dnn.blobFromImages([image], 1.0 / 127.5, (112, 112), (127.5,) * 3, swapRB=True)
    assert blob.shape == (1, 3, 112, 112)
    chip = cv2.warpAffine(image, arcface_matrix(points), (112, 112), borderValue=0.0)
    assert chip.shape == (112, 112, 3) and chip.std() > 10
