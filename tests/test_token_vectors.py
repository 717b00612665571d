"""The committed test vectors are what tokens.py mints and refuses."""

from __future__ import annotations

import json
from typing import Any

import msgspec
import pytest

from clickthru import tokens
from tests import token_vectors

VECTORS: dict[str, Any] = json.loads(token_vectors.VECTORS.read_text())


def test_the_committed_vectors_are_what_the_script_makes() -> None:
    assert token_vectors.VECTORS.read_text() == token_vectors.render(), (
        "remake them: .venv/bin/python -m tests.token_vectors"
    )


def mint(given: dict[str, Any]) -> str:
    return tokens.mint(
        site=given["site"], key_id=given["key_id"], secret=bytes.fromhex(given["secret_hex"]),
        list_id=given["list_id"], item=given["item"], position=given["position"],
        placement=given["placement"], ttl=given["ttl"], now=given["issued_at"],
        variant=given.get("variant"),
    )  # fmt: skip


@pytest.mark.parametrize("vector", VECTORS["valid"], ids=lambda v: v["name"])
def test_a_valid_vector_is_minted_and_verifies_to_its_claims(vector: dict[str, Any]) -> None:
    assert mint(vector["input"]) == vector["token"]
    claims = tokens.verify(vector["token"], token_vectors.verifying_keys, now=vector["verify_at"])
    assert msgspec.structs.asdict(claims) == {"variant": "", **vector["claims"]}


@pytest.mark.parametrize("vector", VECTORS["invalid"], ids=lambda v: v["name"])
def test_an_invalid_vector_is_refused_with_its_reason(vector: dict[str, Any]) -> None:
    with pytest.raises(tokens.TokenError) as refused:
        tokens.verify(vector["token"], token_vectors.verifying_keys, now=vector["verify_at"])
    assert refused.value.reason == vector["reason"]


def test_every_reason_has_a_vector() -> None:
    reasons = {vector["reason"] for vector in VECTORS["invalid"]}
    assert reasons == {
        "token_missing", "token_malformed", "token_unknown_key", "token_bad_signature",
        "token_expired",
    }  # fmt: skip


@pytest.mark.parametrize("vector", VECTORS["mint_refuses"], ids=lambda v: v["name"])
def test_minting_refuses_what_the_vectors_say(vector: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        mint(vector["input"])
