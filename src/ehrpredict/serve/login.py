"""The dashboard's login page: a key with the ``read`` scope in, a signed session cookie out.

The cookie is HttpOnly (page scripts cannot read it), SameSite=Strict (another site cannot make the
browser send it, which is also what keeps the dashboard's forms safe from cross-site posts) and Secure
when the server runs behind HTTPS (``--secure-cookies``).
"""

from __future__ import annotations

from html import escape

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from ehrpredict.reporting.html import STYLE
from ehrpredict.serve.auth import SESSION_COOKIE, SESSION_SECONDS
from ehrpredict.serve.context import ServeContext

DASHBOARD = "/dashboard"


def login_page(message: str = "", status: int = 200) -> HTMLResponse:
    note = f'<p class="error" role="alert">{escape(message)}</p>' if message else ""
    return HTMLResponse(f"""<!doctype html><html lang="en"><head><meta charset="utf-8">
<title>ehrpredict: sign in</title><style>{STYLE}
form{{max-width:28rem}} input{{width:100%;padding:0.4rem;margin:0.3rem 0 0.8rem}} .error{{color:#b2182b}}</style>
</head><body><h1>ehrpredict</h1><h2>Sign in</h2>{note}
<form method="post" action="/login"><label for="key">API key (with the read scope)</label>
<input id="key" name="key" type="password" autocomplete="off" required>
<button type="submit">Sign in</button></form>
<p>Ask whoever runs this service for a key (<code>ehrpredict keys add</code>).</p></body></html>""",
                        status_code=status)


def _safe_next(target: str | None) -> str:
    # Only paths of this dashboard: an open redirect would send a signed-in user anywhere.
    if target and target.startswith(DASHBOARD) and "//" not in target and "\\" not in target:
        return target
    return DASHBOARD + "/"


def install_login(app: FastAPI, ctx: ServeContext) -> None:
    @app.get("/login", response_class=HTMLResponse, include_in_schema=False)
    def show(request: Request) -> HTMLResponse:
        return login_page()

    @app.post("/login", include_in_schema=False)
    async def sign_in(request: Request) -> Response:
        form = await request.form()
        key = form.get("key")
        who = ctx.keys.authenticate(key) if isinstance(key, str) else None
        if who is None:
            ctx.metrics.errors.labels("login_failed").inc()
            return login_page("That key is not valid.", status=401)
        if not who.allows("read"):
            ctx.metrics.errors.labels("login_forbidden").inc()
            return login_page("That key does not have the read scope the dashboard needs.", status=403)
        request.state.key_id = who.key_id
        response = RedirectResponse(_safe_next(request.query_params.get("next")), status_code=303)
        response.set_cookie(SESSION_COOKIE, ctx.signer.sign(who), max_age=SESSION_SECONDS, httponly=True,
                            samesite="strict", secure=ctx.settings.secure_cookies, path="/")
        return response

    @app.post("/logout", include_in_schema=False)
    def sign_out() -> Response:
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="strict")
        return response
