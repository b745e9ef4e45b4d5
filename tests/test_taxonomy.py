import pytest
import yaml

from classifier.taxonomy import DEFAULT_TAXONOMY_PATH, TaxonomyError, load_taxonomy, parse_taxonomy, taxonomy_from_dict


def raw():
    return yaml.safe_load(DEFAULT_TAXONOMY_PATH.read_text(encoding="utf-8"))


def test_default_taxonomy_has_the_five_laarit_the_verdict_and_eight_tags(taxonomy):
    assert taxonomy.laari_ids == ["tyohyvinvointi", "tyokyky", "digitalisaatio", "osaaminen", "muutoskyky"]
    assert taxonomy.out_of_theme.id == "ei_teemassa"
    assert taxonomy.tag_ids == ["tyohyvinvointi", "psykososiaalinen_kuormitus", "tyoterveyshuolto",
                                "digitaaliset_ratkaisut", "tuottavuus", "jatkuva_oppiminen", "muutoskyvykkyys",
                                "johtaminen"]
    for laari in taxonomy.laarit:
        assert laari.assessment and len(laari.description) > 200 and laari.include and laari.exclude
    assert taxonomy.facet("lahestymistapa").value_ids() == ["reaktiivinen", "proaktiivinen"]
    assert "mikro_pk_yritykset" in taxonomy.facet("kohderyhma").value_ids()


def test_duplicate_laari_id_is_rejected_naming_the_field():
    data = raw()
    data["laarit"][2]["id"] = data["laarit"][0]["id"]
    with pytest.raises(TaxonomyError, match=r"laarit\[2\]\.id: duplicate id 'tyohyvinvointi'"):
        parse_taxonomy(data, "t.yaml")


def test_missing_field_is_rejected_naming_the_field():
    data = raw()
    del data["laarit"][1]["assessment"]
    with pytest.raises(TaxonomyError, match=r"t.yaml: laarit\[1\]\.assessment: missing field"):
        parse_taxonomy(data, "t.yaml")


def test_missing_tag_description_is_rejected():
    data = raw()
    data["tags"][3]["description"] = "  "
    with pytest.raises(TaxonomyError, match=r"tags\[3\]\.description: missing field"):
        parse_taxonomy(data, "t.yaml")


def test_unknown_top_level_facet_section_is_rejected():
    data = raw()
    data["fasetit"] = []
    with pytest.raises(TaxonomyError, match="unknown field.*fasetit"):
        parse_taxonomy(data, "t.yaml")


def test_duplicate_facet_value_is_rejected():
    data = raw()
    data["facets"][0]["values"].append(dict(data["facets"][0]["values"][0]))
    with pytest.raises(TaxonomyError, match=r"facets\[0\]\.values\[\d+\]\.id: duplicate id"):
        parse_taxonomy(data, "t.yaml")


def test_invalid_id_and_clash_with_verdict():
    data = raw()
    data["laarit"][0]["id"] = "Työ hyvinvointi"
    with pytest.raises(TaxonomyError, match="not a valid id"):
        parse_taxonomy(data, "t.yaml")
    data = raw()
    data["out_of_theme"]["id"] = "osaaminen"
    with pytest.raises(TaxonomyError, match="also a laari id"):
        parse_taxonomy(data, "t.yaml")


def test_bad_yaml_reports_file_and_line(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("version: 1\nlaarit:\n  - id: [unclosed\n", encoding="utf-8")
    with pytest.raises(TaxonomyError, match=r"bad.yaml: line \d+: not valid YAML"):
        load_taxonomy(bad)


def test_round_trip_through_bundle_form_keeps_the_hash(taxonomy):
    import json

    again = taxonomy_from_dict(json.loads(json.dumps(taxonomy.to_dict())))
    assert again.content_hash() == taxonomy.content_hash()


def test_diff_names_the_ids_that_differ(taxonomy):
    data = raw()
    data["laarit"] = data["laarit"][:4]
    data["tags"][0]["id"] = "hyvinvointi"
    other = parse_taxonomy(data, "other.yaml")
    diff = taxonomy.diff(other)
    assert diff["laarit"] == ["+muutoskyky"]
    assert sorted(diff["tags"]) == ["+tyohyvinvointi", "-hyvinvointi"]
