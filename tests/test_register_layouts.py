"""Known register exports (EURA 2021): the header found below a title row, names matched after trimming and
case-folding, id/title/description mapped without flags, the official columns carried, the footer rows skipped
(and only at the end), odd cell styles read without complaint, and a file of no known layout still needing its
column flags."""

from __future__ import annotations

import warnings

import pytest

from classifier.project_rows import Columns, InputReader
from classifier.register_layouts import EURA_2021, find_layout, fold, official_value
from classifier.tables import DataError, iter_rows
from tests.batch_fixtures import (
    EURA_2021_HEADER,
    eura_2021_projects,
    write_eura_2021_export,
    write_rows,
)

DESC = "Suunnitelman mukainen tiivistelmä hankkeen toteutuksesta"


@pytest.fixture()
def export(tmp_path, corpus_train):
    projects = eura_2021_projects(corpus_train, 12)
    return write_eura_2021_export(projects, tmp_path / "export.xlsx"), projects


def test_header_names_match_after_trimming_and_case_folding():
    assert fold("Hankekoodi ") == fold("HANKEKOODI") == "hankekoodi"
    assert find_layout(EURA_2021_HEADER) is EURA_2021
    assert find_layout([h.upper() + "  " for h in EURA_2021_HEADER]) is EURA_2021
    assert find_layout(EURA_2021_HEADER[:-1]) is None  # a column missing: not the export
    assert EURA_2021.kept == tuple(h.strip() for h in EURA_2021_HEADER if h != DESC)


def test_export_reads_without_flags_with_official_columns_and_footers_skipped(export):
    path, projects = export
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the export's style sheet must not make the reader warn
        reader = InputReader(path)
        rows = list(reader)
    assert reader.layout is EURA_2021
    assert reader.columns == Columns("Hankekoodi", "Hankkeen nimi", DESC)
    assert [r.id for r in rows] == [p["Hankekoodi"] for p in projects]
    assert [r.row for r in rows] == list(range(1, 13))
    assert rows[0].title == projects[0]["Hankkeen nimi"] and rows[0].description == projects[0][DESC]
    assert rows[0].official["Et"] == "4.1" and rows[1].official["Et"] == "4.4"
    assert rows[0].official["Aloituspvm"] == "2023-01-01" and rows[0].official["Suunniteltu rahoitus yhteensä"] \
        == "100000"
    assert rows[1].official["Suunniteltu rahoitus yhteensä"] == "101250.5"
    assert rows[1].official["Toissijainen teema, vain ESR+"] is None
    assert DESC not in rows[0].official and list(rows[0].official) == list(EURA_2021.kept)
    assert rows[3].description is None and rows[3].error is None  # a project without a summary stays a row
    assert [s["row"] for s in reader.skipped] == [13, 14]
    assert "'Yhteensä' is not a project code" in reader.skipped[0]["reason"]
    assert reader.skipped[1]["reason"].startswith("footer: 'Raportti luotu")


def test_rows_without_a_code_in_the_middle_are_error_rows_not_footers(tmp_path, corpus_train):
    projects = eura_2021_projects(corpus_train, 8, empty_summary_at=None)
    projects[2]["Hankekoodi"] = None
    projects[2][DESC] = None
    projects[7][DESC] = ""  # the last project has a code but no summary: a project, not a footer
    path = write_eura_2021_export(projects, tmp_path / "export.xlsx")
    reader = InputReader(path)
    rows = list(reader)
    assert len(rows) == 8 and rows[2].error == "id: empty (column 'Hankekoodi')"
    assert rows[7].id == "S30008" and rows[7].error is None
    assert len(reader.skipped) == 2


def test_other_column_names_still_win_and_unknown_layouts_need_flags(tmp_path, export, corpus_train):
    path, projects = export
    reader = InputReader(path, Columns(id="toteuttajan y-tunnus", title="Hankkeen nimi", description=DESC.upper()))
    rows = list(reader)
    assert reader.columns.id == "Toteuttajan Y-tunnus" and reader.columns.description == DESC
    assert rows[0].id == projects[0]["Toteuttajan Y-tunnus"] and rows[10].error.startswith("id: duplicate")
    plain = write_rows([{"id": "A1", "title": "t", "description": "d"}], tmp_path / "plain.xlsx")
    with pytest.raises(DataError) as exc:
        list(InputReader(plain, Columns(id="Hankekoodi")))
    assert "no column 'Hankekoodi'" in str(exc.value) and "['description', 'id', 'title']" in str(exc.value)
    assert [r.id for r in InputReader(plain)] == ["A1"]
    renamed = [{("Tunnus" if k == "Hankekoodi" else k): v for k, v in p.items()} for p in projects[:3]]
    header = ["Tunnus" if h.strip() == "Hankekoodi" else h for h in EURA_2021_HEADER]
    odd = write_eura_2021_export(renamed, tmp_path / "odd.xlsx", header=header)
    with pytest.raises(DataError) as exc:
        list(InputReader(odd))
    assert "no column 'id', 'description'" in str(exc.value) and "'Tunnus'" in str(exc.value)
    assert "looks like an EURA 2021 export without 'Hankekoodi'" in str(exc.value)
    rows = list(InputReader(odd, Columns(id="tunnus", title="hankkeen nimi", description=DESC)))
    assert [r.id for r in rows][:3] == [p["Hankekoodi"] for p in projects[:3]]
    assert len(rows) == 5 and rows[3].id == "Yhteensä"  # no known layout: no footer is recognised


def test_header_is_found_below_title_and_blank_rows(export):
    path, projects = export
    first = next(iter_rows(path))
    assert first[0] == 1 and first[1]["Hankekoodi"] == projects[0]["Hankekoodi"]
    assert "Hankekoodi " not in first[1]  # names trimmed


def test_official_values():
    import datetime as dt

    assert official_value(EURA_2021, "Aloituspvm", dt.datetime(2024, 2, 29)) == "2024-02-29"
    assert official_value(EURA_2021, "Tl", 4.0) == "4"
    assert official_value(EURA_2021, "Et", "  ") is None
    assert official_value(EURA_2021, "Et", float("nan")) is None
