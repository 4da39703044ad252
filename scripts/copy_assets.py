"""Copy the browser assets from node_modules into services/web/static/vendor/.

The web service serves every font, flag and script itself, so the page makes no
third-party request. Run after `npm ci`: `python scripts/copy_assets.py`.
"""

import argparse
import json
import re
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_NODE_MODULES = ROOT / "node_modules"
DEFAULT_DEST = ROOT / "services" / "web" / "static" / "vendor"

# The page uses regular text, semibold labels and bold headings.
FONT_WEIGHTS = (400, 600, 700)

# Latin covers English; latin-ext covers the accented letters of other European languages.
FONT_SUBSETS = ("latin", "latin-ext")

# flag-icons draws this flag for an unknown country; the gateway reports such people as XX.
UNKNOWN_FLAG = "xx"

SCRIPT_FILES = (
    ("socket.io-client/dist/socket.io.min.js", "socket.io.min.js"),
    ("socket.io-client/dist/socket.io.min.js.map", "socket.io.min.js.map"),
)

LICENSE_FILES = (
    ("socket.io-client/LICENSE", "socket.io-client.txt"),
    ("@fontsource/outfit/LICENSE", "outfit.txt"),
    ("flag-icons/LICENSE", "flag-icons.txt"),
)

UNICODE_RANGE = re.compile(r"unicode-range:\s*([^;]+);")


class AssetError(Exception):
    """A file the page needs is missing from node_modules."""


def copy_assets(node_modules: Path, dest: Path) -> list[str]:
    """Build the vendor folder in a temporary folder, then swap it in; return the country codes copied."""
    if not node_modules.is_dir():
        raise AssetError(f"{node_modules} does not exist; run `npm ci` first")

    dest.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".vendor-", dir=dest.parent))
    try:
        _copy_scripts(node_modules, staging)
        _copy_fonts(node_modules, staging)
        codes = _copy_flags(node_modules, staging)
        _copy_licenses(node_modules, staging)
        if dest.exists():
            shutil.rmtree(dest)
        staging.rename(dest)
    finally:
        if staging.exists():
            shutil.rmtree(staging)
    return codes


def _source(node_modules: Path, relative: str) -> Path:
    path = node_modules / relative
    if not path.is_file():
        raise AssetError(f"{path} is missing; run `npm ci` to install the packages in package-lock.json")
    return path


def _copy_scripts(node_modules: Path, staging: Path) -> None:
    for relative, name in SCRIPT_FILES:
        shutil.copyfile(_source(node_modules, relative), staging / name)


def _copy_fonts(node_modules: Path, staging: Path) -> None:
    """Copy the woff2 files and write one stylesheet that declares them (every supported browser reads woff2)."""
    fonts = staging / "fonts"
    fonts.mkdir()
    rules: list[str] = []
    for weight in FONT_WEIGHTS:
        # The per-weight stylesheet declares every subset with its unicode-range; the per-subset ones do not.
        all_subsets_css = _source(node_modules, f"@fontsource/outfit/{weight}.css").read_text(encoding="utf-8")
        for subset in FONT_SUBSETS:
            name = f"outfit-{subset}-{weight}-normal.woff2"
            shutil.copyfile(_source(node_modules, f"@fontsource/outfit/files/{name}"), fonts / name)
            rules.append(_font_face(name, weight, _unicode_range(all_subsets_css, name)))
    (staging / "outfit.css").write_text("\n".join(rules), encoding="utf-8")


def _unicode_range(css: str, file_name: str) -> str:
    """Return the unicode-range of the @font-face rule in `css` that loads `file_name`."""
    for rule in css.split("@font-face")[1:]:
        match = UNICODE_RANGE.search(rule)
        if f"/{file_name})" in rule and match:
            return match.group(1).strip()
    raise AssetError(f"no unicode-range for {file_name} in @fontsource/outfit; the package layout changed")


def _font_face(file_name: str, weight: int, unicode_range: str) -> str:
    lines = [
        "@font-face {",
        "  font-family: 'Outfit';",
        "  font-style: normal;",
        "  font-display: swap;",
        f"  font-weight: {weight};",
        f"  src: url(fonts/{file_name}) format('woff2');",
        f"  unicode-range: {unicode_range};",
        "}",
    ]
    return "\n".join(lines) + "\n"


def _copy_flags(node_modules: Path, staging: Path) -> list[str]:
    """Copy the 4x3 flag of every ISO 3166 country and write countries.json for the picker."""
    flags = staging / "flags"
    flags.mkdir()
    listing = json.loads(_source(node_modules, "flag-icons/country.json").read_text(encoding="utf-8"))
    countries = sorted(
        ({"code": entry["code"].upper(), "name": entry["name"]} for entry in listing if _is_country(entry)),
        key=lambda country: country["name"],
    )
    for country in countries:
        code = country["code"].lower()
        shutil.copyfile(_source(node_modules, f"flag-icons/flags/4x3/{code}.svg"), flags / f"{code}.svg")
    shutil.copyfile(_source(node_modules, f"flag-icons/flags/4x3/{UNKNOWN_FLAG}.svg"), flags / f"{UNKNOWN_FLAG}.svg")
    listing_json = json.dumps(countries, ensure_ascii=False, separators=(",", ":"))
    (staging / "countries.json").write_text(listing_json, encoding="utf-8")
    return [country["code"] for country in countries]


def _is_country(entry: dict[str, object]) -> bool:
    # flag-icons also draws regions and unions (gb-sct, eac); only ISO 3166-1 alpha-2 codes can be matched on.
    code = entry.get("code")
    return entry.get("iso") is True and isinstance(code, str) and len(code) == 2 and code.isalpha()


def _copy_licenses(node_modules: Path, staging: Path) -> None:
    licenses = staging / "licenses"
    licenses.mkdir()
    for relative, name in LICENSE_FILES:
        shutil.copyfile(_source(node_modules, relative), licenses / name)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--node-modules", type=Path, default=DEFAULT_NODE_MODULES, help="folder npm ci installed into")
    parser.add_argument("--dest", type=Path, default=DEFAULT_DEST, help="vendor folder the web service serves")
    args = parser.parse_args(argv)
    try:
        codes = copy_assets(args.node_modules, args.dest)
    except AssetError as exc:
        print(f"copy_assets: {exc}", file=sys.stderr)
        return 1
    print(f"copy_assets: wrote {args.dest} ({len(codes)} country flags)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
