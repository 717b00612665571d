"""Orders: the conversion events of a range, merged into one row per (site, order).

The aggregator runs ``merge`` in the transaction that counts the range, so an order is
counted once however often it is told: a reloaded confirmation page, or the page's report
and the shop's confirmation. The merge depends only on the events and their ``seq``
order, so ``rebuild`` replaying every conversion gives the same rows:

- value, currency and items: the shop's confirmation (the last one) wins over the page;
  among page reports, the first stays;
- attribution: of the clicks every report followed, the last one (by the time it was
  made; the event id breaks a tie); whether the clicked item was bought is read against
  the items the order has then;
- ``bot``: 1 only while every report came from a bot-flagged page (a confirmation by the
  shop is no bot).
"""

from __future__ import annotations

import json
from typing import Any

from clickthru.clock import DAY_MS

CONVERSIONS = (
    "SELECT site, order_id, received_at, value, currency, items, via, bot, click_id, click_at,"
    " list_id, item, position, placement, variant FROM events"
    " WHERE seq > ? AND seq <= ? AND kind = 'conversion' ORDER BY seq"
)
ORDER_COLUMNS = (
    "site, order_id, received_at, day, value, currency, items, page, server, reports, bot,"
    " click_id, click_at, list_id, item, position, placement, variant, bought_clicked"
)
FIND = f"SELECT {ORDER_COLUMNS} FROM orders WHERE site = ? AND order_id = ?"
SAVE = (
    f"INSERT INTO orders ({ORDER_COLUMNS}) VALUES ({', '.join('?' * 19)})"
    " ON CONFLICT (site, order_id) DO UPDATE SET value = excluded.value,"
    " currency = excluded.currency, items = excluded.items, page = excluded.page,"
    " server = excluded.server, reports = excluded.reports, bot = excluded.bot,"
    " click_id = excluded.click_id, click_at = excluded.click_at,"
    " list_id = excluded.list_id, item = excluded.item, position = excluded.position,"
    " placement = excluded.placement, variant = excluded.variant,"
    " bought_clicked = excluded.bought_clicked"
)
_FIELDS = ORDER_COLUMNS.replace(" ", "").split(",")


def merge(conn: Any, after: int, upto: int) -> int:
    """Merges the conversions with ``after < seq <= upto`` into ``orders``; returns how
    many it read."""
    seen: dict[tuple[str, str], dict[str, Any]] = {}  # orders this range has touched
    read = 0
    for row in conn.execute(CONVERSIONS, (after, upto)).fetchall():
        read += 1
        (site, order_id, received_at, value, currency, items, via, bot, click_id, click_at,
         list_id, item, position, placement, variant) = row  # fmt: skip
        key = (site, order_id)
        order = seen.get(key)
        if order is None:
            found = conn.execute(FIND, key).fetchone()
            order = dict(zip(_FIELDS, found, strict=True)) if found else None
        confirmed = via == "server"
        if order is None:
            order = {
                "site": site, "order_id": order_id, "received_at": received_at,
                "day": received_at // DAY_MS, "value": value, "currency": currency,
                "items": items, "page": 0, "server": 0, "reports": 0, "bot": int(bot),
                "click_id": None, "click_at": None, "list_id": None, "item": None,
                "position": None, "placement": None, "variant": None,
            }  # fmt: skip
        elif confirmed:
            order.update(value=value, currency=currency, items=items)
        if confirmed:
            order["server"] = 1
            order["bot"] = 0
        else:
            order["page"] = 1
            order["bot"] = min(order["bot"], int(bot))
        order["reports"] += 1
        if click_id is not None and (
            order["click_id"] is None
            or (click_at, click_id) > (order["click_at"], order["click_id"])
        ):
            order.update(
                click_id=click_id, click_at=click_at, list_id=list_id, item=item,
                position=position, placement=placement, variant=variant,
            )  # fmt: skip
        seen[key] = order
    for order in seen.values():
        bought = None
        if order["click_id"] is not None:
            bought = int(order["item"] in json.loads(order["items"]))
        conn.execute(SAVE, [*(order[name] for name in _FIELDS[:-1]), bought])
    return read
