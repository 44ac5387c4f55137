"""The queue's policy alone (sidra.server.jobs.queue): principals' turns, then submission
order; tiles kept by a job that waits for them, none kept by one that waits for its
principal; each start tried exactly once per pass, and only where the policy allows."""

from __future__ import annotations

from sidra.drivers import tiles_text
from sidra.server.jobs.queue import BEHIND, Waiting, WaitsForTiles, queue_order, queue_pass


def _job(job_id: str, submitted: float, *tiles: int, principal: str = "alice") -> Waiting:
    return Waiting(job_id, principal, submitted, frozenset(tiles))


class Board:
    """Which tiles are leased, and whose principal is at its max_jobs."""

    def __init__(self, leased: set[int], busy: frozenset[str] = frozenset()) -> None:
        self.leased, self.busy = set(leased), set(busy)
        self.tried: list[str] = []

    def try_start(self, job: Waiting) -> str:
        self.tried.append(job.job_id)
        if job.tiles & self.leased:
            return WaitsForTiles(f"{tiles_text(sorted(job.tiles & self.leased))} leased")
        if job.job_id in self.busy:
            return "limits.max_jobs"
        self.leased |= job.tiles  # started: it holds them now
        return ""


def test_jobs_are_tried_in_submission_order_and_the_free_ones_start() -> None:
    board = Board(leased={0})
    waiting = [_job("c", 3.0, 2), _job("a", 1.0, 0), _job("b", 2.0, 1)]
    reasons = queue_pass(waiting, board.try_start)
    assert board.tried == ["a", "b", "c"]
    assert reasons == {"a": "queued, 0 ahead: tile 0 leased"}


def test_a_job_waiting_for_tiles_keeps_them_from_later_jobs() -> None:
    board = Board(leased={0})
    whole = _job("whole", 1.0, 0, 1, 2, 3)
    small = _job("small", 2.0, 1)
    other = _job("other", 3.0, 2)
    reasons = queue_pass([whole, small, other], board.try_start)
    assert board.tried == ["whole"]  # the others are never tried: their tiles are kept
    assert reasons == {
        "whole": "queued, 0 ahead: tile 0 leased",
        "small": f"queued, 1 ahead: {BEHIND}",
        "other": f"queued, 2 ahead: {BEHIND}",
    }


def test_a_job_behind_keeps_its_tiles_too() -> None:
    """A waits for tile 0; B (tiles 0 and 1) waits behind it; C (tile 1) waits behind B."""
    board = Board(leased={0})
    reasons = queue_pass(
        [_job("A", 1.0, 0), _job("B", 2.0, 0, 1), _job("C", 3.0, 1), _job("D", 4.0, 2)],
        board.try_start,
    )
    assert board.tried == ["A", "D"]
    assert set(reasons) == {"A", "B", "C"}
    assert reasons["C"] == f"queued, 2 ahead: {BEHIND}"


def test_a_job_waiting_for_its_principal_keeps_no_tiles() -> None:
    board = Board(leased=set(), busy=frozenset({"first"}))
    reasons = queue_pass([_job("first", 1.0, 0), _job("second", 2.0, 0)], board.try_start)
    assert board.tried == ["first", "second"]
    assert reasons == {"first": "queued, 0 ahead: limits.max_jobs"}


def test_an_empty_queue_tries_nothing() -> None:
    board = Board(leased=set())
    assert queue_pass([], board.try_start) == {}
    assert board.tried == []


def test_principals_take_turns_and_one_running_goes_after_one_that_runs_none() -> None:
    alice = [_job(f"a{k}", float(k), k) for k in (1, 2, 3)]
    bob = _job("b1", 4.0, 0, principal="bob")
    assert [j.job_id for j in queue_order([*alice, bob], {})] == ["a1", "b1", "a2", "a3"]
    assert [j.job_id for j in queue_order([*alice, bob], {"alice": 1})] == [
        "b1", "a1", "a2", "a3"
    ]  # fmt: skip
    assert [j.job_id for j in queue_order([*alice, bob], {"bob": 3})] == [
        "a1", "a2", "a3", "b1"
    ]  # fmt: skip


def test_a_pass_tries_in_turns_and_reports_the_places() -> None:
    board = Board(leased={0, 1, 2, 3})  # every tile held: nothing starts
    waiting = [_job("a1", 1.0, 0), _job("a2", 2.0, 1), _job("b1", 3.0, 2, principal="bob")]
    reasons = queue_pass(waiting, board.try_start, {"alice": 1})
    assert board.tried == ["b1", "a1", "a2"]
    assert [reasons[i].split(":")[0] for i in ("b1", "a1", "a2")] == [
        "queued, 0 ahead", "queued, 1 ahead", "queued, 2 ahead"
    ]  # fmt: skip


def test_among_equal_turns_the_principal_who_started_longest_ago_goes_first() -> None:
    alice, bob = _job("a1", 1.0, 0), _job("b1", 2.0, 0, principal="bob")
    assert [j.job_id for j in queue_order([alice, bob], {})] == ["a1", "b1"]  # submission
    started = {"alice": 50.0}  # Alice has just had a job start; Bob never
    assert [j.job_id for j in queue_order([alice, bob], {}, started)] == ["b1", "a1"]
    started = {"alice": 50.0, "bob": 60.0}
    assert [j.job_id for j in queue_order([alice, bob], {}, started)] == ["a1", "b1"]


def test_a_higher_priority_goes_before_turns_and_submission() -> None:
    """Alice runs two jobs and queued last, Bob runs none: her job of priority 5 still
    goes first; among Bob's, the one that gave way (-3) goes after the one of 0."""
    urgent = Waiting("urgent", "alice", 9.0, frozenset({0}), priority=5)
    plain = Waiting("plain", "bob", 1.0, frozenset({0}))
    polite = Waiting("polite", "bob", 0.5, frozenset({1}), priority=-3)
    order = queue_order([plain, polite, urgent], {"alice": 2})
    assert [job.job_id for job in order] == ["urgent", "plain", "polite"]
    board = Board(leased=set())
    reasons = queue_pass([plain, polite, urgent], board.try_start, {"alice": 2})
    # The urgent job takes tile 0; Bob's plain one waits for it, the polite one starts.
    assert board.tried == ["urgent", "plain", "polite"]
    assert reasons == {"plain": "queued, 0 ahead: tile 0 leased"}


def test_a_job_free_to_move_is_tried_on_the_tiles_placed_again_not_kept_behind() -> None:
    """A waits for tile 0. B was given tile 0 too, but no tile by its options: placed
    again on tile 2, it starts there. C, placed again on tile 0 (kept by A), stays
    behind; D, which may not move, is never placed again."""
    from dataclasses import replace

    board = Board(leased={0})
    moves = {"B": frozenset({2}), "C": frozenset({0})}
    asked: list[str] = []

    def place_again(job: Waiting) -> Waiting | None:
        asked.append(job.job_id)
        return replace(job, tiles=moves[job.job_id]) if job.job_id in moves else None

    waiting = [_job("A", 1.0, 0), _job("B", 2.0, 0), _job("C", 3.0, 0, 1), _job("D", 4.0, 0)]
    reasons = queue_pass(waiting, board.try_start, place_again=place_again)
    assert asked == ["B", "C", "D"]  # only those whose tiles a job ahead keeps
    assert board.tried == ["A", "B"] and board.leased == {0, 2}
    assert reasons == {
        "A": "queued, 0 ahead: tile 0 leased",
        "C": f"queued, 1 ahead: {BEHIND}",
        "D": f"queued, 2 ahead: {BEHIND}",
    }


def test_a_job_given_way_with_costs_its_principal_no_turn() -> None:
    """Alice runs one job; queued: root's of priority 3, Alice's J2, Bob's of -5 (giving
    way) then Bob's B. Bob's -5 job goes last anyway: counted ahead of B, it put B after
    Alice's J2 though Bob ran nothing. His own job of a priority no lower still counts."""
    root = Waiting("root", "root", 1.0, frozenset({0}), priority=3)
    j2 = Waiting("J2", "alice", 2.0, frozenset({0}))
    low = Waiting("Blow", "bob", 3.0, frozenset({0}), priority=-5)
    b = Waiting("B", "bob", 4.0, frozenset({0}))
    order = queue_order([root, j2, low, b], {"alice": 1})
    assert [job.job_id for job in order] == ["root", "B", "J2", "Blow"]
    b_first = Waiting("B0", "bob", 3.5, frozenset({0}))  # one of his own of the same priority
    order = queue_order([root, j2, low, b_first, b], {"alice": 1})
    assert [job.job_id for job in order] == ["root", "B0", "J2", "B", "Blow"]
