"""The /privacy and /terms pages, rendered once from the same PolicySettings the services enforce."""

import html
from pathlib import Path
from string import Template

from aiohttp import web
from aiohttp.typedefs import Handler

from shared.policy import PolicySettings

TEMPLATE_DIR = Path(__file__).parent / "templates"

HOURS_PER_DAY = 24

NO_CONTACT = "This deployment has not published a contact address yet."


def duration(hours: int) -> str:
    """Write a number of hours the way the pages state it: whole days as days."""
    if hours % HOURS_PER_DAY == 0:
        days = hours // HOURS_PER_DAY
        return f"{days} day" if days == 1 else f"{days} days"
    return f"{hours} hour" if hours == 1 else f"{hours} hours"


def email_link(address: str | None) -> str:
    if address is None:
        return html.escape(NO_CONTACT)
    escaped = html.escape(address, quote=True)
    return f'<a href="mailto:{escaped}">{escaped}</a>'


def third_party_list(policy: PolicySettings) -> str:
    parties = policy.third_parties
    if not parties:
        return "<p>None. Every font, flag and script comes from this site.</p>"
    items = "".join(
        f"<li>{html.escape(party.purpose)}: <code>{html.escape(party.url)}</code>, loaded only after you press "
        "Accept in the consent banner</li>"
        for party in parties
    )
    return f"<ul>{items}</ul>"


def policy_values(policy: PolicySettings) -> dict[str, str]:
    """Map every template placeholder to its HTML-escaped value (fragments are built from escaped parts)."""
    steps = ", then ".join(duration(hours) for hours in policy.ban_steps_hours)
    relay = (
        "This deployment runs a relay server, so the switch takes effect."
        if policy.turn_relay
        else "This deployment has no relay server configured, so with the switch on a call cannot connect."
    )
    return {
        "log_retention_days": html.escape(duration(policy.log_retention_days * HOURS_PER_DAY)),
        "max_ban_days": html.escape(duration(policy.max_ban_days * HOURS_PER_DAY)),
        "ban_steps": html.escape(steps),
        "report_threshold": str(policy.report_threshold),
        "report_window": html.escape(duration(policy.report_window_hours)),
        "report_block": html.escape(duration(policy.report_block_hours)),
        "relay_note": html.escape(relay),
        "third_parties": third_party_list(policy),
        "contact_email": email_link(policy.contact_email),
        "privacy_email": email_link(policy.privacy_email),
        "abuse_email": email_link(policy.abuse_email),
    }


def render(template_name: str, policy: PolicySettings) -> str:
    """Fill a template; a placeholder without a value raises KeyError at start-up, not on a request."""
    template = Template((TEMPLATE_DIR / template_name).read_text(encoding="utf-8"))
    return template.substitute(policy_values(policy))


def add_page_routes(app: web.Application, policy: PolicySettings) -> None:
    """Serve /privacy and /terms; both are rendered when the app is built."""
    for path, template_name in (("/privacy", "privacy.html"), ("/terms", "terms.html")):
        app.router.add_get(path, _page_handler(render(template_name, policy)))


def _page_handler(body: str) -> Handler:
    async def page(_request: web.Request) -> web.Response:
        return web.Response(text=body, content_type="text/html", headers={"Cache-Control": "no-cache"})

    return page
