"""Cumulative balances: trips posted to the book, the balances tree, its proofs and their checks."""

from __future__ import annotations

import random
import re
from dataclasses import replace

import pytest
from eth_utils import keccak

from sensors.address import Address
from settlement.balances import BalanceTree, Posting, open_accounts, post, verify_balance
from settlement.clearing import BALANCE_LEAF_TYPES, balance_values
from settlement.merkle import EMPTY_ROOT, leaf_hash
from settlement.pricing import split

CHAIN = 31337
CONTRACT = Address(bytes([0xC1] * 20))
ZONE = Address(bytes([0x20] * 20))
ALICE, BOB, CAROL = (Address(bytes([0xA0 + i] * 20)) for i in range(3))
OWNER_1, OWNER_2 = (Address(bytes([0x01 + i] * 20)) for i in range(2))


def trip(rider: Address, payee: Address, fare: int, fee_bps: int = 1_000, trip_id: str = "") -> Posting:
    owner_share, fee = split(fare, fee_bps)
    return Posting(rider, payee, fare, owner_share, fee, trip_id)


EPOCH_1 = [trip(ALICE, OWNER_1, 1_250_000, trip_id="v1:1"), trip(BOB, OWNER_2, 999_999, trip_id="v2:1")]
EPOCH_2 = [trip(ALICE, OWNER_2, 333_333, trip_id="v2:2"), trip(CAROL, OWNER_1, 10, trip_id="v1:2")]


def test_a_trip_charges_its_rider_and_credits_its_payee_and_the_zone() -> None:
    book = post({}, [Posting(ALICE, OWNER_1, 1_000_000, 900_000, 100_000, "v1:1")], ZONE)

    assert book == {ALICE: (0, 1_000_000), OWNER_1: (900_000, 0), ZONE: (100_000, 0)}


def test_posting_leaves_the_earlier_book_unchanged() -> None:
    before = {ALICE: (5, 7)}

    after = post(before, EPOCH_1, ZONE)

    assert before == {ALICE: (5, 7)}
    assert after[ALICE] == (5, 7 + 1_250_000)


def test_balances_are_cumulative_across_epochs() -> None:
    first = post({}, EPOCH_1, ZONE)
    second = post(first, EPOCH_2, ZONE)

    assert second == post({}, EPOCH_1 + EPOCH_2, ZONE)
    assert second[ALICE] == (0, 1_250_000 + 333_333)
    assert second[OWNER_1] == (split(1_250_000, 1_000)[0] + split(10, 1_000)[0], 0)
    assert second[ZONE] == (sum(split(f, 1_000)[1] for f in (1_250_000, 999_999, 333_333, 10)), 0)
    assert BalanceTree.of(second, CHAIN, CONTRACT).root != BalanceTree.of(first, CHAIN, CONTRACT).root


def test_an_account_may_be_rider_owner_and_zone_at_once() -> None:
    book = post({}, [Posting(ALICE, ALICE, 100, 90, 10), Posting(BOB, ALICE, 50, 45, 5)], ALICE)

    assert book == {ALICE: (150, 100), BOB: (0, 50)}


def test_a_free_trip_still_opens_its_accounts() -> None:
    assert post({}, [Posting(ALICE, OWNER_1, 0, 0, 0)], ZONE) == {ALICE: (0, 0), OWNER_1: (0, 0), ZONE: (0, 0)}


def test_a_depositor_who_never_rode_gets_a_leaf_of_her_own() -> None:
    book = open_accounts(post({}, EPOCH_1, ZONE), [CAROL, ALICE])
    tree = BalanceTree.of(book, CHAIN, CONTRACT)

    assert book[CAROL] == (0, 0)
    assert book[ALICE] == (0, 1_250_000)
    assert verify_balance(tree.root, CHAIN, CONTRACT, tree.proof(CAROL, 1))


@pytest.mark.parametrize(
    ("fare", "owner_share", "fee", "words"),
    [
        (100, 90, 9, "fare 100 is not owner_share 90 + fee 9"),
        (100, 91, 10, "fare 100 is not owner_share 91 + fee 10"),
        (-100, -90, -10, "fare must be a non-negative integer"),
        (100, 110, -10, "fee must be a non-negative integer"),
        (1.5, 1, 0.5, "fare must be a non-negative integer"),
        (True, 1, 0, "fare must be a non-negative integer"),
        (2**256, 2**256, 0, "fare must be a non-negative integer"),
    ],
)
def test_a_posting_whose_money_does_not_add_up_is_refused_naming_its_trip(
    fare: int, owner_share: int, fee: int, words: str
) -> None:
    with pytest.raises(ValueError, match=re.escape(f"trip 'v9:42': {words}")):
        Posting(ALICE, OWNER_1, fare, owner_share, fee, "v9:42")


def test_a_posting_to_the_zero_address_or_to_no_address_is_refused() -> None:
    with pytest.raises(ValueError, match="payee must be a nonzero Address"):
        Posting(ALICE, Address(bytes(20)), 10, 9, 1, "v1:1")
    with pytest.raises(ValueError, match="rider must be a nonzero Address"):
        Posting(str(ALICE), OWNER_1, 10, 9, 1, "v1:1")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("book", "words"),
    [
        ({ALICE: (-1, 0)}, "earned must be a non-negative integer"),
        ({ALICE: (0, -5)}, "spent must be a non-negative integer"),
        ({ALICE: (0, 1.0)}, "spent must be a non-negative integer"),
        ({ALICE: (1, 2, 3)}, "a balance is a pair"),
        ({ALICE: 7}, "a balance is a pair"),
    ],
)
def test_a_book_with_a_bad_balance_is_refused_naming_the_account(book: dict, words: str) -> None:
    with pytest.raises(ValueError, match=f"account {ALICE}.*{words}"):
        post(book, EPOCH_1, ZONE)
    with pytest.raises(ValueError, match=words):
        BalanceTree.of(book, CHAIN, CONTRACT)


def test_post_refuses_a_zero_zone_and_anything_but_postings() -> None:
    with pytest.raises(ValueError, match="zone account"):
        post({}, EPOCH_1, Address(bytes(20)))
    with pytest.raises(ValueError, match="only a Posting"):
        post({}, [(ALICE, OWNER_1, 10, 9, 1)], ZONE)  # type: ignore[list-item]


def test_a_trip_posted_twice_is_refused_naming_it() -> None:
    with pytest.raises(ValueError, match="trip 'v1:1' is posted twice"):
        post({}, [*EPOCH_1, EPOCH_1[0]], ZONE)


def test_the_tree_totals_what_was_earned_and_spent_and_they_are_equal() -> None:
    tree = BalanceTree.of(post({}, EPOCH_1 + EPOCH_2, ZONE), CHAIN, CONTRACT)

    total = 1_250_000 + 999_999 + 333_333 + 10
    assert tree.totals == (total, total)
    assert tree.totals.earned_total == tree.totals.spent_total == total


def test_a_book_that_does_not_balance_gets_no_tree() -> None:
    with pytest.raises(ValueError, match="earns 10 micro-EUR in all but spends 11"):
        BalanceTree.of({ALICE: (10, 0), BOB: (0, 11)}, CHAIN, CONTRACT)


@pytest.mark.parametrize("chain_id", [0, -1, True, "31337"])
def test_a_tree_needs_a_real_chain_id(chain_id: object) -> None:
    with pytest.raises(ValueError, match="chain id"):
        BalanceTree.of({}, chain_id, CONTRACT)  # type: ignore[arg-type]


def test_every_account_proves_its_balance_against_the_root() -> None:
    book = post({}, EPOCH_1 + EPOCH_2, ZONE)
    tree = BalanceTree.of(book, CHAIN, CONTRACT)

    assert tree.accounts == tuple(sorted(book))
    for account, (earned, spent) in book.items():
        proof = tree.proof(account, 7)
        assert (proof.epoch_id, proof.account, proof.earned, proof.spent) == (7, account, earned, spent)
        assert verify_balance(tree.root, CHAIN, CONTRACT, proof)
        assert verify_balance(tree.root, CHAIN, str(CONTRACT), proof)
        assert verify_balance(tree.root, CHAIN, str(CONTRACT).lower(), proof)


def test_a_leaf_is_the_double_keccak_of_the_abi_words_the_contract_encodes() -> None:
    tree = BalanceTree.of({ALICE: (0, 0)}, CHAIN, CONTRACT)  # one leaf: the root is the leaf

    words = b"".join([CHAIN.to_bytes(32, "big"), bytes(12) + CONTRACT.raw, bytes(12) + ALICE.raw, bytes(32), bytes(32)])
    assert tree.root == keccak(keccak(words))
    assert tree.proof(ALICE, 1).proof == ()


def test_the_leaves_are_those_the_clearing_port_checks_claims_with() -> None:
    tree = BalanceTree.of(post({}, EPOCH_1, ZONE), CHAIN, CONTRACT)

    for i, account in enumerate(tree.accounts):
        earned, spent = tree.book[account]
        values = balance_values(CHAIN, str(CONTRACT).lower(), account, earned, spent)
        assert tree.tree.leaf(i) == leaf_hash(BALANCE_LEAF_TYPES, values)


def flipped(data: bytes, index: int) -> bytes:
    return data[:index] + bytes([data[index] ^ 0x01]) + data[index + 1 :]


def test_a_proof_edited_in_any_one_byte_fails() -> None:
    tree = BalanceTree.of(post({}, EPOCH_1 + EPOCH_2, ZONE), CHAIN, CONTRACT)
    good = tree.proof(ALICE, 2)
    assert verify_balance(tree.root, CHAIN, CONTRACT, good)

    for n, node in enumerate(good.proof):
        for i in range(32):
            nodes = good.proof[:n] + (flipped(node, i),) + good.proof[n + 1 :]
            assert not verify_balance(tree.root, CHAIN, CONTRACT, replace(good, proof=nodes))
    for i in range(20):
        assert not verify_balance(tree.root, CHAIN, CONTRACT, replace(good, account=Address(flipped(ALICE.raw, i))))
        assert not verify_balance(tree.root, CHAIN, Address(flipped(CONTRACT.raw, i)), good)
    for i in range(32):
        assert not verify_balance(flipped(tree.root, i), CHAIN, CONTRACT, good)
    for earned, spent in ((1, good.spent), (0, good.spent + 1), (0, good.spent - 1), (good.spent, 0)):
        assert not verify_balance(tree.root, CHAIN, CONTRACT, replace(good, earned=earned, spent=spent))
    assert not verify_balance(tree.root, CHAIN + 1, CONTRACT, good)
    assert not verify_balance(tree.root, CHAIN, CONTRACT, replace(good, proof=good.proof[:-1]))
    assert not verify_balance(tree.root, CHAIN, CONTRACT, replace(good, proof=good.proof + (bytes(32),)))


def test_a_proof_of_one_account_does_not_prove_another() -> None:
    tree = BalanceTree.of(post({}, EPOCH_1, ZONE), CHAIN, CONTRACT)
    alice = tree.proof(ALICE, 1)

    assert not verify_balance(tree.root, CHAIN, CONTRACT, replace(alice, account=BOB))
    bob = tree.proof(BOB, 1)
    assert not verify_balance(tree.root, CHAIN, CONTRACT, replace(bob, proof=alice.proof))


def test_an_old_balance_does_not_prove_against_a_later_root() -> None:
    first = post({}, EPOCH_1, ZONE)
    old = BalanceTree.of(first, CHAIN, CONTRACT).proof(ALICE, 1)
    new = BalanceTree.of(post(first, EPOCH_2, ZONE), CHAIN, CONTRACT)

    assert not verify_balance(new.root, CHAIN, CONTRACT, old)
    assert not verify_balance(new.root, CHAIN, CONTRACT, replace(old, proof=new.proof(ALICE, 2).proof))


def test_the_same_book_on_another_chain_or_contract_has_another_root() -> None:
    book = post({}, EPOCH_1, ZONE)
    roots = {
        BalanceTree.of(book, CHAIN, CONTRACT).root,
        BalanceTree.of(book, CHAIN + 1, CONTRACT).root,
        BalanceTree.of(book, CHAIN, Address(bytes([0xC2] * 20))).root,
    }

    assert len(roots) == 3
    assert BalanceTree.of(book, CHAIN, str(CONTRACT)).root == BalanceTree.of(book, CHAIN, CONTRACT).root


def test_the_tree_does_not_depend_on_the_order_of_trips_or_accounts() -> None:
    rng = random.Random(9)
    riders = [Address(bytes([0x40 + i] * 20)) for i in range(6)]
    owners = [Address(bytes([0x80 + i] * 20)) for i in range(4)]
    postings = [trip(rng.choice(riders), rng.choice(owners), rng.randrange(3_000_000), 1_500) for _ in range(40)]
    book = post({}, postings, ZONE)
    reference = BalanceTree.of(book, CHAIN, CONTRACT)

    for _ in range(5):
        shuffled = rng.sample(postings, len(postings))
        again = post({}, shuffled, ZONE)
        assert again == book
        items = list(again.items())
        rng.shuffle(items)
        tree = BalanceTree.of(dict(items), CHAIN, CONTRACT)
        assert tree.root == reference.root
        assert tree.tree.values == reference.tree.values
        assert tree.proof(riders[0], 1) == reference.proof(riders[0], 1)


def test_an_empty_book_has_the_empty_root_and_no_proofs() -> None:
    tree = BalanceTree.of({}, CHAIN, CONTRACT)

    assert tree.root == EMPTY_ROOT
    assert tree.totals == (0, 0)
    with pytest.raises(KeyError, match="no balance"):
        tree.proof(ALICE, 1)


def test_a_proof_of_an_account_not_in_the_book_is_refused() -> None:
    with pytest.raises(KeyError, match=str(CAROL)):
        BalanceTree.of(post({}, EPOCH_1, ZONE), CHAIN, CONTRACT).proof(CAROL, 1)


def test_verify_balance_says_no_to_garbage_rather_than_raising() -> None:
    tree = BalanceTree.of(post({}, EPOCH_1, ZONE), CHAIN, CONTRACT)
    good = tree.proof(BOB, 1)

    assert not verify_balance(tree.root, CHAIN, CONTRACT, replace(good, earned=-1))
    assert not verify_balance(tree.root, CHAIN, CONTRACT, replace(good, spent=2**256))
    assert not verify_balance(tree.root, CHAIN, CONTRACT, replace(good, earned=True))
    assert not verify_balance(tree.root, CHAIN, CONTRACT, replace(good, proof=("00" * 32,)))  # type: ignore[arg-type]
    assert not verify_balance(tree.root, CHAIN, CONTRACT, replace(good, proof=(b"\x00" * 31,)))
    assert not verify_balance(tree.root, -1, CONTRACT, good)
    assert not verify_balance(tree.root, CHAIN, "0xnot-an-address", good)
    assert not verify_balance(tree.root.hex(), CHAIN, CONTRACT, good)  # type: ignore[arg-type]
    assert not verify_balance(tree.root[:31], CHAIN, CONTRACT, good)
    assert not verify_balance(EMPTY_ROOT, CHAIN, CONTRACT, good)
