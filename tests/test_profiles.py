"""Site profiles on rendered-DOM fixtures: noise ignored, edits seen, tombstones, soft 404s."""

from __future__ import annotations

import pytest

from crawler.normalise import normalise
from crawler.profiles import GENERIC, Profile, content_text, looks_not_found, profile_for, tombstone

TWEET_URL = "https://x.com/USEmbassyKabul/status/1430911475432595457"
TWEET_TEXT = (
    "Security Alert: U.S. citizens should avoid traveling to the airport. "
    "Those at the Abbey Gate \U0001f6ab should leave immediately."
)


def tweet_page(
    text: str = TWEET_TEXT,
    *,
    likes: str = "1.2K",
    views: str = "48K",
    ago: str = "2h",
    trend: str = "#Kabul 12.3K posts",
    parent: str = "",
) -> str:
    """An x.com status page as Chromium serialises it (trimmed), optionally under a parent."""
    words = text.split("\U0001f6ab")
    body = '<img alt="\U0001f6ab" src="/emoji/1f6ab.svg">'.join(f"<span>{w}</span>" for w in words)
    return f"""<!DOCTYPE html><html dir="ltr" lang="en"><head>
<title>U.S. Embassy Kabul on X: "Security Alert" / X</title>
<script>window.__INITIAL_STATE__={{"nonce":"{likes}"}}</script></head><body>
<div id="react-root"><main role="main"><div data-testid="primaryColumn">
{parent}
<article data-testid="tweet" tabindex="-1">
  <div data-testid="User-Name"><a href="/USEmbassyKabul"><span>U.S. Embassy Kabul</span></a>
    <span>@USEmbassyKabul</span> · <a href="/USEmbassyKabul/status/1430911475432595457">
    <time datetime="2021-08-26T04:00:00.000Z">{ago}</time></a></div>
  <div data-testid="tweetText" lang="en" dir="auto">{body}</div>
  <div><span>{views} Views</span></div>
  <div role="group" aria-label="310 replies, {likes} likes">
    <button data-testid="reply">310</button><button data-testid="retweet">2.2K</button>
    <button data-testid="like">{likes}</button></div>
</article>
<div data-testid="cellInnerDiv"><article data-testid="tweet"><div data-testid="User-Name">
  <a href="/someone/status/1430911999999999999"><time>1h</time></a></div>
  <div data-testid="tweetText"><span>A reply below the cited tweet</span></div></article></div>
</div></main>
<div data-testid="sidebarColumn"><section><h2>Trending</h2><div>{trend}</div>
  <h2>Who to follow</h2><div>@StateDept Follow</div></section></div>
<div data-testid="BottomBar">Don't miss what's happening. Log in Sign up</div>
</div></body></html>"""


def tweet_text(dom: str, url: str = TWEET_URL) -> str:
    return content_text(profile_for(url), dom, url)


def test_tweet_content_is_the_focal_tweet_text_with_emoji():
    assert tweet_text(tweet_page()) == TWEET_TEXT


def test_tweet_counters_time_and_sidebar_are_not_content():
    a = tweet_text(tweet_page())
    b = tweet_text(tweet_page(likes="9.9K", views="1M", ago="5h", trend="#Taliban 99K posts"))
    assert a == b


def test_tweet_edit_is_content():
    edited = TWEET_TEXT.replace("leave immediately", "leave now")
    assert tweet_text(tweet_page()) != tweet_text(tweet_page(edited))
    assert tweet_text(tweet_page(edited)) == edited


PARENT = """<article data-testid="tweet"><div data-testid="User-Name">
  <a href="/StateDept/status/1430900000000000000"><time>3h</time></a></div>
  <div data-testid="tweetText"><span>The parent tweet of the thread</span></div></article>"""
PARENT_DELETED = (
    '<div data-testid="cellInnerDiv"><div>This Post was deleted by the Post author. '
    '<a href="https://help.x.com">Learn more</a></div></div>'
)


def test_reply_page_reads_the_cited_tweet_not_the_thread_parent():
    assert tweet_text(tweet_page(parent=PARENT)) == TWEET_TEXT
    # Without a URL the first tweet stands in: that is the parent here.
    assert tweet_text(tweet_page(parent=PARENT), url="https://x.com/x/status/0") == ""
    assert content_text(profile_for(TWEET_URL), tweet_page(parent=PARENT)) == (
        "The parent tweet of the thread"
    )


def test_photo_only_tweet_reads_the_focal_article_without_its_furniture():
    photo = tweet_page(text="PHOTO").replace(
        '<div data-testid="tweetText" lang="en" dir="auto"><span>PHOTO</span></div>',
        '<div data-testid="tweetPhoto"><img alt="Image" src="/media/a.jpg"></div>',
    )
    assert "tweetText" not in photo.split("cellInnerDiv")[0]
    a = tweet_text(photo)
    assert a == "48K Views"  # no reply, no handle, no engagement bar, no "Image" alt
    b = tweet_text(photo.replace("1.2K", "1.9K").replace("48K Views", "61K Views"))
    assert a != b and normalise(a) == normalise(b)


def test_deleted_parent_above_a_live_cited_reply_is_no_tombstone():
    page = tweet_page(parent=PARENT_DELETED)
    assert tombstone(profile_for(TWEET_URL), page, TWEET_URL) is None
    assert tombstone(profile_for(TWEET_URL), page) is None
    assert tweet_text(page) == TWEET_TEXT


def test_tweet_quoting_soft_404_words_is_not_a_soft_404():
    text = "Page not found: the embassy site is down again"
    page = tweet_page(text).replace("<title>", f"<title>U.S. Embassy Kabul on X: &quot;{text}")
    assert looks_not_found(profile_for(TWEET_URL), page, TWEET_URL) is False
    assert looks_not_found(profile_for(TWEET_URL), page) is False
    gone = x_tombstone_page("Hmm...this page doesn't exist.").replace(
        "<title>X", "<title>Page not found / X"
    )
    assert looks_not_found(profile_for(TWEET_URL), gone, TWEET_URL) is True


def x_tombstone_page(message: str) -> str:
    return f"""<html><head><title>X</title></head><body><div id="react-root"><main role="main">
<div data-testid="primaryColumn"><div data-testid="error-detail"><span>{message}</span>
<a href="/explore">Search</a></div></div></main>
<div data-testid="sidebarColumn"><h2>Trending</h2><div>#Kabul</div></div></div></body></html>"""


@pytest.mark.parametrize(
    ("message", "reason"),
    [
        (
            "Hmm...this page doesn\u2019t exist. Try searching for something else.",
            "page doesn't exist",
        ),
        ("Hmm...this page doesn't exist. Try searching for something else.", "page doesn't exist"),
        ("This page doesn\u2019t exist", "page doesn't exist"),
        ("This account doesn\u2019t exist. Try searching for another.", "account doesn't exist"),
        ("Account suspended. X suspends accounts which violate the X Rules.", "account suspended"),
        ("These posts are protected. Only approved followers can see them.", "protected account"),
        ("This account\u2019s posts are protected", "protected account"),
        ("This account's posts are protected", "protected account"),
        ("Age-restricted adult content. This content might not be appropriate", "age-restricted"),
        ("This Post is unavailable. Learn more", "post unavailable"),
        ("This Tweet is unavailable.", "post unavailable"),
        ("This Post was deleted by the Post author. Learn more", "deleted"),
    ],
)
def test_x_tombstones_name_their_kind(message, reason):
    page = x_tombstone_page(message)
    assert tombstone(profile_for(TWEET_URL), page, TWEET_URL) == f"tombstone: {reason}"
    assert tweet_text(page) == ""


def test_tombstone_in_place_of_the_focal_tweet():
    article = (
        '<article data-testid="tweet"><div>This Post is from a suspended account. '
        '<a href="https://help.x.com/rules">Learn more</a></div></article>'
    )
    page = x_tombstone_page("").replace('<div data-testid="error-detail">', article + "<div>")
    assert tombstone(profile_for(TWEET_URL), page, TWEET_URL) == "tombstone: account suspended"
    assert tombstone(profile_for(TWEET_URL), page) == "tombstone: account suspended"


def test_live_tweet_and_other_profiles_have_no_tombstone():
    assert tombstone(profile_for(TWEET_URL), tweet_page(), TWEET_URL) is None
    # A generic page quoting a tombstone's words is not one.
    page = "<html><body><p>The account suspended by X was restored.</p></body></html>"
    assert tombstone(GENERIC, page) is None


CNN_URL = "https://edition.cnn.com/videos/world/2021/08/26/kabul-airport-explosion-lon-orig.cnn"
CNN_DESCRIPTION = (
    "An explosion has gone off outside Kabul airport, according to the Pentagon. "
    "CNN's Clarissa Ward reports."
)


def cnn_page(description: str = CNN_DESCRIPTION, rail: tuple[str, ...] = ("A", "B", "C")) -> str:
    items = "".join(
        f'<li class="video-playlist__item"><a href="/videos/{i}">Related video {i}</a></li>'
        for i in rail
    )
    return f"""<html><head><title>Explosion outside Kabul airport | CNN</title>
<meta name="description" content="{description}"></head><body>
<header><nav><a href="/">CNN</a><a href="/world">World</a></nav></header>
<div class="video-resource"><div class="video-resource__player">Play 2:31</div>
<h1 class="video-resource__headline">Explosion outside Kabul airport</h1>
<div class="video-resource__details">Updated 9:41 AM EDT, Thu August 26, 2021</div>
<div class="video-resource__description">{description}</div></div>
<section data-zone-label="More from CNN"><ul>{items}</ul></section>
<div class="video-playlist"><ul>{items}</ul></div>
<div class="ad-slot ad-slot--feature">Sponsored: buy {rail[0]}</div>
<footer>© 2021 Cable News Network</footer></body></html>"""


def cnn_text(dom: str) -> str:
    return content_text(profile_for(CNN_URL), dom, CNN_URL)


def test_cnn_video_content_is_headline_and_description():
    assert cnn_text(cnn_page()) == f"Explosion outside Kabul airport\n{CNN_DESCRIPTION}"


def test_cnn_related_rail_shuffle_is_not_content():
    assert cnn_text(cnn_page()) == cnn_text(cnn_page(rail=("C", "D", "A", "E")))


def test_cnn_description_edit_is_content():
    edited = CNN_DESCRIPTION.replace("an explosion", "two explosions")
    edited = edited.replace("An explosion has", "Two explosions have")
    assert cnn_text(cnn_page()) != cnn_text(cnn_page(edited))


def test_cnn_page_without_a_drawn_description_uses_the_meta_description():
    page = cnn_page().replace('class="video-resource__description"', 'class="x"')
    page = page.replace(f'<div class="x">{CNN_DESCRIPTION}</div>', "")
    assert cnn_text(page) == f"Explosion outside Kabul airport\n{CNN_DESCRIPTION}"


def test_cnn_removed_video_is_a_tombstone():
    page = """<html><head><title>CNN</title></head><body><nav>World</nav>
<div class="video-resource"><div class="video-resource__player">
This video is no longer available.</div></div></body></html>"""
    assert tombstone(profile_for(CNN_URL), page) == "tombstone: video removed"
    assert tombstone(profile_for(CNN_URL), cnn_page()) is None
    # The headline and the meta description can outlive the video.
    kept = cnn_page().replace("Play 2:31", "Video not available")
    assert tombstone(profile_for(CNN_URL), kept) == "tombstone: video removed"


EMBASSY_URL = "https://af.usembassy.gov/security-alert-u-s-embassy-kabul-august-26-2021/"
ALERT_BODY = (
    "<p><strong>Location:</strong> Kabul, Afghanistan</p>"
    "<p><strong>Event:</strong> There are reports of an explosion at Abbey Gate.</p>"
    "<p>U.S. citizens should avoid traveling to the airport and avoid airport gates at this "
    "time. Those at the Abbey Gate, East Gate or North Gate now should leave immediately.</p>"
)


def embassy_page(
    body: str = ALERT_BODY, sidebar: str = "Visa news", ad: str = "ad 1", related: str = "Visas"
) -> str:
    return f"""<html><head><title>Security Alert \u2013 U.S. Embassy Kabul, August 26, 2021</title>
</head><body class="post-template-default single single-post">
<div class="top-bar">An official website of the United States government</div>
<nav id="site-navigation"><a href="/">Home</a><a href="/news-events/">News</a></nav>
<div id="content" class="site-content"><div id="primary" class="content-area">
<article id="post-12345" class="post type-post"><header class="entry-header">
<h1 class="entry-title">Security Alert \u2013 U.S. Embassy Kabul, August 26, 2021</h1></header>
<div class="entry-meta">By U.S. Embassy Kabul | 26 August, 2021 | Topics: Alerts</div>
<div class="entry-content">{body}
<div class="sharedaddy sd-sharing-enabled"><h3>Share</h3><a>Facebook</a> <a>Twitter</a></div>
<div id="jp-relatedposts" class="jp-relatedposts"><h3>Related</h3><p>{related}</p></div>
<div class="slideshow-status" hidden>Loading {ad}</div>
</div></article></div>
<div id="secondary" class="widget-area sidebar"><h2>Recent posts</h2><ul><li>{sidebar}</li></ul>
<div class="ad-container">{ad}</div></div></div>
<footer id="colophon">This is the official website of the U.S. Embassy.</footer></body></html>"""


def embassy_text(dom: str) -> str:
    return content_text(profile_for(EMBASSY_URL), dom, EMBASSY_URL)


def test_embassy_alert_content_is_title_and_entry():
    text = embassy_text(embassy_page())
    assert text.splitlines()[0] == "Security Alert \u2013 U.S. Embassy Kabul, August 26, 2021"
    assert "Event: There are reports of an explosion at Abbey Gate." in text
    for furniture in ("Facebook", "Recent posts", "ad 1", "Home", "Visas", "Related"):
        assert furniture not in text


def test_embassy_sidebar_share_related_and_ads_are_not_content():
    a = embassy_text(embassy_page())
    assert a == embassy_text(embassy_page(sidebar="Passport day", ad="ad 2", related="Flights"))


def test_embassy_alert_edit_is_content():
    edited = ALERT_BODY.replace("East Gate or North Gate", "East Gate, North Gate or West Gate")
    assert embassy_text(embassy_page()) != embassy_text(embassy_page(edited))


def test_embassy_not_found_page():
    page = """<html><head><title>Page not found \u2013 U.S. Embassy in Afghanistan</title>
</head><body>
<div id="primary"><main id="main"><section class="error-404 not-found">
<header><h1 class="page-title">Oops! That page can\u2019t be found.</h1></header>
<div class="page-content"><p>It looks like nothing was found at this location.</p></div>
</section></main></div></body></html>"""
    assert looks_not_found(profile_for(EMBASSY_URL), page) is True
    bare = page.replace("Page not found \u2013 ", "").replace("<title>", "<title>Oops ")
    assert looks_not_found(profile_for(EMBASSY_URL), bare) is True  # the h1 alone
    assert looks_not_found(profile_for(EMBASSY_URL), embassy_page()) is False


ARTICLE = [
    "Explosions outside Kabul airport",
    "Two explosions struck crowds outside Kabul airport on Thursday, officials said.",
    "At least 13 U.S. service members were killed, according to the Pentagon.",
    "The State Department had warned Americans to avoid the airport gates hours earlier, "
    "citing a specific threat from the Islamic State group in Khorasan.",
    "Evacuation flights continued through the night despite the attack.",
]


def article_v1(
    paragraphs: list[str] = ARTICLE, ad: str = "Buy shoes now", related: tuple = (1, 2, 3)
) -> str:
    title, *body = paragraphs
    ps = "".join(f"<p>{p}</p>" for p in body)
    rel = "".join(f'<li><a href="/r{i}">Related story number {i}</a></li>' for i in related)
    return f"""<html><head><title>{title} - Example News</title></head><body>
<div id="cookie-banner" class="cookie-consent">We use cookies. <button>Accept all</button></div>
<header class="site-header"><a href="/">Example News</a>
<nav><a href="/world">World</a></nav></header>
<div class="page"><article class="story"><h1>{title}</h1>
<div class="byline">By A. Reporter, updated 10:42 AM</div>
<div class="story-body">{ps}</div>
<div class="ad-slot">Advertisement: {ad}</div></article>
<aside class="sidebar"><h3>Most read</h3><ol><li>Something else</li></ol></aside>
<section class="related-stories"><h2>Related</h2><ul>{rel}</ul></section></div>
<footer>© Example News</footer></body></html>"""


def article_v2(paragraphs: list[str] = ARTICLE, ad: str = "Fly to Rome") -> str:
    """The same story after a site redesign: other tags, classes and wrappers."""
    title, *body = paragraphs
    ps = "".join(f'<div class="txt-block"><span>{p}</span></div>' for p in body)
    return f"""<html><head><title>{title} | Example News</title></head><body>
<div class="consent-modal" role="dialog">Your privacy matters. <a>Manage cookies</a></div>
<main><div class="ArticleLayout"><header><h1 class="Headline">{title}</h1>
<p class="Meta">Updated 11:03 AM</p></header>
<section class="ArticleBody">{ps}</section>
<div id="sponsor-box">Sponsored: {ad}</div>
<div class="recommendations"><a href="/r9">Related story number 9</a></div></div></main>
<footer><p>Example News Ltd</p></footer></body></html>"""


def generic_text(dom: str) -> str:
    return normalise(content_text(GENERIC, dom, "https://news.example.org/kabul"))


def test_generic_article_noise_and_redesign_are_not_content():
    base = generic_text(article_v1())
    assert "killed, according to the Pentagon" in base
    assert "Buy shoes" not in base and "cookies" not in base and "Related story" not in base
    assert base == generic_text(article_v1(ad="Cheap flights", related=(3, 1, 2, 7)))
    assert base == generic_text(article_v2())


def test_generic_article_edit_is_content():
    edited = list(ARTICLE)
    edited[2] = edited[2].replace("At least 13", "At least 14")
    assert generic_text(article_v1()) != generic_text(article_v1(edited))
    assert generic_text(article_v2()) != generic_text(article_v2(edited))


@pytest.mark.parametrize(
    ("page", "expected"),
    [
        ("<title>Page Not Found | Example</title><h1>Sorry</h1>", True),
        ("<title>Example</title><h1>404</h1><p>Nothing here.</p>", True),
        ("<title>Error 404 - Example</title>", True),
        ("<title>404 | Example News</title>", True),
        ("<title>Example</title><h1>Not Found (404)</h1>", True),
        ("<title>Error 404: how broken links rot the web</title>", False),
        ("<title>Example</title><h1>This page doesn\u2019t exist</h1>", True),
        (
            "<title>Example</title><h1>Oops!</h1><p>The page you requested could not be found.</p>",
            True,
        ),
        ("<title>This content is no longer available</title>", True),
        ("<title>Example</title><h1>This story has been removed</h1>", True),
        (
            "<title>Missing hiker not found after storm</title><h1>Missing hiker not found</h1>"
            "<p>Rescuers said the hiker could not be found.</p>",
            False,
        ),
        ("<title>Drug no longer available in US</title><h1>Flight 404 lands safely</h1>", False),
        (article_v1(), False),
    ],
)
def test_generic_soft_404(page, expected):
    assert looks_not_found(GENERIC, f"<html>{page}</html>") is expected


def test_soft_404_words_in_a_long_article_body_do_not_count():
    long_text = " ".join(["Readers reported a page not found error on the site."] * 20)
    page = f"<html><title>Site outage</title><h1>Outage</h1><p>{long_text}</p></html>"
    assert looks_not_found(GENERIC, page) is False
    assert looks_not_found(GENERIC, page.replace(long_text, "Page not found.")) is True


@pytest.mark.parametrize(
    ("url", "name"),
    [
        (TWEET_URL, "twitter"),
        ("https://twitter.com/USEmbassyKabul/status/1430911475432595457?s=20", "twitter"),
        ("https://mobile.twitter.com/StateDept/status/1430911475432595457", "twitter"),
        ("https://www.x.com/i/web/status/1430911475432595457", "twitter"),
        ("https://x.com/USEmbassyKabul", "generic"),
        ("https://x.com/home", "generic"),
        (CNN_URL, "cnn-video"),
        ("https://www.cnn.com/video/world/kabul", "cnn-video"),
        ("https://edition.cnn.com/2021/08/26/world/kabul-airport/index.html", "generic"),
        (EMBASSY_URL, "usembassy"),
        ("https://usembassy.gov/", "usembassy"),
        ("https://usembassy.gov.evil.example/alert", "generic"),
        ("https://notx.com/a/status/1", "generic"),
        ("https://example.org/", "generic"),
        ("not a url", "generic"),
    ],
)
def test_profile_for_routes_by_host_and_path(url, name):
    assert profile_for(url).name == name


def test_short_page_without_main_content_is_its_visible_text_without_furniture():
    page = """<html><head><title>Status</title><style>p {{color: red}}</style></head><body>
<nav><a href="/">Home</a></nav><div aria-hidden="true">Menu {n}</div>
<div style="display: none">Loading {n}</div><p>Gate closed.</p>
<footer>Copyright {n}</footer><script>var t = {n};</script></body></html>"""
    text = content_text(GENERIC, page.format(n=1))
    assert text == "Gate closed."
    assert content_text(GENERIC, page.format(n=2)) == text
    assert content_text(GENERIC, page.format(n=1).replace("closed", "open")) == "Gate open."


def test_app_hidden_behind_an_open_cookie_dialog_keeps_its_content():
    page = article_v1().replace('<div class="page">', '<div class="page" aria-hidden="true">')
    page = page.replace("<nav>", '<nav><h1 class="logo">Example News</h1>')
    assert generic_text(page) == generic_text(article_v1())


def test_table_cells_read_apart():
    page = "<html><body><table><tr><td>Gate</td><td>Closed</td></tr></table></body></html>"
    assert content_text(Profile("table", content_selectors=("table",)), page) == "Gate Closed"


def test_unparseable_dom_gives_no_text():
    assert content_text(GENERIC, "") == ""
    assert tombstone(profile_for(TWEET_URL), "   ") is None
    assert looks_not_found(GENERIC, "") is False
