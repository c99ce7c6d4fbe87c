"""The plain text of an HTML-only e-mail: what its writer typed, as a ticket or a comment shows it.

Mail clients that send HTML alone (Outlook, many phones) put the reply in paragraphs and line breaks,
style sheets in <style>, and the message they answer in a <blockquote> (Thunderbird, Apple Mail), a
`gmail_quote` block (Gmail) or after a `divRplyFwdMsg` block (Outlook). Tags are not text: stripping
them leaves style rules, `&amp;`, one long line and the whole quoted thread in the ticket.
"""

import re
from html.parser import HTMLParser

_HIDDEN = frozenset({"script", "style", "head", "title", "template", "noscript"})
_PARAGRAPHS = frozenset({"p", "h1", "h2", "h3", "h4", "h5", "h6", "pre", "table", "ul", "ol", "hr"})
_SECTIONS = frozenset({"address", "article", "aside", "footer", "form", "header", "main", "nav", "section"})
_BLOCKS = _PARAGRAPHS | _SECTIONS | {"blockquote", "br", "dd", "div", "dl", "dt", "li", "tr"}
_QUOTE_CLASSES = frozenset({"gmail_quote", "moz-cite-prefix", "yahoo_quoted"})
_REST_IS_QUOTED_IDS = frozenset({"divrplyfwdmsg", "appendonsend"})  # Outlook: the quote follows
_SPACES = re.compile(r"[ \t\r\f\v\u00a0]+")


class _Extractor(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.skipped_tag = ""  # the element whose content is left out (hidden or quoted)
        self.skipped_depth = 0
        self.preformatted = 0
        self.pending = 0  # line breaks owed before the next text
        self.finished = False  # Outlook's quote began: nothing after it is the writer's

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if self.finished:
            return
        if self.skipped_tag:
            if tag == self.skipped_tag:
                self.skipped_depth += 1
            return
        values = dict(attrs)
        if (values.get("id") or "").lower() in _REST_IS_QUOTED_IDS:
            self.finished = True
            return
        classes = set((values.get("class") or "").split())
        if tag in _HIDDEN or tag == "blockquote" or classes & _QUOTE_CLASSES:
            self.skipped_tag, self.skipped_depth = tag, 1
            self._break(tag)  # a left-out block still separates the text around it
            return
        if tag == "pre":
            self.preformatted += 1
        self._break(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if not self.finished and not self.skipped_tag:
            self._break(tag)

    def handle_endtag(self, tag: str) -> None:
        if self.finished:
            return
        if self.skipped_tag:
            if tag == self.skipped_tag:
                self.skipped_depth -= 1
                if self.skipped_depth == 0:
                    self.skipped_tag = ""
                    self._break(tag)
            return
        if tag == "pre" and self.preformatted:
            self.preformatted -= 1
        self._break(tag)

    def _break(self, tag: str) -> None:
        """Paragraphs are set off by an empty line, other blocks start a new line, each <br> breaks
        one line; breaks around an element do not add up (a list item's end and the next one's start
        make one line break)."""
        if tag == "br":
            self.pending = min(self.pending + 1, 2)
        elif tag in _PARAGRAPHS:
            self.pending = 2
        elif tag in _BLOCKS:
            self.pending = max(self.pending, 1)

    def handle_data(self, data: str) -> None:
        if self.finished or self.skipped_tag:
            return
        # Outside <pre>, HTML's own whitespace rule: any run of it is one space.
        text = data.replace("\u00a0", " ") if self.preformatted else _SPACES.sub(" ", data.replace("\n", " "))
        if not text.strip():
            if not self.pending:
                self.parts.append(text)
            return
        if self.pending and self.parts:
            self.parts.append("\n" * self.pending)
        self.pending = 0
        self.parts.append(text)


def html_to_text(html: str) -> str:
    """Paragraphs and line breaks kept, entities decoded, hidden parts and quoted replies left out."""
    extractor = _Extractor()
    extractor.feed(html)
    extractor.close()
    lines = [line.strip() for line in "".join(extractor.parts).split("\n")]
    text = "\n".join(lines)
    return re.sub(r"\n{3,}", "\n\n", text).strip()
