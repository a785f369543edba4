"""The llm language backend against a local OpenAI-protocol server on 127.0.0.1 that answers
well, malformed, slowly, with errors or with wrong ids."""
import json
import time
from collections import Counter

import numpy as np
import pytest

pytest.importorskip("httpx")

from chat_server import ChatServer
from test_language import random_scene

from soclake.errors import SoclakeError
from soclake.spec.load import resolve
from soclake.stages.refexp.llm_backend import describe_batch, graph_check, validate


def good_answer(user: dict) -> dict:
    cats = Counter(o["category"] for o in user["objects"])
    exprs = [{"text": f"the {o['colour']} {o['category']}" if cats[o["category"]] > 1 else f"the {o['category']}",
              "scope": "single", "kind": "attribute", "targets": [o["id"]]}
             for o in user["objects"]
             if cats[o["category"]] == 1 or o["colour"] and sum(p["category"] == o["category"] and
                                                                p["colour"] == o["colour"] for p in user["objects"]) == 1]
    exprs.append({"text": "the unicorn", "scope": "none", "kind": "attribute", "targets": []})
    return {"expressions": exprs}


def reply(body: dict, mode: str) -> str | int:
    """The assistant's answer in `mode` to a request in the llm backend's shape."""
    assert body["response_format"]["type"] == "json_schema"
    if mode == "error":
        return 500
    if mode == "slow":
        time.sleep(1.0)
    user = json.loads(body["messages"][1]["content"])
    if mode in ("good", "slow"):
        return json.dumps(good_answer(user))
    if mode == "malformed":
        return '{"expressions": [ {"text": "the'
    if mode == "bad_ids":
        return json.dumps({"expressions": [{"text": "the cat", "scope": "single", "kind": "attribute",
                                            "targets": [999999]}]})
    assert mode == "wrong"
    return json.dumps({"expressions": [{"text": f"the {user['objects'][0]['category']}", "scope": "multi",
                                        "kind": "attribute", "targets": [o["id"] for o in user["objects"]]}]})


@pytest.fixture
def server():
    s = ChatServer(reply)
    yield s
    s.stop()


def params(url, **kw):
    return resolve({"job": {"name": "l", "input": "x"},
                    "refexp": {"backend": "llm", "base_url": url, "model": "test-model", "retries": 2,
                               "timeout": 0.5, **kw}})["refexp"]


COUNTS = {("single", "attribute"): 2}


def scenes(n=4):
    rng = np.random.default_rng(0)
    return [random_scene(rng, n=5) for _ in range(n)]


def test_good_answers_are_validated_and_checked(server):
    docs = describe_batch(scenes(), COUNTS, params(server.url))
    assert len(server.bodies) == 4 and all(d["expressions"] and "failed" not in d for d in docs)
    checks = Counter(e["check"] for d in docs for e in d["expressions"] + d["rejected"])
    assert checks["verified"] > 0 and checks["contradicted"] == 0
    assert {e["check"] for d in docs for e in d["expressions"]} <= {"verified", "unchecked"}


def test_malformed_answers_are_retried_then_failed(server):
    server.modes = ["malformed"]
    docs = describe_batch(scenes(1), COUNTS, params(server.url))
    assert docs[0]["expressions"] == [] and "malformed JSON" in docs[0]["failed"] and docs[0]["attempts"] == 3


def test_errors_then_success(server):
    server.modes = ["error", "malformed", "good"]
    [doc] = describe_batch(scenes(1), COUNTS, params(server.url))
    assert doc["expressions"] and len(server.bodies) == 3


def test_slow_answers_time_out(server):
    server.modes = ["slow"]
    [doc] = describe_batch(scenes(1), COUNTS, params(server.url, retries=0, timeout=0.2))
    assert doc["expressions"] == [] and "Timeout" in doc["failed"]


def test_unknown_ids_and_wrong_expressions(server):
    server.modes = ["bad_ids"]
    [doc] = describe_batch(scenes(1), COUNTS, params(server.url, retries=0))
    assert "not in the image" in doc["failed"]
    server.modes = ["wrong"]
    g = scenes(1)[0]
    [doc] = describe_batch([g], COUNTS, params(server.url))
    # "the ball" for every object of the image: singular, and not what it refers to
    assert doc["expressions"] == [] and [e["check"] for e in doc["rejected"]] == ["contradicted"]


def test_answers_are_cached(server, tmp_path):
    p = params(server.url)
    first = describe_batch(scenes(), COUNTS, p, str(tmp_path))
    n = len(server.bodies)
    second = describe_batch(scenes(), COUNTS, p, str(tmp_path))
    assert len(server.bodies) == n and first == second


def test_validate_rejects_bad_shapes():
    g = scenes(1)[0]
    oid = g.objects[0].ann_id
    for bad in ('[]', '{"expressions": []}', '{"expressions": [{"text": "x", "scope": "single", "kind": "attribute", '
                '"targets": [%d, %d]}]}' % (oid, g.objects[1].ann_id),
                '{"expressions": [{"text": "", "scope": "none", "kind": "attribute", "targets": []}]}'):
        with pytest.raises(ValueError):
            validate(bad, g)
    assert graph_check({"text": "the thing next to the cup", "scope": "single", "targets": [oid]}, g) == "unchecked"


def test_graph_check_uses_the_graph_rules():
    from test_language import RULES, obj

    from soclake.stages.refexp.scene import SceneGraph
    ball = obj(1, "ball", "red", (10, 10, 80, 80), 5000, 0)
    cup = obj(2, "cup", "blue", (400, 10, 80, 80), 5000, 1)
    pale = obj(3, "cup", "blue", (200, 200, 80, 80), 5000, 2, share=0.35)  # blue does not dominate
    g = SceneGraph(600, 300, [ball, cup, pale], RULES)

    def check(text, targets, scope="single"):
        return graph_check({"text": text, "scope": scope, "targets": targets}, g)
    assert check("the red ball", [1]) == "verified" and check("The red ball.", [1]) == "verified"
    assert check("the blue ball", [1]) == "contradicted"
    assert check("the ball to the left of the blue cup", [1]) == "uncertain"  # the pale cup may be blue
    assert check("the ball to the left of the cup on the right", [1]) == "verified"
    assert check("the blue cup", [2]) == "uncertain"
    assert check("all the cups", [2, 3], "multi") == "verified"
    assert check("the shiny red ball next to the cup", [1]) == "unchecked"
    assert check("the shiny blue ball next to the cup", [1]) == "contradicted"  # a colour word, checked anyway


def test_stage_with_the_llm_backend(server, sample_lake):
    from conftest import job_spec

    from soclake.jobs import compose as jobs
    from soclake.stages import runner as stage
    jobs.run(sample_lake, job_spec("llm-in", job={"images": 3, "shard_size": 3}), workers=1, progress=False)
    spec = resolve({"job": {"name": "llm-out", "input": "llm-in"},
                    "refexp": {"backend": "llm", "base_url": server.url, "model": "m", "timeout": 5.0}})
    s = stage.run(sample_lake, spec, workers=1, progress=False)
    assert s.images == 3 and not s.failed and s.flagged == 0
    rows = sample_lake.query("SELECT count(*) n, any_value(generator) g FROM refexps WHERE fingerprint = $fp",
                             {"fp": s.fingerprint}).to_pylist()[0]
    assert rows["n"] > 0 and rows["g"] == "llm"
    with pytest.raises(SoclakeError, match="base_url and model"):
        stage.run(sample_lake, resolve({"job": {"name": "x", "input": "llm-in"}, "refexp": {"backend": "llm"}}))
