"""The A/B split as the serving pods run it: which variant answers a request, the request id
that carries that assignment, and who an outcome reported later belongs to. Pure.

Every pod of a test holds the same `Split` (the test's name and key, the challenger's share,
the Sticky header). The champion's pods assign each request: Sticky by a keyed hash of the
`split.key` header (one user, one variant), Random by a fresh draw. The request id they
answer with names the variant and is signed with the test's key, so feedback that reaches
any pod of the test, hours later, is counted for the variant that answered (and feedback
for a user key of a Sticky test is assigned again the same way). An id the test did not
sign is never guessed: it is counted as unmatched."""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass
from enum import StrEnum


class Variant(StrEnum):
    CHAMPION = "champion"
    CHALLENGER = "challenger"


# Response and request header naming the variant that answered; a request already carrying
# it (the champion's pod forwarding to the challenger) is not assigned again.
VARIANT_HEADER = "x-maestro-variant"
# ab.<c|x>.<32 hex>.<16 hex>: variant, random part, signature.
_ID = re.compile(r"^ab\.([cx])\.([0-9a-f]{32})\.([0-9a-f]{16})$")
_CODE = {Variant.CHAMPION: "c", Variant.CHALLENGER: "x"}
_OF_CODE = {code: variant for variant, code in _CODE.items()}


@dataclass(frozen=True)
class Split:
    """One test's split, the same on every pod of it."""

    name: str
    key: bytes  # signs request ids and keys the Sticky hash
    challenger_percent: float  # 0-100
    sticky_header: str | None = None  # Random when None

    @property
    def test_id(self) -> str:
        """A short id of this test (its key is the ABTest's uid): labels its metrics."""
        return self.key.decode(errors="replace").replace("-", "")[:8]

    def __post_init__(self) -> None:
        if not 0 <= self.challenger_percent <= 100:
            raise ValueError(f"challenger percent {self.challenger_percent} is not in 0-100")
        if not self.key:
            raise ValueError("the split needs a non-empty key")


def _mac(key: bytes, text: str) -> bytes:
    return hmac.new(key, text.encode(), hashlib.sha256).digest()


def bucket(split: Split, unit: str) -> float:
    """Where `unit` (a user key) falls in [0, 100): uniform, and the same on every pod."""
    return int.from_bytes(_mac(split.key, f"unit:{unit}")[:8], "big") / 2**64 * 100


def assign_user(split: Split, user: str) -> Variant:
    """Sticky: the variant of this user key."""
    return (
        Variant.CHALLENGER if bucket(split, user) < split.challenger_percent else Variant.CHAMPION
    )


def assign_draw(split: Split, draw: float) -> Variant:
    """Random: the variant of a uniform draw in [0, 1)."""
    return Variant.CHALLENGER if draw * 100 < split.challenger_percent else Variant.CHAMPION


def request_id(split: Split, variant: Variant, nonce: str) -> str:
    """The signed id of a request `variant` answers; `nonce`: 32 random hex digits."""
    body = f"ab.{_CODE[variant]}.{nonce}"
    return f"{body}.{_mac(split.key, body)[:8].hex()}"


def variant_of_request(split: Split, rid: str) -> Variant | None:
    """The variant that answered request `rid`, if this test signed it; None otherwise."""
    found = _ID.match(rid)
    if found is None:
        return None
    body = f"ab.{found.group(1)}.{found.group(2)}"
    if not hmac.compare_digest(_mac(split.key, body)[:8].hex(), found.group(3)):
        return None
    return _OF_CODE[found.group(1)]
