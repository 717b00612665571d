"""Ad blockers as MV3 extensions of declarativeNetRequest rules, for real Chromium: each list
becomes an unpacked extension that Chromium's own engine runs, as uBlock Origin Lite and
AdGuard's MV3 extension do.

- AdGuard's lists, as AdGuard ships them converted: npm ``@adguard/dnr-rulesets`` (a test
  dependency in tests/browsers/package.json).
- A fixture of EasyPrivacy's rules that hit click tracking (``easyprivacy.json``), converted
  by hand: ``*$ping,third-party``, the image paths, and recommendation vendors' hosts.

Every extension also blocks one canary URL, so a test can tell that its rules are in force.
"""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
ADGUARD = (
    HERE.parent / "browsers" / "node_modules" / "@adguard" / "dnr-rulesets" / "dist" / "filters"
    / "declarative"
)  # fmt: skip
# AdGuard's lists other than the language-specific and security ones (README of the package).
ADGUARD_LISTS = {
    2: "AdGuard Base",
    11: "AdGuard Mobile Ads",
    3: "AdGuard Tracking Protection",
    17: "AdGuard URL Tracking",
    4: "AdGuard Social Media",
    18: "AdGuard Cookie Notices",
    19: "AdGuard Popups",
    20: "AdGuard Mobile App Banners",
    21: "AdGuard Other Annoyances",
    22: "AdGuard Widgets",
    5: "AdGuard Experimental",
    10: "AdGuard search ads and self-promotion",
}
EASYPRIVACY = HERE / "easyprivacy.json"
CANARY_PATH = "/blocked-by-the-test-canary"
CANARY_RULE = {
    "id": 1,
    "priority": 1,
    "action": {"type": "block"},
    "condition": {"urlFilter": CANARY_PATH},
}


@dataclass(frozen=True)
class Blocklist:
    name: str
    rules: Path  # a declarativeNetRequest ruleset (JSON)

    @property
    def slug(self) -> str:
        """For directory names: --load-extension reads commas as separators."""
        return re.sub(r"[^a-z0-9]+", "-", self.name.lower()).strip("-")

    def extension(self, directory: Path) -> Path:
        """An unpacked MV3 extension that runs these rules, made in ``directory``."""
        directory.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(self.rules, directory / "rules.json")
        (directory / "canary.json").write_text(json.dumps([CANARY_RULE]))
        manifest = {
            "manifest_version": 3,
            "name": f"test blocker: {self.name}",
            "version": "1.0",
            "permissions": ["declarativeNetRequest"],
            "host_permissions": ["<all_urls>"],
            "declarative_net_request": {
                "rule_resources": [
                    {"id": "list", "enabled": True, "path": "rules.json"},
                    {"id": "canary", "enabled": True, "path": "canary.json"},
                ]
            },
        }
        (directory / "manifest.json").write_text(json.dumps(manifest))
        return directory


def blocklists() -> list[Blocklist]:
    """The fixture's EasyPrivacy rules first, then AdGuard's lists."""
    lists = [Blocklist("EasyPrivacy (fixture: the rules quoted)", EASYPRIVACY)]
    for number, name in ADGUARD_LISTS.items():
        lists.append(Blocklist(name, ADGUARD / f"ruleset_{number}" / f"ruleset_{number}.json"))
    return lists
