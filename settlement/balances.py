"""Cumulative balances: trips posted to a book of (earned, spent) per account, and its Merkle tree (pure).

Every trip moves money once: its rider spends the fare, the vehicle's payee earns the owner's share and the zone
earns the fee (``settlement.pricing.split``). ``post`` adds an epoch's trips to the book of all earlier epochs, so
a balance is cumulative since the beginning and the latest tree alone says what each account may claim or
withdraw. Since every fare is exactly owner share plus fee, the book's earned total equals its spent total.

``BalanceTree`` is the book as an OpenZeppelin StandardMerkleTree of ``BALANCE_LEAF_TYPES`` rows
``(chain_id, contract, account, earned, spent)``: the chain and the clearing contract in every leaf, so a proof
for one contract never passes on another. Rows are sorted by account, and OZ sorts leaves by hash, so the tree
depends on the book alone, never on the order in which trips or accounts came in. ``verify_balance`` checks a
``BalanceProof`` against a root off chain exactly as the contract's ``claim`` and ``withdraw`` do.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import NamedTuple

from eth_abi.exceptions import EncodingError

from sensors.address import Address, InvalidAddress
from settlement.clearing import BALANCE_LEAF_TYPES, BalanceProof
from settlement.merkle import StandardMerkleTree, leaf_hash, verify
from settlement.ports import MAX_UINT256

__all__ = ["BalanceTotals", "BalanceTree", "Posting", "open_accounts", "post", "verify_balance"]

ZERO = Address(bytes(20))


def _amount(value: object, what: str) -> int:
    """``value`` if it is a whole number of micro-EUR a contract can hold, else ``ValueError`` naming ``what``."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_UINT256:
        raise ValueError(f"{what} must be a non-negative integer of micro-EUR below 2**256, not {value!r}")
    return value


def _account(value: object, what: str) -> Address:
    if not isinstance(value, Address) or value == ZERO:
        raise ValueError(f"{what} must be a nonzero Address, not {value!r}")
    return value


@dataclass(frozen=True, slots=True)
class Posting:
    """One trip's money: ``rider`` spends ``fare``; ``payee`` earns ``owner_share`` and the zone earns ``fee``.

    Refused with ``ValueError`` naming the trip: an amount that is not a non-negative integer, a zero or missing
    address, or a fare that is not exactly ``owner_share + fee``.
    """

    rider: Address
    payee: Address
    fare: int
    owner_share: int
    fee: int
    trip_id: str = ""

    def __post_init__(self) -> None:
        where = f"trip {self.trip_id!r}" if self.trip_id else "a posting"
        for name in ("rider", "payee"):
            _account(getattr(self, name), f"{where}: {name}")
        for name in ("fare", "owner_share", "fee"):
            _amount(getattr(self, name), f"{where}: {name}")
        if self.fare != self.owner_share + self.fee:
            raise ValueError(f"{where}: fare {self.fare} is not owner_share {self.owner_share} + fee {self.fee}")


def _checked_book(book: Mapping[Address, tuple[int, int]]) -> dict[Address, tuple[int, int]]:
    checked: dict[Address, tuple[int, int]] = {}
    for account, entry in book.items():
        _account(account, "an account of the book")
        if not isinstance(entry, tuple | list) or len(entry) != 2:
            raise ValueError(f"account {account}: a balance is a pair (earned, spent), not {entry!r}")
        earned, spent = entry
        checked[account] = (_amount(earned, f"account {account}: earned"), _amount(spent, f"account {account}: spent"))
    return checked


def open_accounts(
    book: Mapping[Address, tuple[int, int]], accounts: Iterable[Address]
) -> dict[Address, tuple[int, int]]:
    """``book`` with a zero balance ``(0, 0)`` for each of ``accounts`` it does not hold yet.

    A rider who deposited but never rode needs a leaf of her own to withdraw: open her account before the tree.
    """
    opened = _checked_book(book)
    for account in accounts:
        opened.setdefault(_account(account, "an account to open"), (0, 0))
    return opened


def post(
    book: Mapping[Address, tuple[int, int]], postings: Iterable[Posting], zone: Address
) -> dict[Address, tuple[int, int]]:
    """The cumulative ``(earned, spent)`` per account after ``postings``, on top of ``book`` (which is not changed).

    For each posting the rider's spent grows by the fare, the payee's earned by the owner's share and ``zone``'s
    earned by the fee; each of the three gets an account even when its amount is zero. ``ValueError`` for a book
    entry that is not a pair of non-negative integers, a zero address, a posting that is not a ``Posting``, or
    one trip id posted twice (a trip is settled once).
    """
    _account(zone, "the zone account")
    after = _checked_book(book)
    seen: set[str] = set()
    for posting in postings:
        if not isinstance(posting, Posting):
            raise ValueError(f"only a Posting can be posted, not {posting!r}")
        if posting.trip_id and posting.trip_id in seen:
            raise ValueError(f"trip {posting.trip_id!r} is posted twice")
        seen.add(posting.trip_id)
        for account, earned, spent in (
            (posting.rider, 0, posting.fare),
            (posting.payee, posting.owner_share, 0),
            (zone, posting.fee, 0),
        ):
            was_earned, was_spent = after.get(account, (0, 0))
            after[account] = (was_earned + earned, was_spent + spent)
    return after


class BalanceTotals(NamedTuple):
    """What a book adds up to: ``earned_total`` by owners and the zone, ``spent_total`` by riders (micro-EUR)."""

    earned_total: int
    spent_total: int


class BalanceTree:
    """A book of cumulative balances as the StandardMerkleTree a clearing contract holds the root of.

    Build it with ``of``, which checks the book; the constructor takes any book as it is (a test's rogue operator).
    """

    def __init__(self, book: Mapping[Address, tuple[int, int]], chain_id: int, contract: Address) -> None:
        self.chain_id = chain_id
        self.contract = contract
        self.book: dict[Address, tuple[int, int]] = dict(sorted(book.items()))
        self.tree = StandardMerkleTree.of(
            [_row(chain_id, contract, a, earned, spent) for a, (earned, spent) in self.book.items()],
            BALANCE_LEAF_TYPES,
        )
        self._index = {account: i for i, account in enumerate(self.book)}

    @classmethod
    def of(cls, book: Mapping[Address, tuple[int, int]], chain_id: int, contract: Address | str) -> BalanceTree:
        """The tree of ``book`` for the clearing contract ``contract`` on chain ``chain_id``.

        ``ValueError`` for a book entry that is not a pair of non-negative integers, a zero address, a chain id
        that is not a positive integer, or a book whose earned total is not its spent total (no commit could
        carry it: every micro-EUR a rider spends is earned by someone).
        """
        if isinstance(chain_id, bool) or not isinstance(chain_id, int) or not 0 < chain_id <= MAX_UINT256:
            raise ValueError(f"a chain id is a positive integer, not {chain_id!r}")
        where = _account(Address.parse(contract) if isinstance(contract, str) else contract, "the contract")
        tree = cls(_checked_book(book), chain_id, where)
        earned_total, spent_total = tree.totals
        if earned_total != spent_total:
            raise ValueError(f"the book earns {earned_total} micro-EUR in all but spends {spent_total}")
        return tree

    @property
    def root(self) -> bytes:
        """The 32-byte root; ``settlement.merkle.EMPTY_ROOT`` for a book of no accounts."""
        return self.tree.root

    @property
    def totals(self) -> BalanceTotals:
        """The sums of every account's earned and spent: equal in a tree built by ``of``."""
        return BalanceTotals(sum(e for e, _ in self.book.values()), sum(s for _, s in self.book.values()))

    @property
    def accounts(self) -> tuple[Address, ...]:
        """Every account of the book, in ascending order of its 20 bytes."""
        return tuple(self.book)

    def __len__(self) -> int:
        return len(self.book)

    def proof(self, account: Address, epoch_id: int) -> BalanceProof:
        """``account``'s balance and its proof, to be used against this tree committed as epoch ``epoch_id``.

        ``KeyError`` for an account the book does not hold.
        """
        if account not in self._index:
            raise KeyError(f"account {account} has no balance in this tree")
        earned, spent = self.book[account]
        return BalanceProof(epoch_id, account, earned, spent, tuple(self.tree.proof(self._index[account])))


def _row(chain_id: int, contract: Address, account: Address, earned: int, spent: int) -> tuple[object, ...]:
    """One balance leaf's values, addresses in EIP-55 form (as OZ's dumps write them)."""
    return (chain_id, str(contract), str(account), earned, spent)


def verify_balance(root: bytes, chain_id: int, contract: Address | str, proof: BalanceProof) -> bool:
    """True when ``proof`` proves its account's ``(earned, spent)`` in the balances tree of ``root`` for
    ``contract`` on chain ``chain_id`` — the check the contract makes before it pays a claim or a withdrawal.

    False (never an error) for anything that is not such a proof: values out of range, a malformed proof, the
    empty root.
    """
    try:
        where = Address.parse(contract) if isinstance(contract, str) else contract
        values = _row(chain_id, where, proof.account, proof.earned, proof.spent)
        if any(isinstance(v, bool) for v in values):
            return False
        leaf = leaf_hash(BALANCE_LEAF_TYPES, values)
        nodes = tuple(proof.proof)
    except (EncodingError, InvalidAddress, ValueError, OverflowError, TypeError, AttributeError):
        return False
    if not isinstance(root, bytes) or len(root) != 32 or not all(isinstance(n, bytes) for n in nodes):
        return False
    return verify(root, leaf, nodes)
