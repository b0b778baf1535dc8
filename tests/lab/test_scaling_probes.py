"""Chapter 07's knee tables and what its check says about a wrong reading of one."""

from accord_app.lab.loadtest import kept_up, sustained_throughput
from accord_app.lab.scaling_probes import knee_cases, knee_hint, shortfalls


def test_the_tables_answer_what_the_benchmark_reads_and_every_step_says_why() -> None:
    for seed in range(50):
        for steps, limit, expected in knee_cases(seed):
            assert abs(sustained_throughput(steps, limit) - expected) < 1e-6
            for step in steps:
                assert (shortfalls(step, limit) == []) == kept_up(step, limit)


def test_a_wrong_reading_is_told_the_step_it_chose_and_why_that_one_does_not_count() -> None:
    steps, limit, expected = knee_cases(seed=7)[1]
    highest = max(steps, key=lambda step: step.offered)
    hint = knee_hint(steps, limit, expected, highest.offered)
    assert "the highest load offered, kept up or not" in hint
    assert "sent only 45% of the offered load" in hint
    [best] = [step for step in steps if abs(step.offered - expected) < 1e-6]
    assert "what the step offered" in knee_hint(steps, limit, expected, best.acked)
    assert "the 85% rule is about what was sent" in knee_hint(steps, limit, expected, 0.0)
    assert "do not round" in knee_hint(steps, limit, expected, float(int(expected)))
    assert "a number of messages per second" in knee_hint(steps, limit, expected, None)
