"""Attribution tokens: what is signed verifies, anything else is refused with its reason."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from clickthru import tokens

SECRET = b"s" * 32
KEYS = {("shop", "k1"): SECRET, ("shop", "k2"): b"t" * 32}


def lookup(site: str, key_id: str) -> bytes | None:
    return KEYS.get((site, key_id))


def mint(**changes: object) -> str:
    values: dict[str, object] = dict(
        site="shop", key_id="k1", secret=SECRET, list_id="L1", item="moby-dick",
        position=2, placement="product-page-bottom", now=1_800_000_000,
    )  # fmt: skip
    values.update(changes)
    return tokens.mint(**values)  # type: ignore[arg-type]


def test_a_minted_token_verifies_to_its_claims() -> None:
    claims = tokens.verify(mint(), lookup, now=1_800_000_100)
    assert claims == tokens.Claims(
        "shop", "k1", "L1", "moby-dick", 2, "product-page-bottom",
        1_800_000_000, 1_800_000_000 + tokens.DEFAULT_TTL,
    )  # fmt: skip


def test_a_token_is_short_enough_for_an_html_attribute() -> None:
    assert len(mint(list_id="0f8e2b7c9d1a4e6f8b2c3d4e5f6a7b8c")) < 160


def test_any_change_to_the_payload_breaks_the_signature() -> None:
    other = mint(position=1)
    token = mint()
    spliced = other.rsplit(".", 1)[0] + "." + token.rsplit(".", 1)[1]
    with pytest.raises(tokens.TokenError) as refused:
        tokens.verify(spliced, lookup, now=1_800_000_100)
    assert refused.value.reason == "token_bad_signature"


@pytest.mark.parametrize(
    ("token", "reason"),
    [
        (mint(secret=b"guess"), "token_bad_signature"),
        (mint(key_id="k9"), "token_unknown_key"),
        (mint(site="elsewhere"), "token_unknown_key"),
        (mint(ttl=60), "token_expired"),
        ("", "token_missing"),
        ("v2.abc.def", "token_malformed"),
        ("v1.nodot", "token_malformed"),
        ("v1.!!!.???", "token_malformed"),
        ("v1." + "A" * 2000 + ".x", "token_malformed"),
    ],
)
def test_bad_tokens_are_refused_with_their_reason(token: str, reason: str) -> None:
    with pytest.raises(tokens.TokenError) as refused:
        tokens.verify(
            token, lookup, now=1_800_000_100 if reason != "token_expired" else 1_800_000_061
        )
    assert refused.value.reason == reason


def test_the_previous_key_still_verifies_after_rotation() -> None:
    old = mint(key_id="k1")
    new = mint(key_id="k2", secret=b"t" * 32)
    assert tokens.verify(old, lookup, now=1_800_000_100).key_id == "k1"
    assert tokens.verify(new, lookup, now=1_800_000_100).key_id == "k2"


@pytest.mark.parametrize(
    "changes", [{"position": 0}, {"ttl": 0}, {"item": ""}, {"placement": "p" * 201}]
)
def test_minting_refuses_nonsense(changes: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        mint(**changes)


text = st.text(min_size=1, max_size=tokens.MAX_FIELD_LENGTH)


@given(list_id=text, item=text, placement=text, position=st.integers(1, 10_000))
def test_every_valid_claim_round_trips(
    list_id: str, item: str, placement: str, position: int
) -> None:
    try:
        token = mint(list_id=list_id, item=item, placement=placement, position=position)
    except ValueError as refused:  # three long texts of 4-byte characters make too long a token
        assert f"over {tokens.MAX_TOKEN_LENGTH}" in str(refused)
        assert len((list_id + item + placement).encode()) > 600
        return
    claims = tokens.verify(token, lookup, now=1_800_000_000)
    assert (claims.list_id, claims.item, claims.placement, claims.position) == (
        list_id, item, placement, position,
    )  # fmt: skip


def test_a_variant_is_signed_with_the_other_claims() -> None:
    plain, with_b = mint(), mint(variant="B")
    assert tokens.verify(plain, lookup, now=1_800_000_100).variant == ""
    assert tokens.verify(with_b, lookup, now=1_800_000_100).variant == "B"
    # The variant is inside the signed payload: another's MAC does not cover it.
    assert with_b.split(".")[1] != plain.split(".")[1]
    forged = f"v1.{with_b.split('.')[1]}.{plain.split('.')[2]}"
    with pytest.raises(tokens.TokenError, match="token_bad_signature"):
        tokens.verify(forged, lookup, now=1_800_000_100)
