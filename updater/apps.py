from django.apps import AppConfig


class UpdaterConfig(AppConfig):
    name = "updater"
    verbose_name = "Updater"

    def ready(self) -> None:
        from updater import checks  # noqa: F401  (registers the system checks)
