#!/usr/bin/env bash
# Prepare this checkout on a Debian machine: system packages (installed when missing and run as root),
# a virtualenv in .venv with the pinned Python packages, and compiled translations.
#   scripts/bootstrap.sh          what running the helpdesk needs
#   scripts/bootstrap.sh --test   also what the test suite needs (MariaDB server, test tools)
set -euo pipefail
cd "$(dirname "$0")/.."

for_tests=0
[ "${1:-}" = "--test" ] && for_tests=1

say() { printf '==> %s\n' "$*"; }

python_bin="${PYTHON:-}"
if [ -z "$python_bin" ]; then
  python_bin=$(command -v python3.11 || command -v python3 || true)
fi
[ -n "$python_bin" ] || { echo "Python 3.11 or newer is needed (apt-get install python3)." >&2; exit 1; }
"$python_bin" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
  || { echo "$python_bin is older than Python 3.11." >&2; exit 1; }

# --- Debian packages ------------------------------------------------------------------------------
packages=(libmariadb-dev pkg-config gettext)   # mysqlclient builds against libmariadb; msgfmt for .po
command -v gcc >/dev/null || packages+=(gcc)
"$python_bin" -c 'import ensurepip' 2>/dev/null || packages+=(python3-venv)
"$python_bin" -c 'import sysconfig, os, sys; sys.exit(not os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")))' \
  || packages+=(python3-dev)
# Tests start their own MariaDB server (and take physical backups of it with mariadb-backup), drive
# Debian's Chromium through Playwright, and build .deb packages for update_system's tests
# (dpkg-scanpackages is in dpkg-dev).
[ "$for_tests" = 1 ] && packages+=(mariadb-server mariadb-client mariadb-backup chromium fonts-dejavu-core dpkg-dev)
# The deployment examples are tried for real: Apache with mod_wsgi, and promtool (in prometheus) on
# the metrics and the Prometheus examples; visudo (in sudo) on the sudoers example.
[ "$for_tests" = 1 ] && packages+=(apache2 libapache2-mod-wsgi-py3 prometheus sudo)
# The fleet tests reach three app servers on this machine through sshd, behind HAProxy.
[ "$for_tests" = 1 ] && packages+=(openssh-server openssh-client haproxy)
# restic: off-site copies of backup sets (an sftp repository behind the test sshd, and a path).
[ "$for_tests" = 1 ] && packages+=(restic)
# dovecot: the IMAP and POP3 mailboxes receive_mail --imap and --pop3 poll in the tests.
[ "$for_tests" = 1 ] && packages+=(dovecot-imapd dovecot-pop3d)
# axe-core (accessibility rules run inside the browser tests) comes from npm.
[ "$for_tests" = 1 ] && ! command -v npm >/dev/null && packages+=(npm)

missing=()
for package in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "Missing Debian packages: ${missing[*]}" >&2
    echo "Install them with: sudo apt-get install -y ${missing[*]}" >&2
    exit 1
  fi
  say "Installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # policy-rc.d keeps apt from starting a system-wide MariaDB: the tests start their own server.
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
    trap 'rm -f /usr/sbin/policy-rc.d' EXIT
  fi
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# --- virtualenv -----------------------------------------------------------------------------------
if [ ! -x .venv/bin/python ]; then
  say "Creating the virtualenv in .venv"
  "$python_bin" -m venv .venv
fi
requirements=requirements.txt
[ "$for_tests" = 1 ] && requirements=requirements-dev.txt
stamp=".venv/.installed-$(basename "$requirements" .txt)"
wanted=$(cat requirements.txt "$requirements" | sha256sum | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$wanted" ]; then
  say "Installing Python packages from $requirements"
  .venv/bin/python -m pip install -q --disable-pip-version-check -r "$requirements"
  echo "$wanted" > "$stamp"
fi

# --- axe-core for the browser tests (a pinned release of the one file they inject) ----------------
axe_version=4.10.3
if [ "$for_tests" = 1 ] && [ "$(cat .venv/axe-core.version 2>/dev/null)" != "$axe_version" ]; then
  say "Installing axe-core $axe_version from npm"
  npm install --silent --no-audit --no-fund --no-save --prefix .venv/npm "axe-core@$axe_version" >/dev/null
  echo "$axe_version" > .venv/axe-core.version
fi

# --- translations ---------------------------------------------------------------------------------
if compgen -G "locale/*/LC_MESSAGES/*.po" >/dev/null; then
  .venv/bin/python manage.py compilemessages -v 0 --ignore=.venv
fi
