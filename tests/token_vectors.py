"""Makes docs/token-vectors.json: tokens to check an implementation of docs/tokens.md
against. Valid tokens come from ``clickthru.tokens.mint``; invalid ones are built by hand
here, each signed correctly unless a bad signature is the point, so that exactly one
thing is wrong with it.

    .venv/bin/python -m tests.token_vectors   # rewrites docs/token-vectors.json
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from pathlib import Path
from typing import Any

import msgspec

from clickthru import tokens

VECTORS = Path(__file__).parent.parent / "docs" / "token-vectors.json"
T = 1_750_000_000  # 2025-06-15T15:06:40Z: every vector is issued here or near it
DAY = 24 * 3600


def _secret(site: str, key_id: str) -> bytes:
    return hashlib.sha256(f"clickthru token vectors: {site} {key_id}".encode()).digest()


# After two rotations of bookshop: k3 signs, k2 still verifies, k1 is retired.
KEYS = [
    {"site": site, "key_id": key_id, "state": state, "secret_hex": _secret(site, key_id).hex()}
    for site, key_id, state in [
        ("bookshop", "k1", "retired"),
        ("bookshop", "k2", "previous"),
        ("bookshop", "k3", "current"),
        ("newsroom", "k1", "current"),
    ]
]


def verifying_keys(site: str, key_id: str) -> bytes | None:
    """A ``tokens.KeyLookup`` that knows the keys a collector would accept."""
    for key in KEYS:
        if (key["site"], key["key_id"]) == (site, key_id) and key["state"] != "retired":
            return bytes.fromhex(key["secret_hex"])
    return None


BASIC: dict[str, Any] = {
    "site": "bookshop",
    "key_id": "k3",
    "list_id": "3f2a9c",
    "item": "emma",
    "position": 1,
    "placement": "product-page-bottom",
    "issued_at": T,
    "ttl": tokens.DEFAULT_TTL,
}


def valid(name: str, verify_at: int | None = None, **changes: Any) -> dict[str, Any]:
    given = {**BASIC, **changes}
    secret = _secret(given["site"], given["key_id"])
    fields = {k: v for k, v in given.items() if k not in ("issued_at", "ttl")}
    token = tokens.mint(**fields, secret=secret, ttl=given["ttl"], now=given["issued_at"])
    claims = tokens.verify(token, verifying_keys, now=given["issued_at"])
    payload = base64.urlsafe_b64decode(token.split(".")[1] + "==")
    return {
        "name": name,
        "input": {**given, "secret_hex": secret.hex()},
        "payload_hex": payload.hex(),
        "token": token,
        # A token without a variant has none to read back (Python's Claims says "").
        "claims": {k: v for k, v in msgspec.structs.asdict(claims).items() if v != ""},
        "verify_at": given["issued_at"] if verify_at is None else verify_at,
    }


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _mac(secret: bytes, signed: str) -> str:
    return _b64(hmac.digest(secret, signed.encode(), "sha256")[:16])


def claims_of(**changes: Any) -> list[Any]:
    """The payload's array for BASIC with some claims changed."""
    given = {**BASIC, **changes}
    expires = given.pop("expires_at", given["issued_at"] + given["ttl"])
    order = ("site", "key_id", "list_id", "item", "position", "placement", "issued_at")
    return [given[name] for name in order] + [expires]


def signed(
    payload: bytes | list[Any],
    *,
    payload_text: str | None = None,
    secret: bytes = _secret("bookshop", "k3"),
) -> str:
    """A token around any payload, with a correct MAC (under bookshop's current key)."""
    raw = payload if isinstance(payload, bytes) else msgspec.msgpack.encode(payload)
    text = f"v1.{_b64(raw) if payload_text is None else payload_text}"
    return f"{text}.{_mac(secret, text)}"


def invalid(
    name: str,
    reason: str,
    token: str,
    verify_at: int = T + 60,
    collector_reason: str | None = None,
) -> dict[str, Any]:
    vector = {"name": name, "token": token, "verify_at": verify_at, "reason": reason}
    if collector_reason:
        vector["collector_reason"] = collector_reason
    return vector


def _with_char(wanted: str) -> str:
    """The payload text of a basic token, issued about T, with one of ``wanted`` in it."""
    for n in range(1000):
        payload = _b64(msgspec.msgpack.encode(claims_of(issued_at=T + n)))
        if any(c in payload for c in wanted):
            return payload
    raise AssertionError("no such payload")


def _mac_with_char(wanted: str) -> tuple[str, bytes]:
    """The text signed and the 16-byte MAC of a basic token whose MAC's base64url has one
    of ``wanted``."""
    for n in range(1000):
        text = f"v1.{_b64(msgspec.msgpack.encode(claims_of(issued_at=T + n)))}"
        mac = hmac.digest(_secret("bookshop", "k3"), text.encode(), "sha256")[:16]
        if any(c in _b64(mac) for c in wanted):
            return text, mac
    raise AssertionError("no such MAC")


def invalid_vectors() -> list[dict[str, Any]]:
    basic = valid("basic")["token"]
    prefix, payload, mac = basic.split(".")
    k3 = _secret("bookshop", "k3")
    dashed_payload = _with_char("-_")
    mac_text, mac_raw = _mac_with_char("-_")
    standard_mac = base64.b64encode(mac_raw).rstrip(b"=").decode()
    # Padding shows only when the payload's length is not a multiple of 3 bytes.
    padded_item = next(
        f"emma-{n}"
        for n in range(100)
        if len(msgspec.msgpack.encode(claims_of(item=f"emma-{n}"))) % 3
    )
    padded_raw = msgspec.msgpack.encode(claims_of(item=padded_item))
    array = msgspec.msgpack.encode(claims_of())
    long_text = "é" * tokens.MAX_FIELD_LENGTH
    return [
        invalid("empty", "token_missing", "", collector_reason="invalid_event"),
        invalid(
            "longer than 1024 characters",
            "token_malformed",
            signed(claims_of(list_id=long_text, item=long_text, placement=long_text)),
            collector_reason="invalid_event",
        ),
        invalid("version v2", "token_malformed", f"v2.{payload}.{_mac(k3, f'v2.{payload}')}"),
        invalid("no version", "token_malformed", f"{payload}.{mac}"),
        invalid("no MAC", "token_malformed", f"{prefix}.{payload}"),
        invalid(
            "padded payload",
            "token_malformed",
            signed(padded_raw, payload_text=base64.urlsafe_b64encode(padded_raw).decode()),
        ),
        invalid(
            "payload in the standard base64 alphabet",
            "token_malformed",
            signed(
                b"",
                payload_text=dashed_payload.replace("-", "+").replace("_", "/"),
            ),
        ),
        invalid("payload not msgpack", "token_malformed", signed(b"\xc1 not msgpack")),
        invalid(
            "claims as a map, not an array",
            "token_malformed",
            signed(
                msgspec.msgpack.encode(
                    dict(zip(tokens.Claims.__struct_fields__[:8], claims_of(), strict=True))
                )
            ),
        ),
        invalid("seven claims", "token_malformed", signed(claims_of()[:7])),
        invalid("ten claims", "token_malformed", signed([*claims_of(), "B", "extra"])),
        invalid("variant nil", "token_malformed", signed([*claims_of(), None])),
        invalid("empty variant", "token_malformed", signed([*claims_of(), ""])),
        invalid("variant as an integer", "token_malformed", signed([*claims_of(), 2])),
        invalid("bytes after the array", "token_malformed", signed(array + b"\x00")),
        invalid("position as a string", "token_malformed", signed(claims_of(position="1"))),
        invalid("position as a float", "token_malformed", signed(claims_of(position=1.0))),
        invalid("position 0", "token_malformed", signed(claims_of(position=0))),
        invalid(
            "position past 2^31 - 1",
            "token_malformed",
            signed(claims_of(position=tokens.MAX_POSITION + 1)),
        ),
        invalid("negative issue time", "token_malformed", signed(claims_of(issued_at=-1))),
        invalid(
            "issue time 2^64 - 1, more than a store's integers hold",
            "token_malformed",
            signed(claims_of(issued_at=2**64 - 1, expires_at=2**64 - 1)),
        ),
        invalid(
            "expiry past 2^53 - 1",
            "token_malformed",
            signed(claims_of(expires_at=tokens.MAX_TIME + 1)),
        ),
        invalid("empty item", "token_malformed", signed(claims_of(item=""))),
        invalid(
            "item of 201 characters",
            "token_malformed",
            signed(claims_of(item="a" * (tokens.MAX_FIELD_LENGTH + 1))),
        ),
        invalid("item as msgpack bin", "token_malformed", signed(claims_of(item=b"emma"))),
        invalid(
            "item not UTF-8",
            "token_malformed",
            signed(array.replace(b"\xa4emma", b"\xa4em\xffa")),
        ),
        invalid(
            "retired key",
            "token_unknown_key",
            signed(claims_of(key_id="k1"), secret=_secret("bookshop", "k1")),
        ),
        invalid("key never made", "token_unknown_key", signed(claims_of(key_id="k9"))),
        invalid("unknown site", "token_unknown_key", signed(claims_of(site="nowhere"))),
        invalid(
            "wrong secret",
            "token_bad_signature",
            f"{prefix}.{payload}.{_mac(b'not the secret', f'{prefix}.{payload}')}",
        ),
        invalid(
            "the secret's hex text used as the key",
            "token_bad_signature",
            f"{prefix}.{payload}.{_mac(k3.hex().encode(), f'{prefix}.{payload}')}",
        ),
        invalid(
            "MAC over the payload alone",
            "token_bad_signature",
            f"{prefix}.{payload}.{_mac(k3, payload)}",
        ),
        invalid(
            "MAC not truncated",
            "token_bad_signature",
            f"{prefix}.{payload}."
            + _b64(hmac.digest(k3, f"{prefix}.{payload}".encode(), "sha256")),
        ),
        invalid("MAC with padding", "token_bad_signature", f"{basic}=="),
        invalid(
            "MAC in the standard base64 alphabet",
            "token_bad_signature",
            f"{mac_text}.{standard_mac}",
        ),
        invalid(
            "payload changed after signing",
            "token_bad_signature",
            f"v1.{_b64(msgspec.msgpack.encode(claims_of(position=2)))}.{mac}",
        ),
        invalid(
            "claims another site",
            "token_bad_signature",
            signed(claims_of(site="newsroom", key_id="k1")),
        ),
        invalid(
            "expired a second ago",
            "token_expired",
            signed(claims_of(ttl=60)),
            verify_at=T + 61,
        ),
    ]


def vectors() -> dict[str, Any]:
    return {
        "about": "Attribution tokens, format v1: see docs/tokens.md. Made by"
        " tests/token_vectors.py; times are unix seconds; secrets are hex.",
        "keys": KEYS,
        "valid": [
            valid("basic"),
            valid("previous key, position 300", key_id="k2", position=300),
            valid(
                "non-ASCII texts",
                item="Le Petit Prince — édition illustrée 📖",
                placement="accueil-sélection",
            ),
            valid(
                "string headers: fixstr 31, str8 32, str16 400 bytes",
                list_id="l" * 31,
                item="i" * 32,
                placement="é" * tokens.MAX_FIELD_LENGTH,
            ),
            valid(
                "200 characters, 201 UTF-16 code units",
                item="a" * (tokens.MAX_FIELD_LENGTH - 1) + "📖",
            ),
            valid(
                "position 128, times past 2^32",
                position=128,
                issued_at=2**32 - 1000,
                ttl=1000 + DAY,
            ),
            valid(
                "largest position, valid through its expiry second",
                position=tokens.MAX_POSITION,
                ttl=1,
                verify_at=T + 1,
            ),
            valid("variant B", variant="B"),
            valid("non-ASCII variant", variant="modèle-2"),
        ],
        "invalid": invalid_vectors(),
        "mint_refuses": [
            {"name": name, "input": {**BASIC, **changes, "secret_hex": KEYS[2]["secret_hex"]}}
            for name, changes in [
                ("position 0", {"position": 0}),
                ("position past 2^31 - 1", {"position": tokens.MAX_POSITION + 1}),
                ("ttl 0", {"ttl": 0}),
                ("expiry past 2^53 - 1", {"ttl": tokens.MAX_TIME}),
                ("empty list id", {"list_id": ""}),
                ("item of 201 characters", {"item": "a" * (tokens.MAX_FIELD_LENGTH + 1)}),
                ("placement with a lone surrogate", {"placement": "home\ud800"}),
                ("empty variant", {"variant": ""}),
                ("variant of 201 characters", {"variant": "v" * (tokens.MAX_FIELD_LENGTH + 1)}),
                (
                    "a token over 1024 characters",
                    {"list_id": "é" * 200, "item": "é" * 200, "placement": "é" * 200},
                ),
            ]
        ],
    }


def render() -> str:
    return json.dumps(vectors(), indent=2) + "\n"


if __name__ == "__main__":
    VECTORS.write_text(render())
    print(f"wrote {VECTORS}")
