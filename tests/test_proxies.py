"""Behind a reverse proxy: X-Forwarded-For is believed only from TRUSTED_PROXIES, for the monitoring
allow-list and for django-axes' lockouts; a client cannot spoof its address by sending the header."""

import pytest
from django.core.checks import run_checks
from django.test import Client

from helpdesk.proxies import resolve

LOCAL_APACHE = ("127.0.0.1",)


@pytest.mark.parametrize(
    ("remote", "forwarded", "trusted", "client"),
    [
        ("127.0.0.1", "203.0.113.5", (), "127.0.0.1"),  # off by default: the header is ignored
        ("127.0.0.1", "203.0.113.5", LOCAL_APACHE, "203.0.113.5"),
        ("198.51.100.7", "127.0.0.1", LOCAL_APACHE, "198.51.100.7"),  # spoofed by a direct client
        ("127.0.0.1", "10.9.9.9, 203.0.113.5", LOCAL_APACHE, "203.0.113.5"),  # what the client wrote
        ("127.0.0.1", "203.0.113.5, 10.0.0.2", ("127.0.0.1", "10.0.0.0/8"), "203.0.113.5"),  # two proxies
        ("127.0.0.1", "", LOCAL_APACHE, "127.0.0.1"),  # the proxy itself asking (a health probe)
        ("127.0.0.1", "not-an-ip, 203.0.113.5", LOCAL_APACHE, "203.0.113.5"),
        ("127.0.0.1", "203.0.113.5, garbage", LOCAL_APACHE, "127.0.0.1"),  # nothing left of garbage
        ("::1", "2001:db8::5", ("::1",), "2001:db8::5"),
    ],
)
def test_the_client_is_the_rightmost_untrusted_address(remote, forwarded, trusted, client):
    assert resolve(remote, forwarded, trusted) == client


@pytest.fixture
def behind_apache(settings):
    settings.TRUSTED_PROXIES = ["127.0.0.1"]
    settings.MONITORING_ALLOWED_IPS = ["127.0.0.1"]
    settings.MONITORING_TOKEN = ""


@pytest.mark.django_db
def test_monitoring_details_are_not_given_to_clients_behind_the_proxy(behind_apache, settings):
    through_apache = Client(REMOTE_ADDR="127.0.0.1", HTTP_X_FORWARDED_FOR="203.0.113.5")
    assert "checks" not in through_apache.get("/monitoring/status/").json()
    assert through_apache.get("/monitoring/metrics").status_code == 401
    local = Client(REMOTE_ADDR="127.0.0.1")  # a probe on the server itself, not proxied
    assert "checks" in local.get("/monitoring/status/").json()
    spoofing = Client(REMOTE_ADDR="198.51.100.7", HTTP_X_FORWARDED_FOR="127.0.0.1")
    assert "checks" not in spoofing.get("/monitoring/status/").json()
    settings.TRUSTED_PROXIES = []  # the setup: every proxied client looked like 127.0.0.1
    assert "checks" in through_apache.get("/monitoring/status/").json()


@pytest.mark.django_db
def test_a_lockout_behind_the_proxy_locks_one_client_address_not_everyone(behind_apache, helpdesk, settings):
    attacker = Client(REMOTE_ADDR="127.0.0.1", HTTP_X_FORWARDED_FOR="203.0.113.66")
    for _ in range(settings.AXES_FAILURE_LIMIT):
        attacker.post("/login/", {"username": "alice", "password": "wrong"})
    assert attacker.post("/login/", {"username": "alice", "password": "pw-alice"}).status_code == 429
    alice = Client(REMOTE_ADDR="127.0.0.1", HTTP_X_FORWARDED_FOR="198.51.100.20")
    assert alice.post("/login/", {"username": "alice", "password": "pw-alice"}).status_code == 302
    # nor does the attacker get around the lockout by writing another address into the header
    rotating = Client(REMOTE_ADDR="127.0.0.1", HTTP_X_FORWARDED_FOR="198.51.100.20, 203.0.113.66")
    assert rotating.post("/login/", {"username": "alice", "password": "pw-alice"}).status_code == 429


@pytest.mark.django_db
def test_without_trusted_proxies_a_spoofed_header_changes_nothing(helpdesk, settings):
    settings.TRUSTED_PROXIES = []
    attacker = Client(REMOTE_ADDR="203.0.113.66", HTTP_X_FORWARDED_FOR="198.51.100.20")
    for _ in range(settings.AXES_FAILURE_LIMIT):
        attacker.post("/login/", {"username": "alice", "password": "wrong"})
    # the lockout is on the attacker's real address, not on the one it wrote
    victim = Client(REMOTE_ADDR="198.51.100.20")
    assert victim.post("/login/", {"username": "alice", "password": "pw-alice"}).status_code == 302
    evading = Client(REMOTE_ADDR="203.0.113.66", HTTP_X_FORWARDED_FOR="192.0.2.99")
    assert evading.post("/login/", {"username": "alice", "password": "pw-alice"}).status_code == 429


def test_a_bad_network_in_the_lists_is_a_start_up_error(settings):
    settings.TRUSTED_PROXIES = ["127.0.0.1", "apache.local"]
    found = [m for m in run_checks() if m.id == "monitoring.E005"]
    assert found and "apache.local" in found[0].msg
