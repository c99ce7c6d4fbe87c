"""Django admin for every helpdesk model, usable on a database with hundreds of thousands of tickets.

No date_hierarchy: on MySQL/MariaDB it needs the server's time-zone tables, which many servers lack.
"""

from django.contrib import admin
from django.contrib.admin.widgets import AutocompleteSelect
from django.db.models import Q
from django.utils.text import smart_split, unescape_string_literal

from crm import ticket_filters

# Not crm.parsers: the admin is imported whenever Django starts, the API's parser (with DRF and
# requests behind it) only when a request needs it; every management command would carry ~12 MB.
from crm.models import (
    LARGEST_INTEGER,
    ActivityLog,
    Organization,
    Ticket,
    TicketAttachment,
    TicketComment,
    UserProfile,
)


class CheckedAutocompleteSelect(AutocompleteSelect):
    """Django's autocomplete widget, minus a 500: redrawing a refused form, it looks up the submitted
    value with `pk__in`, which raises OverflowError for a number wider than the column (a plain
    `pk=` lookup is already safe). A value that cannot be a key is not selected, as if unknown."""

    def optgroups(self, name, value, attr=None):
        return super().optgroups(name, [v for v in value if _could_be_a_key(v)], attr)


def _could_be_a_key(value: object) -> bool:
    try:
        return abs(int(value)) <= LARGEST_INTEGER
    except (TypeError, ValueError):
        return False


class CheckedLookupsAdmin(admin.ModelAdmin):
    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name in self.get_autocomplete_fields(request) and "widget" not in kwargs:
            kwargs["widget"] = CheckedAutocompleteSelect(db_field, self.admin_site, using=kwargs.get("using"))
        return super().formfield_for_foreignkey(db_field, request, **kwargs)


@admin.register(Organization)
class OrganizationAdmin(admin.ModelAdmin):
    list_display = ["name", "email"]
    search_fields = ["name", "email"]


@admin.register(UserProfile)
class UserProfileAdmin(CheckedLookupsAdmin):
    list_display = ["user", "role", "organization"]
    list_filter = ["role"]
    list_select_related = ["user", "organization"]
    search_fields = ["user__username", "user__email", "organization__name"]
    autocomplete_fields = ["organization"]
    raw_id_fields = ["user"]


class TicketCommentInline(admin.TabularInline):
    model = TicketComment
    extra = 0
    raw_id_fields = ["author"]


class TicketAttachmentInline(admin.TabularInline):
    model = TicketAttachment
    extra = 0
    raw_id_fields = ["uploaded_by"]


@admin.register(Ticket)
class TicketAdmin(CheckedLookupsAdmin):
    list_display = ["id", "title", "status", "priority", "organization", "assigned_to", "created_at"]
    list_filter = ["status", "priority", "created_at"]
    # No join for the list (an empty tuple; False would join every relation): joined to the
    # organizations, MariaDB may plan from them and sort every ticket in a temporary table, 5 s a page
    # at a million tickets, as its sampled statistics fall. The page's organizations and assignees are
    # read in one query each instead (get_queryset), as the helpdesk's own list reads them.
    list_select_related = ()
    search_fields = ["title", "description"]  # and the organization's name: get_search_results
    autocomplete_fields = ["organization"]
    raw_id_fields = ["created_by", "assigned_to"]
    readonly_fields = ["created_at", "updated_at"]
    inlines = [TicketCommentInline, TicketAttachmentInline]
    # Counting 100k rows for every page view is the slowest part of a big changelist.
    show_full_result_count = False

    def get_queryset(self, request):
        return ticket_filters.with_related(super().get_queryset(request))

    def get_search_results(self, request, queryset, search_term):
        """Django's search (every word, each in the title, the description or the organization's
        name), with the organizations whose names match read first and matched by id: searched
        through a join, the organizations are where MariaDB may start again (seconds a search)."""
        for word in smart_split(search_term):
            if word.startswith(('"', "'")) and word[0] == word[-1]:
                word = unescape_string_literal(word)
            named = list(Organization.objects.filter(name__icontains=word).values_list("id", flat=True))
            queryset = queryset.filter(
                Q(title__icontains=word) | Q(description__icontains=word) | Q(organization_id__in=named)
            )
        return queryset, False


@admin.register(TicketComment)
class TicketCommentAdmin(admin.ModelAdmin):
    list_display = ["ticket", "author", "is_internal", "created_at"]
    list_filter = ["is_internal", "created_at"]
    list_select_related = ["ticket", "author"]
    search_fields = ["body"]
    raw_id_fields = ["ticket", "author"]
    show_full_result_count = False


@admin.register(TicketAttachment)
class TicketAttachmentAdmin(admin.ModelAdmin):
    list_display = ["original_name", "ticket", "uploaded_by", "size", "content_type", "created_at"]
    list_filter = ["content_type", "created_at"]
    list_select_related = ["ticket", "uploaded_by"]
    search_fields = ["original_name", "file"]
    raw_id_fields = ["ticket", "uploaded_by"]


@admin.register(ActivityLog)
class ActivityLogAdmin(admin.ModelAdmin):
    list_display = ["created_at", "action", "ticket", "actor"]
    list_filter = ["action", "created_at"]
    list_select_related = ["ticket", "actor"]
    search_fields = ["action"]
    raw_id_fields = ["ticket", "actor"]
    show_full_result_count = False

    # The audit trail is evidence: it can be read here, never edited or deleted.
    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
