"""JSON API for tickets: /api/tickets/ (list, create) and /api/tickets/<id>/ (read, partial update).

Same visibility, filters and rules as the pages: it goes through crm.access, crm.ticket_filters and
crm.tickets. Errors come back as JSON objects keyed by field.
"""

from contextlib import contextmanager

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.paginator import Paginator
from django.utils.translation import gettext as _
from rest_framework import mixins, pagination, parsers, serializers, status, viewsets
from rest_framework.authtoken.views import ObtainAuthToken
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request
from rest_framework.response import Response

from crm import access, due_dates, paging, ranked_search, ticket_filters, tickets
from crm.models import Organization, Ticket
from crm.parsers import SafeJSONParser


class TicketSerializer(serializers.ModelSerializer):
    organization_name = serializers.CharField(source="organization.name", read_only=True)
    created_by = serializers.CharField(source="created_by.username", read_only=True)
    assigned_to_username = serializers.CharField(source="assigned_to.username", read_only=True, default=None)
    overdue = serializers.SerializerMethodField()

    class Meta:
        model = Ticket
        fields = [
            "id",
            "title",
            "description",
            "status",
            "priority",
            "organization",
            "organization_name",
            "created_by",
            "assigned_to",
            "assigned_to_username",
            "created_at",
            "updated_at",
            "resolved_at",
            "resolution_notes",
            "response_due_at",
            "due_at",
            "first_response_at",
            "overdue",
        ]
        read_only_fields = fields

    def get_overdue(self, ticket: Ticket) -> bool:
        """As the list shows it (crm/due_dates.py): open and past its due date."""
        return due_dates.is_overdue(ticket)


class TicketCreateSerializer(serializers.Serializer):
    title = serializers.CharField(max_length=200)
    description = serializers.CharField()
    priority = serializers.ChoiceField(choices=Ticket.Priority.choices, default=Ticket.Priority.NORMAL)
    organization = serializers.PrimaryKeyRelatedField(queryset=Organization.objects.all(), required=False)
    assigned_to = serializers.PrimaryKeyRelatedField(
        queryset=get_user_model().objects.all(), required=False, allow_null=True
    )


class TicketUpdateSerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=Ticket.Status.choices, required=False)
    assigned_to = serializers.PrimaryKeyRelatedField(
        queryset=get_user_model().objects.all(), required=False, allow_null=True
    )
    resolution_notes = serializers.CharField(required=False, allow_blank=True)

    def validate(self, attrs):
        unknown = set(self.initial_data) - set(self.fields)
        if unknown:
            raise ValidationError(
                {name: ["This field cannot be changed through the API."] for name in unknown}
            )
        return attrs


class TicketPages(pagination.PageNumberPagination):
    """`?page=N` as always, counted up to paging.COUNT_LIMIT (`count_exact` false above it); a search
    in best-match order is counted exactly, by the statement that reads its page."""

    page_size = settings.TICKETS_PER_PAGE

    def paginate_queryset(self, queryset, request: Request, view=None):
        ranked = self._ranked(request, view)
        if ranked is not None:
            return super().paginate_queryset(ranked, request, view)
        return super().paginate_queryset(queryset, request, view)

    def django_paginator_class(self, object_list, per_page) -> Paginator:
        """The paginator for this list (DRF asks its class attribute; a method chooses per list)."""
        if isinstance(object_list, ranked_search.RankedResults):
            return paging.SelfCountingPaginator(object_list, per_page)
        return paging.CappedPaginator(object_list, per_page)

    def _ranked(self, request: Request, view) -> ranked_search.RankedResults | None:
        filters = getattr(view, "filters", None)
        if filters is None or not filters.ranked:
            return None
        number = ticket_filters.page_number(request.query_params)
        return ranked_search.for_list(
            request.user, filters, number, self.get_page_size(request), "created_by"
        )

    def get_paginated_response(self, data) -> Response:
        response = super().get_paginated_response(data)
        capped = self.page.paginator.capped
        if capped:
            response.data["count"] = min(response.data["count"], paging.COUNT_LIMIT)
        response.data["count_exact"] = not capped
        return response


class TicketCursor(pagination.CursorPagination):
    """`?cursor=` (empty for the first page): keyset pages that never count and never skip or repeat
    a ticket while others are being created, in the list's order (newest, oldest, updated or title)."""

    page_size = settings.TICKETS_PER_PAGE
    CURSOR_SORTS = {"newest", "oldest", "updated", "title"}

    def get_ordering(self, request, queryset, view) -> tuple[str, ...]:
        sort = ticket_filters.parse(request.query_params, request.user).sort
        if sort not in self.CURSOR_SORTS:
            raise ValidationError(
                {"cursor": _("Cursor pages need the sort newest, oldest, updated or title.")}
            )
        return ticket_filters.SORTS[sort]


class TicketViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.CreateModelMixin, viewsets.GenericViewSet
):
    serializer_class = TicketSerializer
    http_method_names = ["get", "post", "patch", "head", "options"]

    @property
    def paginator(self):
        if not hasattr(self, "_paginator"):
            cursor = self.action == "list" and "cursor" in self.request.query_params
            self._paginator = TicketCursor() if cursor else TicketPages()
        return self._paginator

    def get_queryset(self):
        user = self.request.user
        queryset = access.visible_tickets(user)
        if self.action == "list":
            self.filters = ticket_filters.parse(self.request.query_params, user)
            queryset = ticket_filters.apply(queryset, self.filters, user)
        return ticket_filters.with_related(queryset, "created_by")

    def create(self, request: Request, *args, **kwargs) -> Response:
        incoming = TicketCreateSerializer(data=request.data)
        incoming.is_valid(raise_exception=True)
        with _as_api_errors():
            ticket = tickets.open_ticket(author=request.user, **incoming.validated_data)
        return Response(TicketSerializer(ticket).data, status=status.HTTP_201_CREATED)

    def partial_update(self, request: Request, *args, **kwargs) -> Response:
        ticket = self.get_object()
        incoming = TicketUpdateSerializer(data=request.data)
        incoming.is_valid(raise_exception=True)
        with _as_api_errors():
            tickets.change_ticket(ticket, request.user, incoming.validated_data)
        ticket.refresh_from_db()
        return Response(TicketSerializer(ticket).data)


class TokenView(ObtainAuthToken):
    """POST username and password, get the account's API token. A locked-out account (django-axes)
    is answered as the login page answers it, 429, not with the 400 of a wrong password."""

    parser_classes = (parsers.FormParser, parsers.MultiPartParser, SafeJSONParser)

    def post(self, request: Request, *args, **kwargs) -> Response:
        serializer = self.get_serializer(data=request.data)
        if not serializer.is_valid():
            # axes marks the request it refused; DRF's Request keeps that mark on itself
            if getattr(request, "axes_locked_out", False):
                return Response(
                    {
                        "detail": _(
                            "Too many failed logins: this account is locked for a while for your "
                            "address. Try again later, or ask an administrator to unlock it."
                        )
                    },
                    status=status.HTTP_429_TOO_MANY_REQUESTS,
                )
            raise ValidationError(serializer.errors)
        return super().post(request, *args, **kwargs)


@contextmanager
def _as_api_errors():
    """Turn the domain's Django ValidationError into DRF's, answered as 400 with field messages."""
    try:
        yield
    except DjangoValidationError as error:
        raise ValidationError(error.message_dict) from error
