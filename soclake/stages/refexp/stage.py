"""The refexp stage (see soclake.stages.base): adds KEY.refexp.json (expressions, dense caption,
per-segment captions, QA, and for variation jobs the group's variation QA) to every sample
and rows to the refexps table; the other members are copied unchanged."""
from __future__ import annotations

import json

import numpy as np

from soclake import storage
from soclake.errors import SoclakeError
from soclake.render.scene_facts import CONTACT_MAX_PX
from soclake.stages.base import Stage, StageOutput
from soclake.stages.refexp import llm_backend, soc_request, variation_qa
from soclake.stages.refexp.graph_backend import describe
from soclake.stages.refexp.scene import Rules, from_sample

KINDS = ("attribute", "spatial", "reasoning")


def check(params: dict) -> None:
    if params["contact_px"] > CONTACT_MAX_PX:
        raise SoclakeError(f"[refexp] contact_px = {params['contact_px']} exceeds the {CONTACT_MAX_PX} px up to "
                           f"which compose records mask contacts; use at most {CONTACT_MAX_PX}")
    if params["colour_absent"] > params["colour_dominance"]:
        raise SoclakeError(f"[refexp] colour_absent ({params['colour_absent']}) must not exceed colour_dominance "
                           f"({params['colour_dominance']})")
    llm_backend.check(params)  # endpoint settings are checked before any shard is read
    if params["backend"] == "llm" and params["request"] == "soc":
        soc_request.check(params)


def prepare_params(lake, params: dict) -> dict:
    """Add the lake's category names (for no-target expressions and 'is there' questions; only
    categories of labelled segments, never the distractors' own) and, for a local lake, the
    LLM answer cache folder."""
    names = [r[0] for r in lake.con.execute("SELECT category FROM category_counts WHERE segments > 0 "
                                            "ORDER BY category_id").fetchall()]
    cache = lake.path("cache", "llm") if storage.is_local(lake.fs) else None
    return {**params, "vocabulary": names, "cache_dir": cache}


def counts(params: dict) -> dict:
    return {(scope, kind): n for scope, key in (("single", "single"), ("multi", "multi"), ("none", "no_target"))
            for kind, n in zip(KINDS, params[key])}


def process(samples: list[tuple[str, dict]], params: dict, seed: int, context: dict) -> StageOutput:
    out, rows, flagged = [], [], 0
    infos = [json.loads(m["json"]) for _, m in samples]
    rules = Rules.from_params(params)
    graphs = [from_sample(info, rules) for info in infos]
    docs = []
    for (key, _), graph in zip(samples, graphs):
        image_seed = int(np.random.SeedSequence([seed, int(key)]).generate_state(1)[0])
        present = {o.category for o in graph.labelled}
        others = [n for n in params["vocabulary"] if n not in present]
        rng = np.random.default_rng(image_seed)
        absent = [others[int(i)] for i in rng.permutation(len(others))[:params["absent_categories"]]]
        docs.append(describe(graph, image_seed, absent, counts(params)))
    if params["backend"] == "llm":  # the LLM writes the expressions; captions and QA stay exact
        answers = (soc_request.describe_batch(infos, graphs, counts(params), params, params.get("cache_dir"))
                   if params["request"] == "soc" else
                   llm_backend.describe_batch(graphs, counts(params), params, params.get("cache_dir")))
        for doc, answer in zip(docs, answers):
            doc.update(answer)
    variation = variation_qa.by_key([(key, info, g) for (key, _), info, g in zip(samples, infos, graphs)])
    for (key, _), info, doc in zip(samples, infos, docs):
        if key in variation:
            doc.update(variation=info["variation"], variation_qa=variation[key])
    for (key, members), graph, doc in zip(samples, graphs, docs):
        new = dict(members)
        new["refexp.json"] = json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()
        out.append((key, new))
        flagged += (not graph.objects) or ("failed" in doc)
        rows += [{"job": context["job"], "fingerprint": context["fingerprint"], "image_id": int(key), "key": key,
                  "text": e["text"], "scope": e["scope"], "kind": e["kind"], "targets": e["targets"],
                  "generator": doc["generator"]} for e in doc["expressions"]]
    return StageOutput(out, {"refexps": rows}, flagged)


class Refexp(Stage):
    """The refexp stage: expressions, captions and QA for every sample."""

    name = "refexp"

    def check(self, params: dict) -> None:
        check(params)

    def prepare_params(self, lake, params: dict) -> dict:
        return prepare_params(lake, params)

    def inputs_digest(self, params: dict) -> str:
        """A template of one's own (request = "soc") decides the texts: its content is an input."""
        return soc_request.template_digest(params) if params["backend"] == "llm" and params["request"] == "soc" else ""

    def process(self, samples, params: dict, seed: int, context: dict) -> StageOutput:
        return process(samples, params, seed, context)


STAGE = Refexp()
