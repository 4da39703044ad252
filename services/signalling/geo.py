"""Country of a client address from geoip2fast's bundled offline IPv4+IPv6 data file."""

import ipaddress

from geoip2fast import GeoIP2Fast

from shared.events import UNKNOWN_COUNTRY

DATA_FILE = "geoip2fast-ipv6.dat.gz"


class CountryLookup:
    """Maps an address to an ISO 3166 alpha-2 code; private, loopback and unknown give XX."""

    def __init__(self) -> None:
        self._geoip = GeoIP2Fast(geoip2fast_data_file=DATA_FILE, verbose=False)

    def country(self, address: str) -> str:
        try:
            parsed = ipaddress.ip_address(address)
        except ValueError:
            return UNKNOWN_COUNTRY
        # The data file has no entries for IPv4-mapped IPv6 (::ffff:a.b.c.d), so look up the IPv4 address.
        if isinstance(parsed, ipaddress.IPv6Address) and parsed.ipv4_mapped is not None:
            parsed = parsed.ipv4_mapped
        if not parsed.is_global:
            return UNKNOWN_COUNTRY
        code = getattr(self._geoip.lookup(str(parsed)), "country_code", "")
        if not isinstance(code, str) or len(code) != 2 or not code.isalpha():
            return UNKNOWN_COUNTRY
        return code.upper()
