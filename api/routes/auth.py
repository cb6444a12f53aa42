"""Login (public) and who-am-I."""

from __future__ import annotations

from fastapi import APIRouter, Request

from api.deps import AuthDep, CallerDep
from api.models import LoginRequest, MePublic, TokenPublic

public_router = APIRouter(prefix="/auth", tags=["auth"])
router = APIRouter(prefix="/auth", tags=["auth"])


@public_router.post("/login", responses={401: {"description": "wrong username or password"},
                                         429: {"description": "too many failed logins"}})
async def login(body: LoginRequest, auth: AuthDep, request: Request) -> TokenPublic:
    """Exchange a username and password for a short-lived session token (`Authorization: Bearer <token>`)."""
    client = request.client.host if request.client else "unknown"
    principal, token = await auth.login(body.username, body.password, client)
    return TokenPublic(access_token=token, expires_in=auth.token_ttl_s, username=principal.subject,
                       role=principal.role.value, enterprise=principal.enterprise)


@router.get("/me")
def me(access: CallerDep) -> MePublic:
    """Who the credential belongs to and what it is bound to."""
    p = access.principal
    return MePublic(kind=p.kind, subject=p.subject, role=p.role.value, enterprise=p.enterprise)
