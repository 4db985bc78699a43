"""perface.io.tables: tab-separated text read like CSV (by extension or by a tabbed header), CSV unchanged."""

import pandas as pd
import pytest

from perface.errors import LabelFileError
from perface.io.tables import delimiter, read_table, text_table


def test_tsv_and_csv_read_alike(tmp_path):
    frame = pd.DataFrame({"source": ["a b.jpg", "c,d.jpg"], "target": ["x.jpg", ""], "result": ["r.png", "s.png"]})
    frame.to_csv(tmp_path / "p.csv", index=False)
    frame.to_csv(tmp_path / "p.tsv", sep="\t", index=False)
    frame.to_csv(tmp_path / "p.txt", sep="\t", index=False)  # tabbed header, no comma: sniffed
    for name in ("p.csv", "p.tsv", "p.txt"):
        got, kind = read_table(tmp_path / name)
        assert kind == "csv" and got.equals(frame.astype(str).replace("nan", "")), name
    assert [delimiter(tmp_path / n) for n in ("p.csv", "p.tsv", "p.txt")] == [",", "\t", "\t"]
    (tmp_path / "one.csv").write_text("path\na\tb.jpg\n")  # a comma-less CSV keeps its tab inside the cell
    assert read_table(tmp_path / "one.csv")[0]["path"].tolist() == ["a\tb.jpg"]
    (tmp_path / "bad.tsv").write_text('a\tb\n"x\ty\n')
    with pytest.raises(LabelFileError, match="bad.tsv"):
        read_table(tmp_path / "bad.tsv", error=LabelFileError)


def test_text_table_aligns_columns():
    assert text_table([["a", "bb"], ["ccc", "d"]]) == ["a    bb", "ccc  d"]
    assert text_table([]) == []
