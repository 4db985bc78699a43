"""OnnxPerFace: an exported model through ONNX Runtime, matching torch, without importing torch."""

import json
import subprocess
import sys

import numpy as np
import onnx
import pytest

import perface
from perface.cli.main import main
from perface.errors import ModelLoadError
from perface.export import export_onnx
from perface.onnx_model import OnnxPerFace

A1 = "Aaron_Peirsol/Aaron_Peirsol_0001.jpg"
A2 = "Aaron_Peirsol/Aaron_Peirsol_0002.jpg"
B1 = "Abdullah_Gul/Abdullah_Gul_0001.jpg"


@pytest.fixture(scope="module")
def onnx_path(lfw, tmp_path_factory):
    out = tmp_path_factory.mktemp("onnx") / "base.onnx"
    export_onnx(perface.load("base", engine="torch"), out, images=[lfw / "images" / p for p in (A1, A2, B1)])
    return out


def test_loads_with_metadata_preprocessing(onnx_path):
    import onnxruntime as ort

    model = perface.load(onnx_path, threads=1)
    assert isinstance(model, OnnxPerFace) and model.name == "base" and model.embedding_dim == 128
    opts = model.session.get_session_options()
    assert opts.intra_op_num_threads == 1
    assert opts.graph_optimization_level == ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    assert model.preprocessing.size == 150 and model.preprocessing.alignment == "dlib"
    # the export records the torch model's weights digest: both engines share embedding caches and galleries
    assert model.identity() == perface.load("base", engine="torch").identity()


def test_onnx_score_matches_torch_and_never_imports_torch(onnx_path, lfw, tmp_path, capsys):
    img = lfw / "images"
    out = tmp_path / "emb.parquet"
    code = (
        "import json, sys\n"
        "from perface.cli.main import main\n"
        f"rc1 = main(['score', '--json', '--model', {str(onnx_path)!r}, {str(img / A1)!r}, {str(img / B1)!r}])\n"
        f"rc2 = main(['embed', {str(img / A1)!r}, {str(img / A2)!r}, '--model', {str(onnx_path)!r}, '--out', "
        f"{str(out)!r}, '--no-progress', '--workers', '0'])\n"
        "print(json.dumps({'rc': [rc1, rc2], 'torch': 'torch' in sys.modules}))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    status = json.loads(lines[-1])
    assert status == {"rc": [0, 0], "torch": False}, proc.stderr
    onnx_score = json.loads(lines[0])
    assert main(["score", "--json", str(img / A1), str(img / B1)]) == 0
    torch_score = json.loads(capsys.readouterr().out)
    assert onnx_score["model"] == torch_score["model"] == "base"
    assert abs(onnx_score["score"] - torch_score["score"]) <= 1e-4
    assert onnx_score["faces"] == torch_score["faces"]
    import pyarrow.parquet as pq

    emb = np.stack(pq.read_table(out).column("embedding").to_pylist())
    torch_emb = perface.load("base", engine="torch").embed([img / A1, img / A2])
    assert np.abs(emb - torch_emb).max() <= 1e-4


def test_plain_score_output_matches(onnx_path, lfw, capsys):
    img = lfw / "images"
    assert main(["score", "--model", str(onnx_path), "--threads", "1", str(img / A1), str(img / A2)]) == 0
    onnx_val = float(capsys.readouterr().out)
    assert main(["score", str(img / A1), str(img / A2)]) == 0
    assert onnx_val == pytest.approx(float(capsys.readouterr().out), abs=1e-4)


def _rewrite(src, dst, meta):
    proto = onnx.load(str(src))
    del proto.metadata_props[:]
    for k, v in meta.items():
        proto.metadata_props.add(key=k, value=v)
    onnx.save(proto, str(dst))


def test_damaged_or_foreign_files(onnx_path, tmp_path, lfw, capsys):
    meta = {p.key: p.value for p in onnx.load(str(onnx_path)).metadata_props}
    damaged = tmp_path / "damaged.onnx"
    _rewrite(onnx_path, damaged, {**meta, "perface.config": "{not json"})
    with pytest.raises(ModelLoadError, match="damaged 'perface.config'"):
        OnnxPerFace(damaged)
    foreign = tmp_path / "foreign.onnx"
    _rewrite(onnx_path, foreign, {})
    with pytest.raises(ModelLoadError, match="not a PerFace export"):
        OnnxPerFace(foreign)
    wrong_size = tmp_path / "wrong.onnx"
    config = json.loads(meta["perface.config"])
    config["preprocessing"]["size"] = 112
    _rewrite(onnx_path, wrong_size, {**meta, "perface.config": json.dumps(config)})
    with pytest.raises(ModelLoadError, match="does not match"):
        OnnxPerFace(wrong_size)
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"this is not a protobuf" * 10)
    img = str(lfw / "images" / A1)
    assert main(["score", "--model", str(garbage), img, img]) == 1
    err = capsys.readouterr().err
    assert err.startswith("perface:") and err.count("\n") == 1 and "garbage.onnx" in err
