"""The privacy policy as numbers: every limit the /privacy page promises and the services enforce.

Services and the privacy page read the same `PolicySettings`, so the page cannot state a number
that the code does not enforce. A setting above its cap raises ConfigError and the service stops.
"""

import os
import re
from dataclasses import dataclass

from shared.errors import ConfigError
from shared.settings import MAX_LOG_RETENTION_DAYS, env_int, env_list

# The privacy policy promises that no ban, and no ban record, outlives 30 days. This is a
# constant, not a setting: raising it means changing the policy, not the environment.
MAX_BAN_DAYS = 30
SECONDS_PER_HOUR = 3600
SECONDS_PER_DAY = 24 * SECONDS_PER_HOUR
MAX_BAN_S = MAX_BAN_DAYS * SECONDS_PER_DAY

# The number of earlier bans of a key, which lengthens its next ban, is kept this long after
# its latest ban and then forgotten.
BAN_HISTORY_DAYS = MAX_BAN_DAYS

# First ban 24 hours, second 7 days, third and later 30 days.
DEFAULT_BAN_STEPS_HOURS = (24, 7 * 24, MAX_BAN_DAYS * 24)

# Three distinct reporters within 24 hours: one angry person cannot ban anybody alone.
DEFAULT_REPORT_THRESHOLD = 3
MIN_REPORT_THRESHOLD = 2
DEFAULT_REPORT_WINDOW_HOURS = 24

# Report records name reporters by a digest of their key. They are kept no longer than the
# log files, so the window is capped at the log retention maximum.
MAX_REPORT_WINDOW_HOURS = MAX_LOG_RETENTION_DAYS * 24

# After a report, the reporter is not paired with the reported person again for this long.
DEFAULT_REPORT_BLOCK_HOURS = 24
MAX_REPORT_BLOCK_HOURS = MAX_BAN_DAYS * 24

# A plain `local@domain` check: enough to catch a typo or a swapped setting, not RFC 5322.
EMAIL_PATTERN = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
URL_PATTERN = re.compile(r"^https://[^\s/]+(/\S*)?$")


@dataclass(frozen=True, slots=True)
class ThirdParty:
    """A third-party service the deployment has configured, as the privacy page names it."""

    purpose: str
    url: str


@dataclass(frozen=True, slots=True)
class PolicySettings:
    """Every number and address the privacy page states, read once from the environment."""

    max_ban_days: int
    ban_history_days: int
    ban_steps_hours: tuple[int, ...]
    log_retention_days: int
    report_threshold: int
    report_window_hours: int
    report_block_hours: int
    contact_email: str | None
    abuse_email: str | None
    privacy_email: str | None
    analytics_url: str | None
    ads_url: str | None
    turn_relay: bool

    @classmethod
    def from_env(cls) -> "PolicySettings":
        """Read the policy settings; raise ConfigError when one is invalid or above its cap."""
        contact_email = _email("CONTACT_EMAIL", None)
        return cls(
            max_ban_days=MAX_BAN_DAYS,
            ban_history_days=BAN_HISTORY_DAYS,
            ban_steps_hours=_ban_steps_hours(),
            log_retention_days=_capped_int("LOG_RETENTION_DAYS", MAX_LOG_RETENTION_DAYS, MAX_LOG_RETENTION_DAYS),
            report_threshold=env_int("REPORT_THRESHOLD", DEFAULT_REPORT_THRESHOLD, minimum=MIN_REPORT_THRESHOLD),
            report_window_hours=_capped_int(
                "REPORT_WINDOW_HOURS", DEFAULT_REPORT_WINDOW_HOURS, MAX_REPORT_WINDOW_HOURS
            ),
            report_block_hours=_capped_int("REPORT_BLOCK_HOURS", DEFAULT_REPORT_BLOCK_HOURS, MAX_REPORT_BLOCK_HOURS),
            contact_email=contact_email,
            abuse_email=_email("ABUSE_EMAIL", contact_email),
            privacy_email=_email("PRIVACY_EMAIL", contact_email),
            analytics_url=_https_url("ANALYTICS_URL"),
            ads_url=_https_url("ADS_URL"),
            # The gateway hands out TURN credentials only when relay URLs are configured.
            turn_relay=bool(env_list("TURN_URLS")),
        )

    @property
    def max_ban_s(self) -> int:
        return self.max_ban_days * SECONDS_PER_DAY

    @property
    def ban_steps_s(self) -> tuple[int, ...]:
        return tuple(hours * SECONDS_PER_HOUR for hours in self.ban_steps_hours)

    @property
    def log_retention_s(self) -> int:
        return self.log_retention_days * SECONDS_PER_DAY

    @property
    def report_window_s(self) -> int:
        return self.report_window_hours * SECONDS_PER_HOUR

    @property
    def report_block_s(self) -> int:
        return self.report_block_hours * SECONDS_PER_HOUR

    @property
    def third_parties(self) -> tuple[ThirdParty, ...]:
        """List the configured third parties; empty by default, which is what the page promises."""
        configured = (("analytics", self.analytics_url), ("ads", self.ads_url))
        return tuple(ThirdParty(purpose, url) for purpose, url in configured if url)


def _capped_int(name: str, default: int, cap: int) -> int:
    value = env_int(name, default, minimum=1)
    if value > cap:
        raise ConfigError(f"{name}={value} is above {cap}, the cap the privacy policy promises; lower it")
    return value


def _ban_steps_hours() -> tuple[int, ...]:
    raw = os.environ.get("BAN_STEPS_HOURS")
    if not raw:
        return DEFAULT_BAN_STEPS_HOURS

    steps: list[int] = []
    for item in raw.split(","):
        if not item.strip():
            continue
        try:
            hours = int(item.strip())
        except ValueError as exc:
            raise ConfigError(f"BAN_STEPS_HOURS={raw!r} must be comma-separated whole hours, e.g. 24,168,720") from exc
        if hours < 1:
            raise ConfigError(f"BAN_STEPS_HOURS={raw!r} contains {hours}; every step must be at least 1 hour")
        if hours > MAX_BAN_DAYS * 24:
            raise ConfigError(
                f"BAN_STEPS_HOURS={raw!r} contains {hours} hours, above the {MAX_BAN_DAYS}-day cap "
                f"({MAX_BAN_DAYS * 24} hours) that the privacy policy promises; lower it"
            )
        steps.append(hours)
    if not steps:
        raise ConfigError(f"BAN_STEPS_HOURS={raw!r} names no step; use e.g. 24,168,720 or leave it unset")
    if steps != sorted(steps):
        raise ConfigError(f"BAN_STEPS_HOURS={raw!r} must not decrease: repeat bans are never shorter")
    return tuple(steps)


def _email(name: str, default: str | None) -> str | None:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    if not EMAIL_PATTERN.match(raw):
        raise ConfigError(f"{name}={raw!r} is not an email address like privacy@example.org")
    return raw


def _https_url(name: str) -> str | None:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return None
    if not URL_PATTERN.match(raw):
        raise ConfigError(f"{name}={raw!r} is not an https:// URL; leave it empty to turn the service off")
    return raw
