"""Malformed and hostile request bodies against every route that takes a POST or PATCH: each is
answered 4xx with an error the client can read, never a 500, never an ERROR line in the log (which
check_system would count toward paging the on-call), and nothing is stored. Uploaded files and the
log file are not readable by other local accounts."""

import grp
import logging
import os
import re
import stat
from urllib.parse import quote

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from rest_framework.authtoken.models import Token

from crm import tickets
from crm.checks import check_media_group
from crm.models import ActivityLog, Ticket, TicketAttachment, TicketComment, fit_name
from crm.parsers import MAX_DEPTH
from helpdesk.log_files import PrivateRotatingFileHandler

pytestmark = pytest.mark.django_db

NESTED = b"[" * 1500 + b"]" * 1500
JUST_TOO_DEEP = b'{"title": ' + b"[" * MAX_DEPTH + b"]" * MAX_DEPTH + b"}"
BODIES = {
    "nested 1500 deep": (NESTED, "application/json"),
    f"nested {MAX_DEPTH + 1} deep": (JUST_TOO_DEEP, "application/json"),
    "object nested 1500 deep": (b'{"a":' * 1500 + b"1" + b"}" * 1500, "application/json"),
    "invalid UTF-8": (b'{"title": "\xff\xfe\xfa", "description": "d"}', "application/json"),
    "NUL bytes": (
        b'{"title": "a\\u0000b", "description": "\\u0000", "username": "\\u0000"}',
        "application/json",
    ),
    "huge integer": (
        b'{"title": "t", "description": "d", "organization": 1' + b"0" * 40 + b"}",
        "application/json",
    ),
    "integer of 5000 digits": (b'{"organization": ' + b"9" * 5000 + b"}", "application/json"),
    "huge float": (b'{"title": "t", "description": "d", "organization": 1e999}', "application/json"),
    "a list, not an object": (b'[{"title": "t"}]', "application/json"),
    "a string, not an object": (b'"title"', "application/json"),
    "truncated JSON": (b'{"title": "t", "descr', "application/json"),
    "empty body": (b"", "application/json"),
    "XML": (b"<ticket><title>t</title></ticket>", "application/xml"),
    "text": (b"title=t", "text/plain"),
    "wrong types": (
        b'{"title": ["t"], "description": {"d": 1}, "status": 7, "assigned_to": "x"}',
        "application/json",
    ),
    "multipart without boundary": (b"--x\r\n", "multipart/form-data"),
}


def api_routes(helpdesk) -> list[tuple[str, str, str | None]]:
    token = Token.objects.create(user=helpdesk.agent).key
    ticket = helpdesk.acme_ticket.pk
    return [
        ("post", "/api/token/", None),
        ("post", "/api/tickets/", token),
        ("patch", f"/api/tickets/{ticket}/", token),
    ]


def stored(helpdesk) -> tuple:
    ticket = Ticket.objects.get(pk=helpdesk.acme_ticket.pk)
    return (
        Ticket.objects.count(),
        TicketComment.objects.count(),
        ActivityLog.objects.count(),
        TicketAttachment.objects.count(),
        (ticket.title, ticket.status, ticket.assigned_to_id, ticket.description),
    )


@pytest.mark.parametrize("body_name", BODIES)
def test_malformed_api_bodies_are_4xx_without_an_error_log(helpdesk, body_name, caplog):
    body, content_type = BODIES[body_name]
    before = stored(helpdesk)
    for method, url, token in api_routes(helpdesk):
        headers = {"HTTP_AUTHORIZATION": f"Token {token}"} if token else {}
        with caplog.at_level(logging.WARNING):
            response = getattr(Client(), method)(url, body, content_type=content_type, **headers)
        if body_name == "empty body" and method == "patch":
            assert response.status_code == 200  # an empty PATCH changes nothing, as it should
            continue
        assert 400 <= response.status_code < 500, (method, url, response.status_code)
        assert response["Content-Type"] == "application/json", (url, response["Content-Type"])
        assert "detail" in response.json() or response.json(), url  # a message the client can show
    assert stored(helpdesk) == before
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text


def test_deep_nesting_is_refused_with_a_readable_reason(helpdesk):
    token = Token.objects.create(user=helpdesk.agent).key
    response = Client().post(
        "/api/tickets/", NESTED, content_type="application/json", HTTP_AUTHORIZATION=f"Token {token}"
    )
    assert response.status_code == 400
    assert response.json() == {"detail": f"JSON parse error - nested deeper than {MAX_DEPTH} levels"}
    at_the_limit = (
        b'{"title": "t", "description": "d", "x": ' + b"[" * (MAX_DEPTH - 1) + b"]" * (MAX_DEPTH - 1) + b"}"
    )
    organization = f', "organization": {helpdesk.acme.pk}}}'.encode()
    accepted = Client().post(
        "/api/tickets/",
        at_the_limit[:-1] + organization,
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Token {token}",
    )
    assert accepted.status_code == 201, accepted.content  # MAX_DEPTH levels are still JSON we read


FORM_VALUES = {
    "NUL bytes": {
        "title": "a\x00b",
        "description": "\x00",
        "body": "\x00",
        "username": "\x00",
        "password": "\x00",
    },
    "huge numbers": {"organization": "1" + "0" * 40, "assigned_to": "9" * 5000, "priority": "1e999"},
    "wrong choices": {"status": "gone", "priority": "whenever", "is_internal": "maybe", "per_page": "-1"},
}


def form_routes(helpdesk) -> list[str]:
    ticket = helpdesk.acme_ticket.pk
    return [
        "/tickets/create/",
        f"/tickets/{ticket}/edit/",
        f"/tickets/{ticket}/comments/",
        f"/tickets/{ticket}/attachments/",
    ]


@pytest.mark.parametrize("values_name", FORM_VALUES)
def test_malformed_form_posts_are_4xx_without_an_error_log(helpdesk, as_user, values_name, caplog):
    before = stored(helpdesk)
    client = as_user(helpdesk.agent)
    with caplog.at_level(logging.WARNING):
        for url in form_routes(helpdesk):
            response = client.post(url, FORM_VALUES[values_name])
            assert response.status_code == 400, (url, response.status_code)
        language = client.post(
            "/i18n/setlang/", {"language": FORM_VALUES[values_name].get("title", "xx"), "next": "/"}
        )
        assert language.status_code in (302, 400), language.status_code  # an unknown language is ignored
        login = Client().post("/login/", FORM_VALUES[values_name])
        assert login.status_code in (200, 400) and "_auth_user_id" not in Client().session
    assert stored(helpdesk) == before
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text


@pytest.mark.parametrize("values_name", FORM_VALUES)
def test_malformed_admin_and_logout_posts_change_nothing_and_log_no_error(
    helpdesk, as_user, values_name, caplog
):
    """The admin answers a refused form with the form again (200, Django's convention), never a 500."""
    before = stored(helpdesk)
    client = as_user(helpdesk.admin)
    ticket = helpdesk.acme_ticket.pk
    admin_forms = [
        "/admin/crm/ticket/add/",
        f"/admin/crm/ticket/{ticket}/change/",
        "/admin/crm/ticketcomment/add/",
        "/admin/crm/organization/add/",
        "/admin/auth/user/add/",
    ]
    with caplog.at_level(logging.WARNING):
        for url in admin_forms:
            response = client.post(url, FORM_VALUES[values_name])
            assert response.status_code in (200, 400), (url, response.status_code)
        for body, content_type in (BODIES["nested 1500 deep"], BODIES["invalid UTF-8"]):
            response = client.post(admin_forms[0], body, content_type=content_type)
            assert response.status_code in (200, 400), (content_type, response.status_code)
        logout = client.post("/logout/", FORM_VALUES[values_name])
        assert logout.status_code == 302
    assert stored(helpdesk) == before
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text


def test_json_or_xml_posted_to_a_form_is_a_400(helpdesk, as_user, caplog):
    client = as_user(helpdesk.agent)
    before = stored(helpdesk)
    with caplog.at_level(logging.WARNING):
        for url in form_routes(helpdesk):
            for body, content_type in (BODIES["nested 1500 deep"], BODIES["XML"], BODIES["NUL bytes"]):
                response = client.post(url, body, content_type=content_type)
                assert response.status_code == 400, (url, content_type, response.status_code)
    assert stored(helpdesk) == before
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text


def test_invalid_utf8_in_a_form_is_refused_or_replaced_never_a_500(helpdesk, as_user, caplog):
    client = as_user(helpdesk.agent)
    with caplog.at_level(logging.WARNING):
        for url in form_routes(helpdesk):
            response = client.post(
                url,
                b"title=\xff\xfe&description=\xc3&body=\xe2\x82",
                content_type="application/x-www-form-urlencoded",
            )
            assert response.status_code in (302, 400), (url, response.status_code)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text


@pytest.mark.parametrize(
    "name",
    [
        "ż" * 130 + ".pdf",
        "文" * 100 + ".txt",
        "ż" * 250 + ".pdf",
        "a" * 300 + ".tar.gz",
        "🙂" * 80,
        "x" * 255,
    ],
    ids=["polish", "chinese", "polish-250", "ascii-300", "emoji-no-extension", "ascii-255"],
)
def test_attachment_with_a_long_multibyte_name_is_stored_under_a_generated_name(
    helpdesk, as_user, name, settings, tmp_path
):
    settings.MEDIA_ROOT = tmp_path
    client = as_user(helpdesk.alice)
    ticket = helpdesk.acme_ticket
    upload = SimpleUploadedFile(name, b"%PDF-1.4 contents\n")
    assert client.post(f"/tickets/{ticket.pk}/attachments/", {"file": upload}).status_code == 302
    attachment = TicketAttachment.objects.get(ticket=ticket)
    suffix = name.rpartition(".")[2] if "." in name else ""
    kept = f"\\.{suffix}" if suffix else ""
    assert re.fullmatch(rf"attachments/{ticket.pk}/[0-9a-f]{{32}}{kept}", attachment.file.name)
    offered = attachment.filename  # what the download is offered as: the uploader's name, fitted
    assert len(offered.encode()) <= 255
    assert offered.endswith(f".{suffix}") if suffix else True
    assert offered.split(".")[0][:5] == name.split(".")[0][:5]  # recognisably the uploader's name
    download = client.get(f"/tickets/attachments/{attachment.pk}/")
    assert download.status_code == 200 and b"".join(download.streaming_content) == b"%PDF-1.4 contents\n"
    assert quote(offered) in download["Content-Disposition"]


@pytest.mark.parametrize(
    ("uploaded", "offered", "extension"),
    [
        ("../../etc/passwd", "passwd", ""),
        ("C:\\Users\\ana\\raport.PDF", "raport.PDF", ".pdf"),
        ("new\nline\r.txt", "newline.txt", ".txt"),
        ("archive.tar.gz", "archive.tar.gz", ".gz"),
        ("weird.ex$e", "weird.ex$e", ""),
        ("...", "file", ""),
    ],
)
def test_the_uploaders_name_never_reaches_the_file_system(
    helpdesk, as_user, settings, tmp_path, uploaded, offered, extension
):
    settings.MEDIA_ROOT = tmp_path
    client = as_user(helpdesk.alice)
    ticket = helpdesk.acme_ticket
    # Straight to the function the views use: the multipart parser would already drop some of it.
    upload = SimpleUploadedFile(uploaded, b"data\n")
    attachment = tickets.add_attachment(ticket, helpdesk.alice, upload)
    assert attachment.filename == offered
    assert re.fullmatch(
        rf"attachments/{ticket.pk}/[0-9a-f]{{32}}{re.escape(extension)}", attachment.file.name
    )
    assert [p.relative_to(tmp_path).parts[0] for p in tmp_path.rglob("*") if p.is_file()] == ["attachments"]
    assert client.get(f"/tickets/attachments/{attachment.pk}/").status_code == 200


def test_two_uploads_of_one_name_keep_both_files(helpdesk, as_user, settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    client = as_user(helpdesk.alice)
    for content in (b"first\n", b"second\n"):
        upload = SimpleUploadedFile("report.txt", content)
        assert (
            client.post(f"/tickets/{helpdesk.acme_ticket.pk}/attachments/", {"file": upload}).status_code
            == 302
        )
    attachments = list(TicketAttachment.objects.order_by("id"))
    assert [a.filename for a in attachments] == ["report.txt", "report.txt"]
    assert attachments[0].file.name != attachments[1].file.name
    assert [a.file.read() for a in attachments] == [b"first\n", b"second\n"]


def test_fit_name_boundaries():
    assert fit_name("a" * 251 + ".pdf", max_bytes=255, max_chars=255) == "a" * 251 + ".pdf"  # exactly 255
    assert fit_name("a" * 252 + ".pdf", max_bytes=255, max_chars=255) == "a" * 251 + ".pdf"
    assert fit_name("ż" * 126 + ".pdf", max_bytes=255, max_chars=255) == "ż" * 125 + ".pdf"  # 250 + 4 bytes
    assert fit_name("plain", max_bytes=3, max_chars=255) == "pla"
    assert fit_name(".pdf", max_bytes=255, max_chars=255) == "file.pdf"
    assert fit_name("", max_bytes=255, max_chars=255) == "file"
    assert fit_name("x." + "y" * 40, max_bytes=10, max_chars=255) == "x." + "y" * 8  # no 40-byte "extension"


def test_uploaded_attachment_and_its_folder_are_private(helpdesk, as_user, settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    previous = os.umask(0o022)  # a permissive umask, as an unconfigured service would have
    try:
        upload = SimpleUploadedFile("secret.txt", b"customer data\n")
        assert (
            as_user(helpdesk.alice)
            .post(f"/tickets/{helpdesk.acme_ticket.pk}/attachments/", {"file": upload})
            .status_code
            == 302
        )
    finally:
        os.umask(previous)
    path = tmp_path / TicketAttachment.objects.get().file.name
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o750
    assert stat.S_IMODE(path.parent.parent.stat().st_mode) == 0o750


def test_uploads_and_their_new_folders_go_to_the_configured_group(helpdesk, settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    settings.MEDIA_GROUP = "nogroup"
    nogroup = grp.getgrnam("nogroup").gr_gid
    first = tickets.add_attachment(helpdesk.acme_ticket, helpdesk.alice, SimpleUploadedFile("a.txt", b"a"))
    second = tickets.add_attachment(helpdesk.acme_ticket, helpdesk.alice, SimpleUploadedFile("b.txt", b"b"))
    for attachment in (first, second):
        path = tmp_path / attachment.file.name
        assert [path.stat().st_gid, path.parent.stat().st_gid, path.parent.parent.stat().st_gid] == [
            nogroup
        ] * 3
        assert stat.S_IMODE(path.stat().st_mode) == 0o640
    assert tmp_path.stat().st_gid != nogroup  # MEDIA_ROOT itself is the administrator's to set


def test_an_unknown_media_group_is_a_system_check_error(settings):
    settings.MEDIA_GROUP = "no-such-group-here"
    errors = [e for e in check_media_group() if e.id == "crm.E001"]
    assert errors and "'no-such-group-here' is not a group on this machine" in errors[0].msg
    settings.MEDIA_GROUP = "nogroup"
    assert check_media_group() == []


def test_log_file_is_created_private_and_an_open_one_is_tightened(tmp_path):
    previous = os.umask(0o022)
    try:
        fresh = tmp_path / "helpdesk.log"
        handler = PrivateRotatingFileHandler(fresh, maxBytes=100, backupCount=2)
        handler.emit(logging.makeLogRecord({"msg": "x" * 200}))
        handler.emit(logging.makeLogRecord({"msg": "rotated"}))  # rotation opens a new file
        handler.close()
        old = tmp_path / "old.log"
        old.write_text("")
        old.chmod(0o644)
        PrivateRotatingFileHandler(old).close()
    finally:
        os.umask(previous)
    assert (tmp_path / "helpdesk.log.1").exists()
    for path in (fresh, tmp_path / "helpdesk.log.1", old):
        assert stat.S_IMODE(path.stat().st_mode) == 0o640, path.name


def test_systemd_units_set_a_private_umask():
    from tests.support.deployments import REPO_ROOT

    for unit in (REPO_ROOT / "deploy" / "systemd").glob("*.service"):
        assert "\nUMask=0027\n" in unit.read_text(), unit.name


def test_locked_out_account_gets_429_from_the_token_endpoint_too(helpdesk, settings):
    client = Client()
    for _ in range(settings.AXES_FAILURE_LIMIT):
        failed = client.post("/api/token/", {"username": "alice", "password": "wrong"})
        assert failed.status_code in (400, 429)
    assert failed.status_code == 429  # the attempt that reached the limit
    locked = client.post("/api/token/", {"username": "alice", "password": "pw-alice"})
    assert locked.status_code == 429
    assert "Too many failed logins" in locked.json()["detail"]
    assert not Token.objects.filter(user=helpdesk.alice).exists()
    wrong_once = client.post("/api/token/", {"username": "bob", "password": "wrong"})
    assert wrong_once.status_code == 400  # a wrong password is still 400, another user is not locked
    assert client.post("/api/token/", {"username": "bob", "password": "pw-bob"}).status_code == 200


def test_an_autocomplete_value_is_looked_up_only_when_it_could_be_a_key():
    from crm.admin import _could_be_a_key
    from crm.parsers import LARGEST_INTEGER as LARGEST_KEY

    assert _could_be_a_key(str(LARGEST_KEY)) and _could_be_a_key(-LARGEST_KEY) and _could_be_a_key("7")
    assert not _could_be_a_key(str(LARGEST_KEY + 1)) and not _could_be_a_key("1e3")
    assert not _could_be_a_key("") and not _could_be_a_key(None)
