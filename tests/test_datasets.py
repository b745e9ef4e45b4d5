import json

import pandas as pd
import pytest

from classifier.tables import DataError, RowError, iter_records
from training.datasets import load_labelled

ROWS = [
    {"id": "a1", "title": "Jaksamo", "description": "Työhyvinvointia kotihoitoon.", "laari": "tyohyvinvointi",
     "tags": ["tyohyvinvointi"]},
    {"id": "a2", "title": "", "description": "Nuorten työpaja Kajaanissa.", "laari": "ei_teemassa", "tags": []},
]


def write_jsonl(path, rows, extra_lines=()):
    lines = [json.dumps(r, ensure_ascii=False) for r in rows] + list(extra_lines)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_invalid_json_line_names_the_line(tmp_path):
    p = write_jsonl(tmp_path / "x.jsonl", ROWS, ['{"id": "a3", "description": '])
    with pytest.raises(DataError, match=r"x.jsonl: line 3: invalid JSON"):
        list(iter_records(p))
    rejects: list[RowError] = []
    got = list(iter_records(p, skip_invalid=True, rejects=rejects))
    assert [n for n, _ in got] == [1, 2] and rejects[0].row == 3


def test_unknown_labels_and_tags_are_listed(tmp_path, taxonomy):
    rows = [dict(ROWS[0], laari="kulttuuri"), dict(ROWS[1], tags=["hyvinvointi", "tyohyvinvointi"]),
            dict(ROWS[0], id="a3", laari="kulttuuri")]
    p = write_jsonl(tmp_path / "x.jsonl", rows)
    with pytest.raises(DataError) as err:
        load_labelled(p, taxonomy)
    msg = str(err.value)
    assert "unknown label 'kulttuuri' on line(s) [1, 3]" in msg
    assert "unknown tag 'hyvinvointi' on line(s) [2]" in msg


def test_missing_column_is_named(tmp_path, taxonomy):
    p = write_jsonl(tmp_path / "x.jsonl", [{k: v for k, v in ROWS[0].items() if k != "laari"}])
    with pytest.raises(DataError, match=r"line 1: missing column\(s\) \['laari'\]"):
        load_labelled(p, taxonomy)


def test_duplicate_ids_and_empty_text(tmp_path, taxonomy):
    p = write_jsonl(tmp_path / "x.jsonl", [ROWS[0], ROWS[0], dict(ROWS[1], description="  ")])
    with pytest.raises(DataError) as err:
        load_labelled(p, taxonomy)
    assert "duplicate id 'a1' (first on line 1)" in str(err.value)
    assert "line 3: description: empty" in str(err.value)


@pytest.mark.parametrize("suffix", [".csv", ".tsv", ".parquet", ".xlsx"])
def test_tabular_formats_read_the_same(tmp_path, taxonomy, suffix):
    df = pd.DataFrame([dict(r, tags=",".join(r["tags"])) for r in ROWS])
    p = tmp_path / f"x{suffix}"
    if suffix == ".csv":
        df.to_csv(p, index=False)
    elif suffix == ".tsv":
        df.to_csv(p, index=False, sep="\t")
    elif suffix == ".parquet":
        df.to_parquet(p)
    else:
        df.to_excel(p, index=False)
    data = load_labelled(p, taxonomy)
    assert data.ids == ["a1", "a2"] and data.laari == ["tyohyvinvointi", "ei_teemassa"]
    assert data.tags == [["tyohyvinvointi"], []]


def test_unknown_file_type(tmp_path):
    p = tmp_path / "x.doc"
    p.write_text("x")
    with pytest.raises(DataError, match="unknown file type"):
        list(iter_records(p))


def test_windows_1252_csv_is_read_and_a_mixed_file_is_refused_with_offset(tmp_path):
    p = tmp_path / "x.csv"
    p.write_bytes("id;description\n1;Työ ja €\n".encode("cp1252"))  # as Finnish Excel saves it
    assert [r for _, r in iter_records(p)] == [{"id": "1", "description": "Työ ja €"}]
    p.write_bytes("id,description\n1,Työ\n".encode("utf-8") + b"2,Ty\xf6\n")  # UTF-8 with one bad line
    with pytest.raises(DataError, match="not UTF-8"):
        list(iter_records(p))
