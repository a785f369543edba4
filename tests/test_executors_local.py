"""The local executor: results in task order, retries, and a pool worker that dies (SIGKILL,
the OOM killer) never costs the run (a plain multiprocessing Pool would wait forever for the
lost result), nor the tasks that happened to share the pool with it."""
import os
import signal

from soclake.jobs import executors


def die_once(task):
    """Kill this worker process the first time it sees task 2 (a marker file remembers)."""
    n, marker = task
    if n == 2 and not os.path.exists(marker):
        open(marker, "w").close()
        os.kill(os.getpid(), signal.SIGKILL)
    if n == 3:
        raise ValueError("bad shard")
    if n == 7:
        os.kill(os.getpid(), signal.SIGKILL)  # dies every time
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
    assert outs[3].error == "ValueError: bad shard"


def test_only_the_task_that_kills_its_worker_is_charged():
    tasks = [(n, "/nonexistent/x") for n in (7, 0, 1, 4, 5, 6)]
    outs = list(executors.run_tasks("local", die_once, tasks, workers=2, retries=1))
    assert [o.task[0] for o in outs] == [7, 0, 1, 4, 5, 6]
    assert outs[0].value is None and outs[0].error.startswith("WorkerDied") and outs[0].attempts == 2
    assert [o.value for o in outs[1:]] == [0, 10, 40, 50, 60] and all(o.error is None for o in outs[1:])
