"""Trust in a decoded message: registered, signed by its device, not a replay, plausible (pure).

The ``Verifier`` holds a snapshot of the device registry and what it has accepted of each vehicle (last seq,
last state time); ``check`` raises ``InvalidReading`` with a ``RejectCode`` for a message that must not be
stored and otherwise remembers it.
"""

from __future__ import annotations

from collections.abc import Callable

from sensors import consent
from sensors.errors import InvalidReading
from sensors.messages import Event, Message, RiderVoucher, Telemetry, VehicleState
from sensors.signing import Domain, signer
from settlement.bounds import Bounds, check_reading, check_step
from settlement.reasons import RejectCode
from settlement.records import VehicleMark
from settlement.registry import Registry
from settlement.vehicles import is_gateway

SEQ_WINDOW = 4096
"""How far below a vehicle's highest accepted seq a late message is still taken (reordering, redelivery);
anything older is a replay. At one message every 5 s while riding, this is more than 5 hours."""


STEP_HORIZON_MS = 15 * 60_000
"""Telemetry is checked against the vehicle's previous reading (speed, odometer) only when they are this close."""


def rejected(code: RejectCode, reason: str) -> InvalidReading:
    return InvalidReading(reason, code=code.value)


class Verifier:
    """Checks messages against the registry and what each vehicle has sent before."""

    def __init__(
        self,
        registry: Registry,
        domain: Domain,
        bounds: Bounds,
        *,
        sign_telemetry: bool = False,
        seq_window: int = SEQ_WINDOW,
        clock: Callable[[], float] | None = None,
    ) -> None:
        """``clock`` (seconds) turns on the future-timestamp rule: a reading more than ``bounds.max_future_skew_ms``
        ahead of it is refused; without one, timestamps are not compared with the receiver's time."""
        self.registry = registry
        self.domain = domain
        self.bounds = bounds
        self.sign_telemetry = sign_telemetry
        self.seq_window = seq_window
        self.clock = clock
        self.marks: dict[str, VehicleMark] = {}
        self.latest: dict[str, Telemetry | Event] = {}  # each vehicle's newest accepted reading, this process

    def check(self, message: Message) -> None:
        """Accept ``message`` (and remember it) or raise ``InvalidReading`` with the reason code."""
        if isinstance(message, VehicleState):
            self._check_state(message)
            return
        if isinstance(message, RiderVoucher):
            self._check_voucher(message)
            return
        entry = self.registry.entry_at(message.vehicle_id, message.timestamp)
        if entry is None:
            latest = self.registry.latest(message.vehicle_id)
            if latest is None:
                raise rejected(RejectCode.UNKNOWN_VEHICLE, f"vehicle {message.vehicle_id} is not in the registry")
            if latest.revoked_ms is not None:
                raise rejected(RejectCode.REVOKED_DEVICE, f"the device of {message.vehicle_id} was revoked")
            raise rejected(
                RejectCode.NOT_REGISTERED_THEN,
                f"vehicle {message.vehicle_id} has no registry entry valid at {message.timestamp}",
            )
        reg = entry.registration
        if entry.revoked_ms is not None:
            raise rejected(RejectCode.REVOKED_DEVICE, f"the device of {message.vehicle_id} was revoked")
        if reg.operator != message.operator:
            raise rejected(
                RejectCode.OPERATOR_MISMATCH,
                f"{message.vehicle_id} is registered to {reg.operator}, not {message.operator}",
            )
        if reg.kind != message.kind:
            raise rejected(RejectCode.KIND_MISMATCH, f"{message.vehicle_id} is registered as a {reg.kind.value}")
        if isinstance(message, Event) or self.sign_telemetry:
            found = signer(message, self.domain)
            if found != reg.device:
                raise rejected(
                    RejectCode.BAD_SIGNATURE, f"signed by {found}, not by the device of {message.vehicle_id}"
                )
        self._check_time_and_seq(message)
        now_ms = None if self.clock is None else int(self.clock() * 1000)
        code = check_reading(message, self.bounds, now_ms=now_ms)
        if code is not None:
            raise rejected(code, f"{message.vehicle_id}:{message.seq} is out of the {message.kind.value} bounds")
        previous = self.latest.get(message.vehicle_id)
        newer = previous is None or message.seq > previous.seq
        if (
            isinstance(message, Telemetry)
            and previous is not None
            and newer
            and 0 <= message.timestamp - previous.timestamp <= STEP_HORIZON_MS
        ):
            # telemetry only: an event is judged with its trip, whatever the order it arrives in; and only over a
            # short gap: a vehicle silent for longer may have been carried away, or its device replaced
            code = check_step(previous, message, self.bounds)
            if code is not None:
                raise rejected(
                    code,
                    f"{message.vehicle_id}:{message.seq} moved faster than a {message.kind.value} can "
                    f"since {previous.seq}",
                )
        if newer:
            self.latest[message.vehicle_id] = message
        mark = self.marks.get(message.vehicle_id, VehicleMark(0, 0))
        if message.seq > mark.last_seq:
            self.marks[message.vehicle_id] = VehicleMark(message.seq, mark.state_ms)

    def _check_time_and_seq(self, message: Telemetry | Event) -> None:
        mark = self.marks.get(message.vehicle_id)
        if mark is not None and message.seq <= mark.last_seq - self.seq_window:
            raise rejected(
                RejectCode.STALE_SEQ,
                f"{message.vehicle_id}:{message.seq} is more than {self.seq_window} below the last accepted "
                f"seq {mark.last_seq}: a replay",
            )

    def _check_voucher(self, note: RiderVoucher) -> None:
        """A voucher relayed by a registered vehicle of its operator, for a trip of that vehicle, signed by its rider.

        Whether it may follow the trip's consent and earlier vouchers is the trip's rule (``settlement.trips``).
        """
        entry = self.registry.latest(note.vehicle_id)
        if entry is None:
            raise rejected(RejectCode.UNKNOWN_VEHICLE, f"vehicle {note.vehicle_id} is not in the registry")
        if entry.registration.operator != note.operator:
            raise rejected(RejectCode.OPERATOR_MISMATCH, f"{note.vehicle_id} is not of {note.operator}")
        voucher = note.voucher
        if voucher.trip_id.rpartition(":")[0] != note.vehicle_id:
            raise rejected(
                RejectCode.VOUCHER_OTHER_TRIP, f"voucher for trip {voucher.trip_id}, relayed by {note.vehicle_id}"
            )
        try:
            by = consent.signer(voucher, self.domain)
        except InvalidReading as exc:
            raise rejected(RejectCode.VOUCHER_BAD_SIGNATURE, exc.reason) from None
        if by != voucher.rider:
            raise rejected(RejectCode.VOUCHER_WRONG_SIGNER, f"voucher signed by {by}, not by its rider {voucher.rider}")

    def _check_state(self, state: VehicleState) -> None:
        if is_gateway(state):
            operator = self.registry.operators.get(state.operator)
            if operator is None:
                raise rejected(RejectCode.UNKNOWN_OPERATOR, f"operator {state.operator} is not trusted")
            if signer(state, self.domain) != operator:
                raise rejected(RejectCode.BAD_SIGNATURE, f"gateway state not signed by {state.operator}")
            return
        entry = self.registry.latest(state.vehicle_id)
        if entry is None:
            raise rejected(RejectCode.UNKNOWN_VEHICLE, f"vehicle {state.vehicle_id} is not in the registry")
        if entry.revoked_ms is not None:
            raise rejected(RejectCode.REVOKED_DEVICE, f"the device of {state.vehicle_id} was revoked")
        if entry.registration.operator != state.operator:
            raise rejected(RejectCode.OPERATOR_MISMATCH, f"{state.vehicle_id} is not of {state.operator}")
        if signer(state, self.domain) != entry.registration.device:
            raise rejected(RejectCode.BAD_SIGNATURE, f"state not signed by the device of {state.vehicle_id}")
        mark = self.marks.get(state.vehicle_id, VehicleMark(0, 0))
        if state.timestamp < mark.state_ms:
            raise rejected(RejectCode.STALE_STATE, f"state of {state.timestamp} is older than {mark.state_ms}")
        self.marks[state.vehicle_id] = VehicleMark(mark.last_seq, state.timestamp)
