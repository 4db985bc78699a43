import json

from perface.cli.main import main


def test_info_json(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("PERFACE_CACHE", str(tmp_path / "c"))
    assert main(["info", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["model"]["embedding_dim"] == 128 and info["model"]["backbone"] == "dlib_resnet"
    assert info["cache_dir"] == str((tmp_path / "c").resolve())
    assert info["dlib_weights"].endswith("dlib_face_recognition_resnet_model_v1.dat")
    assert "base" in info["models_available"] and "iresnet50" in info["models_available"]
