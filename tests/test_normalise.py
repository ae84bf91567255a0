"""Noise masks, fingerprints, similarity, change summaries and cited-passage search."""

from __future__ import annotations

import random

import pytest

from crawler.normalise import (
    NUMBER,
    TIME,
    TOKEN,
    change_summary,
    fingerprint,
    normalise,
    passage_present,
    similarity,
)

ALERT = (
    "Security Alert - U.S. Embassy Kabul, August 26, 2021\n"
    "Location: Kabul, Afghanistan\n"
    "Event: An explosion near Abbey Gate killed 13 people at 17:48.\n"
    "U.S. citizens should avoid traveling to the airport and avoid airport gates."
)


def same(a: str, b: str) -> bool:
    return fingerprint(a) == fingerprint(b)


# ---- noise is not a change, and the same kind of edit next to it is -------------------

NOISE_PAIRS = [
    pytest.param("Updated 12:34 — stay away", "Updated 12:41 — stay away", id="clock"),
    pytest.param("Posted 9:05:01 PM today", "Posted 11:17:45 AM today", id="clock-seconds-ampm"),
    pytest.param("Mis à jour à 15h30", "Mis à jour à 16h05", id="clock-15h30"),
    pytest.param("@StateDept · 2h\nAvoid the gates.", "@StateDept · 3h\nAvoid the gates.", id="2h"),
    pytest.param("Avoid the gates.\n45m", "Avoid the gates.\n1d", id="compact-line"),
    pytest.param("Updated 4 minutes ago\nAvoid.", "Updated 2 hours ago\nAvoid.", id="ago"),
    pytest.param("Posted just now: Avoid.", "Posted yesterday: Avoid.", id="just-now"),
    pytest.param(
        "Avoid.\n1.2K likes · 3,456 views", "Avoid.\n1.3K likes · 4,001 views", id="likes"
    ),
    pytest.param("Avoid.\n45 Retweets 12 Quotes", "Avoid.\n46 Retweets 13 Quotes", id="retweets"),
    pytest.param("Avoid the gates. Reposts 12", "Avoid the gates. Reposts 19", id="reposts-after"),
    pytest.param("Avoid the gates (12 comments)", "Avoid the gates (31 comments)", id="comments"),
    pytest.param(
        "Avoid the gates\ncsrf_token=a8Fk2LmQ9zX3pR7tAb4Q",
        "Avoid the gates\ncsrf_token=Qz7Lm2Xa9Rk1Bv6Tp3Wd",
        id="csrf",
    ),
    pytest.param(
        "nonce 5f4dcc3b5aa765d61d8327deb882cf99", "nonce 9e107d9d372bb6826bd81d3542a419d6", id="hex"
    ),
    pytest.param(
        "id 550e8400-e29b-41d4-a716-446655440000 ok",
        "id 123e4567-e89b-12d3-a456-426614174000 ok",
        id="uuid",
    ),
    pytest.param(
        "session Zm9vYmFyYmF6cXV4YWJjZGVm== ok",
        "session cXV4YmF6Zm9vYmFyMTIzNDU2== ok",
        id="base64",
    ),
    pytest.param(
        "Map: https://e.org/map.png?v=123&zone=4",
        "Map: https://e.org/map.png?v=977&zone=4",
        id="v-param",
    ),
    pytest.param(
        "see /a.js?_=1699999001 and ?cb=7&ts=1700000000",
        "see /a.js?_=1700000555 and ?cb=8&ts=1700000999",
        id="cb-ts-params",
    ),
    pytest.param(
        "Avoid  the\u00a0airport\u200b gates.\n\n\n  Stay   home. ",
        "Avoid the airport gates.\nStay home.",
        id="whitespace-nbsp-zwsp",
    ),
    pytest.param("\uff21void the airport gates\uff0e", "Avoid the airport gates.", id="fullwidth"),
    pytest.param(
        "Avoid the gates.\nAdvertisement\nStay home.", "Avoid the gates.\nStay home.", id="ad-line"
    ),
    pytest.param("It\u2019s \u201cclosed\u201d", 'It\'s "closed"', id="curly-quotes"),
    pytest.param("Modified 2021-08-26T04:00:00Z", "Modified 2021-08-26T09:13:52Z", id="iso-time"),
]


@pytest.mark.parametrize(("a", "b"), NOISE_PAIRS)
def test_noise_only_pairs_have_one_fingerprint(a, b):
    assert same(a, b), (normalise(a), normalise(b))
    assert similarity(a, b) == 1.0
    assert change_summary(a, b) == "no change"


EDIT_PAIRS = [
    pytest.param(ALERT, ALERT.replace("avoid airport gates", "avoid all airport gates"), id="word"),
    pytest.param(ALERT, ALERT.replace("killed 13 people", "killed 14 people"), id="prose-number"),
    pytest.param(ALERT, ALERT.replace("August 26, 2021", "August 27, 2021"), id="prose-date"),
    pytest.param(ALERT, ALERT + "\nCorrection: the explosion was at North Gate.", id="correction"),
    pytest.param("Grant of $5m approved.", "Grant of $6m approved.", id="money-5m"),
    pytest.param("The road reopens in 5 days.", "The road reopens in 9 days.", id="in-days"),
    pytest.param("Rates rose 3.05 percent.", "Rates rose 3.07 percent.", id="decimal"),
    pytest.param(
        "Flight 1430000000000000001 left", "Flight 1430000000000000002 left", id="long-pure-number"
    ),
    pytest.param("report covid19-cases-2024-final", "report covid19-cases-2025-final", id="slug"),
    # Next to each masked thing above, the text around it still counts:
    pytest.param(
        "@StateDept · 2h\nAvoid the gates.",
        "@StateDept · 3h\nAvoid the exits.",
        id="word-next-to-2h",
    ),
    pytest.param("Avoid.\n1.2K likes", "Avoid now.\n1.3K likes", id="word-next-to-likes"),
    pytest.param("Updated 12:34 — stay away", "Updated 12:41 — stay home", id="word-next-to-clock"),
    pytest.param(
        "Map: https://e.org/map.png?v=123&zone=4",
        "Map: https://e.org/map.png?v=123&zone=5",
        id="other-query-param",
    ),
    pytest.param("https://youtu.be/x?t=42", "https://youtu.be/x?t=97", id="video-moment-t"),
    pytest.param("The bill passed with 52 votes", "The bill passed with 53 votes", id="votes"),
    pytest.param("She has 12,000 followers", "She has 13,000 followers", id="followers"),
    pytest.param("Tesla shares 5% lower", "Tesla shares 6% lower", id="shares-percent"),
    pytest.param("Modified 2021-08-26T04:00Z", "Modified 2021-08-27T04:00Z", id="iso-date"),
    pytest.param(
        "see /news/2021/08/26/kabul-airport-attack-1a2b3c",
        "see /news/2021/08/26/kabul-airport-attack-9z8y7x",
        id="article-path",
    ),
]


@pytest.mark.parametrize(("a", "b"), EDIT_PAIRS)
def test_real_edits_change_the_fingerprint(a, b):
    assert not same(a, b), normalise(a)
    assert similarity(a, b) < 1.0
    assert change_summary(a, b) != "no change"


def test_masks_use_placeholders_and_leave_prose_numbers():
    assert normalise("At 3:05 PM, 12 likes") == f"At {TIME}, {NUMBER} likes"
    assert normalise("csrf=a8Fk2LmQ9zX3pR7tAb4Q") == f"csrf={TOKEN}"
    text = "killed 13 people on 26 August 2021; $1,200 raised by 40 donors; 3 likes"
    assert (
        normalise(text)
        == f"killed 13 people on 26 August 2021; $1,200 raised by 40 donors; {NUMBER} likes"
    )


def test_pure_noise_lines_are_dropped_and_lines_are_kept():
    assert normalise("Avoid.\n  \n12 likes · 3 views\n2h\nStay.") == "Avoid.\nStay."
    assert normalise("a\r\n\r\nb\u2028c") == "a\nb\nc"


@pytest.mark.parametrize("text", [p.values[0] for p in NOISE_PAIRS + EDIT_PAIRS])
def test_normalise_is_idempotent(text):
    # Stored normalised text can be normalised again (compared with a fresh capture).
    assert normalise(normalise(text)) == normalise(text)


def test_fingerprint_is_sha256_of_the_normalised_text():
    import hashlib

    assert fingerprint("a  b") == hashlib.sha256(b"a b").hexdigest()
    assert fingerprint("a b") != fingerprint("a c")


# ---- similarity -------------------------------------------------------------------------


def words(n: int, seed: int = 1) -> list[str]:
    rnd = random.Random(seed)
    vocab = [f"w{i}" for i in range(500)] + ["the", "gate", "embassy", "airport"]
    return [rnd.choice(vocab) for _ in range(n)]


def test_similarity_orders_edits():
    base = words(200)
    one = list(base)
    one[100] = "changed"
    ten = list(base)
    for i in range(0, 200, 20):
        ten[i] = "changed"
    s1, s10 = similarity(" ".join(base), " ".join(one)), similarity(" ".join(base), " ".join(ten))
    assert 0.9 < s1 < 1.0
    assert s10 < s1
    assert similarity(" ".join(base), " ".join(words(200, seed=2))) < 0.5
    assert similarity("", "") == 1.0
    assert similarity("a b", "") == 0.0


def test_short_texts_use_token_sets_and_reach_one_only_when_equal():
    assert similarity("avoid the gate", "avoid the gates") == pytest.approx(2 / 4)
    # Same tokens, different order: close, but not equal.
    assert 0.99 < similarity("gate the avoid", "avoid the gate") < 1.0


# ---- change summary ---------------------------------------------------------------------


def test_change_summary_counts_sentences():
    a = "The gate is closed. Stay home. Call the embassy."
    assert change_summary(a, a.replace("closed", "shut")) == "1 sentence edited"
    assert change_summary(a, a + " Leave now. Bring water.") == "2 sentences added"
    assert change_summary(a, "The gate is closed. Call the embassy.") == "1 sentence removed"
    assert (
        change_summary(a, "The gate is now shut. Stay home. Call the embassy. Leave now.")
        == "1 sentence edited, 1 added"
    )


def test_change_summary_names_a_number_change():
    assert change_summary(ALERT, ALERT.replace("13 people", "14 people")) == (
        "1 sentence edited (a number changed)"
    )
    two = ALERT.replace("13 people", "14 people").replace("avoid traveling", "stop traveling")
    assert change_summary(ALERT, two) == "2 sentences edited (a number changed in 1)"


def test_change_summary_number_means_a_number_not_a_digit_in_a_word():
    assert change_summary("Gate A1 is shut.", "Gate A2 is shut.") == "1 sentence edited"
    assert change_summary("Raised $1,200.", "Raised $1,300.") == (
        "1 sentence edited (a number changed)"
    )


def test_change_summary_keeps_abbreviations_in_one_sentence():
    a = "U.S. citizens should avoid the gates. Gen. Smith said so."
    assert change_summary(a, a.replace("gates", "airport")) == "1 sentence edited"


# ---- cited passage ----------------------------------------------------------------------

PASSAGE = "U.S. citizens should avoid traveling to the airport and avoid airport gates"


def test_passage_present_exactly():
    assert passage_present(PASSAGE, ALERT) == (True, 1.0)
    # Case, curly quotes and line breaks do not matter to a citation.
    assert passage_present("\u201cavoid  traveling\nto the AIRPORT\u201d", ALERT) == (True, 1.0)


def test_passage_lightly_reworded_is_present():
    reworded = ALERT.replace("avoid traveling", "avoid travelling").replace(
        "avoid airport gates", "avoid the airport gates"
    )
    present, score = passage_present(PASSAGE, reworded)
    assert present and 0.85 <= score < 1.0


def test_passage_removed_is_absent():
    removed = ALERT.replace("\n" + ALERT.splitlines()[-1], "\nThe airport is open to all.")
    present, score = passage_present(PASSAGE, removed)
    assert not present and score < 0.85
    assert passage_present(PASSAGE, "") == (False, 0.0)


def test_passage_rewritten_beyond_threshold_is_absent():
    rewritten = ALERT.replace(
        "should avoid traveling to the airport and avoid airport gates",
        "may now travel to the airport and use the gates",
    )
    assert passage_present(PASSAGE, rewritten)[0] is False


def test_passage_in_a_200kb_text():
    filler = " ".join(words(40_000, seed=3))  # ~200 KB of text
    assert len(filler) > 190_000
    cut = filler.rfind(" ", 0, len(filler) * 2 // 3)
    text = (
        filler[:cut]
        + " U.S. citizens should avoid travelling to the airport and avoid gates "
        + filler[cut:]
    )
    present, score = passage_present(PASSAGE, text)
    assert present and score < 1.0
    assert passage_present(PASSAGE, filler)[0] is False
