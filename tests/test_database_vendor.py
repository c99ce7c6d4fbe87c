"""The suite runs on the database it was asked for: a silent fallback to SQLite would hide MariaDB bugs."""

import pytest
from django.db import connection


@pytest.mark.django_db
def test_suite_runs_on_the_requested_database(request):
    if request.config.getoption("--mariadb"):
        assert connection.vendor == "mysql"
        assert connection.mysql_is_mariadb
        assert connection.mysql_version >= (10, 6)
        with connection.cursor() as cursor:
            cursor.execute("SELECT @@character_set_database, @@sql_mode")
            charset, sql_mode = cursor.fetchone()
        assert charset == "utf8mb4"
        assert "STRICT_TRANS_TABLES" in sql_mode
    else:
        assert connection.vendor == "sqlite"
