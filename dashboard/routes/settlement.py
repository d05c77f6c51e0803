"""The settlement page (epochs on chain, payouts per owner, chain health) and the chain health as JSON."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from decimal import Decimal
from typing import Annotated, Any, Protocol, cast
from urllib.parse import quote

from babel.numbers import format_decimal
from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, Response

from dashboard import display
from dashboard.chain_status import ChainHealth, ChainStatus
from dashboard.config import Principal, Role
from dashboard.deps import Clock, Config, Lang, Model, Operator, Who, login_redirect, require
from dashboard.i18n import Language
from dashboard.routes import pages
from sensors.address import Address, InvalidAddress
from settlement.views import EpochView, InvalidCursor, PayoutView, ReadModel, cursor_after

PAGE_ROWS = 20


class PayoutSource(Protocol):
    """``ReadModel.payouts`` with the owner filter of the dashboard's data contract."""

    def payouts(self, limit: int = 100, cursor: str | None = None, *, owner: str | None = None) -> list[PayoutView]: ...


class Unconfigured:
    """The chain status of an app given none: no node to ask."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock

    def status(self) -> ChainHealth:
        return ChainHealth(None, False, "no chain node configured", self.clock())

    def claimed(self, owners: Sequence[str]) -> dict[str, int] | None:
        return None


def chain_status(request: Request, clock: Clock) -> ChainStatus:
    """The ``ChainStatus`` ``create_app`` was given (``app.state.chain_status``)."""
    found: ChainStatus | None = getattr(request.app.state, "chain_status", None)
    return found if found is not None else Unconfigured(clock)


Chain = Annotated[ChainStatus, Depends(chain_status)]
Cursor = Annotated[str | None, Query(max_length=512)]
Owner = Annotated[str | None, Query(max_length=64)]


SETTLEMENT_PAGE = require(Role.OPERATOR, Role.ACCOUNT)
"""The settlement page's guard for a signed-in visitor: 403 for a researcher."""


def health_json(health: ChainHealth) -> dict[str, Any]:
    """A ``ChainHealth`` as JSON; the balance as a decimal string (wei exceed JavaScript's safe integers)."""
    body = asdict(health)
    wei = health.settler_balance_wei
    body["settler_balance_wei"] = None if wei is None else str(wei)
    return body


def owner_filter(who: Principal, owner: str | None) -> str | None:
    """Whose payouts to list: an account only ever its own; an operator the ``owner`` asked for (or everyone)."""
    if who.role == Role.ACCOUNT:
        return who.subject
    if not owner:
        return None
    try:
        return Address.parse(owner).checksum
    except InvalidAddress as exc:
        raise HTTPException(422, f"owner: {exc}") from None


def page_of(read: Any, cursor: str | None) -> tuple[list[Any], str | None]:
    """One page of ``PAGE_ROWS`` after ``cursor`` and the next page's cursor (None: the last page)."""
    try:
        views = list(read(PAGE_ROWS + 1, cursor))
    except InvalidCursor as exc:
        raise HTTPException(422, str(exc)) from None
    if len(views) <= PAGE_ROWS:
        return views, None
    return views[:PAGE_ROWS], cursor_after(views[PAGE_ROWS - 1])


def payouts_page(model: ReadModel, owner: str | None, cursor: str | None) -> tuple[list[PayoutView], str | None]:
    """A page of payouts (``owner``'s only, if given: an account's page never reads anyone else's)."""
    source = cast(PayoutSource, model)
    if owner is None:  # without the filter: also a read model from before the data contract's owner filter
        return page_of(source.payouts, cursor)
    return page_of(lambda n, after: source.payouts(n, after, owner=owner), cursor)


def payout_row(view: PayoutView, claims: dict[str, int] | None = None) -> dict[str, Any]:
    """A payout with what the owner has claimed (read on chain, in ``claims``) and may still claim: what was
    settled less what was claimed. Without ``claims`` (no chain to read) the read model's figures, marked unread."""
    claimed = view.claimed_micro if claims is None else claims.get(view.owner, view.claimed_micro)
    claimable = view.claimable_micro if claims is None else max(view.settled_micro - claimed, 0)
    return {
        "owner": view.owner,
        "trip_count": view.trip_count,
        "earned_micro": view.settled_micro + view.pending_micro,
        "settled_micro": view.settled_micro,
        "pending_micro": view.pending_micro,
        "claimed_micro": claimed,
        "claimable_micro": claimable,
        "claims_read": claims is not None,
    }


def explorer_link(pattern: str | None, tx_hash: str | None) -> str | None:
    """The explorer's page of ``tx_hash`` from a pattern with ``{tx}``; None without either."""
    if not pattern or not tx_hash or "{tx}" not in pattern:
        return None
    return pattern.replace("{tx}", quote(tx_hash, safe=""))


def epoch_row(view: EpochView, pattern: str | None) -> dict[str, Any]:
    return {**asdict(view), "explorer_url": explorer_link(pattern, view.tx_hash)}


def coin_text(wei: int | None, lang: Language) -> str:
    """Wei as the chain's native coin (for gas), to a thousandth, in ``lang``."""
    if wei is None:
        return display.NONE
    return format_decimal(Decimal(wei).scaleb(-18), "#,##0.000", locale=lang.locale)


router = APIRouter()


@router.get("/api/v1/chain", tags=["settlement"])
def get_chain(_: Operator, chain: Chain) -> dict[str, Any]:
    """The chain's health: the node, its latest block, the settler's balance for gas and how far settlement is behind
    (operators only)."""
    return health_json(chain.status())


@router.get("/settlement", response_class=HTMLResponse, response_model=None, include_in_schema=False)
def settlement_page(
    request: Request,
    response: Response,
    model: Model,
    config: Config,
    lang: Lang,
    who: Who,
    chain: Chain,
    cursor: Cursor = None,
    owner: Owner = None,
    payouts_cursor: Cursor = None,
) -> Response:
    """Epochs, payouts and (for operators) the chain's health."""
    if who is None:
        return login_redirect(request)
    allowed = SETTLEMENT_PAGE(who, response)
    scope = owner_filter(allowed, owner)
    epochs, next_epochs = page_of(model.epochs, cursor)
    payouts, next_payouts = payouts_page(model, scope, payouts_cursor)
    health = chain.status() if allowed.role == Role.OPERATOR else None
    claims = chain.claimed([p.owner for p in payouts])
    context = {
        "epochs": [epoch_row(e, config.explorer_tx_url) for e in epochs],
        "next_epochs": next_epochs,
        "first_page": cursor is None,
        "payouts": [payout_row(p, claims) for p in payouts],
        "next_payouts": next_payouts,
        "owner": scope if allowed.role == Role.OPERATOR else None,
        "own_only": allowed.role == Role.ACCOUNT,
        "health": health,
        "coin": coin_text(health.settler_balance_wei if health else None, lang),
    }
    script = {"explorer_tx_url": config.explorer_tx_url, "live": cursor is None, "chain": health is not None}
    return pages.render(request, "settlement.html", context, lang=lang, principal=allowed, script_config=script)
