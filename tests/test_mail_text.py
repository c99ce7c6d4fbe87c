"""crm/mail_text.py: the text of HTML-only mail, as the clients that send it write it."""

import pytest

from crm.mail_text import html_to_text


@pytest.mark.parametrize(
    ("html", "text"),
    [
        ("Hello &amp; thanks,<br>it works&nbsp;again.", "Hello & thanks,\nit works again."),
        ("<p>One\n   paragraph</p><p>Two</p>", "One paragraph\n\nTwo"),
        ("<div>a<br></div><div>b<br><br>c</div>", "a\nb\n\nc"),
        ("<ul><li>one</li><li>two</li></ul>after", "one\ntwo\n\nafter"),
        ("<pre>a  b\n1  2</pre>", "a  b\n1  2"),
        ("<style>p {color: red}</style><script>alert(1)</script><title>t</title>shown", "shown"),
        (
            "mine<blockquote>theirs<blockquote>older</blockquote>still theirs</blockquote>mine again",
            "mine\nmine again",
        ),
        ('<div class="moz-cite-prefix">On Mon, agnes wrote:</div><blockquote type="cite">x</blockquote>', ""),
        ('Done.<div id="divRplyFwdMsg">From: agnes</div><div>the old thread</div>', "Done."),
        ('<div class="yahoo_quoted"><div>quoted</div></div>kept', "kept"),
        ("<p>unclosed <b>bold", "unclosed bold"),
        ("", ""),
    ],
)
def test_html_mail_becomes_the_text_its_writer_typed(html, text):
    assert html_to_text(html) == text
