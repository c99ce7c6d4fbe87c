"""Failpoints: named places in a run where a fire drill (or a test) makes the run fail or die.

UPDATER_FAILPOINTS in the environment lists them, comma-separated, as `place=action`:
`migrate:before=kill,switch:after=fail`. Places are `<step>:before`, `<step>:end` (inside the step,
its work done but not yet journaled as done), `<step>:after`, the `<step>:during` points in the
middle of long steps, and `undo <step>:before` while a run is undone.
Actions: `kill` ends the whole process group with SIGKILL at once, as a power loss or systemd's
KillMode=control-group would (children such as a running migration die too); `fail` raises
InjectedFault, an ordinary error the run must undo. Unset, a failpoint costs one dictionary lookup.
"""

import os
import signal

VARIABLE = "UPDATER_FAILPOINTS"


class InjectedFault(RuntimeError):
    pass


def _armed() -> dict[str, str]:
    spec = os.environ.get(VARIABLE, "")
    points = {}
    for item in filter(None, (part.strip() for part in spec.split(","))):
        place, _, action = item.rpartition("=")
        points[place.strip()] = action.strip()
    return points


def point(place: str) -> None:
    action = _armed().get(place)
    if action == "kill":
        os.killpg(os.getpgrp(), signal.SIGKILL)
    elif action == "fail":
        raise InjectedFault(f"failure injected at {place}")
