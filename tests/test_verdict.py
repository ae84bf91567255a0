"""The verdict rules on their own: evidence and history in, verdict out."""

from __future__ import annotations

from crawler.evidence import Evidence, home_or_section
from crawler.normalise import fingerprint
from crawler.verdict import Earlier, LastContent, decide

OLD = "US citizens at the Abbey Gate should leave immediately. Updates will follow."


def ev(content=OLD, status=200, url="https://e.org/a/b", final=None, permanent=False, **kw):
    return Evidence(
        answered=status is not None,
        status=status,
        url=url,
        final_url=final or url,
        permanent_redirect=permanent,
        content=content,
        fingerprint=fingerprint(content),
        **kw,
    )


def last(text=OLD, present=frozenset()):
    return LastContent(lambda: text, lambda: frozenset(present))


def earlier(*versions, verdict="new", final="https://e.org/a/b"):
    return [Earlier(f"c{i}", verdict, fingerprint(v), final) for i, v in enumerate(versions)]


def test_no_answer_and_server_trouble_are_unreachable_never_gone():
    assert (
        decide(ev(status=None, error="net::ERR_NAME_NOT_RESOLVED"), earlier(OLD), last()).reason
        == "net::ERR_NAME_NOT_RESOLVED"
    )
    for status in (500, 503, 429, 403):
        assert decide(ev(status=status), earlier(OLD), last()).name == "unreachable"


def test_deletions_are_named_by_kind():
    assert decide(ev(status=410), earlier(OLD), last()).reason == "HTTP 410"
    assert (
        decide(ev(tombstone="tombstone: account suspended"), earlier(OLD), last()).reason
        == "tombstone: account suspended"
    )
    assert (
        decide(ev(home_redirect="home page"), earlier(OLD), last()).reason
        == "redirected to the home page"
    )
    assert decide(ev(not_found="soft 404: x"), [], last()).name == "gone"


def test_first_answer_is_new_and_return_after_gone_is_restored():
    assert decide(ev(), [], last()).name == "new"
    gone = [Earlier("c0", "new", fingerprint(OLD), None), Earlier("c1", "gone", None, None)]
    assert decide(ev(), gone, last()).name == "restored"


def test_noise_is_unchanged_and_one_word_is_changed():
    assert decide(ev(OLD.replace(" ", "  ")), earlier(OLD), last()).name == "unchanged"
    edited = OLD.replace("immediately", "now")
    verdict = decide(ev(edited), earlier(OLD), last())
    assert verdict.name == "changed" and "1 sentence edited" in verdict.reason
    assert 0.8 < verdict.similarity < 1.0


def test_permanent_redirect_with_same_content_is_moved_once():
    moved = ev(final="https://e.org/new/place", permanent=True)
    assert decide(moved, earlier(OLD), last()).name == "moved"
    again = earlier(OLD, final="https://e.org/new/place")
    assert decide(moved, again, last()).name == "unchanged"
    temporary = ev(final="https://e.org/new/place", permanent=False)
    assert decide(temporary, earlier(OLD), last()).name == "unchanged"


def test_alternating_versions_are_reported_once():
    a, b = OLD + " North gate.", OLD + " East gate."
    assert decide(ev(b), earlier(a), last(a)).name == "changed"
    flip = decide(ev(a), earlier(a, b), last(b))
    assert flip.name == "unchanged" and "alternating" in flip.reason


def test_a_lost_cited_passage_is_a_change_that_says_so():
    quote = "US citizens at the Abbey Gate should leave immediately."
    now = ev("Updates will follow.", passages=[{"passage": quote, "present": False, "score": 0.2}])
    verdict = decide(now, earlier(OLD), last(present={quote}))
    assert verdict.name == "changed" and verdict.reason.startswith("cited passage no longer")


def test_home_and_section_redirects():
    assert home_or_section("https://e.org/world/story-1", "https://e.org/") == "home page"
    assert (
        home_or_section("https://e.org/world/story-1", "https://e.org/world/")
        == "section page /world/"
    )
    assert home_or_section("https://e.org/a", "https://other.org/") is None
    assert home_or_section("https://e.org/world/story-1", "https://e.org/world/story-2") is None
