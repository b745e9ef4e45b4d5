"""The `laari` command end to end: train, predict (argument, file, stdin, batch file), evaluate, models."""

import json

import pytest
from typer.testing import CliRunner

from laari.cli import app
from tests.conftest import take


def write_labelled(path, data):
    with open(path, "w", encoding="utf-8") as f:
        for i in range(len(data)):
            f.write(json.dumps({"id": data.ids[i], "title": data.titles[i], "description": data.descriptions[i],
                                "laari": data.laari[i], "tags": data.tags[i]}, ensure_ascii=False) + "\n")
    return path


@pytest.fixture(scope="module")
def env(tmp_path_factory, corpus_train, corpus_heldout):
    root = tmp_path_factory.mktemp("cli")
    train = write_labelled(root / "train.jsonl", take(corpus_train, 12))
    held = write_labelled(root / "held.jsonl", take(corpus_heldout, 2))
    mp = pytest.MonkeyPatch()
    mp.setenv("LAARI_MODELS_DIR", str(root / "models"))
    mp.setenv("LAARI_EMBEDDING_CACHE", str(root / "cache.sqlite"))
    runner = CliRunner()
    result = runner.invoke(app, ["train", "--data", str(train), "--channels", "lexical", "--version", "lex1",
                                 "--json"])
    assert result.exit_code == 0, result.output
    yield {"root": root, "train": train, "held": held, "runner": runner, "summary": json.loads(result.stdout)}
    mp.undo()


def run(env, *args, input=None):
    return env["runner"].invoke(app, list(args), input=input)


def test_train_reports_version_and_cv(env):
    s = env["summary"]
    assert s["version"] == "lex1" and s["channel_choice"] == "lexical" and s["current"] is True
    assert 0 < s["cv"]["router_macro_f1"] <= 1


def test_predict_text_prints_laari_tags_fit_and_reasons(env):
    r = run(env, "predict", "--title", "Varhaisen tuen malli",
            "Työterveyshuolto ja esihenkilöt ottavat käyttöön varhaisen tuen mallin. Sairauspoissaolot vähenevät.")
    assert r.exit_code == 0, r.output
    for word in ("laari:", "runner-up", "fit:", "tags:", "why:", "similar:", "model lex1"):
        assert word in r.stdout, word


def test_predict_json_from_stdin_and_file(env, tmp_path):
    text = "Pk-yritysten henkilöstön digitaitoja kehitetään mikro-opinnoilla ja työssä oppimisella."
    r = run(env, "predict", "--json", input=text)
    assert r.exit_code == 0, r.output
    d = json.loads(r.stdout)
    assert {"laari", "laari_scores", "fit", "fit_verdict", "tags", "tag_scores", "explanation",
            "model_version"} <= set(d)
    f = tmp_path / "kuvaus.txt"
    f.write_text(text, encoding="utf-8")
    r2 = run(env, "predict", "--json", "--file", str(f))
    assert json.loads(r2.stdout)["laari_scores"] == d["laari_scores"]


def test_predict_empty_text_is_an_error(env):
    r = run(env, "predict", "   ")
    assert r.exit_code == 1 and "description: empty" in r.output


def test_batch_predict_contract_and_bad_lines(env, tmp_path):
    inp = tmp_path / "in.jsonl"
    inp.write_text("\n".join([
        json.dumps({"id": "p1", "title": "", "description": "Nuorten työpaja ja etsivä nuorisotyö Oulussa."}),
        "{broken json",
        json.dumps({"id": "p2", "title": "Tyhjä", "description": "  "}),
        json.dumps({"id": "p1", "title": "", "description": "Sama id uudelleen, työhyvinvointia kotihoitoon."}),
    ]) + "\n", encoding="utf-8")
    out = tmp_path / "out.jsonl"
    r = run(env, "predict", "--input", str(inp), "--output", str(out))
    assert r.exit_code == 0, r.output
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    # one output row per input row, in order: the broken line is an error row, not a lost one
    assert [x["row"] for x in rows] == [1, 2, 3, 4]
    assert [x["id"] for x in rows] == ["p1", None, "p2", "p1"]
    assert rows[0]["error"] is None and rows[0]["laari"] and rows[0]["model_version"] == "lex1"
    assert "invalid JSON" in rows[1]["error"]
    assert "empty" in rows[2]["error"] and "duplicate id" in rows[3]["error"]
    for key in ("id", "laari", "laari_scores", "fit", "fit_verdict", "tags", "tag_scores", "explanation",
                "model_version"):
        assert key in rows[0]


def test_evaluate_writes_report(env, tmp_path):
    r = run(env, "evaluate", "--data", str(env["held"]), "--report", str(tmp_path / "rep"), "--json")
    assert r.exit_code == 0, r.output
    m = json.loads(r.stdout)[str(env["held"])]
    assert m["n"] == 12 and len(m["laari"]["confusion"]["matrix"]) == 6
    folder = tmp_path / "rep"
    assert (folder / "confusion.png").stat().st_size > 1000
    assert "<table>" in (folder / "report.html").read_text()
    assert "Confusion matrix" in (folder / "report.md").read_text()


def test_models_list_show_promote(env):
    r = run(env, "train", "--data", str(env["train"]), "--channels", "lexical", "--version", "lex2",
            "--no-promote", "--json")
    assert r.exit_code == 0, r.output
    listed = json.loads(run(env, "models", "list", "--json").stdout)
    assert {x["version"]: x["current"] for x in listed} == {"lex1": True, "lex2": False}
    # same data and settings: the same bundle hash
    assert listed[0]["bundle_hash"] == listed[1]["bundle_hash"]
    assert run(env, "models", "promote", "lex2").exit_code == 0
    shown = json.loads(run(env, "models", "show").stdout)
    assert shown["version"] == "lex2" and shown["channel_choice"] == "lexical"
    assert run(env, "models", "promote", "nope").exit_code == 1
    run(env, "models", "promote", "lex1")


def test_unknown_label_in_training_data_is_listed(env, tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"id": "x", "title": "", "description": "teksti", "laari": "kulttuuri",
                               "tags": ["uusi"]}) + "\n", encoding="utf-8")
    r = run(env, "train", "--data", str(bad), "--channels", "lexical")
    assert r.exit_code == 1
    assert "unknown label 'kulttuuri'" in r.output and "unknown tag 'uusi'" in r.output


def test_zero_shot_model_predicts(env):
    r = run(env, "train", "--zero-shot", "--version", "zs", "--no-promote", "--json")
    assert r.exit_code == 0, r.output
    r = run(env, "predict", "--model", "zs", "--json",
            "Tekoälyn ja ohjelmistorobotiikan käyttöönotto kunnan taloushallinnossa tuottavuuden parantamiseksi.")
    assert r.exit_code == 0, r.output
    d = json.loads(r.stdout)
    assert d["laari"] == "digitalisaatio" and d["model_version"] == "zs"


def test_taxonomy_check(env, tmp_path):
    from classifier.taxonomy import DEFAULT_TAXONOMY_PATH

    assert "ok: 5 laarit" in run(env, "taxonomy", "check", str(DEFAULT_TAXONOMY_PATH)).stdout
    bad = tmp_path / "t.yaml"
    bad.write_text(DEFAULT_TAXONOMY_PATH.read_text(encoding="utf-8").replace("id: tyokyky", "id: tyohyvinvointi"),
                   encoding="utf-8")
    r = run(env, "taxonomy", "check", str(bad))
    assert r.exit_code == 1 and "duplicate id 'tyohyvinvointi'" in r.output


def test_model_and_taxonomy_mismatch_is_refused(env, tmp_path):
    from classifier.taxonomy import DEFAULT_TAXONOMY_PATH

    other = tmp_path / "other.yaml"
    other.write_text(DEFAULT_TAXONOMY_PATH.read_text(encoding="utf-8").replace("id: johtaminen", "id: esihenkilotyo"),
                     encoding="utf-8")
    r = run(env, "predict", "--taxonomy", str(other), "Työhyvinvointia kotihoitoon.")
    assert r.exit_code == 1
    assert "+johtaminen" in r.output and "-esihenkilotyo" in r.output


def test_train_priors_setting_is_checked(env):
    r = run(env, "train", "--data", str(env["train"]), "--channels", "lexical", "--priors", "ei_teemassa")
    assert r.exit_code == 1 and "is not verdict=share" in r.output
    r = run(env, "train", "--data", str(env["train"]), "--channels", "lexical", "--priors", "nope=1",
            "--no-promote", "--version", "bad-priors")
    assert r.exit_code == 1 and "unknown verdict" in r.output
