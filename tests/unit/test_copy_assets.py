"""The copy step that puts the npm packages' browser files into the web service's vendor folder."""

import json
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))

import copy_assets  # noqa: E402 - scripts/ is not a package

pytestmark = pytest.mark.skipif(
    not (ROOT / "node_modules" / "flag-icons").is_dir(), reason="node_modules is missing; run `npm ci` first"
)


@pytest.fixture
def vendor(tmp_path: Path) -> Path:
    dest = tmp_path / "vendor"
    copy_assets.copy_assets(ROOT / "node_modules", dest)
    return dest


def test_copies_socketio_client(vendor: Path) -> None:
    assert (vendor / "socket.io.min.js").stat().st_size > 10_000


def test_font_css_points_at_copied_files(vendor: Path) -> None:
    css = (vendor / "outfit.css").read_text(encoding="utf-8")
    urls = re.findall(r"url\(([^)]+)\)", css)

    assert len(urls) == len(copy_assets.FONT_WEIGHTS) * len(copy_assets.FONT_SUBSETS)
    assert all((vendor / url).is_file() for url in urls)
    assert css.count("unicode-range") == len(urls)
    assert "woff)" not in css


def test_countries_have_flags(vendor: Path) -> None:
    countries = json.loads((vendor / "countries.json").read_text(encoding="utf-8"))
    codes = {country["code"] for country in countries}

    assert {"GB", "SE", "US", "BR"} <= codes
    assert all(re.fullmatch(r"[A-Z]{2}", code) for code in codes)
    assert all((vendor / "flags" / f"{code.lower()}.svg").is_file() for code in codes)
    assert (vendor / "flags" / "xx.svg").is_file()


def test_regions_are_left_out(vendor: Path) -> None:
    assert not (vendor / "flags" / "gb-sct.svg").exists()
    assert not (vendor / "flags" / "eac.svg").exists()


def test_rerun_replaces_old_files(tmp_path: Path) -> None:
    dest = tmp_path / "vendor"
    dest.mkdir()
    (dest / "stale.js").write_text("old", encoding="utf-8")

    copy_assets.copy_assets(ROOT / "node_modules", dest)

    assert not (dest / "stale.js").exists()
    assert (dest / "socket.io.min.js").is_file()


def test_missing_node_modules_says_what_to_run(tmp_path: Path) -> None:
    with pytest.raises(copy_assets.AssetError, match="npm ci"):
        copy_assets.copy_assets(tmp_path / "node_modules", tmp_path / "vendor")
