"""Settings per ENVIRONMENT: safe defaults, refusals with clear messages, a clean `check --deploy`."""

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import REPO_ROOT

PROD_SECRET = "k3y-" + "x8Zq!pL0v#Tm2Wr9" * 4  # 68 characters, many unique: what check --deploy wants
PROD = {"ENVIRONMENT": "prod", "SECRET_KEY": PROD_SECRET, "ALLOWED_HOSTS": "helpdesk.example.com"}


def test_dev_runs_with_no_configuration_at_all(manage):
    result = manage(
        "shell",
        "--no-imports",
        "-c",
        "from django.conf import settings; print(settings.DEBUG, settings.DATABASES['default']['ENGINE'])",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["True", "django.db.backends.sqlite3"]


@pytest.mark.parametrize("environment", ["test", "staging", "prod"])
def test_non_dev_environments_refuse_to_start_without_secret_key(manage, environment):
    result = manage("check", ENVIRONMENT=environment, ALLOWED_HOSTS="helpdesk.example.com")
    assert result.returncode != 0
    assert f"SECRET_KEY must be set when ENVIRONMENT={environment}" in result.stderr


def test_prod_refuses_to_start_without_allowed_hosts(manage):
    result = manage("check", ENVIRONMENT="prod", SECRET_KEY=PROD_SECRET, LOG_FILE="")
    assert result.returncode != 0
    assert "ALLOWED_HOSTS must be set when ENVIRONMENT=prod" in result.stderr


def test_prod_refuses_debug(manage, tmp_path):
    result = manage("check", **PROD, DEBUG="True", LOG_FILE=str(tmp_path / "app.log"))
    assert result.returncode != 0
    assert "DEBUG=True is only allowed with ENVIRONMENT=dev" in result.stderr


def test_unknown_environment_is_refused(manage):
    result = manage("check", ENVIRONMENT="production")
    assert result.returncode != 0
    assert "ENVIRONMENT must be one of dev, test, staging, prod" in result.stderr


def test_prod_with_https_passes_check_deploy_with_zero_warnings(manage, tmp_path):
    result = manage(
        "check", "--deploy", "--fail-level", "WARNING", **PROD, LOG_FILE=str(tmp_path / "app.log")
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues (0 silenced)." in result.stdout


def test_dev_settings_would_fail_check_deploy(manage):
    # Guards the test above: check --deploy really does complain about unsafe settings.
    result = manage("check", "--deploy", "--fail-level", "WARNING")
    assert result.returncode != 0
    assert "security.W018" in result.stderr  # DEBUG on


def test_settings_come_from_the_named_env_file(manage, tmp_path):
    env_file = tmp_path / "shared.env"
    env_file.write_text(f"ENVIRONMENT=staging\nSECRET_KEY={PROD_SECRET}\nALLOWED_HOSTS=staging.example.com\n")
    result = manage(
        "shell",
        "--no-imports",
        "-c",
        "from django.conf import settings; print(settings.ENVIRONMENT, settings.ALLOWED_HOSTS)",
        ENV_FILE=str(env_file),
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "staging ['staging.example.com']"


def test_missing_env_file_is_a_clear_error(manage, tmp_path):
    result = manage("check", ENV_FILE=str(tmp_path / "nope.env"))
    assert result.returncode != 0
    assert "ENV_FILE points to" in result.stderr


def test_mysql_url_gets_utf8mb4_and_strict_mode(manage):
    result = manage(
        "shell",
        "--no-imports",
        "-c",
        "from django.conf import settings; import json; print(json.dumps(settings.DATABASES['default']))",
        DATABASE_URL="mysql://helpdesk:s3cret@db.example.com:3307/helpdesk_prod",
    )
    assert result.returncode == 0, result.stderr
    database = json.loads(result.stdout)
    assert database["ENGINE"] == "django.db.backends.mysql"
    assert (database["HOST"], database["PORT"], database["NAME"]) == ("db.example.com", 3307, "helpdesk_prod")
    assert database["OPTIONS"]["charset"] == "utf8mb4"
    assert "STRICT_TRANS_TABLES" in database["OPTIONS"]["init_command"]


def test_prod_writes_errors_as_json_lines_to_the_log_file(manage, tmp_path):
    log_file = tmp_path / "logs" / "helpdesk.log"
    result = manage(
        "shell",
        "--no-imports",
        "-c",
        "import logging; logging.getLogger('crm').error('disk on fire: %s', 'sda1')",
        **PROD,
        LOG_FILE=str(log_file),
    )
    assert result.returncode == 0, result.stderr
    entry = json.loads(log_file.read_text().splitlines()[-1])
    assert entry["level"] == "ERROR"
    assert entry["logger"] == "crm"
    assert entry["message"] == "disk on fire: sda1"
    assert "time" in entry


@pytest.mark.parametrize(
    ("configured", "starts"),
    [({}, False), ({"ENVIRONMENT": "dev"}, True), (PROD, True)],
    ids=["nothing configured", "dev said explicitly", "prod"],
)
def test_an_application_server_never_serves_the_development_defaults_implicitly(tmp_path, configured, starts):
    """Apache once served DEBUG pages because mod_wsgi found no configuration: the WSGI entry point
    refuses unless ENVIRONMENT is said somewhere (manage.py runserver stays exempt, see above)."""
    env_file = tmp_path / "empty.env"
    env_file.write_text("")
    environment = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("DJANGO_", "ENVIRONMENT", "SECRET_KEY", "ALLOWED_HOSTS", "DEBUG"))
    }
    environment |= {"ENV_FILE": str(env_file), "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}"}
    loaded = subprocess.run(
        [sys.executable, "-c", "import helpdesk.wsgi"],
        cwd=REPO_ROOT,
        env=environment | configured,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert (loaded.returncode == 0) == starts, loaded.stderr
    if not starts:
        assert "No configuration found" in loaded.stderr and "Refusing to serve" in loaded.stderr
