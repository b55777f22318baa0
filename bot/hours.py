"""Business hours: when staff are at their desks, so the bot can say honestly when a person will answer.

`FRONTDESK_BUSINESS_HOURS` lists comma-separated ranges, each a day or day range and a time
range: `Mon-Fri 09:00-17:30`, `Mon-Fri 09:00-17:30, Sat 10:00-14:00`, `Fri-Mon 20:00-02:00` (a
range past midnight belongs to the day it starts on). `FRONTDESK_TIMEZONE` is an IANA zone
(`Europe/London`), read through `zoneinfo`, so daylight-saving changes are the tz database's
business, not ours. An empty setting means always open: the bot then promises a reply "shortly".

Pure functions of the `now` passed in, so tests (and the bot) can ask about any moment.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
DAY_NAMES = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_RANGE = re.compile(r"^\s*(?P<d1>[A-Za-z]{3})[a-z]*(?:\s*-\s*(?P<d2>[A-Za-z]{3})[a-z]*)?\s+"
                    r"(?P<h1>\d{1,2}):(?P<m1>\d{2})\s*-\s*(?P<h2>\d{1,2}):(?P<m2>\d{2})\s*$")


class HoursError(ValueError):
    """A business-hours or time-zone setting that cannot be read; the message names the bad part."""


@dataclass(frozen=True)
class Window:
    """Open from `start` to `end` minutes after midnight on `day` (0 = Monday); `end` may pass 24:00."""

    day: int
    start: int
    end: int


class BusinessHours:
    def __init__(self, windows: list[Window], tz: ZoneInfo):
        self.windows = windows
        self.tz = tz

    @classmethod
    def parse(cls, spec: str, tz_name: str = "UTC") -> BusinessHours | None:
        """None for an empty `spec` (always open); `HoursError` naming the bad range otherwise."""
        try:
            tz = ZoneInfo(tz_name.strip() or "UTC")
        except (ZoneInfoNotFoundError, ValueError):
            raise HoursError(f"FRONTDESK_TIMEZONE {tz_name!r} is not an IANA time zone (e.g. Europe/London)") from None
        if not spec.strip():
            return None
        windows: list[Window] = []
        for part in spec.split(","):
            match = _RANGE.match(part)
            if not match:
                raise HoursError(f"FRONTDESK_BUSINESS_HOURS: cannot read {part.strip()!r}; "
                                 "write ranges like 'Mon-Fri 09:00-17:30', separated by commas")
            first = _day(match["d1"], part)
            last = _day(match["d2"], part) if match["d2"] else first
            start = _minutes(match["h1"], match["m1"], part)
            end = _minutes(match["h2"], match["m2"], part)
            if end == start:
                raise HoursError(f"FRONTDESK_BUSINESS_HOURS: {part.strip()!r} opens and closes at the same time")
            if end < start:
                end += 24 * 60  # past midnight: still the day it started on
            day = first
            while True:  # Fri-Mon wraps round the week
                windows.append(Window(day, start, end))
                if day == last:
                    break
                day = (day + 1) % 7
        return cls(windows, tz)

    def _local(self, now: datetime) -> datetime:
        if now.tzinfo is None:
            now = now.replace(tzinfo=UTC)  # a naive time is taken as UTC, like time.time()
        return now.astimezone(self.tz)

    def _spans(self, local: datetime, days_back: int = 1, days_ahead: int = 8):
        """(opening, closing) datetimes of every window from `days_back` days before `local` on, in order."""
        midnight = local.replace(hour=0, minute=0, second=0, microsecond=0)
        spans = []
        for offset in range(-days_back, days_ahead):
            day_start = midnight + timedelta(days=offset)
            for window in self.windows:
                if window.day == day_start.weekday():
                    # Wall-clock arithmetic on a naive copy, re-attached: 09:00 stays 09:00 across DST changes.
                    base = day_start.replace(tzinfo=None)
                    spans.append(((base + timedelta(minutes=window.start)).replace(tzinfo=self.tz),
                                  (base + timedelta(minutes=window.end)).replace(tzinfo=self.tz)))
        return sorted(spans)

    def is_open(self, now: datetime) -> bool:
        local = self._local(now)
        return any(opening <= local < closing for opening, closing in self._spans(local))

    def next_opening(self, now: datetime) -> datetime:
        """The next moment staff are in (`now` itself, in the zone, when open), as a time in `self.tz`."""
        local = self._local(now)
        if self.is_open(local):
            return local
        return next(opening for opening, _ in self._spans(local, days_back=0) if opening > local)

    def describe_next(self, now: datetime) -> dict[str, str]:
        """Words for the customer: day ("today", "tomorrow" or a weekday name), time (HH:MM) and the zone."""
        local = self._local(now)
        opening = self.next_opening(local)
        days = (opening.date() - local.date()).days
        day = "today" if days == 0 else "tomorrow" if days == 1 else DAY_NAMES[opening.weekday()]
        return {"day": day, "time": opening.strftime("%H:%M"), "timezone": str(self.tz.key),
                "at": opening.isoformat()}


def _day(text: str, part: str) -> int:
    try:
        return DAYS.index(text[:3].lower())
    except ValueError:
        raise HoursError(f"FRONTDESK_BUSINESS_HOURS: {text!r} in {part.strip()!r} is not a day "
                         "(Mon, Tue, Wed, Thu, Fri, Sat, Sun)") from None


def _minutes(hours: str, minutes: str, part: str) -> int:
    h, m = int(hours), int(minutes)
    if h > 24 or m > 59 or (h == 24 and m):
        raise HoursError(f"FRONTDESK_BUSINESS_HOURS: {hours}:{minutes} in {part.strip()!r} is not a time of day")
    return h * 60 + m
