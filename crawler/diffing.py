"""What changed between two captures: text, JSON and HTML diffs, and changed screenshot regions.

Pure functions over two ``DiffSide`` values; ``crawler.diff_cli`` reads the captures. Texts are
compared one sentence per line, so a one-word edit in a long paragraph shows as one changed
sentence; inside a changed hunk the words are compared again.
"""

from __future__ import annotations

import base64
import difflib
import html
import io
import re
from dataclasses import dataclass

from PIL import Image, ImageChops, ImageDraw

Box = tuple[int, int, int, int]

CELL = 16  # screenshot changes are grouped on a grid of CELL x CELL pixel cells
STRIP = 2048  # rows compared at a time: a 20,000 px screenshot is never copied whole
MAX_DISPLAY_HEIGHT = 8000  # the HTML page shows at most this much of each screenshot
BREAK = "\n"  # sentence boundary token inside a word diff
# Whitespace after sentence-ending punctuation (closing quotes and brackets included); CJK
# full stops end a sentence without a space.
_SENTENCE_END = re.compile(r"([.!?\u2026]+[\"'\u201d\u2019\u00bb)\]]*)\s+|([\u3002\uff01\uff1f]+)")
_SPACES = re.compile(r"\s+")


@dataclass(frozen=True)
class DiffSide:
    """One capture as a diff needs it; ``screenshot`` is None when there is none (PDFs)."""

    capture_id: str
    captured_at: str
    url: str
    text: str
    screenshot: bytes | None = None


@dataclass(frozen=True)
class _Comparison:
    a: list[str]  # sentences
    b: list[str]
    opcodes: list[tuple[str, int, int, int, int]]  # sentence level
    words: dict[int, tuple[list[str], list[str], list]]  # opcode index -> tokens, word opcodes
    similarity: float


def sentences(text: str) -> list[str]:
    """The text as diff lines: one sentence per line, whitespace collapsed, no blank lines."""
    units = []
    for line in text.splitlines():
        for part in _SENTENCE_END.sub(r"\1\2\n", line).split("\n"):
            unit = _SPACES.sub(" ", part).strip()
            if unit:
                units.append(unit)
    return units


def _tokens(lines: list[str]) -> list[str]:
    tokens: list[str] = []
    for n, line in enumerate(lines):
        if n:
            tokens.append(BREAK)
        tokens.extend(line.split(" "))
    return tokens


def _word_count(tokens: list[str]) -> int:
    return sum(token != BREAK for token in tokens)


def _compare(a_text: str, b_text: str) -> _Comparison:
    a, b = sentences(a_text), sentences(b_text)
    # No autojunk: a sentence repeated on a page ("Advertisement") must still anchor matches.
    opcodes = difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes()
    words = {}
    matched = 0
    for k, (tag, i1, i2, j1, j2) in enumerate(opcodes):
        if tag == "equal":
            matched += _word_count(_tokens(a[i1:i2]))
        elif tag == "replace":
            ta, tb = _tokens(a[i1:i2]), _tokens(b[j1:j2])
            # Exact word matching is quadratic; a rewritten page may drop popular words.
            junk = len(ta) + len(tb) > 4000
            ops = difflib.SequenceMatcher(None, ta, tb, autojunk=junk).get_opcodes()
            matched += sum(_word_count(ta[x1:x2]) for op, x1, x2, _, _ in ops if op == "equal")
            words[k] = (ta, tb, ops)
    total = _word_count(_tokens(a)) + _word_count(_tokens(b))
    # Only all-matching texts (or two empty ones) get 1.0; a tiny change is not rounded up.
    similarity = 1.0 if 2 * matched == total else min(round(2 * matched / total, 4), 0.9999)
    return _Comparison(a, b, opcodes, words, similarity)


def _unified_range(start: int, stop: int) -> str:
    length = stop - start
    if length == 1:
        return str(start + 1)
    return f"{start if length == 0 else start + 1},{length}"


def text_diff(a: DiffSide, b: DiffSide, context: int = 3) -> str:
    """A unified diff of the sentences; the headers name each capture id and time."""
    sa, sb = sentences(a.text), sentences(b.text)
    matcher = difflib.SequenceMatcher(None, sa, sb, autojunk=False)
    out: list[str] = []
    for group in matcher.get_grouped_opcodes(context):
        if not out:
            out += [f"--- {a.capture_id}\t{a.captured_at}", f"+++ {b.capture_id}\t{b.captured_at}"]
        i1, j1, i2, j2 = group[0][1], group[0][3], group[-1][2], group[-1][4]
        out.append(f"@@ -{_unified_range(i1, i2)} +{_unified_range(j1, j2)} @@")
        for tag, x1, x2, y1, y2 in group:
            if tag == "equal":
                out += [" " + line for line in sa[x1:x2]]
                continue
            out += ["-" + line for line in sa[x1:x2]]
            out += ["+" + line for line in sb[y1:y2]]
    return "\n".join(out) + "\n" if out else ""


def _words_joined(tokens: list[str]) -> str:
    return " ".join(token for token in tokens if token != BREAK)


def _side(side: DiffSide) -> dict:
    return {"id": side.capture_id, "captured_at": side.captured_at, "url": side.url}


def json_diff(a: DiffSide, b: DiffSide) -> dict:
    """The changes as data; sentence numbers start at 1, ``screenshot_regions`` may be null.

    ``screenshot_regions`` is null when the screenshots cannot be compared (one is missing or
    unreadable); boxes are ``[x0, y0, x1, y1]`` with x1, y1 exclusive.
    """
    cmp = _compare(a.text, b.text)
    hunks = []
    for k, (tag, i1, i2, j1, j2) in enumerate(cmp.opcodes):
        if tag == "equal":
            continue
        hunk: dict = {
            "op": tag,
            "from_start": i1 + 1,
            "from_lines": cmp.a[i1:i2],
            "to_start": j1 + 1,
            "to_lines": cmp.b[j1:j2],
        }
        if tag == "replace":
            ta, tb, ops = cmp.words[k]
            changed = [
                {"op": op, "from": _words_joined(ta[x1:x2]), "to": _words_joined(tb[y1:y2])}
                for op, x1, x2, y1, y2 in ops
                if op != "equal"
            ]
            # A moved sentence boundary alone is no changed word.
            hunk["words"] = [w for w in changed if w["from"] or w["to"]]
        hunks.append(hunk)
    regions = _regions(a, b)
    return {
        "from": _side(a),
        "to": _side(b),
        "similarity": cmp.similarity,
        "hunks": hunks,
        "screenshot_regions": None if regions is None else [list(box) for box in regions],
    }


def _open_png(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    return image if image.mode == "RGB" else image.convert("RGB")


def _change_mask(a: Image.Image, b: Image.Image, threshold: int) -> Image.Image:
    """255 where the images differ by more than ``threshold`` in any channel, else 0."""
    width, height = max(a.width, b.width), max(a.height, b.height)
    mask = Image.new("L", (width, height), 0)
    lut = [255 if v > threshold else 0 for v in range(256)]
    for top in range(0, height, STRIP):
        box = (0, top, width, min(top + STRIP, height))
        # crop() beyond an image's edge pads it with black: both strips get the same size.
        red, green, blue = ImageChops.difference(a.crop(box), b.crop(box)).split()
        strongest = ImageChops.lighter(ImageChops.lighter(red, green), blue)
        mask.paste(strongest.point(lut), (0, top))
    # Where only one image has pixels the page grew or shrank: changed, whatever the colour.
    draw = ImageDraw.Draw(mask)
    if min(a.width, b.width) < width:
        draw.rectangle((min(a.width, b.width), 0, width - 1, height - 1), fill=255)
    if min(a.height, b.height) < height:
        draw.rectangle((0, min(a.height, b.height), width - 1, height - 1), fill=255)
    return mask


def _components(cells: Image.Image) -> list[Box]:
    """Bounding boxes (in cells) of 8-connected groups of changed cells."""
    width, height = cells.size
    data = cells.tobytes()
    seen = bytearray(len(data))
    boxes = []
    for start, value in enumerate(data):
        if not value or seen[start]:
            continue
        seen[start] = 1
        stack, box = [start], (width, height, 0, 0)
        while stack:
            y, x = divmod(stack.pop(), width)
            box = _union(box, (x, y, x + 1, y + 1))
            for ny in (y - 1, y, y + 1):
                for nx in (x - 1, x, x + 1):
                    n = ny * width + nx
                    if 0 <= ny < height and 0 <= nx < width and data[n] and not seen[n]:
                        seen[n] = 1
                        stack.append(n)
        boxes.append(box)
    return boxes


def _union(p: Box, q: Box) -> Box:
    return (min(p[0], q[0]), min(p[1], q[1]), max(p[2], q[2]), max(p[3], q[3]))


def _overlap(p: Box, q: Box) -> bool:
    return p[0] < q[2] and q[0] < p[2] and p[1] < q[3] and q[1] < p[3]


def _merge_overlapping(boxes: list[Box]) -> list[Box]:
    merged: list[Box] = []
    for box in boxes:
        while hit := next((m for m in merged if _overlap(box, m)), None):
            merged.remove(hit)
            box = _union(box, hit)
        merged.append(box)
    return merged


def _any_cells(mask: Image.Image, factor: int) -> Image.Image:
    # reduce() averages blocks; any changed pixel leaves a non-zero mean (255/16 at least).
    return mask.reduce(factor).point(lambda v: 255 if v else 0)


def changed_regions(
    png_a: bytes, png_b: bytes, *, threshold: int = 24, min_area: int = 16, max_regions: int = 50
) -> list[Box]:
    """Boxes ``(x0, y0, x1, y1)`` (x1, y1 exclusive) around what differs, top to bottom.

    Images of different sizes are compared from the top left corner; what only one has
    counts as changed. A box needs ``min_area`` changed pixels. With more than
    ``max_regions`` boxes the grid gets coarser, merging neighbours, until they fit.
    """
    mask = _change_mask(_open_png(png_a), _open_png(png_b), threshold)
    cells, scale = _any_cells(_any_cells(mask, 4), 4), CELL
    while True:
        boxes = []
        for x0, y0, x1, y1 in _components(cells):
            left, top = x0 * scale, y0 * scale
            part = mask.crop((left, top, min(x1 * scale, mask.width), min(y1 * scale, mask.height)))
            tight = part.getbbox()
            if tight and part.histogram()[255] >= min_area:
                boxes.append((left + tight[0], top + tight[1], left + tight[2], top + tight[3]))
        if len(boxes) <= 8 * max_regions:  # merging is quadratic: coarsen noise first
            boxes = _merge_overlapping(boxes)
        if len(boxes) <= max(1, max_regions):
            return sorted(boxes, key=lambda b: (b[1], b[0]))
        cells, scale = _any_cells(cells, 2), scale * 2


def _regions(a: DiffSide, b: DiffSide) -> list[Box] | None:
    """Changed screenshot regions, or None when the screenshots cannot be compared."""
    if a.screenshot is None or b.screenshot is None:
        return None
    try:
        return changed_regions(a.screenshot, b.screenshot)
    except (OSError, Image.DecompressionBombError):  # unreadable or absurdly large PNG
        return None


_STYLE = """
body{font:14px/1.45 system-ui,sans-serif;margin:1.5em;color:#222}
table{border-collapse:collapse;width:100%;table-layout:fixed}
td{vertical-align:top;padding:2px 6px;border-bottom:1px solid #eee;overflow-wrap:anywhere}
col.n{width:4.5em}
td.n{color:#888;text-align:right}
del{background:#fdd;color:#900}
ins{background:#dfd;color:#060;text-decoration:none}
tr.skip td{color:#888;background:#f6f6f6;text-align:center;font-style:italic}
.shots{display:flex;gap:1em;align-items:flex-start;margin-top:2em}
figure{flex:1;margin:0;min-width:0}
img{width:100%;height:auto;border:1px solid #ccc}
"""
_CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"


def _marked(tokens: list[str], tag: str | None) -> str:
    text = " ".join("<br>" if t == BREAK else html.escape(t) for t in tokens)
    return f"<{tag}>{text}</{tag}>" if tag and text else text


def _row(left: str, right: str, n_from: str = "", n_to: str = "") -> str:
    cells = f'<td class="n">{n_from}</td><td>{left}</td><td class="n">{n_to}</td><td>{right}</td>'
    return f"<tr>{cells}</tr>"


def _numbers(start: int, stop: int) -> str:
    return (
        "" if stop <= start else str(start + 1) if stop - start == 1 else f"{start + 1}\u2013{stop}"
    )


def _text_rows(cmp: _Comparison, context: int = 2) -> list[str]:
    """Side-by-side rows: changes with their words marked, unchanged runs collapsed."""
    rows = []
    last = len(cmp.opcodes) - 1
    for k, (tag, i1, i2, j1, j2) in enumerate(cmp.opcodes):
        if tag == "equal":
            head, tail = (context if k > 0 else 0), (context if k < last else 0)
            shown = (
                range(i2 - i1)
                if head + tail >= i2 - i1
                else [*range(head), -1, *range(i2 - i1 - tail, i2 - i1)]
            )
            for n in shown:
                if n < 0:
                    skipped = i2 - i1 - head - tail
                    rows.append(
                        f'<tr class="skip"><td colspan="4">{skipped} unchanged '
                        f"sentence{'s' if skipped != 1 else ''}</td></tr>"
                    )
                else:
                    line = html.escape(cmp.a[i1 + n])
                    rows.append(_row(line, line, str(i1 + n + 1), str(j1 + n + 1)))
            continue
        if tag == "replace":
            ta, tb, ops = cmp.words[k]
            left = " ".join(
                _marked(ta[x1:x2], None if op == "equal" else "del")
                for op, x1, x2, _, _ in ops
                if x2 > x1
            )
            right = " ".join(
                _marked(tb[y1:y2], None if op == "equal" else "ins")
                for op, _, _, y1, y2 in ops
                if y2 > y1
            )
        else:
            left, right = (
                _marked(_tokens(cmp.a[i1:i2]), "del"),
                _marked(_tokens(cmp.b[j1:j2]), "ins"),
            )
        rows.append(_row(left, right, _numbers(i1, i2), _numbers(j1, j2)))
    return rows


def _figure(side: DiffSide, regions: list[Box] | None) -> str:
    caption = f"{html.escape(side.capture_id)} · {html.escape(side.captured_at)}"
    if side.screenshot is None:
        return f"<figure><figcaption>{caption}: no screenshot</figcaption></figure>"
    try:
        image = _open_png(side.screenshot)
    except (OSError, Image.DecompressionBombError):
        return f"<figure><figcaption>{caption}: unreadable screenshot</figcaption></figure>"
    if image.height > MAX_DISPLAY_HEIGHT:
        caption += f" (top {MAX_DISPLAY_HEIGHT} of {image.height} px)"
    image = image.crop((0, 0, image.width, min(image.height, MAX_DISPLAY_HEIGHT)))
    draw = ImageDraw.Draw(image)
    for x0, y0, x1, y1 in regions or []:
        if y0 < image.height:
            draw.rectangle((x0, y0, x1 - 1, y1 - 1), outline=(230, 0, 0), width=3)
    png = io.BytesIO()
    image.save(png, "PNG")
    data = base64.b64encode(png.getvalue()).decode("ascii")
    return (
        f"<figure><figcaption>{caption}</figcaption>"
        f'<img alt="screenshot of {html.escape(side.capture_id)}" '
        f'src="data:image/png;base64,{data}"></figure>'
    )


def html_diff(a: DiffSide, b: DiffSide) -> str:
    """One self-contained HTML page (no script, no external resource) showing the changes."""
    cmp = _compare(a.text, b.text)
    regions = _regions(a, b)
    url = html.escape(b.url) + (f" (was {html.escape(a.url)})" if a.url != b.url else "")
    if any(tag != "equal" for tag, *_ in cmp.opcodes):
        columns = '<col class="n"><col><col class="n"><col>'
        text = f"<table><colgroup>{columns}</colgroup>{''.join(_text_rows(cmp))}</table>"
    else:
        text = "<p>The texts are the same sentence for sentence.</p>"
    boxes = "not comparable" if regions is None else f"{len(regions)} changed region(s)"
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{_CSP}">
<title>Changes to {html.escape(b.url)}</title><style>{_STYLE}</style></head>
<body><h1>Changes to {url}</h1>
<p>From <b>{html.escape(a.capture_id)}</b> ({html.escape(a.captured_at)})
to <b>{html.escape(b.capture_id)}</b> ({html.escape(b.captured_at)}) ·
similarity {cmp.similarity:.1%} · screenshots: {boxes}</p>
{text}
<div class="shots">{_figure(a, regions)}{_figure(b, regions)}</div>
</body></html>
"""
