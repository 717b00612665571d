"""Attribution tokens: what was recommended, signed by the recommendation service.

The browser tells us which link was clicked only through a token the recommendation
service minted when it rendered the list.  The token is the compact msgpack array

    [site, key_id, list_id, item, position, placement, issued_at, expires_at]

or, for a list served by one variant of an experiment (a model, an arm), with the
variant's name as a ninth element. Tokens without a variant stay 8 elements long.

base64url-encoded, followed by ``.`` and a truncated HMAC-SHA256 (16 bytes, RFC 2104
allows truncation to half the hash) of that text under the site's secret:

    v1.<payload>.<mac>

The key id inside the payload picks the secret, so a site can rotate its key while
tokens signed with the previous one still verify. docs/tokens.md is the full format, for
minting in other languages; docs/token-vectors.json holds tokens to check against.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import time
from collections.abc import Callable
from typing import Annotated, Final

import msgspec

from clickthru.errors import TokenError

VERSION: Final = "v1"
MAC_BYTES: Final = 16
DEFAULT_TTL: Final = 7 * 24 * 3600
MAX_TOKEN_LENGTH: Final = 1024
MAX_FIELD_LENGTH: Final = 200  # characters (code points) of list_id, item and placement
MAX_POSITION: Final = 2**31 - 1  # an int in Java and Go, a safe number in JavaScript
MAX_TIME: Final = 2**53 - 1  # unix seconds: exact in every language's integers and in JSON

Text = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_FIELD_LENGTH)]
Time = Annotated[int, msgspec.Meta(ge=0, le=MAX_TIME)]


class Claims(msgspec.Struct, array_like=True, frozen=True, forbid_unknown_fields=True):
    """What a token says was recommended. Decoding checks the limits, so a signed token
    that breaks them (as a faulty minter elsewhere could make) is malformed, not stored."""

    site: str
    key_id: str
    list_id: Text
    item: Text
    position: Annotated[int, msgspec.Meta(ge=1, le=MAX_POSITION)]
    placement: Text
    issued_at: Time
    expires_at: Time
    # The model or experiment arm that served the list; "" (absent from the token): none.
    variant: Text = ""


# site, key id -> secret, or None when that site or key is unknown
KeyLookup = Callable[[str, str], bytes | None]

_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(Claims)


def _b64encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _b64decode(text: str) -> bytes:
    """Only the one spelling ``_b64encode`` gives: no padding, no ``+`` or ``/``, no
    characters skipped, no stray bits in the last character."""
    raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    if _b64encode(raw) != text:
        raise ValueError("not unpadded base64url")
    return raw


def _mac(secret: bytes, signed: str) -> str:
    """The MAC as it appears in the token; compared as text, so it is never decoded."""
    return _b64encode(hmac.digest(secret, signed.encode("ascii"), "sha256")[:MAC_BYTES])


def mint(
    *,
    site: str,
    key_id: str,
    secret: bytes,
    list_id: str,
    item: str,
    position: int,
    placement: str,
    ttl: int = DEFAULT_TTL,
    now: float | None = None,
    variant: str | None = None,
) -> str:
    """Sign one recommended link. ``position`` is 1-based; ``variant`` names the model or
    experiment arm that served the list, for reports by variant."""
    if not 1 <= position <= MAX_POSITION:
        raise ValueError(f"position must be 1 to {MAX_POSITION}")
    if ttl <= 0:
        raise ValueError("ttl must be positive")
    texts = [("list_id", list_id), ("item", item), ("placement", placement)]
    if variant is not None:
        texts.append(("variant", variant))
    for name, value in texts:
        if not value or len(value) > MAX_FIELD_LENGTH:
            raise ValueError(f"{name} must be 1 to {MAX_FIELD_LENGTH} characters")
    issued = int(time.time() if now is None else now)
    if issued < 0 or issued + ttl > MAX_TIME:
        raise ValueError(f"issue and expiry times must be 0 to {MAX_TIME} (unix seconds)")
    claims = Claims(
        site, key_id, list_id, item, position, placement, issued, issued + ttl, variant or ""
    )
    signed = f"{VERSION}.{_b64encode(encode(claims))}"
    token = f"{signed}.{_mac(secret, signed)}"
    if len(token) > MAX_TOKEN_LENGTH:
        raise ValueError(
            f"the token would be {len(token)} characters, over {MAX_TOKEN_LENGTH}:"
            " shorten list_id, item, placement or variant"
        )
    return token


def encode(claims: Claims) -> bytes:
    """The payload's msgpack: 8 elements, or 9 with a variant."""
    if claims.variant:
        return _encoder.encode(claims)
    return _encoder.encode(msgspec.structs.astuple(claims)[:-1])


def verify(token: str, keys: KeyLookup, *, now: float | None = None) -> Claims:
    """Return the token's claims, or raise TokenError with the reason it is refused."""
    if not isinstance(token, str) or not token:
        raise TokenError("token_missing")
    if len(token) > MAX_TOKEN_LENGTH:
        raise TokenError("token_malformed")
    version, _, rest = token.partition(".")
    if version != VERSION:
        raise TokenError("token_malformed")
    payload, dot, mac_text = rest.rpartition(".")
    if not dot:
        raise TokenError("token_malformed")
    try:
        claims = _decoder.decode(_b64decode(payload))
    except (msgspec.DecodeError, binascii.Error, ValueError):
        raise TokenError("token_malformed") from None
    secret = keys(claims.site, claims.key_id)
    if secret is None:
        raise TokenError("token_unknown_key")
    if not mac_text.isascii() or not hmac.compare_digest(
        mac_text, _mac(secret, f"{VERSION}.{payload}")
    ):
        raise TokenError("token_bad_signature")
    if (time.time() if now is None else now) > claims.expires_at:
        raise TokenError("token_expired")
    return claims
