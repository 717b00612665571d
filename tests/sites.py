"""What every collector test's events are made of: the two sites' origins, event ids and
tokens signed with a site's current key."""

from __future__ import annotations

import uuid
from typing import Any

from clickthru import tokens
from clickthru.store.rows import NewSite

SHOP_ORIGIN = "http://shop.test"
OTHER_ORIGIN = "http://other.test"


def new_id() -> str:
    return uuid.uuid4().hex


def mint_token(new_site: NewSite, **claims: Any) -> str:
    """A token signed with the site's current key; the claims a test does not care about
    take plain defaults."""
    key = new_site.site.signing_key
    values: dict[str, Any] = {
        "list_id": "list-1",
        "item": "book-1",
        "position": 1,
        "placement": "product-page-bottom",
        **claims,
    }
    return tokens.mint(site=new_site.site.name, key_id=key.key_id, secret=key.secret, **values)
