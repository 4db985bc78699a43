"""scripts/reference_images.py: LFW people outside every protocol file, on the real LFW folder."""

from pathlib import Path


REPO = Path(__file__).resolve().parents[2]


def test_lists_only_people_in_no_pairs_file_and_matches_the_committed_list(lfw, script, tmp_path):
    from perface.evaluation.verification import read_lfw_pairs

    mod = script("reference_images")
    out = tmp_path / "list.txt"
    assert mod.main(["--lfw", str(lfw), "--out", str(out)]) == 0
    paths = [ln for ln in out.read_text().splitlines() if not ln.startswith("#")]
    assert len(paths) > 500 and all(ln.startswith("lfw/images/") and (lfw.parent / ln).is_file() for ln in paths)
    named = set()
    for name in ("pairs.txt", "pairsDevTrain.txt", "pairsDevTest.txt"):
        frame = read_lfw_pairs(lfw / name).frame
        named |= {p.split("/")[0] for col in ("a", "b") for p in frame[col]}
    people = {ln.split("/")[2] for ln in paths}
    assert not people & named  # no person the model is verified or selected on
    everyone = {d.name for d in (lfw / "images").iterdir() if d.is_dir()}
    assert people == everyone - named  # and every other person, with all their photos
    committed = (REPO / "data" / "reference" / "lfw_outside_protocols.txt").read_text().splitlines()
    assert [ln for ln in committed if not ln.startswith("#")] == paths


def test_a_folder_without_the_protocol_files_is_a_one_line_error(script, tmp_path, capsys):
    (tmp_path / "images").mkdir()
    assert script("reference_images").main(["--lfw", str(tmp_path), "--out", str(tmp_path / "x.txt")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no pairs.txt, pairsDevTrain.txt, pairsDevTest.txt" in err[0]
    assert not (tmp_path / "x.txt").exists()
