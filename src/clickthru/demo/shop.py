"""A demo book shop: a customer site showing the toy recommender's lists through clickthru.

Each recommended link is rendered as the recommendation service would serve it: a plain
``href`` plus a ``data-ct`` token signed with the shop's own key, one list id per list.
"""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass
from typing import Any

from jinja2 import Environment, PackageLoader
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.routing import Route

from clickthru import tokens
from clickthru.demo.recommender import VARIANTS, Book, Recommender, stable_hash
from clickthru.store.rows import SiteKey

ALSO_BOUGHT = 4
SISTER_SIMILAR = 2  # plus the book itself


@dataclass(frozen=True, slots=True)
class Shop:
    site: str  # the registered site name: its key signs this shop's tokens
    title: str
    tagline: str
    url: str  # public base URL, no trailing slash
    accent: str  # CSS colour
    second_hand: bool


@dataclass(frozen=True, slots=True)
class Link:
    book: Book
    href: str
    token: str
    price: str


@dataclass(frozen=True, slots=True)
class RecList:
    placement: str
    heading: str
    links: list[Link]


def pence(book: Book, second_hand: bool) -> int:
    """A made-up but stable price: new from 7.99, used from 2.50."""
    spread = stable_hash("price", book.id) % 8
    return 250 + 50 * spread if second_hand else 799 + 100 * spread


def price(book: Book, second_hand: bool) -> str:
    return f"£{pence(book, second_hand) / 100:.2f}"


def cover_hue(book: Book) -> int:
    return stable_hash("cover", book.id) % 360


def create_shop(
    shop: Shop, sister: Shop, key: SiteKey, collector_url: str, recommender: Recommender
) -> Starlette:
    env = Environment(loader=PackageLoader("clickthru.demo"), autoescape=True)
    env.filters["price"] = lambda book: price(book, shop.second_hand)
    env.filters["hue"] = cover_hue
    sister_heading = (
        f"Second-hand copies at {sister.title}"
        if sister.second_hand
        else f"New copies at {sister.title}"
    )

    def rec_list(
        placement: str, heading: str, books: list[Book], target: Shop, variant: str
    ) -> RecList:
        # A fresh list id per rendered list: clicks and views are counted per list served.
        list_id = uuid.uuid4().hex
        links = [
            Link(
                book,
                f"{target.url}/book/{book.id}",
                tokens.mint(
                    site=shop.site,
                    key_id=key.key_id,
                    secret=key.secret,
                    list_id=list_id,
                    item=book.id,
                    position=position,
                    placement=placement,
                    variant=variant,
                ),
                price(book, target.second_hand),
            )
            for position, book in enumerate(books, start=1)
        ]
        return RecList(placement, heading, links)

    def render(template: str, status: int = 200, **context: Any) -> HTMLResponse:
        page = env.get_template(template).render(
            shop=shop, sister=sister, collector=collector_url, **context
        )
        return HTMLResponse(page, status)

    async def home(request: Request) -> HTMLResponse:
        variant = random.choice(VARIANTS)
        books = recommender.popular(4, variant)
        popular = rec_list("home-popular", "Popular this week", books, shop, variant)
        return render("home.html", popular=popular, books=recommender.books)

    async def book_page(request: Request) -> HTMLResponse:
        book = recommender.book(request.path_params["book_id"])
        if book is None:
            return render("not_found.html", 404)
        variant = random.choice(VARIANTS)
        similar = recommender.similar(book, ALSO_BOUGHT + SISTER_SIMILAR, variant)
        also = rec_list(
            "product-page-bottom", "Readers also bought", similar[:ALSO_BOUGHT], shop, variant
        )
        # The other shop: this very book first, then close matches not shown above.
        elsewhere = [book, *similar[ALSO_BOUGHT:]]
        sister_list = rec_list("sister-shop", sister_heading, elsewhere, sister, variant)
        return render("book.html", book=book, lists=[also, sister_list])

    def basket_of(request: Request) -> list[Book]:
        ids = request.query_params.get("items", "")
        return [found for i in ids.split(",") if (found := recommender.book(i))]

    async def basket(request: Request) -> HTMLResponse:
        """The basket lives in its own URL (?items=a,b): no cookie, no server state."""
        books = basket_of(request)
        total = sum(pence(book, shop.second_hand) for book in books)
        order = uuid.uuid4().hex[:8].upper()  # made here, so a reloaded confirmation keeps it
        return render("basket.html", books=books, total=total, order=order,
                      items=",".join(book.id for book in books))  # fmt: skip

    async def order_page(request: Request) -> HTMLResponse:
        books = basket_of(request)
        total = sum(pence(book, shop.second_hand) for book in books)
        conversion = {
            "order": request.path_params["order"][:40],
            "value": total / 100,
            "currency": "GBP",
            "items": [book.id for book in books],
        }
        return render("order.html", books=books, total=total, conversion=conversion)

    async def not_found(request: Request, exc: Exception) -> HTMLResponse:
        return render("not_found.html", 404)

    return Starlette(
        routes=[
            Route("/", home),
            Route("/book/{book_id}", book_page),
            Route("/basket", basket),
            Route("/order/{order}", order_page),
        ],
        exception_handlers={404: not_found},
    )
