"""URL validation and the canonical form that decides source identity."""

from __future__ import annotations

import pytest

from crawler.errors import InvalidURLError
from crawler.urls import canonicalize
from storage.ids import source_id


@pytest.mark.parametrize(
    ("given", "canonical"),
    [
        ("HTTPS://Example.ORG:443/a?b=1#frag", "https://example.org/a?b=1"),
        ("http://example.org:80", "http://example.org/"),
        ("http://example.org:8080/x", "http://example.org:8080/x"),
        ("https://bücher.example/", "https://xn--bcher-kva.example/"),
        ("http://[::1]:8000/p", "http://[::1]:8000/p"),
    ],
)
def test_canonical_form(given, canonical):
    assert canonicalize(given) == canonical


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "not a url",
        "ftp://example.org/x",
        "file:///etc/passwd",
        "javascript:alert(1)",
        "http://",
        "https://user:pw@example.org/",
        "http://example.org:99999/",
    ],
)
def test_invalid_urls_are_refused_naming_the_input(bad):
    with pytest.raises(InvalidURLError) as info:
        canonicalize(bad)
    assert repr(bad) in str(info.value)


def test_source_id_is_a_hash_never_url_text():
    sid = source_id(canonicalize("https://example.org/../../etc/passwd"))
    assert len(sid) == 32 and all(c in "0123456789abcdef" for c in sid)
    assert source_id("https://example.org/a") != source_id("https://example.org/b")
