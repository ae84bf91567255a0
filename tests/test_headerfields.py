"""Header fields as (name, value) pairs: case-insensitive names, the first field wins."""

from crawler.headerfields import field, media_type, validators

HEADERS = [
    ("Content-Type", "Text/HTML; charset=UTF-8"),
    ("ETag", '"v1"'),
    ("etag", '"v2"'),
    ("Last-Modified", "Fri, 27 Nov 2026 10:00:00 GMT"),
]


def test_names_match_in_any_case_and_the_first_field_wins():
    assert field(HEADERS, "etag") == '"v1"'
    assert field(HEADERS, "retry-after") is None
    assert field(iter(HEADERS), "last-modified") == "Fri, 27 Nov 2026 10:00:00 GMT"


def test_media_type_drops_parameters_and_case():
    assert media_type(HEADERS) == "text/html"
    assert media_type([]) == ""
    assert media_type([("content-type", " application/pdf ")]) == "application/pdf"


def test_validators_read_a_one_shot_iterable():
    assert validators(iter(HEADERS)) == {
        "etag": '"v1"',
        "last_modified": "Fri, 27 Nov 2026 10:00:00 GMT",
    }
    assert validators({}.items()) == {"etag": None, "last_modified": None}
