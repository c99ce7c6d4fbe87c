"""gunicorn settings for the helpdesk; every value can be overridden by a GUNICORN_* variable.

`kill -HUP $(cat $GUNICORN_PIDFILE)` reloads the code gracefully: gunicorn starts new workers from
the release that `current` points to (GUNICORN_CHDIR) and lets the old ones finish their requests.
That is the reload the updater uses (UPDATER_RELOAD_PIDFILE or UPDATER_RELOAD_COMMAND) after a switch.
A release with new requirements gets a new venv, which a HUP cannot swap under a running master:
use `systemctl restart helpdesk` as the reload command where requirements change often.
"""

import multiprocessing
import os

bind = os.environ.get("GUNICORN_BIND", "127.0.0.1:8000")
workers = int(os.environ.get("GUNICORN_WORKERS", multiprocessing.cpu_count() * 2 + 1))
threads = int(os.environ.get("GUNICORN_THREADS", "1"))
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "30"))
graceful_timeout = int(os.environ.get("GUNICORN_GRACEFUL_TIMEOUT", "30"))
max_requests = int(os.environ.get("GUNICORN_MAX_REQUESTS", "2000"))
max_requests_jitter = 200
pidfile = os.environ.get("GUNICORN_PIDFILE") or None
accesslog = os.environ.get("GUNICORN_ACCESSLOG", "-") or None  # empty: no access log
errorlog = os.environ.get("GUNICORN_ERRORLOG", "-")
wsgi_app = "helpdesk.wsgi:application"
# The *link* to the live release (e.g. /srv/helpdesk/current), not where it points: on HUP, new workers
# change into it again and so load the release that `current` points to now.
chdir = os.environ.get("GUNICORN_CHDIR") or os.getcwd()
# Behind Apache on the same host: gunicorn believes its X-Forwarded-Proto (https) only from there, and the
# access log shows the client that Apache saw next to the proxy's address. The helpdesk itself believes
# X-Forwarded-For only from TRUSTED_PROXIES in shared/.env (helpdesk/proxies.py): set both alike.
forwarded_allow_ips = os.environ.get("GUNICORN_FORWARDED_ALLOW_IPS", "127.0.0.1")
access_log_format = (
    '%(h)s client=%({x-forwarded-for}i)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s"'
)
