"""Intake: from decoded request data to rows to store and reasons for refusals.

Each event is judged on its own, so one bad event never costs its batch-mates.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import msgspec
from crawlerdetect import CrawlerDetect

from clickthru import tokens
from clickthru.clock import now_ms
from clickthru.collector.site_cache import SiteCache
from clickthru.errors import TokenError
from clickthru.events import BROWSER_KINDS, MAX_URL, IncomingEvent, explain
from clickthru.privacy import VisitorKeys
from clickthru.store.rows import Batch, EventRow, RejectRow

MAX_KEPT_INPUT = 1024  # characters of a refused event kept for inspection


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
    def __init__(self, sites: SiteCache, visitors: VisitorKeys) -> None:
        self._sites = sites
        self._visitors = visitors
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
        )


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
