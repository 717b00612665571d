"""Intake: from decoded request data to rows to store and reasons for refusals.

Each event is judged on its own, so one bad event never costs its batch-mates.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from typing import Any

import msgspec
from crawlerdetect import CrawlerDetect

from clickthru import tokens
from clickthru.clock import now_ms
from clickthru.collector.site_cache import SiteCache
from clickthru.errors import TokenError
from clickthru.events import (
    BROWSER_KINDS,
    CONVERSION,
    CURRENCY_PATTERN,
    MAX_URL,
    IncomingConversion,
    IncomingEvent,
    explain,
)
from clickthru.privacy import VisitorKeys
from clickthru.store.rows import Batch, EventRow, RejectRow

MAX_KEPT_INPUT = 1024  # characters of a refused event kept for inspection
DAY_MS = 24 * 3600 * 1000
CLOCK_SLACK_MS = 60_000  # a click the page's clock puts this little after the order counts
_CURRENCY = re.compile(CURRENCY_PATTERN)


@dataclass(frozen=True, slots=True)
class Sender:
    """What the request says about who sent it."""

    origin: str | None
    user_agent: str
    ip: str
    api_key: str | None = None
    transport: str | None = None  # what the request's own headers show it was sent with


@dataclass(frozen=True, slots=True)
class Rejection:
    index: int
    reason: str
    detail: str | None = None


@dataclass(slots=True)
class Judged:
    batch: Batch = field(default_factory=Batch)
    rejections: list[Rejection] = field(default_factory=list)


class Intake:
    def __init__(
        self, sites: SiteCache, visitors: VisitorKeys, *, attribution_days: int = 7
    ) -> None:
        self._sites = sites
        self._visitors = visitors
        self._window_ms = attribution_days * DAY_MS  # a click earns the orders this long after
        self._bots = CrawlerDetect()

    def judge(self, items: list[Any], sender: Sender, via: str | None = None) -> Judged:
        """Validate and enrich each item; ``via`` overrides what the client claims."""
        judged = Judged()
        now = time.time()
        received = int(now * 1000)
        bot = self._bots.is_crawler(sender.user_agent) if sender.user_agent else False
        visitors: dict[str, str] = {}  # per site: one sender, one key, however many events
        for index, item in enumerate(items):
            try:
                row = self._accept(item, sender, via, now, received, bot, visitors)
            except _Refused as refused:
                judged.rejections.append(Rejection(index, refused.reason, refused.detail))
                judged.batch.rejects.append(
                    RejectRow(
                        received,
                        refused.reason,
                        refused.detail,
                        refused.site,
                        sender.origin,
                        _excerpt(item),
                    )
                )
            else:
                judged.batch.events.append(row)
        return judged

    def reject_request(self, reason: str, detail: str | None, sender: Sender, raw: bytes) -> Batch:
        """A request that could not be read at all is still recorded."""
        text = raw[:MAX_KEPT_INPUT].decode("utf-8", "replace")
        return Batch(rejects=[RejectRow(now_ms(), reason, detail, None, sender.origin, text)])

    def _accept(
        self,
        item: Any,
        sender: Sender,
        via: str | None,
        now: float,
        received: int,
        bot: bool,
        visitors: dict[str, str],
    ) -> EventRow:
        if type(item) is dict and item.get("kind") == CONVERSION:
            return self._conversion(item, sender, via, now, received, bot, visitors)
        if type(item) is IncomingEvent:  # already decoded and validated with the body
            event = item
        else:
            try:
                event = msgspec.convert(item, IncomingEvent, strict=False)
            except msgspec.ValidationError as error:
                raise _Refused("invalid_event", explain(str(error))) from None
        try:
            claims = tokens.verify(event.token, self._sites.secret, now=now)
        except TokenError as error:
            raise _Refused(error.reason) from None
        if event.kind in BROWSER_KINDS:
            if sender.origin is not None and not self._sites.origin_allowed(
                claims.site, sender.origin
            ):
                raise _Refused(
                    "origin_not_allowed",
                    f"{sender.origin} is not an origin of {claims.site}",
                    claims.site,
                )
            visitor: str | None = visitors.get(claims.site)
            if visitor is None:
                visitor = visitors[claims.site] = self._visitors.key(
                    sender.ip, sender.user_agent, claims.site, now
                )
        else:  # serve: the recommendation service itself, with the site's API key
            if sender.api_key is None or not self._sites.api_key_valid(claims.site, sender.api_key):
                raise _Refused("serve_needs_api_key", None, claims.site)
            visitor, bot = None, False
        return EventRow(
            event.id,
            event.kind,
            claims.site,
            claims.list_id,
            claims.item,
            claims.position,
            claims.placement,
            claims.key_id,
            claims.issued_at,
            event.ts,
            received,
            event.page and event.page[:MAX_URL],
            event.dest and event.dest[:MAX_URL],
            via or event.via or sender.transport,
            sender.origin,
            bot,
            visitor,
            claims.variant,
        )

    def _conversion(
        self,
        item: dict[str, Any],
        sender: Sender,
        via: str | None,
        now: float,
        received: int,
        bot: bool,
        visitors: dict[str, str],
    ) -> EventRow:
        """An order, attributed to the last click it follows within the window."""
        site = item.get("site") if type(item.get("site")) is str else None
        currency, value = item.get("currency"), item.get("value")
        if type(currency) is not str or not _CURRENCY.match(currency):
            raise _Refused("bad_currency", "an ISO 4217 code of 3 capital letters", site)
        if isinstance(value, int | float) and value < 0:
            raise _Refused("negative_value", "an order is worth 0 or more", site)
        try:
            event = msgspec.convert(item, IncomingConversion, strict=False)
        except msgspec.ValidationError as error:
            raise _Refused("invalid_event", explain(str(error)), site) from None
        site = event.site or (sender.origin and self._sites.site_of(sender.origin)) or ""
        if not site:
            raise _Refused("unknown_site", "name the site: no site has this origin alone")
        if sender.api_key is not None:  # the shop's server, confirming
            if not self._sites.api_key_valid(site, sender.api_key):
                raise _Refused("conversion_bad_api_key", None, site)
            visitor, bot, via = None, False, "server"
        else:  # the order's confirmation page
            if not self._sites.known(site):
                raise _Refused("unknown_site", None, site)
            if sender.origin is not None and not self._sites.origin_allowed(site, sender.origin):
                raise _Refused(
                    "origin_not_allowed", f"{sender.origin} is not an origin of {site}", site
                )
            visitor = visitors.get(site)
            if visitor is None:
                visitor = visitors[site] = self._visitors.key(
                    sender.ip, sender.user_agent, site, now
                )
            via = via or (event.via if event.via != "server" else None) or sender.transport
        made_at = event.ts if event.ts is not None else received
        last: tuple[int, str, tokens.Claims] | None = None
        for followed in event.clicks:
            try:  # expiry is the window's business, not the token's
                claims = tokens.verify(followed.token, self._sites.secret, now=0)
            except TokenError as error:
                detail = f"click {followed.id}: {error.reason}"
                raise _Refused("unknown_click", detail, site) from None
            if claims.site != site:
                raise _Refused("unknown_click", f"click {followed.id} is of another site", site)
            ts = followed.ts
            within = made_at - self._window_ms <= ts <= made_at + CLOCK_SLACK_MS
            if within and (last is None or (ts, followed.id) > last[:2]):
                last = (ts, followed.id, claims)
        attributed: tuple[str, str, int, str, str, int, str, str | None, int | None]
        attributed = ("", "", 0, "", "", 0, "", None, None)
        if last is not None:
            c = last[2]
            attributed = (
                c.list_id, c.item, c.position, c.placement, c.key_id, c.issued_at, c.variant,
                last[1], last[0],
            )  # fmt: skip
        list_id, clicked, position, placement, key_id, issued_at, variant, click_id, at = attributed
        return EventRow(
            event.id, CONVERSION, site, list_id, clicked, position, placement, key_id, issued_at,
            event.ts, received, event.page and event.page[:MAX_URL], None, via, sender.origin,
            bot, visitor, variant, event.order, round(event.value * 1_000_000), event.currency,
            msgspec.json.encode(event.items).decode(), click_id, at,
        )  # fmt: skip


class _Refused(Exception):
    def __init__(self, reason: str, detail: str | None = None, site: str | None = None) -> None:
        super().__init__(reason)
        self.reason, self.detail, self.site = reason, detail, site


def _excerpt(item: Any) -> str:
    try:
        text = msgspec.json.encode(item).decode()
    except (TypeError, msgspec.EncodeError):
        text = repr(item)
    return text[:MAX_KEPT_INPUT]
