"""Token budgets, counted from the usage ledger (``store/usage.py``), so every worker and
instance sharing the database counts the same.

A user's budgets are TOKEN_BUDGET, or TOKEN_BUDGET_OVERRIDES' for their SSO name, else, for
each period, the most generous of their groups' (``none`` is no budget at all). Periods are
calendar periods in UTC: a day from midnight, a week from Monday, a month from its first. A
reply is let through while the user has spent less than each budget, and is never cut off
midway: the one that crosses a budget is finished, and the next is refused until the period
turns.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from ..settings import Budget, BudgetOverrides
from ..store import Store

SSO_PREFIX = "sso:"


@dataclass(frozen=True)
class BudgetState:
    budget: Budget
    used: int
    resets_at: datetime

    @property
    def remaining(self) -> int:
        return max(0, self.budget.tokens - self.used)


class BudgetExceeded(Exception):
    def __init__(self, state: BudgetState):
        super().__init__(f"over the {state.budget.period}'s budget")
        self.state = state


def period_bounds(period: str, moment: datetime) -> tuple[datetime, datetime]:
    """The calendar period (UTC) holding ``moment``: [start, end)."""
    day = moment.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    if period == "day":
        return day, day + timedelta(days=1)
    if period == "week":
        start = day - timedelta(days=day.weekday())
        return start, start + timedelta(days=7)
    start = day.replace(day=1)
    return start, (start + timedelta(days=32)).replace(day=1)


class Budgets:
    def __init__(self, default: tuple[Budget, ...], overrides: BudgetOverrides,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)):
        self.default, self.overrides, self.clock = default, overrides, clock

    @property
    def configured(self) -> bool:
        return bool(self.default or self.overrides.users or self.overrides.groups)

    def of(self, user_id: str, groups: Iterable[str] = ()) -> tuple[Budget, ...]:
        if user_id.startswith(SSO_PREFIX):
            name = user_id.removeprefix(SSO_PREFIX)
            if name in self.overrides.users:
                return self.overrides.users[name]
        chosen = [self.overrides.groups[g] for g in groups if g in self.overrides.groups]
        if not chosen:
            return self.default
        if any(not budgets for budgets in chosen):
            return ()  # a group without a budget
        most: dict[str, Budget] = {}
        for budgets in chosen:
            for budget in budgets:
                if budget.period not in most or budget.tokens > most[budget.period].tokens:
                    most[budget.period] = budget
        # A period only some of the groups limit is not limited: another group lets it be.
        limited = set.intersection(*({b.period for b in budgets} for budgets in chosen))
        return tuple(b for period, b in most.items() if period in limited)

    def states(self, store: Store, user_id: str, groups: Iterable[str] = ()
               ) -> list[BudgetState]:
        moment = self.clock()
        states = []
        for budget in self.of(user_id, groups):
            start, end = period_bounds(budget.period, moment)
            states.append(BudgetState(budget, store.usage.tokens_spent(user_id, start, end),
                                      end))
        return states

    def check(self, store: Store, user_id: str, groups: Iterable[str] = ()) -> None:
        """``BudgetExceeded`` (the budget that resets last) when any budget is spent."""
        spent = [s for s in self.states(store, user_id, groups) if not s.remaining]
        if spent:
            raise BudgetExceeded(max(spent, key=lambda s: s.resets_at))
