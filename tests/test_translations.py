"""The Polish catalogue is complete and up to date with every translatable string in the code."""

import re
import shutil
import subprocess
import sys

from tests.conftest import REPO_ROOT

CATALOGUE = REPO_ROOT / "locale" / "pl" / "LC_MESSAGES" / "django.po"


def _entries(po_text: str) -> dict[str, list[str]]:
    """msgid -> its msgstr values (one, or one per plural form)."""
    entries = {}
    for block in po_text.split("\n\n"):
        if "#, fuzzy" in block.split("msgid")[0] and 'msgid ""\nmsgstr ""' not in block:
            entries.setdefault("__fuzzy__", []).append(block)
        parts = re.split(r"^(msgid|msgid_plural|msgstr(?:\[\d\])?) ", block, flags=re.M)
        fields: dict[str, list[str]] = {}
        for keyword, value in zip(parts[1::2], parts[2::2], strict=True):
            fields.setdefault(keyword.split("[")[0], []).append("".join(re.findall(r'"(.*)"', value)))
        if fields.get("msgid", [""])[0]:
            entries[fields["msgid"][0]] = fields.get("msgstr", [])
    return entries


def test_every_polish_entry_is_translated():
    entries = _entries(CATALOGUE.read_text(encoding="utf-8"))
    assert "__fuzzy__" not in entries
    untranslated = [msgid for msgid, strings in entries.items() if not all(strings)]
    assert untranslated == []
    assert entries["Tickets"] == ["Zgłoszenia"]


def test_catalogue_has_every_string_of_the_code(tmp_path):
    copy = tmp_path / "src"
    shutil.copytree(
        REPO_ROOT, copy, ignore=shutil.ignore_patterns(".venv", ".git", "media", "staticfiles", "*.sqlite3*")
    )
    subprocess.run(
        [
            sys.executable,
            "manage.py",
            "makemessages",
            "-l",
            "pl",
            "--ignore=tests",
            "--ignore=bench",
            "-v",
            "0",
        ],
        cwd=copy,
        check=True,
        capture_output=True,
        timeout=120,
    )
    fresh = _entries((copy / "locale/pl/LC_MESSAGES/django.po").read_text(encoding="utf-8"))
    shipped = _entries(CATALOGUE.read_text(encoding="utf-8"))
    assert "A ticket cannot go from %(old)s to %(new)s." in fresh  # the scan did find the code's strings
    assert set(fresh) - {"__fuzzy__"} - set(shipped) == set(), (
        "run makemessages and translate the new strings"
    )
