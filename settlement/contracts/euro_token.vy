# pragma version ~=0.4.3
# pragma evm-version cancun
"""
@title Smart Zone Euro
@custom:contract-name euro_token
@license GNU Affero General Public License v3.0 or later
@notice An ERC-20 euro with 6 decimals: one unit is one micro-EUR. Riders
        pay for trips with it and vehicle owners are paid in it. Only a
        minter creates tokens (the peg, which mints against euros received
        and burns against euros paid out); any holder burns its own tokens
        (`burn`) or those it is allowed to spend (`burn_from`). EIP-2612
        `permit` lets a rider approve a deposit with a signature.
@dev Built from snekmate's `erc20` module. The owner sets the minters and
     is itself a minter (snekmate's rule); ownership moves in two steps
     (`transfer_ownership` by the owner, then `accept_ownership` by the new
     owner, who takes over the owner's minter role) and cannot be renounced:
     neither `renounce_ownership` nor snekmate's one-step `transfer_ownership`
     is exported.
     The faucet is for demo mode only: deployed with a non-zero `faucet_cap`,
     anyone mints up to `faucet_cap` to themselves per call, as often as they
     like. A token deployed with `faucet_cap` 0 has no faucet, for good.
"""

from snekmate.auth import ownable
from snekmate.auth import ownable_2step
from snekmate.tokens import erc20

initializes: ownable
initializes: ownable_2step[ownable := ownable]
initializes: erc20[ownable := ownable]

exports: (
    erc20.name,
    erc20.symbol,
    erc20.decimals,
    erc20.totalSupply,
    erc20.balanceOf,
    erc20.allowance,
    erc20.transfer,
    erc20.approve,
    erc20.transferFrom,
    erc20.burn,
    erc20.burn_from,
    erc20.is_minter,
    erc20.mint,
    erc20.set_minter,
    erc20.nonces,
    erc20.permit,
    erc20.DOMAIN_SEPARATOR,
    erc20.eip712Domain,
    ownable_2step.owner,
    ownable_2step.pending_owner,
    ownable_2step.transfer_ownership,
)


DECIMALS: constant(uint8) = 6


# The most one `faucet` call mints, in micro-EUR; 0 when the token has no faucet.
faucet_cap: public(immutable(uint256))


@deploy
def __init__(faucet_cap_: uint256):
    """
    @notice The deployer becomes the owner and a minter.
    @param faucet_cap_ The most one `faucet` call mints (micro-EUR); 0 for
           no faucet (anything but a demo).
    """
    ownable.__init__()
    ownable_2step.__init__()
    erc20.__init__("Smart Zone Euro", "szEUR", DECIMALS, "Smart Zone Euro", "1")
    faucet_cap = faucet_cap_


@external
def accept_ownership():
    """
    @notice The pending owner takes the ownership and the owner's minter
            role; the previous owner keeps neither.
    """
    assert ownable_2step.pending_owner == msg.sender, "euro: caller is not the pending owner"
    previous: address = ownable.owner
    erc20.is_minter[previous] = False
    log erc20.RoleMinterChanged(minter=previous, status=False)
    ownable_2step._transfer_ownership(msg.sender)
    erc20.is_minter[msg.sender] = True
    log erc20.RoleMinterChanged(minter=msg.sender, status=True)


@external
def faucet(amount: uint256):
    """
    @notice Demo mode only: mint `amount` micro-EUR to the caller.
    @dev Reverts unless the token was deployed with a non-zero `faucet_cap`
         and `amount` is at most `faucet_cap`.
    """
    assert faucet_cap != 0, "euro: no faucet"
    assert amount <= faucet_cap, "euro: above the faucet cap"
    erc20._mint(msg.sender, amount)
