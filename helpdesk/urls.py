"""Top-level URL map: login, the helpdesk pages, the JSON API, admin and language switching."""

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from django.views.generic import RedirectView
from rest_framework.routers import SimpleRouter

from crm import views as crm_views
from crm.api import TicketViewSet, TokenView

api = SimpleRouter()
api.register("tickets", TicketViewSet, basename="ticket")

urlpatterns = [
    path("login/", auth_views.LoginView.as_view(redirect_authenticated_user=True), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("tickets/", include("crm.urls")),
    path("profile/", crm_views.profile, name="profile"),
    path("api/", include(api.urls)),
    path("api/token/", TokenView.as_view(), name="api_token"),
    path("monitoring/", include("monitoring.urls")),
    path("i18n/", include("django.conf.urls.i18n")),
    path("admin/", admin.site.urls),
    path("", RedirectView.as_view(url="/tickets/", permanent=False)),
]
