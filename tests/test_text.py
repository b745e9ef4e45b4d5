from classifier.text import content_hash, document_text, language_check, normalize, split_sentences


def test_normalize_unifies_space_and_line_breaks():
    assert normalize("  Hanke\r\n\r\n\r\n  kehittää\t\ttyö-\u00a0hyvinvointia \x07") == "Hanke\n\nkehittää työ- hyvinvointia"


def test_document_text_puts_title_first():
    assert document_text("JAKSO", " Kuvaus. ") == "JAKSO\n\nKuvaus."
    assert document_text("", "Kuvaus.") == "Kuvaus."


def test_sentences_respect_abbreviations_and_bullets():
    text = ("Hankkeessa kehitetään mm. työterveyshuollon prosesseja esim. Kainuussa. Toinen lause alkaa tästä!\n"
            "- ensimmäinen toimenpide\n• toinen toimenpide")
    assert split_sentences(text) == [
        "Hankkeessa kehitetään mm. työterveyshuollon prosesseja esim. Kainuussa.",
        "Toinen lause alkaa tästä!", "ensimmäinen toimenpide", "toinen toimenpide"]


def test_language_check_tells_finnish_from_english():
    fi = "Hankkeen tavoitteena on parantaa työhyvinvointia ja vähentää kuormitusta pk-yrityksissä sekä kunnissa."
    en = "The project develops wellbeing at work and reduces the load of employees in small companies and towns."
    assert language_check(fi)["language"] == "fi"
    assert language_check(en)["language"] == "other"


def test_content_hash_is_stable():
    assert content_hash("työ") == content_hash("työ") != content_hash("tyo")
