"""The refexp stage (a soclake.stage): adds KEY.refexp.json (expressions, dense caption,
per-segment captions, QA, and for variation jobs the group's variation QA) to every sample
and rows to the refexps table; the other members are copied unchanged."""
from __future__ import annotations

import json

import numpy as np

from soclake.errors import SoclakeError
from soclake.language import variation_qa
from soclake.language.graph_backend import describe
from soclake.language.scene import Rules, from_sample
from soclake.render.scene_facts import CONTACT_MAX_PX

KINDS = ("attribute", "spatial", "reasoning")


def check(params: dict) -> None:
    from soclake.language import llm_backend
    if params["contact_px"] > CONTACT_MAX_PX:
        raise SoclakeError(f"[refexp] contact_px = {params['contact_px']} exceeds the {CONTACT_MAX_PX} px up to "
                           f"which compose records mask contacts; use at most {CONTACT_MAX_PX}")
    if params["colour_absent"] > params["colour_dominance"]:
        raise SoclakeError(f"[refexp] colour_absent ({params['colour_absent']}) must not exceed colour_dominance "
                           f"({params['colour_dominance']})")
    llm_backend.check(params)  # endpoint settings are checked before any shard is read


def prepare_params(lake, params: dict) -> dict:
    """Add the lake's category names (for no-target expressions and 'is there' questions; only
    categories of labelled segments, never the distractors' own) and, for a local lake, the
    LLM answer cache folder."""
    from soclake import storage
    names = [r[0] for r in lake.con.execute("SELECT category FROM category_counts WHERE segments > 0 "
                                            "ORDER BY category_id").fetchall()]
    cache = lake.path("cache", "llm") if storage.is_local(lake.fs) else None
    return {**params, "vocabulary": names, "cache_dir": cache}


def counts(params: dict) -> dict:
    return {(scope, kind): n for scope, key in (("single", "single"), ("multi", "multi"), ("none", "no_target"))
            for kind, n in zip(KINDS, params[key])}


def process(samples: list[tuple[str, dict]], params: dict, seed: int, context: dict):
    from soclake.stage import StageOutput
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
        from soclake.language.llm_backend import describe_batch
        for doc, answer in zip(docs, describe_batch(graphs, counts(params), params, params.get("cache_dir"))):
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
