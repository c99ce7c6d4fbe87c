"""The promotion gate (updater/plan/promotion.py) against a real predecessor: this helpdesk served by
pytest-django's live server over HTTP on the loopback, attesting what its journal says
(monitoring/attestations.py); and a forger's server on the loopback for answers that must not be
believed. Journals are written by the real Journal class and dated back to stand for time passing."""

import json
import ssl
import threading
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest
from django.core.management import call_command

from helpdesk.version import app_version
from monitoring import state, status, system_check
from tests.support.processes import free_port
from tests.support.tls import self_signed_certificate
from updater import layout
from updater.checks import check_promotion
from updater.errors import UpdateRefused
from updater.plan import planning, policy, promotion
from updater.release import update
from updater.run import journal

TOKEN, KEY = "promotion-token-" + "t" * 24, "promotion-key-" + "k" * 32
TAG = "v1.4.0"


@pytest.fixture
def predecessor(settings, live_server, transactional_db):
    """This helpdesk as the predecessor ("staging"), and as the successor asking it."""
    settings.ENVIRONMENT = "staging"
    settings.PROMOTION_TOKEN, settings.PROMOTION_SIGNING_KEY = TOKEN, KEY
    settings.UPDATER_PROMOTION_SOURCE = f"{live_server.url}/monitoring/releases/"
    settings.UPDATER_PROMOTION_SOURCE_TOKEN, settings.UPDATER_PROMOTION_SOURCE_KEY = TOKEN, KEY
    settings.UPDATER_PROMOTION_TIMEOUT = 10
    settings.UPDATER_SOAK_HOURS_IMPORTANT = 24
    return live_server


def ran(
    to_version: str,
    status: str = journal.SUCCEEDED,
    hours_ago: float = 0,
    command: str = "update",
    from_version: str = "v1.3.0",
    verified: bool = True,
    cause: str | None = None,
) -> None:
    """A finished run in the predecessor's journal, as if it had finished `hours_ago`."""
    run = journal.Journal.start(layout.state().updates, command, from_version, to_version)
    if verified and status == journal.SUCCEEDED:
        run.record(verified=True, smoke_checks=["login page: ok"])
    run.finish(status, cause)
    run.data["finished_at"] = (datetime.now(UTC) - timedelta(hours=hours_ago)).isoformat(timespec="seconds")
    run.save()


def verdict(tag: str = TAG, update_class: str = policy.IMPORTANT) -> promotion.Verdict:
    return promotion.gate(tag, update_class)


def test_a_tag_the_predecessor_never_ran_is_refused(predecessor):
    ran("v1.3.0", hours_ago=100, from_version="v1.2.0")
    found = verdict()
    assert not found.allowed
    assert found.reason == "v1.4.0 has not run on staging; update staging to it first"


def test_a_tag_that_failed_on_the_predecessor_is_refused_naming_the_cause(predecessor):
    ran(TAG, journal.ROLLED_BACK, hours_ago=30, cause="smoke check failed: ticket list answered 500")
    found = verdict()
    assert not found.allowed
    assert "v1.4.0 rolled back on staging" in found.reason
    assert "ticket list answered 500" in found.reason


def test_a_tag_still_inside_its_soak_time_is_refused_saying_how_long_it_ran(predecessor):
    ran(TAG, hours_ago=3)
    found = verdict()
    assert not found.allowed
    assert "v1.4.0 has run on staging for 3 h of the required 24 h (important update)" in found.reason


def test_a_tag_that_soaked_long_enough_is_allowed(predecessor):
    ran(TAG, hours_ago=25)
    found = verdict()
    assert found.allowed, found.reason
    assert found.reason == "v1.4.0 has run healthy on staging for 25 h (required 24 h)"


def test_each_update_class_has_its_own_soak_and_critical_is_short(predecessor, settings):
    settings.UPDATER_SOAK_HOURS_CRITICAL = 1
    ran(TAG, hours_ago=3)
    assert verdict(update_class=policy.CRITICAL).allowed
    assert not verdict(update_class=policy.IMPORTANT).allowed


def test_a_failing_health_check_on_the_predecessor_restarts_the_soak(predecessor):
    running = app_version()  # what the live server runs: the release the journal says it serves
    ran(running, hours_ago=30)
    failed_at = datetime.now(UTC) - timedelta(hours=2)
    state.save({"unhealthy": {running: failed_at.isoformat(timespec="seconds")}})
    found = verdict(running)
    assert not found.allowed
    assert f"{running} has run healthy on staging for 2 h of the required 24 h" in found.reason
    state.save({"unhealthy": {"v0.9.0": failed_at.isoformat(timespec="seconds")}})  # another release's
    assert verdict(running).allowed


def test_check_system_records_a_failing_release_check_and_ignores_the_machines_own(settings, db, tmp_path):
    settings.MEMORY_WARN_PERCENT, settings.MEMORY_CRIT_PERCENT = 0.0, 0.1  # memory fails at once
    log = tmp_path / "helpdesk.log"
    log.write_text("")
    settings.MONITORED_ERROR_LOGS, settings.ERROR_LOG_WARN_LINES, settings.ERROR_LOG_CRIT_LINES = (
        [str(log)],
        1,
        2,
    )
    system_check.run_round(send=False)
    assert "unhealthy" not in state.load()  # a full memory says nothing about the release
    log.write_text("ERROR one\nERROR two\n")
    system_check.run_round(send=False)
    stamp = state.load()["unhealthy"][app_version()]  # errors in the log do
    assert abs((datetime.now(UTC) - datetime.fromisoformat(stamp)).total_seconds()) < 60


def test_a_release_rolled_back_by_hand_on_the_predecessor_is_refused(predecessor):
    ran(TAG, hours_ago=40)
    ran("v1.3.0", hours_ago=30, command="rollback", from_version=TAG)
    found = verdict()
    assert not found.allowed
    assert "v1.4.0 rolled back by hand on staging" in found.reason


def test_a_release_the_predecessor_ran_long_enough_and_then_replaced_is_allowed(predecessor):
    ran(TAG, hours_ago=60)
    ran("v1.5.0", hours_ago=30, from_version=TAG)
    found = verdict()
    assert found.allowed, found.reason
    assert "for 30 h" in found.reason


def test_soak_boundaries_exactly_the_soak_passes_a_second_less_does_not():
    stay = {"version": TAG, "outcome": "succeeded", "smoke_passed": True, "ran_seconds": 86400.0}
    exact = {"environment": "staging", "releases": [stay | {"healthy_seconds": 86400.0}]}
    short = {"environment": "staging", "releases": [stay | {"healthy_seconds": 86399.0}]}
    assert promotion.judge(exact, TAG, policy.IMPORTANT).allowed
    assert not promotion.judge(short, TAG, policy.IMPORTANT).allowed


def test_a_release_that_did_not_pass_its_smoke_checks_there_is_refused():
    stay = {"version": TAG, "outcome": "succeeded", "smoke_passed": False, "healthy_seconds": 10**6}
    found = promotion.judge({"environment": "staging", "releases": [stay]}, TAG, policy.ROUTINE)
    assert not found.allowed
    assert found.reason == "v1.4.0 did not pass its smoke checks on staging"


def test_an_unreachable_predecessor_refuses_it_never_allows(settings):
    settings.UPDATER_PROMOTION_SOURCE = f"http://127.0.0.1:{free_port()}/monitoring/releases/"
    settings.UPDATER_PROMOTION_TIMEOUT = 2
    with pytest.raises(promotion.PromotionError, match="could not be reached"):
        verdict()


def test_a_wrong_token_is_refused_by_the_predecessor_and_then_by_the_gate(predecessor, settings):
    settings.UPDATER_PROMOTION_SOURCE_TOKEN = "someone-else's-token"
    ran(TAG, hours_ago=30)
    with pytest.raises(promotion.PromotionError, match=r"refused our token \(HTTP 401\)"):
        verdict()


class Forger:
    """A server on the loopback answering as a predecessor would, with what the test forges."""

    def __init__(self, answer) -> None:
        forger = self
        self.answer = answer  # (nonce) -> (body bytes, signature header or None)

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                nonce = parse_qs(urlsplit(self.path).query).get("nonce", [""])[0]
                body, signed = forger.answer(nonce)
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                if signed:
                    self.send_header(promotion.SIGNATURE_HEADER, signed)
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/monitoring/releases/"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _soaked(nonce: str) -> bytes:
    stay = {"version": TAG, "outcome": "succeeded", "smoke_passed": True, "healthy_seconds": 10**6}
    return json.dumps({"environment": "staging", "nonce": nonce, "releases": [stay]}).encode()


@pytest.mark.parametrize(
    "forgery, message",
    [
        (lambda nonce: (_soaked(nonce), None), "is not signed with the shared key"),
        (lambda nonce: (_soaked(nonce), promotion.signature(_soaked(nonce), "a guessed key")), "not signed"),
        (
            lambda nonce: (_soaked("an-old-nonce"), promotion.signature(_soaked("an-old-nonce"), KEY)),
            "replay",
        ),
    ],
    ids=["unsigned", "signed with another key", "an old signed answer replayed"],
)
def test_a_forged_attestation_is_refused(settings, forgery, message):
    forger = Forger(forgery)
    settings.UPDATER_PROMOTION_SOURCE = forger.url
    settings.UPDATER_PROMOTION_SOURCE_TOKEN, settings.UPDATER_PROMOTION_SOURCE_KEY = TOKEN, KEY
    try:
        with pytest.raises(promotion.PromotionError, match=message):
            verdict()
        settings.UPDATER_PROMOTION_SOURCE_KEY = ""  # the same answer, believed only without a key
        assert verdict().allowed
    finally:
        forger.close()


def test_the_releases_endpoint_needs_a_token_checks_the_nonce_and_signs_its_answer(client, settings, db):
    settings.PROMOTION_TOKEN, settings.PROMOTION_SIGNING_KEY = TOKEN, KEY
    ran(TAG, hours_ago=5)
    assert client.get("/monitoring/releases/").status_code == 401
    wrong = client.get("/monitoring/releases/", HTTP_AUTHORIZATION="Bearer nope")
    assert wrong.status_code == 401
    bad_nonce = client.get("/monitoring/releases/?nonce=a;b", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert bad_nonce.status_code == 400
    nonce = "n" * 24
    response = client.get(f"/monitoring/releases/?nonce={nonce}", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert response.status_code == 200
    assert response[promotion.SIGNATURE_HEADER] == promotion.signature(response.content, KEY)
    document = json.loads(response.content)
    assert document["nonce"] == nonce and document["environment"] == settings.ENVIRONMENT
    (stay,) = document["releases"]
    assert stay["version"] == TAG and stay["outcome"] == "succeeded" and stay["smoke_passed"]
    assert 5 * 3600 - 60 <= stay["healthy_seconds"] <= 5 * 3600 + 60


def test_the_promotion_token_reads_the_releases_and_nothing_else(client, settings, db):
    settings.PROMOTION_TOKEN, settings.MONITORING_TOKEN = TOKEN, "monitoring-" + "m" * 30
    assert client.get("/monitoring/releases/", HTTP_AUTHORIZATION=f"Bearer {TOKEN}").status_code == 200
    assert client.get("/monitoring/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}").status_code == 401


def test_a_soak_of_zero_hours_is_a_configuration_error(settings):
    settings.UPDATER_PROMOTION_SOURCE = "https://staging.example/monitoring/releases/"
    settings.UPDATER_SOAK_HOURS_CRITICAL = 0
    assert [problem.id for problem in check_promotion()] == ["updater.E008"]
    with pytest.raises(promotion.PromotionError, match="never none"):
        verdict(update_class=policy.CRITICAL)


def _plan(update_class: str = policy.IMPORTANT) -> planning.Plan:
    window = policy.WindowState(update_class, "always", True, None, None)
    return planning.Plan("v1.3.0", TAG, [], update_class, window, [], False, False, 0.0, 0.0)


def test_update_preflight_refuses_with_the_verdict_and_a_skip_carries_no_verdict(predecessor):
    ran(TAG, hours_ago=3)
    with pytest.raises(UpdateRefused, match="for 3 h of the required 24 h"):
        update._check_promotion(_plan(), update.Options())
    skipped = update._check_promotion(_plan(), update.Options(skip_promotion="hotfix approved by Ewa"))
    assert skipped.promotion is None


def test_update_preflight_refuses_when_the_predecessor_cannot_be_asked(settings):
    settings.UPDATER_PROMOTION_SOURCE = f"http://127.0.0.1:{free_port()}/monitoring/releases/"
    with pytest.raises(UpdateRefused, match=r"could not be reached.*--skip-promotion --reason"):
        update._check_promotion(_plan(), update.Options())


def test_the_status_page_shows_where_the_current_release_ran(predecessor, client, settings):
    ran(app_version(), hours_ago=30)
    promotion.ask()  # what check_system does every few minutes
    status.forget()  # the predecessor's own status document, cached while it answered
    settings.ENVIRONMENT = "prod"
    settings.MONITORING_TOKEN = "monitoring-" + "m" * 30
    body = client.get("/monitoring/status/", HTTP_AUTHORIZATION=f"Bearer {settings.MONITORING_TOKEN}").json()
    here, staging = body["release_journey"]
    assert here["environment"] == "prod"
    assert staging["environment"] == "staging" and staging["outcome"] == "succeeded"
    assert staging["since"] and staging["fetched_at"]


def test_skip_promotion_needs_a_one_line_reason(capsys):
    for args in (["--skip-promotion"], ["--skip-promotion", "--reason", "a\nb"], ["--reason", "why"]):
        with pytest.raises(SystemExit) as exit_code:
            call_command("update", "--version", TAG, *args)
        assert exit_code.value.code == 2
    assert "--skip-promotion needs --reason TEXT" in capsys.readouterr().err


def test_an_https_predecessor_is_trusted_only_with_its_pinned_certificate(settings, tmp_path):
    certificate, key = self_signed_certificate(tmp_path)
    forger = Forger(lambda nonce: (_soaked(nonce), promotion.signature(_soaked(nonce), KEY)))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(certificate, key)
    forger.server.socket = context.wrap_socket(forger.server.socket, server_side=True)
    settings.UPDATER_PROMOTION_SOURCE = forger.url.replace("http://", "https://")
    settings.UPDATER_PROMOTION_SOURCE_TOKEN, settings.UPDATER_PROMOTION_SOURCE_KEY = TOKEN, KEY
    try:
        with pytest.raises(promotion.PromotionError, match="could not be reached: SSLError"):
            verdict()  # a certificate nobody vouches for: not the predecessor as far as we know
        settings.UPDATER_PROMOTION_SOURCE_CA = str(certificate)
        assert verdict().allowed
    finally:
        forger.close()
