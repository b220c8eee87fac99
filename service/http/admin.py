"""The guard in front of repository control over HTTP (/admin/reload, /v2/repository/models/{m}/load|unload).

Off unless the operator sets VAESERVE_MODEL_CONTROL=true (with VAESERVE_ADMIN_KEY); then each call needs the
X-Admin-Key header. A browser cannot send that header cross-site without a CORS preflight this server never grants
for it, and a "simple" cross-site request (a form post, text/plain) is refused by its content type and its
Sec-Fetch-Site before the key is even looked at.
"""

from __future__ import annotations

from starlette.requests import Request

from service.engine.domain import Forbidden, UnsupportedMediaType

# what a repository call may carry: Triton's client posts JSON (or nothing at all)
ACCEPTED = ("application/json",)


def guard(request: Request) -> None:
    """Forbidden / UnsupportedMediaType unless this is an operator's call with the admin key."""
    plane = request.app.state.plane
    plane.check_control()
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind and kind not in ACCEPTED:
        raise UnsupportedMediaType(f"content type {kind[:60]!r} is not accepted here; send application/json or "
                                   "no body")
    if request.headers.get("sec-fetch-site", "") in ("cross-site", "same-site"):
        raise Forbidden("repository control does not take requests from web pages")
    plane.check_control(request.headers.get("x-admin-key", ""))
