#!/usr/bin/env python3
"""Command-line client for the moderation admin API: look up, ban, erase, stats.

The bearer token comes from ADMIN_TOKEN; the API address from --url or CALLN_ADMIN_URL.
Exit status: 0 on success, 1 when the API returns an error or cannot be reached, 2 on bad usage.
"""

import argparse
import json
import os
import sys
import urllib.error
import urllib.parse
import urllib.request

DEFAULT_URL = "http://127.0.0.1:8095"

# Seconds to wait for the API; an erase scans a few buckets, which takes well under this.
REQUEST_TIMEOUT_S = 30.0

EXIT_API_ERROR = 1
EXIT_USAGE = 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="calln_admin", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--url",
        default=os.environ.get("CALLN_ADMIN_URL", DEFAULT_URL),
        help=f"admin API base URL (default: CALLN_ADMIN_URL or {DEFAULT_URL})",
    )
    commands = parser.add_subparsers(dest="command", required=True)

    lookup = commands.add_parser("lookup", help="show the ban and report counts held for an address")
    lookup.add_argument("ip", help="IPv4 or IPv6 address")

    ban = commands.add_parser("ban", help="ban an address")
    ban.add_argument("ip", help="IPv4 or IPv6 address")
    ban.add_argument("--days", type=float, required=True, help="ban length in days, at most 30")
    ban.add_argument("--reason", default="other", help="reason code, e.g. spam or harassment (default: other)")

    erase = commands.add_parser("erase", help="delete everything held about an address (erasure request)")
    erase.add_argument("ip", help="IPv4 or IPv6 address")

    commands.add_parser("stats", help="show aggregate counts")
    return parser


def request_for(args: argparse.Namespace) -> tuple[str, str, dict[str, object] | None]:
    """Map a command to its HTTP method, path and JSON body."""
    if args.command == "stats":
        return "GET", "/admin/stats", None
    path = "/admin/bans/" + urllib.parse.quote(args.ip, safe="")
    if args.command == "lookup":
        return "GET", path, None
    if args.command == "ban":
        return "PUT", path, {"days": args.days, "reason": args.reason}
    return "DELETE", path, None


def call_api(base_url: str, token: str, method: str, path: str, body: dict[str, object] | None) -> tuple[int, object]:
    """Send one request and return its status and decoded JSON body."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(base_url.rstrip("/") + path, data=data, method=method)
    request.add_header("Authorization", f"Bearer {token}")
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=REQUEST_TIMEOUT_S) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        payload = exc.read()
        try:
            return exc.code, json.loads(payload)
        except json.JSONDecodeError:
            return exc.code, {"error": "http_error", "message": payload.decode(errors="replace")[:200]}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    token = os.environ.get("ADMIN_TOKEN", "")
    if not token:
        print(
            "calln_admin: ADMIN_TOKEN is not set; export the token the moderation service uses "
            "(make run writes it to run/admin-token)",
            file=sys.stderr,
        )
        return EXIT_USAGE

    method, path, body = request_for(args)
    try:
        status, payload = call_api(args.url, token, method, path, body)
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        print(f"calln_admin: cannot reach the admin API at {args.url}: {exc}", file=sys.stderr)
        return EXIT_API_ERROR

    print(json.dumps(payload, indent=2, sort_keys=True))
    if status >= 400:
        message = payload.get("message", "") if isinstance(payload, dict) else ""
        print(f"calln_admin: request failed with HTTP {status}: {message}", file=sys.stderr)
        return EXIT_API_ERROR
    return 0


if __name__ == "__main__":
    sys.exit(main())
