"""`perface export`: writes a checked ONNX file; bad requests are one-line errors."""

import contextlib
import io
import json

import pytest

import perface
from perface.cli.main import main

FACES = ("Aaron_Peirsol/Aaron_Peirsol_0001.jpg", "Abdullah_Gul/Abdullah_Gul_0001.jpg")


@pytest.fixture(scope="module")
def exported(lfw, tmp_path_factory):
    out = tmp_path_factory.mktemp("cli-export") / "base.onnx"
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        code = main(["export", "--model", "base", "--out", str(out), "--json", "--check-images",
                     *[str(lfw / "images" / f) for f in FACES]])
    return out, code, stdout.getvalue()


def test_export_json_and_load(exported):
    out, code, stdout = exported
    assert code == 0
    result = json.loads(stdout)
    assert result["path"] == str(out) and result["max_abs_diff"] <= 1e-4
    assert result["n_real_chips"] == 2 and result["n_synthetic_chips"] == 4 and result["opset"] == 17
    assert result["metadata"]["perface.embedding_dim"] == "128"
    model = perface.load(out)
    assert type(model).__name__ == "OnnxPerFace" and model.embedding_dim == 128
    assert model.metadata["perface.backbone"] == "dlib_resnet"
    assert float(model.metadata["perface.parity_max_abs"]) <= 1e-4


def test_export_plain_line_and_synthetic_note(tmp_path, capsys):
    from perface.model import PerFace

    pt = PerFace(head_dim=64, name="small").save(tmp_path / "small.pt")
    out = tmp_path / "sub" / "small.onnx"
    assert main(["export", "--model", str(pt), "--out", str(out), "--opset", "18"]) == 0
    std = capsys.readouterr()
    assert std.out.startswith(f"perface: wrote {out} (dlib_resnet, 150px dlib chips, 64-d, opset 18)")
    assert "parity max |onnx - torch| = " in std.out and "0 real + 4 synthetic" in std.out
    assert "--check-images" in std.err and std.err.count("\n") == 1
    assert perface.load(out).embedding_dim == 64


@pytest.mark.parametrize(
    "args, code, needle",
    [
        (["export", "--model", "base"], 2, "--out"),
        (["export", "--model", "base", "--out", "{tmp}/m.bin"], 2, ".onnx"),
        (["export", "--model", "base", "--out", "{tmp}/m.onnx", "--opset", "7"], 2, "--opset 7"),
        (["export", "--model", "base", "--out", "{tmp}/m.onnx", "--tolerance", "0"], 2, "--tolerance"),
        (["export", "--model", "{tmp}/missing.pt", "--out", "{tmp}/m.onnx"], 1, "missing.pt"),
        (["export", "--model", "base", "--out", "{tmp}/m.onnx", "--check-images", "{tmp}/nope.jpg"], 1, "nope.jpg"),
        (["export", "--model", "{exported}", "--out", "{tmp}/m.onnx"], 2, "already a PerFace ONNX export"),
    ],
)
def test_errors_are_one_line(args, code, needle, tmp_path, exported, capsys):
    capsys.readouterr()
    args = [a.format(tmp=tmp_path, exported=exported[0]) for a in args]
    assert main(args) == code
    err = capsys.readouterr().err
    assert err.startswith("perface:") and err.count("\n") == 1 and needle in err, err
    assert not (tmp_path / "m.onnx").exists()
