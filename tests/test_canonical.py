"""The canonical form: tracking parameters, tweet URLs, and adding a scheme."""

from __future__ import annotations

import pytest

from crawler.errors import InvalidURLError
from crawler.urls import DEFAULT_TRACKING_PARAMS, canonicalize, with_scheme

TWEET = "https://x.com/realalexrubi/status/1431733827714625541"


@pytest.mark.parametrize(
    ("given", "canonical"),
    [
        # Tracking parameters go; the others stay, in their order.
        (
            "https://example.org/a?utm_source=tw&id=3&utm_medium=social",
            "https://example.org/a?id=3",
        ),
        ("https://example.org/a?UTM_Campaign=x&b=2&a=1", "https://example.org/a?b=2&a=1"),
        ("https://example.org/a?fbclid=IwAR0&gclid=C1&igshid=Z", "https://example.org/a"),
        ("https://example.org/a?ref_src=twsrc%5Etfw&ref_url=x", "https://example.org/a"),
        ("https://example.org/a?z=1&y=2&x=3", "https://example.org/a?z=1&y=2&x=3"),
        ("https://example.org/a?q=a%20b&utm_x=1&q=c", "https://example.org/a?q=a%20b&q=c"),
        ("https://example.org/a?utmost=1&ref=2", "https://example.org/a?utmost=1&ref=2"),
        ("https://example.org/a?a=1&&b=2", "https://example.org/a?a=1&&b=2"),
        ("https://example.org/a?utm%5Fsource=x&k", "https://example.org/a?k"),
        # "s" and "t" are tracking only on tweets.
        ("https://example.org/search?s=term&t=60", "https://example.org/search?s=term&t=60"),
        ("https://www.youtube.com/watch?v=abc&t=60", "https://www.youtube.com/watch?v=abc&t=60"),
        # Every spelling of one tweet is one URL.
        (
            "https://twitter.com/RealAlexRubi/status/1431733827714625541?ref_src=twsrc%5Etfw",
            TWEET,
        ),
        ("http://twitter.com/RealAlexRubi/status/1431733827714625541", TWEET),
        ("https://www.twitter.com/RealAlexRubi/status/1431733827714625541/", TWEET),
        ("https://mobile.twitter.com/realalexrubi/statuses/1431733827714625541", TWEET),
        ("https://x.com/RealAlexRubi/status/1431733827714625541?s=20&t=Ab_c", TWEET),
        ("http://www.x.com/RealAlexRubi/status/1431733827714625541#m", TWEET),
        ("https://mobile.x.com/RealAlexRubi/status/1431733827714625541/photo/1", TWEET),
        ("https://TWITTER.com/RealAlexRubi/status/1431733827714625541/video/1", TWEET),
        (
            "https://twitter.com/i/web/status/1431733827714625541",
            "https://x.com/i/status/1431733827714625541",
        ),
        (
            "https://x.com/i/status/1431733827714625541",
            "https://x.com/i/status/1431733827714625541",
        ),
        # Other parameters of a tweet URL stay.
        (
            "https://twitter.com/a_b/status/12?lang=en&s=19",
            "https://x.com/a_b/status/12?lang=en",
        ),
        # Other pages on those hosts: https, but not rewritten.
        ("http://twitter.com/RealAlexRubi", "https://twitter.com/RealAlexRubi"),
        (
            "http://x.com/RealAlexRubi/status/1/analytics",
            "https://x.com/RealAlexRubi/status/1/analytics",
        ),
        ("https://pic.twitter.com/B37fHB67bh", "https://pic.twitter.com/B37fHB67bh"),
        ("http://nottwitter.com/a/status/1", "http://nottwitter.com/a/status/1"),
        ("https://twitter.com:8443/a/status/1", "https://twitter.com:8443/a/status/1"),
        # What the canonical form always did.
        ("HTTPS://Example.ORG:443/a?b=1#frag", "https://example.org/a?b=1"),
        ("http://example.org:80", "http://example.org/"),
        ("http://example.org:8080/x", "http://example.org:8080/x"),
        ("https://bücher.example/", "https://xn--bcher-kva.example/"),
        ("http://[::1]:8000/p", "http://[::1]:8000/p"),
        ("https://example.org./a", "https://example.org/a"),
    ],
)
def test_canonical_form(given, canonical):
    assert canonicalize(given) == canonical


@pytest.mark.parametrize(
    ("given", "params", "canonical"),
    [
        (
            "https://example.org/a?utm_source=x&sid=1",
            frozenset(),
            "https://example.org/a?utm_source=x&sid=1",
        ),
        (
            "https://example.org/a?utm_source=x&sid=1",
            frozenset({"sid"}),
            "https://example.org/a?utm_source=x",
        ),
        (
            "https://example.org/a?mc_cid=1&mc_eid=2&k=v",
            frozenset({"mc_*"}),
            "https://example.org/a?k=v",
        ),
        (
            "https://twitter.com/a/status/1?s=20&utm_source=x",
            frozenset(),
            "https://x.com/a/status/1?utm_source=x",
        ),
    ],
)
def test_tracking_params_can_be_chosen(given, params, canonical):
    assert canonicalize(given, tracking_params=params) == canonical


def test_default_tracking_params_name_the_documented_ones():
    assert {"ref_src", "ref_url", "fbclid", "gclid", "igshid", "utm_*"} == DEFAULT_TRACKING_PARAMS


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "pic.twitter.com/B37fHB67bh",
        "https://user:pw@twitter.com/a/status/1",
        "mailto:someone@example.org",
        "https://exa mple.org/",
        "https://" + "a" * 9000 + ".org/",
    ],
)
def test_refused(bad):
    with pytest.raises(InvalidURLError) as info:
        canonicalize(bad)
    assert repr(bad) in str(info.value)


@pytest.mark.parametrize(
    ("seen", "url"),
    [
        ("pic.twitter.com/B37fHB67bh", "https://pic.twitter.com/B37fHB67bh"),
        ("www.example.org/x", "https://www.example.org/x"),
        ("example.org:8080/x", "https://example.org:8080/x"),
        ("//example.org/x", "https://example.org/x"),
        ("  twitter.com/a/status/1 ", "https://twitter.com/a/status/1"),
        ("https://example.org/x", "https://example.org/x"),
        ("HTTP://example.org/x", "HTTP://example.org/x"),
        ("mailto:someone@example.org", "mailto:someone@example.org"),
    ],
)
def test_with_scheme(seen, url):
    assert with_scheme(seen) == url


def test_scheme_less_tweet_reaches_the_canonical_tweet():
    seen = "twitter.com/RealAlexRubi/status/1431733827714625541?ref_src=twsrc%5Etfw"
    assert canonicalize(with_scheme(seen)) == TWEET
