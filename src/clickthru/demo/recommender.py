"""A toy recommender over the shipped catalogue: enough to show real-looking lists.

Books are similar when they share genres or an author.  Ties are broken by a stable
hash of the pair, so every run (and every test) sees the same lists.

It serves two variants, an experiment's arms: "A" ranks as above; "B" weighs a shared
author less and prefers recent books. Each list served draws its variant at random.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from importlib import resources

AUTHOR_WEIGHT = 3  # the same author outweighs a single shared genre
GENRE_WEIGHT = 2
VARIANTS = ("A", "B")


@dataclass(frozen=True, slots=True)
class Book:
    id: str
    title: str
    author: str
    year: int
    genres: tuple[str, ...]
    blurb: str


def stable_hash(*parts: str) -> int:
    """A hash that, unlike ``hash()``, is the same in every process."""
    digest = hashlib.blake2b("\n".join(parts).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def load_catalogue() -> list[Book]:
    text = (resources.files("clickthru.demo") / "catalogue.json").read_text("utf-8")
    return [
        Book(b["id"], b["title"], b["author"], b["year"], tuple(b["genres"]), b["blurb"])
        for b in json.loads(text)
    ]


class Recommender:
    def __init__(self, books: list[Book]) -> None:
        self.books = sorted(books, key=lambda book: (book.author.split()[-1], book.year))
        self._by_id = {book.id: book for book in books}

    def book(self, book_id: str) -> Book | None:
        return self._by_id.get(book_id)

    def score(self, book: Book, other: Book, variant: str = "A") -> float:
        shared = len(set(book.genres) & set(other.genres))
        if variant == "B":
            return GENRE_WEIGHT * shared + (book.author == other.author) + other.year / 1000
        return GENRE_WEIGHT * shared + AUTHOR_WEIGHT * (book.author == other.author)

    def similar(self, book: Book, count: int, variant: str = "A") -> list[Book]:
        """The ``count`` books most like ``book``, best first, as ``variant`` ranks them."""
        others = [other for other in self.books if other.id != book.id]
        others.sort(
            key=lambda other: (-self.score(book, other, variant), stable_hash(book.id, other.id))
        )
        return others[:count]

    def popular(self, count: int, variant: str = "A") -> list[Book]:
        """The "popular this week" list: a fixed ranking, as if from last week's sales."""
        return sorted(self.books, key=lambda book: stable_hash("popular", variant, book.id))[:count]
