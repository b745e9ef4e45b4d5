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


def test_content_hash_is_the_sha256_of_the_utf8_text():
    # a fixed value: the hash keys stored caches and feedback, so it must not change between versions
    assert content_hash("työ") == "425f9255c4a356bf88cee92cce07d7b8cf3fc8b276453ea87dc526a45e5d385f"
    assert content_hash("työ") != content_hash("tyo")


def test_normalize_drops_every_control_and_format_character_and_keeps_the_rest():
    import random
    import unicodedata

    from classifier.text import _MAYBE_CONTROL

    # every character the fast path lets through unchecked is of a category other than C
    for cp in range(0x110000):
        ch = chr(cp)
        if not _MAYBE_CONTROL.match(ch) and ch not in "\n\t":
            assert unicodedata.category(ch)[0] != "C", hex(cp)
    rng = random.Random(0)
    pool = [chr(c) for c in rng.sample(range(0x20, 0x30000), 3000)] + list("\u00ad\u200b\ufeff\x00\x07\u202eäöå ")
    text = "".join(rng.choice(pool) for _ in range(5000))
    want = "".join(ch for ch in unicodedata.normalize("NFC", text)
                   if ch in "\n\t" or unicodedata.category(ch)[0] != "C")
    assert normalize(text) == normalize(want)
    assert not any(unicodedata.category(ch)[0] == "C" and ch not in "\n\t" for ch in normalize(text))
