"""The local executor: results in task order, retries, and a pool worker that dies (SIGKILL,
the OOM killer) costs its tasks an attempt, never the run (a plain multiprocessing Pool would
wait forever for the lost result)."""
import os
import signal

from soclake import executors


def die_once(task):
    """Kill this worker process the first time it sees task 2 (a marker file remembers)."""
    n, marker = task
    if n == 2 and not os.path.exists(marker):
        open(marker, "w").close()
        os.kill(os.getpid(), signal.SIGKILL)
    if n == 3:
        raise ValueError("bad shard")
    return n * 10


def test_results_in_order_with_retries_and_failures():
    outs = list(executors.run_tasks("local", die_once, [(n, "/nonexistent/x") for n in (0, 1, 3, 4)], workers=1,
                                    retries=2))
    assert [(o.task[0], o.value, o.attempts) for o in outs] == [(0, 0, 1), (1, 10, 1), (3, None, 3), (4, 40, 1)]
    assert outs[2].error == "ValueError: bad shard"


def test_a_killed_worker_costs_an_attempt_not_the_run(tmp_path):
    marker = str(tmp_path / "died")
    tasks = [(n, marker) for n in range(6)]
    outs = list(executors.run_tasks("local", die_once, tasks, workers=2, retries=1))
    assert [o.task[0] for o in outs] == list(range(6))
    assert [o.value for o in outs] == [0, 10, 20, None, 40, 50]
    assert outs[3].error == "ValueError: bad shard" and outs[2].attempts == 2
    os.unlink(marker)
    outs = list(executors.run_tasks("local", die_once, [(2, marker), (4, marker)], workers=2, retries=0))
    assert outs[0].error.startswith("WorkerDied") and outs[0].value is None
