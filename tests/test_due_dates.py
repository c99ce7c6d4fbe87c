"""Due dates by priority: targets from the settings (optionally in business hours), kept on the ticket,
computed again when its priority changes; overdue tickets highlighted, filtered and sorted in the
list, counted on the status page and in the metrics, and listed in the agents' daily digest."""

from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone

from crm import due_dates, notifications, tickets
from crm.checks import check_due_dates
from crm.models import OutboundMail, Ticket
from monitoring import checks, metrics


def test_each_priority_gets_its_own_response_and_resolution_target(helpdesk, settings):
    settings.DUE_RESPONSE_HOURS = "urgent=1,high=4,normal=8,low=24"
    settings.DUE_RESOLUTION_HOURS = "urgent=4,high=24,normal=72,low=168"
    for priority, (response, resolution) in {"urgent": (1, 4), "high": (4, 24), "low": (24, 168)}.items():
        ticket = tickets.open_ticket(
            author=helpdesk.alice, title=priority, description="-", priority=priority
        )
        assert ticket.response_due_at - ticket.created_at == timedelta(hours=response)
        assert ticket.due_at - ticket.created_at == timedelta(hours=resolution)


def test_a_priority_change_recomputes_the_targets_from_the_creation_time(helpdesk):
    ticket = tickets.open_ticket(author=helpdesk.alice, title="t", description="-", priority="low")
    tickets.change_ticket(ticket, helpdesk.agent, {"priority": "urgent"})
    assert ticket.due_at - ticket.created_at == timedelta(hours=4)
    tickets.change_ticket(ticket, helpdesk.agent, {"title": "renamed"})  # other fields leave it
    assert ticket.due_at - ticket.created_at == timedelta(hours=4)


def test_business_hours_count_only_inside_them(settings):
    settings.BUSINESS_HOURS, settings.TIME_ZONE = "Mon-Fri 08:00-16:00", "UTC"
    friday_evening = datetime(2026, 11, 27, 18, 0, tzinfo=UTC)
    assert due_dates.add_working_hours(friday_evening, 4) == datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
    end_of_day = datetime(2026, 11, 30, 14, 0, tzinfo=UTC)  # Monday 14:00, two hours left that day
    assert due_dates.add_working_hours(end_of_day, 2) == datetime(2026, 11, 30, 16, 0, tzinfo=UTC)
    assert due_dates.add_working_hours(end_of_day, 3) == datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
    assert due_dates.add_working_hours(end_of_day, 8 * 5) == datetime(2026, 12, 7, 14, 0, tzinfo=UTC)
    settings.BUSINESS_HOURS = ""
    assert due_dates.add_working_hours(friday_evening, 4) == datetime(2026, 11, 27, 22, 0, tzinfo=UTC)


def test_unreadable_targets_or_business_hours_are_configuration_errors(settings):
    settings.DUE_RESPONSE_HOURS = "urgent=1,high=4,normal=8"  # low is missing
    settings.BUSINESS_HOURS = "weekdays at nine"
    assert [problem.id for problem in check_due_dates()] == ["crm.E002", "crm.E003"]


def overdue_by(ticket: Ticket, delta: timedelta) -> None:
    Ticket.objects.filter(pk=ticket.pk).update(due_at=timezone.now() - delta)


def test_the_list_highlights_filters_and_sorts_overdue_tickets(helpdesk, as_user):
    late = tickets.open_ticket(author=helpdesk.alice, title="Late one", description="-")
    later = tickets.open_ticket(author=helpdesk.alice, title="Even later", description="-")
    on_time = tickets.open_ticket(author=helpdesk.alice, title="On time", description="-")
    done = tickets.open_ticket(author=helpdesk.alice, title="Done late", description="-")
    overdue_by(late, timedelta(hours=1))
    overdue_by(later, timedelta(hours=5))
    overdue_by(done, timedelta(hours=9))
    tickets.change_ticket(done, helpdesk.agent, {"status": "resolved", "resolution_notes": "fixed"})
    client = as_user(helpdesk.agent)

    page = client.get("/tickets/", {"overdue": "1", "sort": "due"}).content.decode()
    assert page.index("Even later") < page.index("Late one")  # soonest due first
    assert "On time" not in page and "Done late" not in page  # open and past due only
    assert page.count('<tr class="overdue">') == 2
    everything = client.get("/tickets/").content.decode()
    assert everything.count('<tr class="overdue">') == 2 and on_time.title in everything


def test_the_list_shows_creation_and_due_times_in_the_sites_time_zone(helpdesk, as_user):
    # 23:30 UTC on the last day of the year is already the next year in Warsaw (UTC+1 in winter).
    ticket = tickets.open_ticket(author=helpdesk.alice, title="New Year", description="-")
    created, due = datetime(2026, 12, 31, 23, 30, tzinfo=UTC), datetime(2027, 7, 1, 8, 5, 7, tzinfo=UTC)
    Ticket.objects.filter(pk=ticket.pk).update(created_at=created, due_at=due)

    row = as_user(helpdesk.agent).get("/tickets/").content.decode()
    assert '<time datetime="2027-01-01T00:30:00+01:00">2027-01-01 00:30</time>' in row
    assert '<time datetime="2027-07-01T10:05:07+02:00">2027-07-01 10:05</time>' in row  # summer time


def test_the_api_gives_the_due_dates_and_filters_overdue_tickets(helpdesk, as_user):
    late = tickets.open_ticket(author=helpdesk.alice, title="Late one", description="-")
    on_time = tickets.open_ticket(author=helpdesk.alice, title="On time", description="-")
    done = tickets.open_ticket(author=helpdesk.alice, title="Done late", description="-")
    overdue_by(late, timedelta(hours=1))
    overdue_by(done, timedelta(hours=9))
    tickets.change_ticket(done, helpdesk.agent, {"status": "resolved", "resolution_notes": "fixed"})
    client = as_user(helpdesk.agent)

    rows = {row["title"]: row for row in client.get("/api/tickets/").json()["results"]}
    assert [rows[t]["overdue"] for t in ("Late one", "On time", "Done late")] == [True, False, False]
    late.refresh_from_db()
    assert datetime.fromisoformat(rows["Late one"]["due_at"]) == late.due_at
    on_time.refresh_from_db()
    assert datetime.fromisoformat(rows["On time"]["response_due_at"]) == on_time.response_due_at
    assert rows["On time"]["first_response_at"] is None
    overdue = client.get("/api/tickets/", {"overdue": "1"}).json()["results"]
    assert [row["title"] for row in overdue] == ["Late one"]


def test_overdue_tickets_are_counted_on_the_status_page_and_in_the_metrics(helpdesk, settings):
    late = tickets.open_ticket(author=helpdesk.alice, title="Late", description="-")
    tickets.open_ticket(author=helpdesk.alice, title="On time", description="-")
    overdue_by(late, timedelta(minutes=1))
    check = checks.overdue_tickets()
    assert (check.observed, check.status) == (1, checks.PASS)  # shown, not alerted, by default
    assert "helpdesk_tickets_overdue 1.0" in metrics.exposition().decode()
    settings.OVERDUE_WARN_TICKETS = 1
    checks.clear_cache()
    assert checks.overdue_tickets().status == checks.WARN  # exactly at the threshold
    settings.OVERDUE_WARN_TICKETS = 2
    checks.clear_cache()
    assert checks.overdue_tickets().status == checks.PASS


def test_the_daily_digest_lists_overdue_tickets_to_each_agent_who_takes_mail(helpdesk):
    assert notifications.overdue_digest() == 0  # nothing overdue, no mail
    late = tickets.open_ticket(author=helpdesk.alice, title="Printer on fire", description="-")
    overdue_by(late, timedelta(hours=2))
    OutboundMail.objects.all().delete()
    helpdesk.admin.profile.email_notifications = False
    helpdesk.admin.profile.save()
    assert notifications.overdue_digest() == 1
    (digest,) = OutboundMail.objects.all()
    assert digest.recipient == helpdesk.agent.email
    assert digest.subject == "[helpdesk] 1 overdue ticket"
    assert f"#{late.pk} Printer on fire" in digest.body and "?overdue=1&sort=due" in digest.body


@pytest.mark.parametrize("status", ["resolved", "closed"])
def test_a_ticket_that_is_no_longer_open_is_never_overdue(helpdesk, status):
    ticket = tickets.open_ticket(author=helpdesk.alice, title="t", description="-")
    tickets.change_ticket(ticket, helpdesk.agent, {"status": status, "resolution_notes": "done"})
    overdue_by(ticket, timedelta(days=3))
    assert not Ticket.objects.filter(due_dates.overdue_q()).exists()


def test_an_agents_public_answer_is_the_first_response_once(helpdesk):
    ticket = tickets.open_ticket(author=helpdesk.alice, title="t", description="-")
    tickets.add_comment(ticket, helpdesk.alice, "more details")  # the customer's own words are no answer
    tickets.add_comment(ticket, helpdesk.agent, "internal", is_internal=True)  # nor an internal note
    ticket.refresh_from_db()
    assert ticket.first_response_at is None
    tickets.add_comment(ticket, helpdesk.agent, "we are on it")
    ticket.refresh_from_db()
    first = ticket.first_response_at
    tickets.add_comment(ticket, helpdesk.agent, "still on it")
    ticket.refresh_from_db()
    assert first is not None and ticket.first_response_at == first
