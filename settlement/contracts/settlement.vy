# pragma version ~=0.4.3
# pragma evm-version cancun
"""
@title Smart Zone epoch settlement
@custom:contract-name settlement
@license GNU Affero General Public License v3.0 or later
@notice The aggregator (the owner) commits one epoch of trips at a time: the
        StandardMerkleTree root of the epoch's trips, the StandardMerkleTree
        root of the device registry the trips were attributed with (who is
        paid for which vehicle), how many trips there were, the total fare in
        micro-EUR, and what each vehicle owner is owed for them. Anyone can
        check a trip against `trips_root` and a vehicle's payee against
        `registry_root` with a Merkle proof. Epochs are strictly sequential,
        so no epoch is ever settled twice. Credits in `owed` are cumulative
        over all epochs.
@dev This version writes one storage slot per owner per epoch, so the cost
     of a commit grows with the number of owners. A later version replaces
     the per-owner credits with a Merkle root of cumulative balances: every
     commit is O(1), and owners claim with a Merkle proof against that root.
     Ownership moves in two steps (`transfer_ownership` by the owner, then
     `accept_ownership` by the new owner; the old owner keeps settling until
     then) and cannot be renounced: an owner-less contract could never settle
     again, so `renounce_ownership` is not exported.
"""

from snekmate.auth import ownable
from snekmate.auth import ownable_2step

initializes: ownable
initializes: ownable_2step[ownable := ownable]

exports: (
    ownable_2step.owner,
    ownable_2step.pending_owner,
    ownable_2step.transfer_ownership,
    ownable_2step.accept_ownership,
)


# The most owners one epoch credits. The Python side reads this same number
# as `settlement.ports.MAX_OWNERS_PER_EPOCH` (a test keeps the two equal).
MAX_OWNERS: constant(uint256) = 256


struct Epoch:
    trips_root: bytes32
    registry_root: bytes32
    trip_count: uint256
    total: uint256


event EpochSettled:
    epoch_id: indexed(uint256)
    trips_root: bytes32
    registry_root: bytes32
    trip_count: uint256
    total: uint256


last_epoch: public(uint256)
epochs: public(HashMap[uint256, Epoch])
owed: public(HashMap[address, uint256])
total_settled: public(uint256)


@deploy
def __init__():
    """
    @notice The deployer becomes the owner, the only account that can settle.
    """
    ownable.__init__()
    ownable_2step.__init__()


@external
def settle_epoch(
    epoch_id: uint256,
    trips_root: bytes32,
    registry_root: bytes32,
    trip_count: uint256,
    total: uint256,
    owners: DynArray[address, MAX_OWNERS],
    amounts: DynArray[uint256, MAX_OWNERS],
):
    """
    @notice Commit epoch `epoch_id` and credit each owner its amount (micro-EUR).
    @param epoch_id The epoch's number: `last_epoch + 1`.
    @param trips_root The StandardMerkleTree root of the epoch's trips.
    @param registry_root The StandardMerkleTree root of the device registry
           (vehicle id -> operator, kind, device, payee, validity, revoked)
           that attributed the epoch's trips to their payees.
    @param trip_count How many trips the epoch holds (at least one).
    @param total The sum of `amounts`, in micro-EUR.
    @param owners The payees, in strictly ascending order of their 20 bytes,
           so that no owner appears twice.
    @param amounts What each owner is credited, in micro-EUR.
    @dev Reverts unless the caller is the owner, `epoch_id` is `last_epoch + 1`,
         `trips_root` is not zero, `trip_count` is not zero, `owners` and
         `amounts` have the same length, no owner is the zero address, the
         owners are strictly ascending and the amounts add up to `total`.
    """
    ownable._check_owner()
    assert epoch_id == self.last_epoch + 1, "settlement: epoch out of sequence"
    assert trips_root != empty(bytes32), "settlement: zero trips root"
    assert trip_count > 0, "settlement: zero trips"
    assert len(owners) == len(amounts), "settlement: owners and amounts differ in length"

    paid: uint256 = 0
    previous: uint160 = 0
    for i: uint256 in range(len(owners), bound=MAX_OWNERS):
        owner: address = owners[i]
        assert owner != empty(address), "settlement: zero owner address"
        assert convert(owner, uint160) > previous, "settlement: owners not strictly ascending"
        previous = convert(owner, uint160)
        self.owed[owner] += amounts[i]
        paid += amounts[i]
    assert paid == total, "settlement: amounts do not add up to total"

    self.last_epoch = epoch_id
    self.epochs[epoch_id] = Epoch(
        trips_root=trips_root, registry_root=registry_root, trip_count=trip_count, total=total
    )
    self.total_settled += total
    log EpochSettled(
        epoch_id=epoch_id,
        trips_root=trips_root,
        registry_root=registry_root,
        trip_count=trip_count,
        total=total,
    )


@view
@external
def trips_root(epoch_id: uint256) -> bytes32:
    """
    @notice The StandardMerkleTree root of epoch `epoch_id`'s trips (zero
            before the epoch is settled). A rider's receipt proves its trip's
            leaf, which names this chain, this contract and the epoch,
            against this root.
    @param epoch_id The epoch's number.
    @return The trips root the epoch committed.
    """
    return self.epochs[epoch_id].trips_root
