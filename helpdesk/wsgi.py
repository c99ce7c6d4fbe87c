"""WSGI entry point for gunicorn, mod_wsgi and other application servers."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "helpdesk.settings")

application = get_wsgi_application()
