"""Who may see and do what. Every page, download and API route asks here.

Customers see their own organization's tickets; agents and admins see all of them. A ticket that
someone may not see does not exist for them: lookups raise Http404, never 403, so that its existence
is not revealed.
"""

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db.models import QuerySet
from django.http import Http404

from crm.models import Ticket, TicketAttachment, TicketComment, UserProfile

User = AbstractBaseUser | AnonymousUser


def role_of(user: User) -> str | None:
    """customer, agent or admin; superusers are admins; someone without a profile has no role."""
    if not user.is_authenticated:
        return None
    if user.is_superuser:
        return UserProfile.Role.ADMIN
    profile = getattr(user, "profile", None)
    return profile.role if profile else None


def is_staff_member(user: User) -> bool:
    """Agents and admins: they work on every organization's tickets."""
    return role_of(user) in (UserProfile.Role.AGENT, UserProfile.Role.ADMIN)


def organization_id_of(user: User) -> int | None:
    profile = getattr(user, "profile", None)
    return profile.organization_id if profile else None


def visible_tickets(user: User) -> QuerySet[Ticket]:
    if is_staff_member(user):
        return Ticket.objects.all()
    if role_of(user) == UserProfile.Role.CUSTOMER and organization_id_of(user) is not None:
        return Ticket.objects.filter(organization_id=organization_id_of(user))
    return Ticket.objects.none()


def get_visible_ticket(user: User, pk: int) -> Ticket:
    try:
        return visible_tickets(user).select_related("organization", "created_by", "assigned_to").get(pk=pk)
    except Ticket.DoesNotExist:
        raise Http404("No such ticket.") from None


def visible_comments(user: User, ticket: Ticket) -> QuerySet[TicketComment]:
    comments = ticket.comments.select_related("author")
    return comments if is_staff_member(user) else comments.filter(is_internal=False)


def get_visible_attachment(user: User, pk: int) -> TicketAttachment:
    try:
        return TicketAttachment.objects.select_related("ticket").get(pk=pk, ticket__in=visible_tickets(user))
    except TicketAttachment.DoesNotExist:
        raise Http404("No such attachment.") from None


def assignable_users() -> QuerySet:
    """People a ticket can be assigned to: active agents and admins (superusers are admins).

    Their ids are read first, each from an index (profiles by role, users by is_superuser: migration
    0010). One query OR-ing the two read every user: 34 ms at 100,000 customers, on every page of the
    list an agent opens and on every event of an unassigned ticket."""
    users = get_user_model().objects
    staff_roles = [UserProfile.Role.AGENT, UserProfile.Role.ADMIN]
    staff = UserProfile.objects.filter(role__in=staff_roles).values_list("user_id", flat=True)
    ids = set(staff.union(users.filter(is_superuser=True).values_list("pk", flat=True)))
    return users.filter(pk__in=ids, is_active=True).order_by("username")
