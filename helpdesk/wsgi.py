"""WSGI entry point for gunicorn, mod_wsgi and other application servers.

The configuration is found the same way under every server: ENV_FILE when the process has it
(systemd's unit sets it for gunicorn), otherwise the .env next to the code (each release links it to
the deployment's shared/.env), otherwise the environment alone."""

import os
import sys
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured
from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "helpdesk.settings")

application = get_wsgi_application()


def _refuse_implicit_development_mode() -> None:
    """An application server never serves the development defaults (DEBUG on, a known SECRET_KEY)
    because a configuration file was not found or not readable: ENVIRONMENT must be said somewhere.
    `manage.py runserver` is exempt; it is the developer's own server."""
    from django.conf import settings

    if settings.ENVIRONMENT_CONFIGURED or Path(sys.argv[0]).name == "manage.py":
        return
    raise ImproperlyConfigured(
        "No configuration found: ENV_FILE is not set, there is no readable .env beside the code "
        f"({settings.BASE_DIR}) and ENVIRONMENT is not in the environment. Refusing to serve the "
        "development defaults; link the deployment's shared/.env or set ENV_FILE."
    )


_refuse_implicit_development_mode()
