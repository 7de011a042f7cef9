"""The longest wait a cron schedule leaves between two runs, pure: what "a DriftCheck has
not run on schedule" is measured against (maestro.monitoring.alerts compares the time since
its last run with this, exported by the operator as
maestro_driftcheck_schedule_interval_seconds).

The schedule is a CronJob's: five fields (minute hour day-of-month month day-of-week; `*`,
`?`, lists, ranges, steps, month and day names) or a macro (@hourly ... @yearly), in the
controller's time zone (UTC, no daylight saving). As cron does, when both day-of-month and
day-of-week are restricted a day matching either one runs.
"""

from __future__ import annotations

from datetime import date, timedelta
from functools import lru_cache
from itertools import pairwise

MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
MONTHS = ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"]
DAYS = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"]
# Eight years hold two leap days, so even "29 Feb only" shows its longest gap.
HORIZON_DAYS = 8 * 366
START = date(2024, 1, 1)


class ScheduleError(ValueError):
    """A schedule this module cannot read."""


def _value(text: str, names: list[str], offset: int) -> int:
    upper = text.upper()
    if upper in names:
        return names.index(upper) + offset
    if not text.isdigit():
        raise ScheduleError(f"{text!r} is not a number")
    return int(text)


def _field(text: str, lo: int, hi: int, names: list[str] | None = None) -> set[int]:
    """The values one cron field allows, within lo..hi."""
    offset = lo if names is MONTHS else 0
    values: set[int] = set()
    for part in text.split(","):
        base, _, step_text = part.partition("/")
        step = int(step_text) if step_text else 1
        if step < 1:
            raise ScheduleError(f"step {step_text!r} must be at least 1")
        if base in ("*", "?"):
            first, last = lo, hi
        elif "-" in base:
            a, b = base.split("-", 1)
            first, last = _value(a, names or [], offset), _value(b, names or [], offset)
        else:
            first = _value(base, names or [], offset)
            last = hi if step_text else first
        if not (lo <= first <= hi and lo <= last <= hi) or first > last:
            raise ScheduleError(f"{part!r} is outside {lo}-{hi}")
        values.update(range(first, last + 1, step))
    return values


@lru_cache(maxsize=256)
def longest_gap_seconds(schedule: str) -> float:
    """The longest time between two consecutive runs of `schedule`, in seconds.
    ScheduleError when it cannot be read or never runs."""
    fields = MACROS.get(schedule.strip(), schedule).split()
    if len(fields) != 5:
        raise ScheduleError(f"{schedule!r}: five fields or a macro expected")
    minute, hour, dom, month, dow = fields
    minutes = _field(minute, 0, 59)
    hours = _field(hour, 0, 23)
    doms = _field(dom, 1, 31)
    months = _field(month, 1, 12, MONTHS)
    dows = {d % 7 for d in _field(dow, 0, 7, DAYS)}  # 7 is Sunday too
    times = sorted(h * 3600 + m * 60 for h in hours for m in minutes)
    either = dom not in ("*", "?") and dow not in ("*", "?")
    longest = 0
    if len(times) > 1:
        longest = max(b - a for a, b in pairwise(times))
    previous: int | None = None
    for offset in range(HORIZON_DAYS):
        day = START + timedelta(days=offset)
        if day.month not in months:
            continue
        by_dom, by_dow = day.day in doms, (day.weekday() + 1) % 7 in dows
        if not ((by_dom or by_dow) if either else (by_dom and by_dow)):
            continue
        if previous is not None:
            longest = max(longest, (offset - previous) * 86400 - times[-1] + times[0])
        previous = offset
    if previous is None:
        raise ScheduleError(f"{schedule!r} never runs")
    if longest == 0:  # one run in the whole horizon
        raise ScheduleError(f"{schedule!r} runs too seldom to watch")
    return float(longest)
