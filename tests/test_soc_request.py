"""[refexp] request = "soc" against a local OpenAI-protocol server on 127.0.0.1 that checks the
request's shape (one user message, SOC's object table and counts, SOC's response schema,
temperature) and answers with valid, partly invalid, invalid, malformed or erroring JSON."""
import json
import re

import pytest

pytest.importorskip("httpx")

from chat_server import ChatServer

from soclake.errors import SoclakeError
from soclake.resources import package_data
from soclake.spec.load import resolve
from soclake.stages.refexp import soc_request
from soclake.stages.refexp.scene import from_sample

LINE = re.compile(r"^\[ID: (\d+)\] (.+?) \| short_phrase: (.*?) \| features: (\[.*?\]) \| description: (.*?) "
                  r"\| bbox: \[(\d+), (\d+), (\d+), (\d+)\]$")


def info():
    """A KEY.json with three objects, as the compose stage writes it."""
    def inst(ann_id, cat, phrase, feats, bbox):
        return {"ann_id": ann_id, "panoptic_id": ann_id % 1000, "category": cat, "bbox": bbox,
                "area": int(bbox[2] * bbox[3]), "layer": ann_id % 1000,
                "attributes": {"short_phrase": phrase, "features": feats, "description": f"a {phrase}",
                               "subcategory": "0", "dominant_color": "red"}}
    return {"key": "000000007", "image_id": 7, "width": 640, "height": 480, "instances": [
        inst(7001, "ball", "red rubber ball", ["red", "round"], [10.0, 20.0, 100.0, 80.0]),
        inst(7002, "ball", "blue glass ball", [], [400.0, 30.0, 90.0, 90.0]),
        inst(7003, "star", "golden star", ["golden"], [200.0, 300.0, 60.0, 60.0])]}


def answer(ids: list[int], mode: str) -> dict:
    a, b, c = ids
    good = {"single_object": {"attribute": [{"q": "red rubber ball?", "ids": [a]}], "spatial": [{"q": "ball on the right.", "ids": [b]}],
                              "reasoning": [{"q": "star below the balls", "ids": [c]}]},
            "multi_object": {"attribute": [{"q": "both balls", "ids": [a, b]}], "spatial": [{"q": "everything", "ids": [a, b, c]}],
                             "reasoning": []}}
    if mode == "mixed":
        good["single_object"]["attribute"] += [{"q": "the unicorn", "ids": [999]}, {"q": "two things", "ids": [a, b]},
                                               {"q": "", "ids": [a]}]
        good["multi_object"]["reasoning"] = [{"q": "just one", "ids": [c]}, {"q": "ids as text", "ids": ["7001", "x"]}]
    if mode == "all_bad":
        good = {"single_object": {"attribute": [{"q": "nothing", "ids": [5]}], "spatial": [], "reasoning": []},
                "multi_object": {"attribute": [{"q": "lonely", "ids": [a]}], "spatial": [], "reasoning": []}}
    return good


def reply(body: dict, mode: str) -> str | int:
    """SOC's answer in `mode` for the objects the request's table lists."""
    if mode == "error":
        return 503
    ids = [int(m.group(1)) for m in (LINE.match(line) for line in body["messages"][0]["content"].splitlines()) if m]
    return '{"single_object": [' if mode == "malformed" else json.dumps(answer(ids[-3:], mode))


@pytest.fixture
def server():
    s = ChatServer(reply)
    yield s
    s.stop()


def params(url, **kw):
    return {**resolve({"job": {"name": "r", "input": "x"},
                       "refexp": {"backend": "llm", "request": "soc", "base_url": url, "model": "m", "temperature": 0.1,
                                  "retries": 2, **kw}})["refexp"], "spec_dir": "."}


COUNTS = {(s, k): n for s, ns in (("single", (6, 6, 6)), ("multi", (3, 3, 3))) for k, n in
          zip(("attribute", "spatial", "reasoning"), ns)}


def test_the_request_is_socs_single_user_message(server):
    doc, = soc_request.describe_batch([info()], [from_sample(info())], COUNTS, params(server.url))
    body, = server.bodies
    assert body["model"] == "m" and body["temperature"] == 0.1 and "max_tokens" not in body
    assert [m["role"] for m in body["messages"]] == ["user"]
    fmt = body["response_format"]
    assert fmt["type"] == "json_schema" and fmt["json_schema"]["name"] == "RefExpressions"
    schema = fmt["json_schema"]["schema"]
    assert schema == json.loads(package_data("soc_refexp_schema.json").read_text())
    assert set(schema["required"]) == {"single_object", "multi_object"}
    group = schema["properties"]["single_object"]
    assert set(group["required"]) == {"attribute", "spatial", "reasoning"}
    assert group["properties"]["spatial"]["items"]["required"] == ["q", "ids"]
    text = body["messages"][0]["content"]
    lines = text.splitlines()
    table = [line for line in lines if line.startswith("[ID: 700")]
    assert table == ["[ID: 7001] ball | short_phrase: red rubber ball | features: ['red', 'round'] | "
                     "description: a red rubber ball | bbox: [10, 20, 100, 80]",
                     "[ID: 7002] ball | short_phrase: blue glass ball | features: [] | description: a blue glass ball "
                     "| bbox: [400, 30, 90, 90]",
                     "[ID: 7003] star | short_phrase: golden star | features: ['golden'] | description: a golden star "
                     "| bbox: [200, 300, 60, 60]"]
    for scope, kind, n in (("single", "attribute", 6), ("single", "reasoning", 6), ("multi", "spatial", 3)):
        assert f"- {scope}/{kind}: {n} expressions" in lines
    assert "$" not in text and "single_object" in text
    assert doc["request"] == "soc" and len(doc["expressions"]) == 5 and doc["dropped"] == []
    texts = {e["text"]: e for e in doc["expressions"]}
    assert texts["red rubber ball"]["targets"] == [7001] and texts["ball on the right"]["scope"] == "single"
    assert texts["everything"] == {**texts["everything"], "scope": "multi", "kind": "spatial", "targets": [7001, 7002, 7003]}
    assert all(e["check"] in ("verified", "contradicted", "unchecked", "uncertain") for e in doc["expressions"])


def test_invalid_expressions_are_dropped_one_by_one_with_their_reason(server):
    server.modes = ["mixed"]
    doc, = soc_request.describe_batch([info()], [from_sample(info())], COUNTS, params(server.url))
    assert len(doc["expressions"]) == 5 and "failed" not in doc
    reasons = {d["text"]: d["reason"] for d in doc["dropped"]}
    assert reasons == {"the unicorn": "ids [999] are not objects of the image",
                       "two things": "a single-object expression with 2 ids", "": "no text",
                       "just one": "a multi-object expression with 1 id",
                       "ids as text": "ids are not a list of integers"}
    assert len(server.bodies) == 1


def test_an_image_fails_only_when_nothing_valid_remains_after_the_retries(server):
    server.modes = ["error", "malformed", "all_bad"]
    doc, = soc_request.describe_batch([info()], [from_sample(info())], COUNTS, params(server.url, retries=2))
    assert doc["expressions"] == [] and doc["failed"].startswith("no valid expression") and doc["attempts"] == 3
    assert {d["reason"] for d in doc["dropped"]} == {"ids [5] are not objects of the image",
                                                     "a multi-object expression with 1 id"}
    server.modes, server.bodies = ["error", "error", "good"], []
    doc, = soc_request.describe_batch([info()], [from_sample(info())], COUNTS, params(server.url, retries=2))
    assert len(doc["expressions"]) == 5 and doc["attempts"] == 3 and len(server.bodies) == 3


def test_a_template_of_ones_own(server, tmp_path):
    t = tmp_path / "mine.txt"
    t.write_text("Objects:\n$objects\nCounts:\n$counts\nShape: $schema\n")
    p = params(server.url, template="mine.txt")
    p["spec_dir"] = str(tmp_path)
    soc_request.describe_batch([info()], [from_sample(info())], COUNTS, p)
    assert server.bodies[0]["messages"][0]["content"].startswith("Objects:\n[ID: 7001] ball")
    t.write_text("no placeholders")
    soc_request.load_template.cache_clear()
    with pytest.raises(SoclakeError, match=r"lacks \$objects, \$counts, \$schema"):
        soc_request.check(p)


def test_a_refexp_job_with_the_soc_request(server, sample_lake):
    from conftest import job_spec

    from soclake.jobs import compose as jobs
    from soclake.stages.runner import run
    jobs.run(sample_lake, job_spec("soc-rq-in", job={"images": 2, "shard_size": 2}), workers=1, progress=False)
    spec = resolve({"job": {"name": "soc-rq", "input": "soc-rq-in"},
                    "refexp": {"backend": "llm", "request": "soc", "base_url": server.url, "model": "m",
                               "temperature": 0.1}})
    summary = run(sample_lake, spec, workers=1, progress=False)
    assert summary.images == 2 and not summary.failed
    rows = sample_lake.query("SELECT text, scope, kind, generator FROM refexps WHERE job = 'soc-rq'").to_pylist()
    assert rows and {r["generator"] for r in rows} == {"llm"} and {r["scope"] for r in rows} <= {"single", "multi"}
