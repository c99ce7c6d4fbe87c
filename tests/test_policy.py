"""Update classes and windows: the handbook's risk matrix, across midnight, weekends, time zones, DST."""

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from updater.plan import changelog, policy

WARSAW = ZoneInfo("Europe/Warsaw")


def local(*args: int) -> datetime:
    return datetime(*args, tzinfo=WARSAW).astimezone(UTC)


def commit(subject: str, body: str = "") -> changelog.Commit:
    return changelog.parse("0" * 40, subject, body)


@pytest.mark.parametrize(
    ("subjects", "expected"),
    [
        (["docs: typo", "security: escape the search box"], policy.CRITICAL),
        (["chore: bump", "refactor: tidy [critical] outage fix"], policy.CRITICAL),
        (["feat: export", "docs: typo"], policy.IMPORTANT),
        (["fix(api): 500 on empty body"], policy.IMPORTANT),
        (["chore: bump", "Merge branch x", "refactor: names"], policy.ROUTINE),
        ([], policy.ROUTINE),
    ],
)
def test_update_class_follows_the_risk_matrix(subjects, expected):
    assert policy.classify([commit(s) for s in subjects]) == expected


def test_breaking_is_read_from_the_bang_and_from_the_footer():
    assert commit("feat(api)!: tickets are paginated").breaking
    footer = commit("feat: new list", "Body text.\n\nBREAKING CHANGE: the old URL is gone")
    assert footer.breaking and footer.breaking_note == "the old URL is gone"
    assert not commit("feat: mentions BREAKING in passing").breaking
    assert commit("fix(crm): x").scope == "crm"
    assert commit("Security: uppercase type").type == "security"


def test_important_window_opens_on_saturday_and_sunday_nights_across_midnight(settings):
    settings.UPDATE_TIME_ZONE = "Europe/Warsaw"
    friday_night = local(2026, 11, 27, 23, 0)
    assert not policy.window_state(policy.IMPORTANT, friday_night).open
    assert policy.window_state(policy.IMPORTANT, friday_night).next_opens_at == local(2026, 11, 28, 22, 0)
    sunday_small_hours = local(2026, 11, 29, 3, 30)  # Saturday's window, past midnight
    state = policy.window_state(policy.IMPORTANT, sunday_small_hours)
    assert state.open and state.closes_at == local(2026, 11, 29, 6, 0)
    assert state.seconds_left(sunday_small_hours) == 2.5 * 3600
    monday_small_hours = local(2026, 11, 30, 5, 59)  # Sunday's window ends Monday 06:00
    assert policy.window_state(policy.IMPORTANT, monday_small_hours).open
    assert not policy.window_state(policy.IMPORTANT, local(2026, 11, 30, 6, 0)).open  # the end is exclusive
    assert not policy.window_state(policy.IMPORTANT, local(2026, 12, 2, 23, 0)).open  # a Wednesday night


def test_routine_window_is_sunday_two_to_six_and_critical_is_always_open(settings):
    settings.UPDATE_TIME_ZONE = "Europe/Warsaw"
    assert policy.window_state(policy.ROUTINE, local(2026, 11, 29, 2, 0)).open
    assert not policy.window_state(policy.ROUTINE, local(2026, 11, 29, 1, 59)).open
    assert not policy.window_state(policy.ROUTINE, local(2026, 11, 28, 3, 0)).open  # Saturday
    tuesday = local(2026, 12, 1, 12, 0)
    assert policy.window_state(policy.ROUTINE, tuesday).next_opens_at == local(2026, 12, 6, 2, 0)
    critical = policy.window_state(policy.CRITICAL, tuesday)
    assert critical.open and critical.closes_at is None and critical.seconds_left(tuesday) is None


def test_windows_follow_the_configured_time_zone(settings):
    settings.UPDATE_TIME_ZONE = "America/New_York"
    sunday_3am_new_york = datetime(2026, 11, 29, 3, 0, tzinfo=ZoneInfo("America/New_York"))
    assert policy.window_state(policy.ROUTINE, sunday_3am_new_york).open
    settings.UPDATE_TIME_ZONE = "Asia/Tokyo"
    assert not policy.window_state(policy.ROUTINE, sunday_3am_new_york).open  # Sunday 17:00 in Tokyo


def test_a_window_on_the_spring_forward_night_is_as_long_as_the_clocks_say(settings):
    settings.UPDATE_TIME_ZONE = "Europe/Warsaw"
    # 29 March 2026: clocks jump from 02:00 CET to 03:00 CEST; 02:00-06:00 holds three real hours.
    state = policy.window_state(policy.ROUTINE, datetime(2026, 3, 29, 1, 30, tzinfo=UTC))  # 03:30 CEST
    assert state.open
    assert state.closes_at == datetime(2026, 3, 29, 4, 0, tzinfo=UTC)  # 06:00 CEST
    opened = policy.window_state(policy.ROUTINE, datetime(2026, 3, 28, 12, 0, tzinfo=UTC)).next_opens_at
    assert opened == datetime(2026, 3, 29, 1, 0, tzinfo=UTC)  # the instant 02:00 CET would have been
    assert state.closes_at - opened == timedelta(hours=3)


def test_a_window_on_the_fall_back_night_lasts_five_real_hours(settings):
    settings.UPDATE_TIME_ZONE = "Europe/Warsaw"
    # 25 October 2026: 03:00 CEST becomes 02:00 CET; the first 02:00 opens, 06:00 CET closes.
    state = policy.window_state(policy.ROUTINE, datetime(2026, 10, 25, 0, 30, tzinfo=UTC))
    assert state.open
    opened = policy.window_state(policy.ROUTINE, datetime(2026, 10, 24, 12, 0, tzinfo=UTC)).next_opens_at
    assert opened == datetime(2026, 10, 25, 0, 0, tzinfo=UTC)
    assert state.closes_at - opened == timedelta(hours=5)


@pytest.mark.parametrize(
    ("spec", "days"),
    [
        ("Mon-Fri 18:00-20:00", {0, 1, 2, 3, 4}),
        ("Fri-Mon 22:00-06:00", {4, 5, 6, 0}),
        ("* 01:00-02:00", set(range(7))),
    ],
)
def test_window_specs_name_start_days_and_ranges(spec, days):
    assert set(policy.Window.parse(spec).periods[0].days) == days


@pytest.mark.parametrize("spec", ["weekends", "Sat 25:00-06:00", "Caturday 22:00-06:00", ";"])
def test_a_window_that_cannot_be_read_is_an_error_naming_it(spec):
    with pytest.raises(policy.PolicyError):
        policy.Window.parse(spec)


def test_a_never_window_never_opens(settings):
    settings.UPDATE_WINDOW_ROUTINE = "never"
    state = policy.window_state(policy.ROUTINE, datetime(2026, 11, 29, 3, 0, tzinfo=UTC))
    assert not state.open and state.next_opens_at is None
