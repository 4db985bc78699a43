
from perface.cache import cache_dir, file_sha256


def test_argument_then_env_then_user_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("PERFACE_CACHE", str(tmp_path / "env"))
    assert cache_dir(tmp_path / "arg") == (tmp_path / "arg").resolve()
    assert cache_dir() == (tmp_path / "env").resolve()
    monkeypatch.delenv("PERFACE_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir(create=False) == (tmp_path / "xdg" / "perface").resolve()
    assert not (tmp_path / "xdg" / "perface").exists()  # create=False creates nothing


def test_file_sha256(tmp_path):
    f = tmp_path / "x.bin"
    f.write_bytes(b"abc")
    assert file_sha256(f) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
