"""The collector's in-memory view of registered sites, kept fresh from the store."""

from __future__ import annotations

import hmac
import time
from typing import Final

from clickthru.store.rows import Site, hash_api_key
from clickthru.store.sites import SiteAdmin

REFRESH_ON_MISS_EVERY: Final = 1.0  # an unknown site/key re-reads at most this often


class SiteCache:
    """Refreshed by the collector's maintenance task every few seconds (off the event
    loop); a lookup reads the store itself only for a key it does not know yet, as right
    after a rotation."""

    def __init__(self, source: SiteAdmin) -> None:
        self._source = source
        self._sites: dict[str, Site] = {}
        self._secrets: dict[tuple[str, str], bytes] = {}
        self._loaded_at = float("-inf")

    def refresh(self) -> None:
        sites = {site.name: site for site in self._source.sites()}
        self._secrets = {
            (site.name, key.key_id): key.secret
            for site in sites.values()
            for key in site.keys
            if key.retired_at is None
        }
        self._sites = sites
        self._loaded_at = time.monotonic()

    def secret(self, site: str, key_id: str) -> bytes | None:
        """A ``tokens.KeyLookup``: the secret that verifies this site's key id."""
        found = self._secrets.get((site, key_id))
        if found is None and time.monotonic() - self._loaded_at > REFRESH_ON_MISS_EVERY:
            self.refresh()
            found = self._secrets.get((site, key_id))
        return found

    def known(self, site: str) -> bool:
        if site not in self._sites and time.monotonic() - self._loaded_at > REFRESH_ON_MISS_EVERY:
            self.refresh()
        return site in self._sites

    def site_of(self, origin: str) -> str | None:
        """The one site with this origin; None when none or several have it."""
        owners = [site.name for site in self._sites.values() if origin in site.origins]
        return owners[0] if len(owners) == 1 else None

    def origin_allowed(self, site: str, origin: str) -> bool:
        known = self._sites.get(site)
        return known is not None and origin in known.origins

    def api_key_valid(self, site: str, api_key: str) -> bool:
        known = self._sites.get(site)
        return known is not None and hmac.compare_digest(known.api_key_hash, hash_api_key(api_key))
