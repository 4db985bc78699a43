"""Image collection: symbolic links to folders and files are followed, each real file counted once, link loops
reported; the dataset root and the folder a table's paths are relative to."""

from __future__ import annotations

import os

import pandas as pd
import pytest

from perface.errors import FileCollectionError, SettingsError
from perface.io.files import collect_images, data_root, resolve_root

PEOPLE = ("Aaron_Peirsol", "Colin_Powell", "Serena_Williams", "Tony_Blair")


@pytest.fixture()
def linked(tmp_path, lfw):
    """``tmp/linked``: a folder of symbolic links to LFW identity folders (how datasets are assembled)."""
    root = tmp_path / "linked"
    root.mkdir()
    for name in PEOPLE:
        (root / name).symlink_to(lfw / "images" / name, target_is_directory=True)
    return root


def test_links_to_folders_and_files_are_followed_once(linked, lfw, tmp_path):
    found = collect_images([linked])
    expected = sum(len(list((lfw / "images" / n).glob("*.jpg"))) for n in PEOPLE)
    assert len(found.files) == expected and not found.loops and not found.duplicates
    assert all(f.startswith(str(linked)) for f in found.files)  # paths as found, links not resolved
    # a link to a file already listed, a second link to a whole folder, the same file named twice: each once
    (linked / "again.jpg").symlink_to(lfw / "images" / "Tony_Blair" / "Tony_Blair_0001.jpg")
    (linked / "blair_too").symlink_to(lfw / "images" / "Tony_Blair", target_is_directory=True)
    again = collect_images([linked, lfw / "images" / "Tony_Blair" / "Tony_Blair_0002.jpg"])
    assert len(again.files) == expected
    assert len(again.duplicates) == 1 + len(list((lfw / "images" / "Tony_Blair").glob("*.jpg"))) + 1
    assert "each file is used once" in again.notes()[0]


def test_link_loops_are_reported_not_followed(tmp_path, lfw):
    top = tmp_path / "top"
    (top / "inner").mkdir(parents=True)
    (top / "inner" / "a.jpg").symlink_to(lfw / "images" / "Colin_Powell" / "Colin_Powell_0001.jpg")
    (top / "inner" / "back").symlink_to(top, target_is_directory=True)  # inner/back -> top: a loop
    found = collect_images([top])
    assert [os.path.basename(f) for f in found.files] == ["a.jpg"]
    assert found.loops == [(str(top / "inner" / "back"), str(top))]
    assert "loop" in found.notes()[0]


def test_nothing_found_is_one_clear_error(tmp_path):
    (tmp_path / "notes.txt").write_text("no images here")
    with pytest.raises(FileCollectionError, match="no image files found in .* \\(looked for .*\\.jpg"):
        collect_images([tmp_path])
    missing = tmp_path / "missing.jpg"  # named files are kept (they become error rows), whatever they are
    assert collect_images([missing]).files == [str(missing)]


def test_gallery_from_a_folder_of_links(linked, tmp_path, capsys):
    from perface.cli.main import main
    from perface.selection import Gallery

    out = tmp_path / "g.parquet"
    assert main(["gallery", "build", str(linked), "--out", str(out), "--max-identity-sim", "0.92",
                 "--no-progress"]) == 0
    gallery = Gallery.load(out)
    assert sorted(gallery.identities) == sorted(PEOPLE)


def test_data_root_and_table_roots(tmp_path, monkeypatch, lfw):
    monkeypatch.setenv("PERFACE_DATA", str(lfw.parent))
    assert data_root() == lfw.parent.resolve()
    assert data_root(tmp_path) == tmp_path.resolve()
    with pytest.raises(SettingsError, match="not a folder"):
        data_root(tmp_path / "nope")
    monkeypatch.setenv("PERFACE_DATA", str(tmp_path / "nope"))
    with pytest.raises(SettingsError, match="PERFACE_DATA=.*not a folder"):
        data_root()
    monkeypatch.setenv("PERFACE_DATA", str(lfw.parent))
    # a table's paths: its folder, its images/ subfolder, then the dataset root, whichever holds the first image
    table = tmp_path / "t.csv"
    pd.DataFrame({"path": ["lfw/images/Tony_Blair/Tony_Blair_0001.jpg"]}).to_csv(table, index=False)
    assert resolve_root(table, ["lfw/images/Tony_Blair/Tony_Blair_0001.jpg"]) == lfw.parent.resolve()
    assert resolve_root(lfw / "pairs.txt", ["Tony_Blair/Tony_Blair_0001.jpg"]) == (lfw / "images").resolve()
    assert resolve_root(table, ["x.jpg"], root=tmp_path) == tmp_path.resolve()
    with pytest.raises(SettingsError, match="--root .*not a folder"):
        resolve_root(table, [], root=tmp_path / "nope")
