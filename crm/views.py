"""The helpdesk pages. Each view checks access through crm.access and changes tickets through crm.tickets."""

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.template.defaultfilters import filesizeformat
from django.utils import timezone
from django.utils.formats import number_format
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from crm import access, frequent_search, keyset, paging, ranked_search, search, ticket_filters, tickets
from crm.forms import AttachmentForm, CommentForm, ProfileForm, TicketCreateForm, TicketEditForm
from crm.models import Organization, Ticket, UserProfile

PER_PAGE_CHOICES = (10, 25, 50, 100)
UPLOAD_OVERHEAD_BYTES = 64 * 1024  # multipart headers and the CSRF field around the file


@require_GET
@login_required
def ticket_list(request: HttpRequest) -> HttpResponse:
    user = request.user
    filters = ticket_filters.parse(request.GET, user)
    queryset = ticket_filters.with_related(ticket_filters.apply(access.visible_tickets(user), filters, user))
    per_page = _per_page(request)
    anchor, backwards = _anchor(request)
    if filters.search and filters.sort == ticket_filters.RELEVANCE and not filters.sort_chosen:
        # Unasked-for relevance gives way to the newest first for frequent words, and so do the keyset
        # pages that such a list links to.
        page = _frequent_page(request, filters, ticket_filters.DEFAULT_SORT, per_page, anchor, backwards)
        if page or anchor:
            filters.sort, filters.ranked = ticket_filters.DEFAULT_SORT, False
            queryset = queryset.order_by(*ticket_filters.SORTS[filters.sort])
    elif filters.search and filters.sort != ticket_filters.RELEVANCE:
        page = _frequent_page(request, filters, filters.sort, per_page, anchor, backwards)
    else:
        page = None
    paginator = _ranked_paginator(request, filters, per_page) or paging.CappedPaginator(queryset, per_page)
    ordering = ticket_filters.SORTS.get(ticket_filters.sort_applied(filters))  # None: by relevance
    walkable = ordering is not None and keyset.walkable(ordering)
    if page is None and walkable and anchor is not None:
        page = keyset.page(queryset, ordering, anchor, per_page, backwards=backwards)
        page = page if page.object_list else None  # nothing left before it: the list starts over
    page = page or paginator.get_page(request.GET.get("page"))
    staff = access.is_staff_member(user)
    sorts = [
        ("newest", _("Newest")),
        ("oldest", _("Oldest")),
        ("updated", _("Recently updated")),
        ("priority", _("Priority")),
        ("title", _("Title")),
        ("due", _("Due soonest")),
    ]
    if filters.search:
        sorts.insert(0, (ticket_filters.RELEVANCE, _("Best match")))
    return render(
        request,
        "crm/ticket_list.html",
        {
            "page": page,
            "filters": filters,
            "per_page": per_page,
            "per_page_choices": [(n, n) for n in PER_PAGE_CHOICES],
            "statuses": Ticket.Status.choices,
            "priorities": Ticket.Priority.choices,
            "sorts": sorts,
            "sort_label": dict(sorts)[ticket_filters.sort_applied(filters)],
            "now": timezone.now(),
            "count_limit": number_format(paging.COUNT_LIMIT, force_grouping=True),
            "is_staff_member": staff,
            "organizations": Organization.objects.values_list("id", "name") if staff else [],
            "assignees": access.assignable_users().values_list("id", "username") if staff else [],
            "query_without_page": _query_without(request, "page", "after", "before"),
            "paginator": paginator,
            "keyset": walkable,
            "frequent": isinstance(page, frequent_search.FrequentPage),
        },
    )


@require_http_methods(["GET", "POST"])
@login_required
def ticket_create(request: HttpRequest) -> HttpResponse:
    user = request.user
    if not access.is_staff_member(user) and access.organization_id_of(user) is None:
        raise PermissionDenied
    form = TicketCreateForm(request.POST or None, request.FILES or None, user=user)
    if request.method == "POST" and form.is_valid():
        fields = dict(form.cleaned_data)
        uploads = fields.pop("attachments")
        try:
            ticket = tickets.open_ticket(author=user, **fields)
        except ValidationError as error:
            _add_errors(form, error)
        else:
            messages.success(request, _("Ticket #%(id)s created.") % {"id": ticket.pk})
            for name in tickets.attach_all(ticket, user, uploads):
                messages.error(
                    request, _("%(name)s could not be stored: attach it again below.") % {"name": name}
                )
            return redirect("crm:ticket_detail", pk=ticket.pk)
    return render(
        request, "crm/ticket_form.html", {"form": form, "creating": True}, status=_form_status(request)
    )


@require_GET
@login_required
def ticket_detail(request: HttpRequest, pk: int) -> HttpResponse:
    ticket = access.get_visible_ticket(request.user, pk)
    return _render_detail(request, ticket)


def _render_detail(request, ticket, comment_form=None, attachment_form=None, status=200) -> HttpResponse:
    user = request.user
    return render(
        request,
        "crm/ticket_detail.html",
        {
            "ticket": ticket,
            "comments": access.visible_comments(user, ticket),
            "attachments": ticket.attachments.select_related("uploaded_by"),
            "activity": tickets.visible_activity(user, ticket),
            "comment_form": comment_form or CommentForm(user=user),
            "attachment_form": attachment_form or AttachmentForm(),
            "is_staff_member": access.is_staff_member(user),
        },
        status=status,
    )


@require_http_methods(["GET", "POST"])
@login_required
def ticket_edit(request: HttpRequest, pk: int) -> HttpResponse:
    user = request.user
    ticket = access.get_visible_ticket(user, pk)
    editable = tickets.editable_fields(user)
    initial = {name: getattr(ticket, name) for name in editable}
    form = TicketEditForm(request.POST or None, initial=initial, user=user, editable=editable)
    if request.method == "POST" and form.is_valid():
        try:
            changed = tickets.change_ticket(ticket, user, form.cleaned_data)
        except ValidationError as error:
            _add_errors(form, error)
        else:
            if changed:
                messages.success(request, _("Ticket #%(id)s updated.") % {"id": ticket.pk})
            return redirect("crm:ticket_detail", pk=ticket.pk)
    context = {"form": form, "ticket": ticket, "creating": False}
    return render(request, "crm/ticket_form.html", context, status=_form_status(request))


def _form_status(request: HttpRequest) -> int:
    """A form shown again after a POST was refused: 400, like the forms on a ticket's page."""
    return 400 if request.method == "POST" else 200


@require_POST
@login_required
def comment_add(request: HttpRequest, pk: int) -> HttpResponse:
    user = request.user
    ticket = access.get_visible_ticket(user, pk)
    return _submit_on_ticket(
        request,
        ticket,
        CommentForm(request.POST, user=user),
        lambda data: tickets.add_comment(ticket, user, data["body"], data.get("is_internal", False)),
        success=_("Comment added."),
        anchor="comments",
        form_name="comment_form",
    )


@require_POST
@login_required
def attachment_upload(request: HttpRequest, pk: int) -> HttpResponse:
    user = request.user
    ticket = access.get_visible_ticket(user, pk)
    # Refuse an oversized body before Django spools it to disk; the exact check is per file below.
    if int(request.META.get("CONTENT_LENGTH") or 0) > settings.ATTACHMENT_MAX_BYTES + UPLOAD_OVERHEAD_BYTES:
        messages.error(request, _("The file is too large; the limit is %(limit)s.") % {"limit": _limit()})
        return _render_detail(request, ticket, status=413)
    return _submit_on_ticket(
        request,
        ticket,
        AttachmentForm(request.POST, request.FILES),
        lambda data: tickets.add_attachment(ticket, user, data["file"]),
        success=_("File attached."),
        anchor="attachments",
        form_name="attachment_form",
    )


def _submit_on_ticket(
    request, ticket, form, action, *, success: str, anchor: str, form_name: str
) -> HttpResponse:
    """A form posted from a ticket's page: valid and accepted by the domain -> message and back to the
    section; otherwise the page again with the form's errors and status 400."""
    if form.is_valid():
        try:
            action(form.cleaned_data)
        except ValidationError as error:
            _add_errors(form, error)
        else:
            messages.success(request, success)
            return redirect(f"{ticket.get_absolute_url()}#{anchor}")
    return _render_detail(request, ticket, status=400, **{form_name: form})


@require_GET
@login_required
def attachment_download(request: HttpRequest, pk: int) -> FileResponse:
    attachment = access.get_visible_attachment(request.user, pk)
    try:
        handle = attachment.file.open("rb")
    except FileNotFoundError:
        raise Http404("The file is missing from storage.") from None
    # Always a download, never rendered inline: an uploaded HTML file must not run in our origin.
    return FileResponse(
        handle, as_attachment=True, filename=attachment.filename, content_type="application/octet-stream"
    )


def _limit() -> str:
    return filesizeformat(settings.ATTACHMENT_MAX_BYTES)


def _per_page(request: HttpRequest) -> int:
    try:
        wanted = int(request.GET.get("per_page", settings.TICKETS_PER_PAGE))
    except ValueError:
        return settings.TICKETS_PER_PAGE
    return wanted if wanted in PER_PAGE_CHOICES else settings.TICKETS_PER_PAGE


def _query_without(request: HttpRequest, *keys: str) -> str:
    params = request.GET.copy()
    for key in keys:
        params.pop(key, None)
    return params.urlencode()


def _anchor(request: HttpRequest) -> tuple[Ticket | None, bool]:
    """The ticket a keyset page starts after (?after=ID) or before (?before=ID, then True), if the user
    may see it; (None, False) without one."""
    backwards = "before" in request.GET and "after" not in request.GET
    anchor_id = ticket_filters.database_id(request.GET.get("before" if backwards else "after", ""))
    anchor = access.visible_tickets(request.user).filter(pk=anchor_id).first() if anchor_id else None
    return anchor, backwards and anchor is not None


def _frequent_page(request, filters, sort: str, per_page: int, anchor, backwards: bool):
    """A page of a search for frequent words read from the list's index (crm/frequent_search.py), or
    None when the words are not frequent enough for that (or the database cannot tell)."""
    if not search.uses_fulltext(filters.search):
        return None
    if anchor is None and ticket_filters.page_number(request.GET) > 1:
        return None  # a numbered page (a bookmark, a best-match list's link) keeps its number
    ordering = ticket_filters.SORTS[sort]
    queryset = _unsearched(request, filters, sort)
    return frequent_search.page(queryset, filters.search, ordering, per_page, anchor, backwards)


def _ranked_paginator(request, filters, per_page: int) -> paging.SelfCountingPaginator | None:
    """Best-match pages counted and read in one statement each (crm/ranked_search.py), when the
    search is ranked and the database can do that; None otherwise."""
    if not filters.ranked:
        return None
    results = ranked_search.for_list(request.user, filters, ticket_filters.page_number(request.GET), per_page)
    return paging.SelfCountingPaginator(results, per_page) if results is not None else None


def _unsearched(request, filters, sort: str = ticket_filters.DEFAULT_SORT):
    """The list's tickets with every filter but the search (which the caller applies its own way)."""
    visible = access.visible_tickets(request.user)
    return ticket_filters.with_related(ticket_filters.without_search(visible, filters, request.user, sort))


def _add_errors(form, error: ValidationError) -> None:
    for field, messages_ in error.message_dict.items():
        form.add_error(field if field in form.fields else None, messages_)


@login_required
def profile(request: HttpRequest) -> HttpResponse:
    """A person's mail settings: language, opt-out, watching their organization's tickets."""
    profile = getattr(request.user, "profile", None)
    if profile is None:  # superusers made with createsuperuser have none until they ask
        profile = UserProfile.objects.create(
            user=request.user, role=access.role_of(request.user) or "customer"
        )
    form = ProfileForm(request.POST or None, instance=profile)
    if request.method == "POST" and form.is_valid():
        form.save()
        messages.success(request, _("Your settings were saved."))
        return redirect("profile")
    return render(
        request, "crm/profile.html", {"form": form}, status=_form_status(request) if form.errors else 200
    )
