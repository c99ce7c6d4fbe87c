from django.urls import path

from monitoring import views

app_name = "monitoring"

urlpatterns = [
    path("health/", views.health, name="health"),
    path("ready/", views.ready, name="ready"),
    path("status/", views.status_view, name="status"),
    path("releases/", views.releases_view, name="releases"),
    path("metrics", views.metrics_view, name="metrics"),
    path("dashboard/", views.dashboard_view, name="dashboard"),
]
