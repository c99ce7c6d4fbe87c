from django.apps import AppConfig


class UpdaterConfig(AppConfig):
    name = "updater"
    verbose_name = "Updater"
