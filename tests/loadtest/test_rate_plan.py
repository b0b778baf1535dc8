"""The stepped load's plan (which rate comes next) and the reading of its steps: pure logic."""

from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from accord_app.lab.loadtest import (
    Membership,
    RatePlan,
    Step,
    latency_bucket,
    percentile,
    sustained_throughput,
)


def walk(plan: RatePlan, keeps_up: Callable[[float], bool]) -> list[float]:
    rates, rate = [], plan.next(None, True)
    while rate is not None:
        rates.append(rate)
        rate = plan.next(rate, keeps_up(rate))
    return rates


def test_fixed_rates_run_in_order() -> None:
    assert walk(RatePlan([10, 20, 30]), lambda rate: False) == [10, 20, 30]


def test_fixed_rates_stop_after_two_steps_in_a_row_past_the_knee() -> None:
    plan = RatePlan([10, 20, 30, 40, 50, 60], stop_on_bad=True)
    assert walk(plan, lambda rate: rate != 20 and rate < 35) == [10, 20, 30, 40, 50]


@given(
    capacity=st.floats(min_value=1, max_value=10_000),
    start=st.floats(min_value=1, max_value=10_000),
    precision=st.sampled_from([1.05, 1.08, 1.3]),
)
def test_a_search_brackets_the_knee_within_its_precision(
    capacity: float, start: float, precision: float
) -> None:
    plan = RatePlan([], search_from=start, precision=precision, max_steps=40)
    rates = walk(plan, lambda rate: rate <= capacity)
    assert plan.good <= capacity < plan.bad
    assert plan.bad <= plan.good * precision
    assert rates[0] == start and len(rates) <= 40


def test_a_search_from_near_the_knee_takes_few_steps() -> None:
    plan = RatePlan([], search_from=20, precision=1.08)
    rates = walk(plan, lambda rate: rate <= 45)
    assert [round(rate) for rate in rates] == [20, 30, 45, 68, 68, 55, 50, 47, 45]


def test_a_lucky_last_step_is_tried_again_and_the_answer_drops_when_it_fails() -> None:
    luck = iter([True])  # the first try at 73.4 keeps up by chance; the capacity is 70
    plan = RatePlan([], search_from=40, precision=1.08)
    rates = walk(plan, lambda rate: rate <= 70 or (73 < rate < 74 and next(luck, False)))
    assert [round(rate) for rate in rates].count(73) == 2
    assert plan.good <= 70 < plan.bad


def test_a_first_failure_that_does_not_repeat_was_a_hiccup() -> None:
    hiccups = iter([False])  # the first try at 40 fails, the second keeps up
    plan = RatePlan([], search_from=40, precision=1.08)
    rates = walk(plan, lambda rate: rate <= 60 and next(hiccups, True))
    assert [round(rate) for rate in rates][:5] == [40, 40, 60, 90, 90]
    assert plan.good <= 60 < plan.bad


def test_an_overload_beyond_doubt_is_not_tried_twice() -> None:
    plan = RatePlan([], search_from=40, precision=1.08)
    rate, rates = plan.next(None, True), []
    while rate is not None:
        rates.append(round(rate))
        rate = plan.next(rate, rate <= 45, overloaded=rate > 50)
    assert rates[:3] == [40, 60, 49]  # no second try at 60: it left messages unacked


def test_a_search_stops_at_its_step_limit() -> None:
    assert len(walk(RatePlan([], search_from=10, max_steps=5), lambda rate: True)) == 5


def step(
    offered: float, acked: float, p99: float | None, failures: int = 0, sent: float | None = None
) -> Step:
    ack = {"per_second": acked, "p50_ms": p99, "p99_ms": p99, "failures": {}}
    if failures:
        ack["failures"] = {"ack_timeout": failures}
    return Step.of(
        {
            "offered_per_second": offered,
            "sent_per_second": offered if sent is None else sent,
            "generator_cpu_max": 0.1,
            "names": {"send→ack": ack},
        }
    )


def test_sustained_throughput_is_the_best_offered_load_that_was_kept_up_with() -> None:
    steps = [
        step(10, 10, 20),
        step(40, 39, 250),  # exactly at the limit: kept up
        step(20, 20, 400),  # a hiccup at a low load does not cap the result
        step(80, 60, 2000),  # past the knee: slow
        step(60, 60, 100, failures=1),  # a failure
        step(70, 50, 100, sent=70),  # fell behind what was sent
        step(90, 60, 100, sent=60),  # the generators fell short: the step measured nothing
    ]
    assert sustained_throughput(steps, p99_limit_ms=250) == 40
    assert sustained_throughput(steps, p99_limit_ms=10) == 0
    assert sustained_throughput([], p99_limit_ms=250) == 0


def test_a_load_tried_twice_counts_as_its_last_try_says() -> None:
    lucky_then_not = [step(80, 80, 100), step(84, 84, 200), step(84, 84, 900)]
    assert sustained_throughput(lucky_then_not, p99_limit_ms=250) == 80
    hiccup_then_fine = [step(80, 80, 100), step(84, 84, 900), step(84, 84, 200)]
    assert sustained_throughput(hiccup_then_fine, p99_limit_ms=250) == 84


def test_a_few_percent_fewer_sent_than_offered_is_the_randomness_of_send_times() -> None:
    assert sustained_throughput([step(100, 92, 50, sent=93)], 250) == 100


def test_latencies_are_kept_in_buckets_and_read_back_as_percentiles() -> None:
    assert [latency_bucket(ms) for ms in (0.123, 9.96, 10.4, 999.4, 1004)] == [
        0.1,
        10.0,
        10.0,
        999.0,
        1000.0,
    ]
    histogram = {1.0: 50, 2.0: 40, 30.0: 9, 900.0: 1}
    assert percentile(histogram, 0.5) == 1.0
    assert percentile(histogram, 0.9) == 2.0
    assert percentile(histogram, 0.99) == 30.0
    assert percentile(histogram, 1.0) == 900.0
    assert percentile({}, 0.99) is None


def test_members_are_seated_so_that_their_shares_make_the_whole_rate() -> None:
    even = Membership(channels=5, members=3)
    seats = [even.seat(slot) for slot in range(even.total)]
    assert even.total == 15
    assert sorted(channel for channel, _ in seats) == sorted(list(range(5)) * 3)
    assert abs(sum(share for _, share in seats) - 1) < 1e-9
    hot = Membership(channels=20, members=2, hot_share=40 / 59, hot_members=20)
    seats = [hot.seat(slot) for slot in range(hot.total)]
    assert hot.total == 20 + 19 * 2
    assert [channel for channel, _ in seats].count(0) == 20
    assert abs(sum(share for channel, share in seats if channel == 0) - 40 / 59) < 1e-9
    assert abs(sum(share for _, share in seats) - 1) < 1e-9
    assert hot.seat(hot.total) == hot.seat(0)  # a slot past the end wraps around


def test_a_hot_share_that_makes_no_sense_is_refused() -> None:
    with pytest.raises(ValueError, match="from 0 to below 1"):
        Membership(channels=5, members=2, hot_share=1.0)
    with pytest.raises(ValueError, match="other channels beside it"):
        Membership(channels=1, members=2, hot_share=0.5)
