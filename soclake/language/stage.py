"""The refexp stage (a soclake.stage): adds KEY.refexp.json (expressions, dense caption,
per-segment captions, QA) to every sample and rows to the refexps table; the other members
are copied unchanged."""
from __future__ import annotations

import json

import numpy as np

from soclake.language.graph_backend import describe
from soclake.language.scene import from_sample

KINDS = ("attribute", "spatial", "reasoning")


def prepare_params(lake, params: dict) -> dict:
    """Add the lake's category names (for no-target expressions and 'is there' questions)."""
    names = [r[0] for r in lake.con.execute("SELECT name FROM categories ORDER BY category_id").fetchall()]
    return {**params, "vocabulary": names}


def counts(params: dict) -> dict:
    return {(scope, kind): n for scope, key in (("single", "single"), ("multi", "multi"), ("none", "no_target"))
            for kind, n in zip(KINDS, params[key])}


def process(samples: list[tuple[str, dict]], params: dict, seed: int, context: dict):
    from soclake.stage import StageOutput
    out, rows, flagged = [], [], 0
    for key, members in samples:
        info = json.loads(members["json"])
        graph = from_sample(info)
        image_seed = int(np.random.SeedSequence([seed, int(key)]).generate_state(1)[0])
        present = {o.category for o in graph.objects}
        others = [n for n in params["vocabulary"] if n not in present]
        rng = np.random.default_rng(image_seed)
        absent = [others[int(i)] for i in rng.permutation(len(others))[:params["absent_categories"]]]
        doc = describe(graph, image_seed, absent, counts(params))
        new = dict(members)
        new["refexp.json"] = json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()
        out.append((key, new))
        flagged += not graph.objects
        rows += [{"job": context["job"], "fingerprint": context["fingerprint"], "image_id": int(key), "key": key,
                  "text": e["text"], "scope": e["scope"], "kind": e["kind"], "targets": e["targets"],
                  "generator": doc["generator"]} for e in doc["expressions"]]
    return StageOutput(out, {"refexps": rows}, flagged)
