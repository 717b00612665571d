"""The dashboard's one destructive action: an operator erases a site, having typed its
name again (``store.erase`` does the erasing)."""

from __future__ import annotations

import logging
import threading

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from clickthru.backend import Store
from clickthru.dashboard import pages
from clickthru.dashboard.auth import SECURITY_HEADERS, Gate, form_fields
from clickthru.errors import StoreError
from clickthru.store.erase import SETTLE, SiteEraser

log = logging.getLogger(__name__)


def html(body: str, status: int = 200) -> HTMLResponse:
    return HTMLResponse(body, status, headers=SECURITY_HEADERS)


class SiteErasure:
    def __init__(self, store: Store, gate: Gate) -> None:
        self.store = store
        self.gate = gate

    async def erase_site(self, request: Request) -> Response:
        """POST erase-site: csrf, site and confirm (the site's name typed again)."""
        visitor = await self.gate.visitor(request)
        form = await form_fields(request)
        if visitor is None or visitor.session is None:
            return self.gate.to_sign_in(request)
        if not self.gate.csrf_ok(visitor, form.get("csrf")):
            return html(pages.render_error(403, "The form expired; reload the page."), 403)
        if not visitor.user.operator:
            return html(pages.render_error(403, "Only an operator may erase a site."), 403)
        name = form.get("site", "")
        if not name or form.get("confirm", "") != name:
            message = "The name typed differs from the site's: nothing was erased."
            return html(pages.render_error(400, message), 400)
        eraser = SiteEraser(self.store.admin.db)
        try:
            removed = await run_in_threadpool(eraser.erase, name, 0)
        except StoreError as error:
            return html(pages.render_error(404, str(error)), 404)
        # Once more when every collector has re-read its sites, for what they took meanwhile.
        later = threading.Timer(SETTLE, _sweep_again, (eraser, name))
        later.daemon = True
        later.start()
        return html(pages.render_erased(name, removed))


def _sweep_again(eraser: SiteEraser, name: str) -> None:
    try:
        eraser.sweep(name)
    except Exception:  # the store closed meanwhile, say: the operator can erase again
        log.exception("sweeping %s again failed", name)
