"""``sidra.hil.v1.BoardService`` over any :class:`~sidra.drivers.Board`.

One route per declared operation (``sidra.drivers.operations.OPERATIONS``):
admit the call under the caller's limits (``sidra.server.limits``), parse the
request bytes, convert to the driver's request, run it on the board under the
board lock (turns by principal), convert the result back. The driver validates;
``sidra.server.status`` maps errors. Bytes that do not parse as the request
message are the caller's fault (INVALID_ARGUMENT), so requests arrive as raw
bytes and are parsed here rather than by gRPC's deserializer, which would
answer INTERNAL.

With a :class:`~sidra.server.state.StateStore`, every Program that succeeds on
the board is recorded in it (golden targets, history) inside the same
board-locked section and committed before the response leaves, so an
acknowledged Program is durable; write counts a client reads are kept too.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import grpc
from google.protobuf.message import Message

from sidra.drivers import (
    Board,
    BoardUnavailable,
    InvalidArgument,
    LinkDown,
    ReadResult,
    Region,
    SequenceResult,
)
from sidra.drivers.operations import OPERATIONS, Operation, operation_of
from sidra.drivers.requests import ReadConductanceRequest, Request, SequenceRequest, step_member
from sidra.hil import convert
from sidra.hil.metadata import SESSION_ID_KEY
from sidra.hil.v1 import board_pb2 as pb
from sidra.server.limits import PrincipalLimits, caller_key
from sidra.server.memory import LARGE_REQUEST_BYTES, give_back_memory, note_call
from sidra.server.parsing import parse_request
from sidra.server.protections import Protections
from sidra.server.recording import Recording, is_recorded
from sidra.server.sessions import LeaseKeeper
from sidra.server.shared_memory import (
    SHARED_RPCS,
    SharedMemoryStore,
    SharedSpan,
    names_shared_memory,
    shared_pass,
    written,
)
from sidra.server.state import StateStore
from sidra.server.status import map_errors, refusal_status
from sidra.server.turns import BoardTurns

__all__ = [
    "LOCAL_PRINCIPAL",
    "SERVICE_NAME",
    "BoardServicer",
    "PrincipalOf",
    "answer_of",
    "board_service_handler",
    "local_principal",
]

log = logging.getLogger(__name__)

SERVICE_NAME: str = pb.DESCRIPTOR.services_by_name["BoardService"].full_name

PrincipalOf = Callable[[grpc.ServicerContext], str]
"""Who made a call, from its context (the authentication layer supplies the real one)."""

AdminOf = Callable[[grpc.ServicerContext], bool]
"""Whether a call's principal has the admin role (leases let an admin act board-wide)."""

RefusalOf = Callable[[grpc.ServicerContext, str], str | None]
"""Why a call's principal may not run an RPC (a sequence step), None when it may: the
authentication layer checks the RPC a call names, not the steps inside it."""

LinkDownNow = Callable[[], LinkDown | None]
"""The board link's outage now, None while it is up (sidra.server.link_watch)."""

LOCAL_PRINCIPAL = "local"
"""The principal of every call while the service has no authentication."""


def local_principal(context: grpc.ServicerContext) -> str:
    """Every caller is "local": the service without authentication (loopback only)."""
    return LOCAL_PRINCIPAL


class BoardServicer:
    """Serves one board; calls never interleave on it, and waiting principals take
    turns (:class:`~sidra.server.turns.BoardTurns`).

    ``store`` (optional) records each successful Program before it is answered,
    attributed to ``principal_of(context)`` and to the board instance
    (``board.instance_id``) that holds it. ``limits`` refuses a principal's call
    over its ``[limits]`` before the request is converted (default: the defaults).
    ``leases`` (:class:`~sidra.server.sessions.LeaseKeeper`, over the same
    ``turns``) admits each call, in its turn, only if no other session's lease
    forbids it (session.proto, "Leases"); ``admin_of`` tells it who is an admin.
    ``link_down`` (a board behind a link) says why a call the board could not be reached
    for failed: its BoardUnavailable carries it to the client (board.proto LinkDown).
    """

    def __init__(
        self,
        board: Board,
        store: StateStore | None = None,
        principal_of: PrincipalOf = local_principal,
        limits: PrincipalLimits | None = None,
        *,
        turns: BoardTurns | None = None,
        leases: LeaseKeeper | None = None,
        admin_of: AdminOf = lambda context: True,
        refusal_of: RefusalOf = lambda context, rpc: None,
        shared_memory: SharedMemoryStore | None = None,
        protections: Protections | None = None,
        link_down: LinkDownNow = lambda: None,
    ) -> None:
        self.board = board
        self.link_down = link_down
        self.protections = protections
        """Protected deployments' regions, kept from other principals' writes
        (sidra.server.protections; None: none)."""
        self.shared_memory = shared_memory
        """Shared-memory registrations MVM and TransposeMVM may name (None: none offered)."""
        self.turns = turns or BoardTurns()
        """The board lock, granted round robin by principal (sidra.server.turns)."""
        self.limits = limits or PrincipalLimits()
        """Per-principal request size, batch size and calls in flight (sidra.server.limits)."""
        self.store = store
        self.principal_of = principal_of
        self.admin_of = admin_of
        self.refusal_of = refusal_of
        self.leases = leases
        if store is not None:
            # Fails at start, not at the first Program, when the store cannot be written.
            _note_instance(store, board)

    def call(self, op: Operation, data: bytes, context: grpc.ServicerContext) -> Message:
        """Runs one RPC of ``op`` on the board: request bytes in, response message out."""
        note_call()  # memory a burst of calls leaves is given back once it is over
        if len(data) >= LARGE_REQUEST_BYTES:
            # Its buffers are freed once the response has left: give their pages back then.
            context.add_callback(give_back_memory)
        # Asked first: limits count per principal, a write must never lack its author,
        # and the board is shared out in turns between principals.
        principal = self.principal_of(context)
        caller = caller_key(principal, context.peer())
        with self.limits.admitted(caller, len(data)):
            message = _parse(op, data)
            if op.rpc == "RunSequence":
                _refuse_shared_steps(message)
            self.limits.check_batch(caller, message)  # before the tensor becomes an array
            request = convert.request_from_pb(message, op)
            outputs = None
            if op.rpc in SHARED_RPCS and names_shared_memory(message):
                request, outputs = self.shared_request(
                    message, request, principal, _session_of(context), context.peer()
                )  # (validated there when its outputs go to shared memory: once is enough)
            # The request holds its own copy of the tensor bytes: drop the parsed message
            # now rather than at return, one request's size less held while it waits and runs.
            del message
            if isinstance(request, SequenceRequest):
                self._check_step_roles(request, context)
            admin = self.admin_of(context) if self.leases is not None else False
            result = self.run_in_turn(
                op.rpc, request, principal, caller, _session_of(context), admin=admin,
                checked=outputs is not None,
            )  # fmt: skip
            answer = answer_of(result, op, request, outputs)
            if isinstance(answer, pb.GetBoardInfoResponse):  # the service's own part of it
                answer.limits.CopyFrom(self.limits.announced())
            return answer

    def shared_request(
        self,
        message: Message,
        request: Request,
        principal: str,
        session_id: str | None,
        peer: str,
    ) -> tuple[Request, SharedSpan | None]:
        """``request`` (an MVM or TransposeMVM ``message`` naming shared memory) with its
        inputs read from the caller's shared memory, and the span its outputs go to
        (None: in the answer); all checked before the board is touched
        (sidra.server.shared_memory). SharedMemoryDenied (PERMISSION_DENIED) when the
        caller may not."""
        return shared_pass(
            self.shared_memory, message, request, self.board.info, principal, session_id, peer
        )

    def _check_step_roles(self, request: SequenceRequest, context: grpc.ServicerContext) -> None:
        """Aborts with PERMISSION_DENIED when a step needs a role the caller lacks."""
        for k, step in enumerate(request.steps):
            refusal = self.refusal_of(context, operation_of(step).rpc)
            if refusal is not None:
                context.abort_with_status(
                    refusal_status(
                        grpc.StatusCode.PERMISSION_DENIED,
                        f"steps[{k}] ({step_member(type(step))}): {refusal}; no step ran",
                        "insufficient_role",
                        self.principal_of(context),
                    )
                )

    def read_cells(self, principal: str, admin: bool, tile: int, region: Region) -> ReadResult:
        """A ReadConductance of ``region`` of ``tile`` for ``principal`` outside any
        session, in its turn, under the leases (a server-side check of a deployment)."""
        request = ReadConductanceRequest(tile, region)
        result: ReadResult = self.run_in_turn(
            "ReadConductance", request, principal, principal, None, admin=admin
        )
        return result

    def run_in_turn(
        self,
        rpc: str,
        request: Request,
        principal: str,
        caller: str,
        session_id: str | None,
        *,
        admin: bool,
        record_later: Callable[[Callable[[], None]], None] | None = None,
        checked: bool = False,
    ) -> Any:
        """Runs ``request`` (of ``rpc``) on the board in ``caller``'s turn, once the leases
        admit it for ``principal`` in ``session_id``; records what it did in the store.
        ``checked``: ``request`` is validated against the board's info already (a pass
        whose outputs go to shared memory), and the board runs it as it is.

        Every board call goes through here: a client's RPC and a job's call alike
        (sidra.server.jobs), so both take turns and obey the same leases. A client's
        call is recorded inside its turn, before it is answered; ``record_later`` is
        handed the recording instead, to run it in order behind the call (a job's
        writer thread: no one is answered, and the job's next step need not wait for
        the store's fsync)."""
        leases = self.leases
        try:
            with self.turns.turn(caller):
                if isinstance(request, SequenceRequest):
                    return self._run_sequence(
                        request, principal, session_id, admin=admin, record_later=record_later
                    )
                if leases is not None:
                    leases.admit(rpc, request, principal, session_id, admin=admin)
                if self.protections is not None:
                    self.protections.admit(rpc, request, principal, admin=admin)
                result = self.board.run_step(request) if checked else self.board.run(request)
                if leases is not None:
                    leases.ran(request)
                self._keep(request, result, principal, record_later)
        except BoardUnavailable as exc:
            # The board's link is down: the caller learns what the server's log says
            # (since when, why, what is retried), not only this call's own failure.
            exc.link_down = exc.link_down or self.link_down()
            raise
        return result

    def _run_sequence(
        self,
        request: SequenceRequest,
        principal: str,
        session_id: str | None,
        *,
        admin: bool,
        record_later: Callable[[Callable[[], None]], None] | None = None,
    ) -> SequenceResult:
        """The steps of ``request``, in the caller's turn (held): every step validated and
        admitted before the first runs; then each run, noted and recorded as its own
        call would be (``record_later``: handed the recordings, as :meth:`run_in_turn`
        does). A step the board refuses stops the sequence there."""
        steps = request.checked(self.board.info).steps
        leases, protections = self.leases, self.protections
        for step in steps:
            rpc = operation_of(step).rpc
            if leases is not None:
                leases.admit(rpc, step, principal, session_id, admin=admin)
            if protections is not None:
                protections.admit(rpc, step, principal, admin=admin)
        results = []
        for k, step in enumerate(steps):
            try:
                result = self.board.run_step(step)  # validated above, with the whole sequence
            except InvalidArgument as exc:  # e.g. "endurance": named within the sequence
                path = f"steps[{k}].{step_member(type(step))}.{exc.field}"
                raise type(exc)(path, exc.value, f"{exc.allowed} (steps before it ran)") from exc
            if leases is not None:
                leases.ran(step)
            self._keep(step, result, principal, record_later)
            results.append(result)
        return SequenceResult(tuple(results))

    def _keep(
        self,
        request: Request,
        result: Any,
        principal: str,
        record_later: Callable[[Callable[[], None]], None] | None,
    ) -> None:
        """Stores what ``request`` did to the board (lock held: nothing ran since), or
        hands the recording to ``record_later``."""
        if self.store is None or not is_recorded(request):
            return
        board = self.board
        recording = Recording(self.store, board.info, board.instance_id, request, result, principal)
        if record_later is None:
            recording()
        else:
            record_later(recording)


def answer_of(result: Any, op: Operation, request: Request, outputs: SharedSpan | None) -> Message:
    """The response to ``request``'s ``result``; with ``outputs`` (shared memory) the
    outputs are written there and the response carries no tensor."""
    if outputs is None:
        return convert.result_to_pb(result, op, request)
    answer = convert.result_to_pb(written(result, outputs), op, request)
    answer.ClearField("currents")
    return answer


def _note_instance(store: StateStore, board: Board) -> None:
    """Records the board's instance; warns when the store last saw another one, whose
    programmed state the board no longer holds unless it was restored."""
    info, instance = board.info, board.instance_id
    before = store.note_board(info, instance)
    if before is not None and before.model != info.model:
        log.warning(
            "board %s answers as model %s, recorded under that serial number as model %s: "
            "another board with the same serial number? The targets and history kept for "
            "it are the other board's (sidra serve --restore refuses them)",
            info.serial_number, info.model, before.model,
        )  # fmt: skip
    elif before is not None and _writes_lost(store, info.serial_number, instance):
        log.warning(
            "board %s is instance %s, last recorded as %s: what was programmed then is not "
            "on the board unless restored (sidra serve --restore)",
            info.serial_number, instance, before.last_boot_id,
        )  # fmt: skip


def _writes_lost(store: StateStore, serial_number: str, instance: str) -> bool:
    """Whether the last write the store holds for the board was made in another of its
    instances than ``instance``: with none ever made, or the last a restore into this
    instance (``sidra serve --restore``), nothing is lost and a warning would be noise."""
    last = store.history(serial_number, limit=1)
    return bool(last) and last[0].boot_id != instance


class _Route:
    """The handler of one RPC: ``op`` on ``servicer``, errors mapped to gRPC status."""

    def __init__(self, servicer: BoardServicer, op: Operation) -> None:
        self.servicer = servicer
        self.op = op
        # Raw bytes arrive, so map_errors learns the request type here to check
        # that each BadRequest field path exists in it.
        self.request_type = getattr(pb, f"{op.rpc}Request").DESCRIPTOR

    @map_errors
    def __call__(self, data: bytes, context: grpc.ServicerContext) -> Message:
        return self.servicer.call(self.op, data, context)


def board_service_handler(servicer: BoardServicer) -> grpc.GenericRpcHandler:
    """Every BoardService RPC, routed to ``servicer`` (register with add_generic_rpc_handlers)."""
    handlers: dict[str, Any] = {
        op.rpc: grpc.unary_unary_rpc_method_handler(
            _Route(servicer, op),
            request_deserializer=None,  # raw bytes: parsed in BoardServicer.call
            response_serializer=getattr(pb, f"{op.rpc}Response").SerializeToString,
        )
        for op in OPERATIONS
    }
    return grpc.method_handlers_generic_handler(SERVICE_NAME, handlers)


def _session_of(context: grpc.ServicerContext) -> str | None:
    """The session id a call carries (metadata ``sidra-session-id``), None without one."""
    for key, value in context.invocation_metadata() or ():
        if key == SESSION_ID_KEY:
            return value if isinstance(value, str) else None
    return None


def _parse(op: Operation, data: bytes) -> Message:
    message_type = _REQUEST_TYPES.get(op.rpc)
    if message_type is None:
        message_type = _REQUEST_TYPES[op.rpc] = getattr(pb, f"{op.rpc}Request")
    message: Message = parse_request(message_type, data)
    return message


_REQUEST_TYPES: dict[str, type[Message]] = {}
"""``<rpc>Request`` by RPC name, looked up once each."""


def _refuse_shared_steps(message: Message) -> None:
    """InvalidArgument naming ``steps[k].mvm.shared_inputs`` (or ``shared_outputs``): a
    sequence carries its tensors, and its steps' shared-memory fields were read as no
    inputs (refused naming ``voltages.dtype``) or left unwritten (outputs)."""
    for k, step in enumerate(message.steps):  # type: ignore[attr-defined]
        member = step.WhichOneof("operation")
        inner = getattr(step, member) if member in ("mvm", "transpose_mvm") else None
        for field in ("shared_inputs", "shared_outputs"):
            if inner is not None and inner.HasField(field):
                raise InvalidArgument(
                    f"steps[{k}].{member}.{field}", "set",
                    "tensors inline in a RunSequence (shared memory is for MVM, "
                    "TransposeMVM and MVMStream calls of their own)",
                )  # fmt: skip
