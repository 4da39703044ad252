"""Country lookup from the bundled offline GeoIP data. Addresses are only data, and no host is contacted."""

import pytest

from services.signalling.geo import CountryLookup
from shared.events import UNKNOWN_COUNTRY


@pytest.fixture(scope="module")
def countries() -> CountryLookup:
    return CountryLookup()


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "::1",
        "10.1.2.3",
        "172.16.0.1",
        "192.168.1.1",
        "100.64.0.1",
        "169.254.1.1",
        "fe80::1",
        "fd00::1",
        "192.0.2.1",
        "198.51.100.1",
        "203.0.113.1",
        "2001:db8::1",
        "0.0.0.0",
        "::",
        "255.255.255.255",
        "224.0.0.1",
        "::ffff:127.0.0.1",
        "::ffff:10.0.0.1",
    ],
)
def test_non_global_address_unknown(countries: CountryLookup, address: str) -> None:
    assert countries.country(address) == UNKNOWN_COUNTRY


@pytest.mark.parametrize("address", ["", "junk", "192.0.2", "2001:db8::g", "81.2.69.160/32"])
def test_invalid_address_unknown(countries: CountryLookup, address: str) -> None:
    assert countries.country(address) == UNKNOWN_COUNTRY


def test_ipv4_known_block(countries: CountryLookup) -> None:
    # geoip2fast 1.2.2's data file maps 81.2.64.0/18, which contains 81.2.69.160, to GB.
    assert countries.country("81.2.69.160") == "GB"


def test_ipv4_mapped_ipv6_looks_up_ipv4(countries: CountryLookup) -> None:
    assert countries.country("::ffff:81.2.69.160") == "GB"


@pytest.mark.parametrize("address", ["2001:4860:4860::8888", "2a00:1450:4001:80b::200e"])
def test_ipv6_global_gets_country(countries: CountryLookup, address: str) -> None:
    code = countries.country(address)

    assert len(code) == 2
    assert code.isalpha()
    assert code.isupper()
    assert code != UNKNOWN_COUNTRY
