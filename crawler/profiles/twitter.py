"""x.com / twitter.com status pages: the focal tweet's text; tombstones of the rendered app."""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, urlencode, urljoin, urlsplit, urlunsplit

from lxml.html import HtmlElement

from crawler.profiles.base import Profile
from crawler.profiles.dom import select

_APOS = "['\u2019]"
_STATUS = re.compile(r"/(?:[A-Za-z0-9_]{1,15}|i/web|i)/status(?:es)?/(\d+)")
_TWEET = 'article[data-testid="tweet"]'


def _status_id(url: str | None) -> str | None:
    if not url:
        return None
    try:
        match = _STATUS.match(urlsplit(url if "//" in url else f"//{url}").path)
    except ValueError:
        return None
    return match.group(1) if match else None


def focal_tweet(root: HtmlElement, url: str | None) -> HtmlElement | None:
    """The article of the cited status, None when the page does not show it.

    A reply's page shows the thread's earlier tweets above it, so the focal tweet is the
    article whose own timestamp links to the status id. The first dated article stands in
    only when the URL names no status or no timestamp links to any status (unknown
    markup); an undated article is a tombstone, not a tweet.
    """
    articles = [a for a in select(root, _TWEET) if a.find(".//time") is not None]
    status = _status_id(url)
    linked = False
    for article in articles:
        for link in article.iter("a"):
            href_status = _status_id(link.get("href", ""))
            if href_status is None or link.find(".//time") is None:
                continue
            linked = True
            if href_status == status:
                return article
    if articles and (status is None or not linked):
        return articles[0]
    return None


def tweet_media(tweet: HtmlElement, url: str) -> list[tuple[str, str]]:
    """The focal tweet's photos at original size (the page draws them scaled down)."""
    found = []
    for img in select(tweet, '[data-testid="tweetPhoto"] img'):
        src = urljoin(url, img.get("src", ""))
        parts = urlsplit(src)
        if parts.hostname == "pbs.twimg.com" and parts.path.startswith("/media/"):
            query = [(k, v) for k, v in parse_qsl(parts.query) if k != "name"]
            src = urlunsplit(parts._replace(query=urlencode([*query, ("name", "orig")])))
        found.append((src, "image"))
    return found


def _says(*phrases: str) -> re.Pattern:
    return re.compile("|".join(phrases), re.I)


PROFILE = Profile(
    name="twitter",
    hosts=("x.com", "twitter.com"),
    path=_STATUS,
    focus=focal_tweet,
    media=tweet_media,
    content_selectors=(f'{_TWEET} [data-testid="tweetText"]',),
    noise_selectors=(
        '[role="group"]',  # the reply / repost / like / views bar
        '[data-testid="User-Name"]',  # name, handle and "· 2h"
        '[data-testid="sidebarColumn"]',  # Trending, Who to follow
        '[data-testid="BottomBar"]',  # log in / sign up prompt
        '[data-testid="sheetDialog"]',
    ),
    # Order matters: "This Post was deleted" before the wider "unavailable" wording.
    tombstones=(
        ("deleted", _says(r"this (?:post|tweet) was deleted", r"deleted by the (?:post|tweet)")),
        (
            "account suspended",
            _says(r"account suspended", r"account has been suspended", r"from a suspended account"),
        ),
        (
            "protected account",
            _says(
                r"these (?:posts|tweets) are protected",
                rf"account{_APOS}s (?:posts|tweets)"
                r" are protected",
            ),
        ),
        ("age-restricted", _says(r"age-restricted")),
        (
            "account doesn't exist",
            _says(rf"this account doesn{_APOS}t exist", r"from an account that no longer exists"),
        ),
        ("page doesn't exist", _says(rf"this page doesn{_APOS}t exist")),
        ("post unavailable", _says(r"this (?:post|tweet) is unavailable")),
    ),
)
