"""Helpdesk project: settings, URLs and WSGI entry point."""
