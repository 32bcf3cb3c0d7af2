"""The money rules of ad serving, in one place. Every amount is integer micros.

Two invariants hold for every campaign at every moment, whatever the order of
serves, clicks, replays, pauses and edits:

1. ``spend <= budget``, and ``today's spend <= daily_budget`` when it has one.
   A charge is capped at what is left (:func:`capped_charge`): a click or
   impression that would overshoot is charged the remainder, and one that
   comes when nothing is left is recorded and charged nothing. We chose the
   remainder over refusing the event: the ad was already shown and the click
   already made, so the advertiser pays for it, but never more than it agreed
   to spend; the network forgoes the difference. Pacing and eligibility stop
   a spent campaign from entering further auctions, so this cap is the last
   line, hit only by clicks on ads served before the budget ran out.
2. ``bid <= max_bid <= budget``, and a budget is never set below what is
   already spent (:func:`check_campaign_money`, at creation and at every
   edit): no single charge can be most of a budget by surprise, and an edit
   cannot put a campaign over its budget after the fact.

The store applies both inside its write transactions (``BEGIN IMMEDIATE``), so
concurrent requests never charge against the same remainder twice, and each
click is charged at most once (``clicks.impression_id`` is UNIQUE).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

MICROS = 1_000_000


class MoneyError(ValueError):
    """A campaign's amounts would break a money rule; ``param`` names the field to fix."""

    def __init__(self, param: str, message: str):
        super().__init__(f"{param}: {message}")
        self.param = param


def remaining_micros(spend: int, budget: int, day_spend: int, daily_budget: int | None) -> int:
    """What may still be charged now: the least of the budget's and today's remainders (never negative)."""
    left = budget - spend
    if daily_budget is not None:
        left = min(left, daily_budget - day_spend)
    return max(0, left)


def capped_charge(price_micros: int, remaining: int) -> int:
    """The charge for an event priced ``price_micros``: the price, or the remainder when that is less."""
    return max(0, min(price_micros, remaining))


def check_campaign_money(
    *, bid: int, max_bid: int, budget: int, daily_budget: int | None, spend: int = 0, day_spend: int = 0
) -> None:
    """Raise MoneyError naming the field when a campaign's amounts break invariant 2."""
    if max_bid < bid:
        raise MoneyError("max_bid", f"{_units(max_bid)} is less than bid {_units(bid)}")
    if max_bid > budget:
        field = "max_bid" if max_bid != bid else "bid"
        raise MoneyError(
            field, f"{_units(max_bid)} is more than the budget {_units(budget)}; one charge may never exceed the budget"
        )
    if daily_budget is not None and daily_budget > budget:
        raise MoneyError("daily_budget", f"{_units(daily_budget)} is more than the budget {_units(budget)}")
    if budget < spend:
        raise MoneyError(
            "budget", f"{_units(budget)} is less than the {_units(spend)} already spent; pause the campaign to stop it"
        )
    if daily_budget is not None and daily_budget < day_spend:
        raise MoneyError(
            "daily_budget",
            f"{_units(daily_budget)} is less than the {_units(day_spend)} spent today; pause the campaign to stop it",
        )


def _units(micros: int) -> str:
    return str(Decimal(micros) / MICROS)


@dataclass
class LiveState:
    """What changes while serving: read fresh from the db for each decision."""

    status: str
    spend_micros: int
    budget_micros: int
    daily_budget_micros: int | None
    day_spend_micros: int
    bid_type: str = "cpc"

    def remaining(self) -> int:
        """Micros that may still be charged now (``roost.ads.money``)."""
        return remaining_micros(self.spend_micros, self.budget_micros, self.day_spend_micros, self.daily_budget_micros)

    def has_budget(self) -> bool:
        return self.remaining() > 0

    def charge(self, price_micros: int) -> int:
        """Apply a charge of at most ``price_micros``, capped at what is left; returns the amount charged."""
        amount = capped_charge(price_micros, self.remaining())
        self.spend_micros += amount
        self.day_spend_micros += amount
        return amount
