# pragma version ~=0.4.3
# pragma evm-version cancun
"""
@title Smart Zone clearing
@custom:contract-name clearing
@license GNU Affero General Public License v3.0 or later
@notice Riders deposit euro tokens; the aggregator (the owner) commits one
        epoch at a time as a few numbers: the StandardMerkleTree root of the
        epoch's trips, the StandardMerkleTree root of every account's
        cumulative balance (what it earned and spent since the start), the
        registry root, the trip count and the cumulative totals spent and
        earned. Once an epoch is final (committed at least
        `challenge_blocks` blocks ago), vehicle owners and the zone claim
        what they earned with a Merkle proof of their balance leaf, and
        riders withdraw what they did not spend, after announcing it
        `withdraw_delay_blocks` blocks ahead. A balance leaf is
        keccak256(keccak256(abi.encode(chain.id, this contract, account,
        earned, spent))), as OpenZeppelin's StandardMerkleTree makes it.
        Whatever roots the owner commits, the contract never pays out more
        than was deposited: every payout checks
        claimed_total + withdrawn_total + amount <= deposited_total.
@dev A commit costs the same whatever the number of trips, owners or
     riders, and the same every epoch: it writes one new slot (the epoch's
     trips root, for the `trips_root` view that receipts are checked
     against), rewrites one packed slot of totals, and rewrites the two
     slots of the epoch's place in a ring of `RING` (balances root; commit
     block and previous spent total). The ring's slots are filled with a
     non-zero placeholder at deployment, so no commit ever pays for a slot
     going from zero to non-zero there. The registry root and the trip count
     live in the `EpochCommitted` event only (not in storage).
     Measured on anvil and py-evm (bench/gas.py, tests/integration/
     test_clearing.py), whole transactions: a commit 65,789 to 65,885 gas
     at 100 to 10,000 trips and 4 to 10,000 accounts, epoch 1 or epoch 100
     alike (what moves is only the calldata's count of non-zero bytes):
     65.9 gas per trip at 1,000 trips, 1/515 of one szEUR transfer per
     trip. The fresh trips-root slot is 22,100 of it and the transaction's
     base cost 21,000, so the issue's aim of 50,000 is out of reach while
     every epoch keeps its own trips root in storage. A claim with a
     14-node proof (a 16,384-leaf tree): 72,158 gas; 106,342 for an
     account's first claim when it holds no szEUR yet (two slots written
     for the first time: its `claimed` and its token balance). A deposit
     56,448 (90,648 for the very first, by a new depositor into a contract
     that held no szEUR); a withdrawal request 49,688 and a rider's first
     withdrawal 97,099. Deploying: 2,339,067.
     Balances roots are kept for the last `RING` epochs only: claims and
     withdrawals prove against a final epoch still in the ring. A commit is
     refused while the epoch it would push out of the ring is not yet
     final, so no epoch leaves the ring before it could be claimed against.
     Totals are packed in one slot, so each is at most 2**72 - 1 micro-EUR
     (4.7 billion billion euros); a deposit beyond that is refused. Epoch
     ids go up to 2**39 - 1. Every slot a commit rewrites holds a non-zero
     marker bit from the deployment on, so the first commit costs the same
     as any other even before the first deposit.
     Ownership moves in two steps (`transfer_ownership`, then
     `accept_ownership` by the new owner) and cannot be renounced:
     `renounce_ownership` is not exported.
"""

from ethereum.ercs import IERC20
from snekmate.auth import ownable
from snekmate.auth import ownable_2step
from snekmate.utils import merkle_proof_verification as merkle

initializes: ownable
initializes: ownable_2step[ownable := ownable]

exports: (
    ownable_2step.owner,
    ownable_2step.pending_owner,
    ownable_2step.transfer_ownership,
    ownable_2step.accept_ownership,
)


# How many epochs' balances roots are kept (the Python side reads this same
# number as `settlement.clearing.RING`).
RING: constant(uint256) = 8
# The longest proof taken: a balance tree of up to 2**32 accounts.
MAX_PROOF: constant(uint256) = 32

AMOUNT_BITS: constant(uint256) = 72
AMOUNT_MASK: constant(uint256) = 2**72 - 1
BLOCK_MASK: constant(uint256) = 2**64 - 1
EPOCH_MASK: constant(uint256) = 2**40 - 1
LAST_MASK: constant(uint256) = 2**39 - 1
# The longest challenge window or withdrawal delay, in blocks (millions of years).
MAX_WINDOW: constant(uint256) = 2**48 - 1
# Keeps every slot a commit rewrites non-zero, so rewriting it always costs the same.
FILLED: constant(uint256) = 2**255
PLACEHOLDER_ROOT: constant(bytes32) = 0x0000000000000000000000000000000000000000000000000000000000000001


event Deposited:
    account: indexed(address)
    amount: uint256
    deposited: uint256

event EpochCommitted:
    epoch_id: indexed(uint256)
    trips_root: bytes32
    balances_root: bytes32
    registry_root: bytes32
    trip_count: uint256
    spent_total: uint256

event EpochRetracted:
    epoch_id: indexed(uint256)
    spent_total: uint256

event Claimed:
    account: indexed(address)
    epoch_id: indexed(uint256)
    amount: uint256
    claimed: uint256

event WithdrawalRequested:
    account: indexed(address)
    amount: uint256
    ready_block: uint256

event Withdrawn:
    account: indexed(address)
    epoch_id: indexed(uint256)
    amount: uint256
    withdrawn: uint256


token: public(immutable(IERC20))
challenge_blocks: public(immutable(uint256))
withdraw_delay_blocks: public(immutable(uint256))

# FILLED | last_epoch << 216 | spent_total << 144 | deposited_total << 72 | withdrawn_total
_books: uint256
# FILLED | claimed_total
_claimed_total: uint256
deposited: public(HashMap[address, uint256])
claimed: public(HashMap[address, uint256])
withdrawn: public(HashMap[address, uint256])
# ready_block << 192 | amount requested
_requests: HashMap[address, uint256]

_trips_roots: HashMap[uint256, bytes32]
_ring_roots: bytes32[RING]
# FILLED | epoch_id << 136 | spent_total before the epoch << 64 | commit block
# (epoch_id 0 and block 0 after a retract: the place is free and what it held was final)
_ring_marks: uint256[RING]


@deploy
def __init__(token_: IERC20, challenge_blocks_: uint256, withdraw_delay_blocks_: uint256):
    """
    @notice The deployer becomes the owner, the only account that commits.
    @param token_ The euro token deposits are made in and payouts are paid in.
    @param challenge_blocks_ How many blocks after its commit an epoch
           becomes final (0: at once).
    @param withdraw_delay_blocks_ How many blocks after a withdrawal request
           the withdrawal may be made.
    """
    ownable.__init__()
    ownable_2step.__init__()
    assert token_.address != empty(address), "clearing: zero token"
    assert max(challenge_blocks_, withdraw_delay_blocks_) <= MAX_WINDOW, "clearing: window too long"
    token = token_
    challenge_blocks = challenge_blocks_
    withdraw_delay_blocks = withdraw_delay_blocks_
    self._books = FILLED
    self._claimed_total = FILLED
    for i: uint256 in range(RING):
        self._ring_roots[i] = PLACEHOLDER_ROOT
        self._ring_marks[i] = FILLED


@external
@nonreentrant
def deposit(amount: uint256):
    """
    @notice Pull `amount` micro-EUR from the caller (who approved this
            contract first) into the caller's deposit.
    """
    assert amount > 0, "clearing: zero deposit"
    books: uint256 = self._books
    deposited_total: uint256 = (books >> AMOUNT_BITS) & AMOUNT_MASK
    assert amount <= AMOUNT_MASK - deposited_total, "clearing: deposits above the limit"
    deposited_total += amount
    self._books = (books & ~(AMOUNT_MASK << AMOUNT_BITS)) | (deposited_total << AMOUNT_BITS)
    total: uint256 = self.deposited[msg.sender] + amount
    self.deposited[msg.sender] = total
    assert extcall token.transferFrom(msg.sender, self, amount), "clearing: token transfer failed"
    log Deposited(account=msg.sender, amount=amount, deposited=total)


@external
def commit_epoch(
    epoch_id: uint256,
    trips_root: bytes32,
    balances_root: bytes32,
    registry_root: bytes32,
    trip_count: uint256,
    spent_total: uint256,
    earned_total: uint256,
):
    """
    @notice Commit epoch `epoch_id`: its trips root, the cumulative balances
            root of every account, the registry root it was attributed with,
            its trip count and the cumulative totals spent and earned.
    @dev Reverts unless the caller is the owner, `epoch_id` is
         `last_epoch + 1`, both roots are non-zero, there is at least one
         trip, `spent_total` is not below the previous one, `earned_total`
         equals it, `spent_total + withdrawn_total <= deposited_total`, and
         the epoch this one pushes out of the ring is final.
    """
    ownable._check_owner()
    books: uint256 = self._books
    last: uint256 = (books >> 216) & LAST_MASK
    assert epoch_id == last + 1, "clearing: epoch out of sequence"
    assert trips_root != empty(bytes32), "clearing: zero trips root"
    assert balances_root != empty(bytes32), "clearing: zero balances root"
    assert trip_count > 0, "clearing: zero trips"
    previous_spent: uint256 = (books >> 144) & AMOUNT_MASK
    assert spent_total >= previous_spent, "clearing: spent total decreased"
    assert earned_total == spent_total, "clearing: earned differs from spent"
    unspent_total: uint256 = ((books >> AMOUNT_BITS) & AMOUNT_MASK) - (books & AMOUNT_MASK)
    assert spent_total <= unspent_total, "clearing: totals above deposits"

    place: uint256 = epoch_id % RING
    pushed_out: uint256 = self._ring_marks[place] & BLOCK_MASK
    assert pushed_out + challenge_blocks <= block.number or pushed_out == 0, "clearing: ring full until an epoch is final"
    self._ring_marks[place] = FILLED | (epoch_id << 136) | (previous_spent << 64) | block.number
    self._ring_roots[place] = balances_root
    self._trips_roots[epoch_id] = trips_root
    self._books = FILLED | (epoch_id << 216) | (spent_total << 144) | (books & (2**144 - 1))
    log EpochCommitted(
        epoch_id=epoch_id,
        trips_root=trips_root,
        balances_root=balances_root,
        registry_root=registry_root,
        trip_count=trip_count,
        spent_total=spent_total,
    )


@external
def retract_epoch(epoch_id: uint256):
    """
    @notice Take back the last epoch while it is not final (a bad root caught
            in the challenge window, or a reorganised commit): the previous
            epoch becomes the last one and the spent total goes back to it.
    """
    ownable._check_owner()
    books: uint256 = self._books
    assert epoch_id == (books >> 216) & LAST_MASK and epoch_id != 0, "clearing: not the last epoch"
    place: uint256 = epoch_id % RING
    mark: uint256 = self._ring_marks[place]
    assert (mark & BLOCK_MASK) + challenge_blocks > block.number, "clearing: epoch is final"
    previous_spent: uint256 = (mark >> 64) & AMOUNT_MASK
    # The epoch pushed out by this one was final when it was committed: a recommit need not wait for it.
    self._ring_marks[place] = FILLED
    self._trips_roots[epoch_id] = empty(bytes32)
    self._books = FILLED | ((epoch_id - 1) << 216) | (previous_spent << 144) | (books & (2**144 - 1))
    log EpochRetracted(epoch_id=epoch_id, spent_total=previous_spent)


@external
@nonreentrant
def claim(epoch_id: uint256, account: address, earned: uint256, spent: uint256, proof: DynArray[bytes32, MAX_PROOF]):
    """
    @notice Pay `account` what it earned by final epoch `epoch_id`'s balance
            tree, less what it claimed before. Anyone may send it; the money
            only goes to `account`.
    """
    self._check_leaf(epoch_id, account, earned, spent, proof)
    already: uint256 = self.claimed[account]
    assert earned > already, "clearing: nothing to claim"
    amount: uint256 = earned - already
    self._check_solvent(amount)
    self.claimed[account] = earned
    self._claimed_total += amount
    assert extcall token.transfer(account, amount), "clearing: token transfer failed"
    log Claimed(account=account, epoch_id=epoch_id, amount=amount, claimed=earned)


@external
def request_withdrawal(amount: uint256):
    """
    @notice Announce a withdrawal of `amount` micro-EUR of the caller's
            unspent deposit; it may be made `withdraw_delay_blocks` blocks
            from now. A new request replaces the previous one.
    """
    assert amount > 0, "clearing: zero withdrawal"
    assert amount <= self.deposited[msg.sender] - self.withdrawn[msg.sender], "clearing: above unspent deposit"
    ready: uint256 = block.number + withdraw_delay_blocks
    self._requests[msg.sender] = (ready << 192) | amount
    log WithdrawalRequested(account=msg.sender, amount=amount, ready_block=ready)


@external
@nonreentrant
def withdraw(epoch_id: uint256, earned: uint256, spent: uint256, proof: DynArray[bytes32, MAX_PROOF], amount: uint256):
    """
    @notice Pay the caller `amount` of its unspent deposit, as the latest
            final epoch's balance tree says what it spent.
    """
    request: uint256 = self._requests[msg.sender]
    assert amount > 0, "clearing: zero withdrawal"
    assert request >> 192 <= block.number and request != 0, "clearing: withdrawal not ready"
    assert amount <= request & AMOUNT_MASK, "clearing: above the requested amount"
    self._check_leaf(epoch_id, msg.sender, earned, spent, proof)
    assert epoch_id == self._last() or not self._is_final(epoch_id + 1), "clearing: not the latest final epoch"
    already: uint256 = self.withdrawn[msg.sender]
    unspent: uint256 = self.deposited[msg.sender] - already
    assert amount <= unspent, "clearing: above unspent deposit"
    assert spent <= unspent - amount, "clearing: above unspent deposit"
    self._check_solvent(amount)
    self._requests[msg.sender] = request - amount
    self.withdrawn[msg.sender] = already + amount
    self._books += amount
    assert extcall token.transfer(msg.sender, amount), "clearing: token transfer failed"
    log Withdrawn(account=msg.sender, epoch_id=epoch_id, amount=amount, withdrawn=already + amount)


@view
@external
def last_epoch() -> uint256:
    """
    @notice The last committed epoch (0 before the first).
    """
    return self._last()


@view
@external
def spent_total() -> uint256:
    """
    @notice Micro-EUR spent by riders up to the last committed epoch.
    """
    return (self._books >> 144) & AMOUNT_MASK


@view
@external
def deposited_total() -> uint256:
    """
    @notice Micro-EUR deposited over all time.
    """
    return (self._books >> AMOUNT_BITS) & AMOUNT_MASK


@view
@external
def withdrawn_total() -> uint256:
    """
    @notice Micro-EUR withdrawn over all time.
    """
    return self._books & AMOUNT_MASK


@view
@external
def claimed_total() -> uint256:
    """
    @notice Micro-EUR claimed over all time.
    """
    return self._claimed_total & AMOUNT_MASK


@view
@external
def trips_root(epoch_id: uint256) -> bytes32:
    """
    @notice The StandardMerkleTree root of epoch `epoch_id`'s trips (zero
            before the epoch is committed or after it is retracted).
    """
    return self._trips_roots[epoch_id]


@view
@external
def balances_root(epoch_id: uint256) -> bytes32:
    """
    @notice The balances root of epoch `epoch_id` while it is in the ring of
            the last `RING` epochs; zero before its commit and once forgotten.
    """
    if not self._committed(epoch_id) or not self._in_ring(epoch_id):
        return empty(bytes32)
    return self._ring_roots[epoch_id % RING]


@view
@external
def commit_block(epoch_id: uint256) -> uint256:
    """
    @notice The block epoch `epoch_id` was committed in, while it is in the
            ring; 0 otherwise.
    """
    if not self._committed(epoch_id) or not self._in_ring(epoch_id):
        return 0
    return self._ring_marks[epoch_id % RING] & BLOCK_MASK


@view
@external
def is_final(epoch_id: uint256) -> bool:
    """
    @notice Whether epoch `epoch_id` is committed and final. An epoch out of
            the ring is final (it was final when it was pushed out).
    """
    if epoch_id == 0 or epoch_id > self._last():
        return False
    return not self._in_ring(epoch_id) or self._is_final(epoch_id)


@view
@external
def requested(account: address) -> (uint256, uint256):
    """
    @notice The amount `account` last asked to withdraw (less what it has
            withdrawn since) and the block from which it may.
    """
    request: uint256 = self._requests[account]
    return request & AMOUNT_MASK, request >> 192


@view
@internal
def _in_ring(epoch_id: uint256) -> bool:
    """Whether committed epoch `epoch_id` still holds its place in the ring."""
    return (self._ring_marks[epoch_id % RING] >> 136) & EPOCH_MASK == epoch_id


@view
@internal
def _is_final(epoch_id: uint256) -> bool:
    """Whether committed epoch `epoch_id`, which is in the ring, is final."""
    return (self._ring_marks[epoch_id % RING] & BLOCK_MASK) + challenge_blocks <= block.number


@view
@internal
def _check_leaf(epoch_id: uint256, account: address, earned: uint256, spent: uint256, proof: DynArray[bytes32, MAX_PROOF]):
    assert self._committed(epoch_id), "clearing: epoch not committed"
    assert self._in_ring(epoch_id), "clearing: epoch forgotten"
    assert self._is_final(epoch_id), "clearing: epoch not final"
    leaf: bytes32 = keccak256(keccak256(abi_encode(chain.id, self, account, earned, spent)))
    assert merkle._verify(proof, self._ring_roots[epoch_id % RING], leaf), "clearing: wrong proof"


@view
@internal
def _check_solvent(amount: uint256):
    books: uint256 = self._books
    left: uint256 = ((books >> AMOUNT_BITS) & AMOUNT_MASK) - (books & AMOUNT_MASK) - (self._claimed_total & AMOUNT_MASK)
    assert amount <= left, "clearing: payouts above deposits"


@view
@internal
def _committed(epoch_id: uint256) -> bool:
    return epoch_id != 0 and epoch_id <= self._last()


@view
@internal
def _last() -> uint256:
    return (self._books >> 216) & LAST_MASK
