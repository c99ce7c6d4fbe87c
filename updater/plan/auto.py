"""Unattended updates for cron or a systemd timer (`auto_update`): which tag, if any, to apply now.

Policy, in order: the newest tag whose changes contain nothing BREAKING (newer ones are held for a
human, and the hold is reported once); a tag that failed before is not retried until a human clears
it (`auto_update --clear TAG`) or a newer tag appears; the update class's window must be open, with
enough of it left for the estimated duration. The update itself is the ordinary update, under the
same lock as manual runs.
"""

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from updater.layout import DeploymentRoot
from updater.plan import planning, policy, promotion
from updater.release import git_repo, marks
from updater.run.files import write_atomically

UPDATE, NOTHING, WAIT, HELD, BACKOFF = "update", "nothing", "wait", "held", "backoff"
REFUSED = "refused"  # the predecessor environment could not be asked: said loudly (exit 2)


@dataclass(frozen=True)
class Decision:
    action: str
    tag: str | None = None
    plan: planning.Plan | None = None
    reason: str = ""
    held: list[tuple[str, str]] = field(default_factory=list)  # (tag, why) newer than the candidate


def decide(root: DeploymentRoot, at: datetime | None = None) -> Decision:
    at = at or datetime.now(UTC)
    current = root.current_version()
    all_tags = git_repo.tags(root.repo)
    newer = all_tags[all_tags.index(current) + 1 :] if current in all_tags else []
    held: list[tuple[str, str]] = []
    attested: dict | None = None
    waiting: Decision | None = None  # the newest tag the predecessor has not vouched for yet
    for tag in reversed(newer):
        plan = planning.plan(root, tag, at=at)
        if plan.breaking:
            subjects = "; ".join(commit.subject for commit in plan.breaking[:3])
            held.append((tag, f"BREAKING changes need a human: {subjects}"))
            continue
        if promotion.configured():
            try:
                attested = attested if attested is not None else promotion.ask()
                verdict = promotion.gate(tag, plan.update_class, attested)
            except promotion.PromotionError as error:
                return Decision(REFUSED, tag, plan, f"{error}; nothing was updated", held)
            if not verdict.allowed:  # an older tag the predecessor has soaked may still be taken
                waiting = waiting or Decision(WAIT, tag, plan, verdict.reason, held)
                continue
        return _judge(root, plan, held, at)
    if waiting is not None:
        return waiting
    if held:
        return Decision(HELD, reason="every newer release has BREAKING changes", held=held)
    return Decision(NOTHING)


def _judge(root: DeploymentRoot, plan: planning.Plan, held: list, at: datetime) -> Decision:
    bad = marks.bad_reason(root.release(plan.target))
    if bad is not None:
        reason = (
            f"{plan.target} failed before ({bad[:300]}); it is not retried until "
            f"`auto_update --clear {plan.target}` or a newer tag"
        )
        return Decision(BACKOFF, plan.target, plan, reason, held)
    window = plan.window
    if not window.open:
        reason = f"{plan.target} {policy.window_closed(window)}"
        return Decision(WAIT, plan.target, plan, reason, held)
    left = window.seconds_left(at)
    if left is not None and plan.estimated_duration_seconds > left:
        reason = (
            f"the update needs about {plan.estimated_duration_seconds / 60:.1f} min and the "
            f"{plan.update_class} window closes in {left / 60:.1f} min"
        )
        return Decision(WAIT, plan.target, plan, reason, held)
    return Decision(UPDATE, plan.target, plan, f"{plan.update_class} update, window open", held)


def clear(root: DeploymentRoot, tag: str) -> bool:
    """A human says: try this tag again. True if it had been marked failed."""
    git_repo.validate_tag_name(tag)
    if not marks.clear(root.release(tag)):
        return False
    path = root.state.auto_update_state
    if path.exists():  # a new failure of this tag is news again
        reported = json.loads(path.read_text()).get("reported", [])
        _write_state(path, [key for key in reported if key != f"backoff {tag}"])
    return True


def newly_reported(root: DeploymentRoot, decision: Decision) -> list[str]:
    """Held and backed-off tags not reported before; remembers them so cron runs stay quiet."""
    keys = [f"held {tag}" for tag, _ in decision.held]
    if decision.action == BACKOFF and decision.tag:
        keys.append(f"backoff {decision.tag}")
    path = root.state.auto_update_state
    try:
        reported = set(json.loads(path.read_text()).get("reported", []))
    except (FileNotFoundError, ValueError):
        reported = set()
    fresh = [key for key in keys if key not in reported]
    if fresh:
        _write_state(path, sorted(reported | set(fresh)))
    return fresh


def _write_state(path: Path, reported: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(path, json.dumps({"reported": reported}, indent=2).encode())
