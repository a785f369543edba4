"""The `llm` language backend: referring expressions from an OpenAI-compatible chat endpoint
(vLLM in production), one request per image asking for every bucket as JSON that matches a
JSON schema. Answers are validated (shape, referenced ids exist, target counts agree with
the scope) and every text the graph grammar can read is checked by the graph backend's own
rules (colour words, positions, relations, margins): expressions it finds false or uncertain
are moved to "rejected" with the reason; an image whose answers stay invalid after the
retries is recorded as failed, never written with unvalidated content. Results are cached by (image, prompt, model), so reruns do not pay twice.
httpx is imported here only (pip install 'soclake[llm]').
"""
from __future__ import annotations

import asyncio
import hashlib
import json
import os
import re

from soclake.colour_names import BASIC_TERMS
from soclake.errors import SoclakeError
from soclake.stages.refexp.parse import parse
from soclake.stages.refexp.programs import plural, referents, scope_of
from soclake.stages.refexp.scene import SceneGraph

SCHEMA = {
    "type": "object",
    "properties": {"expressions": {"type": "array", "items": {
        "type": "object",
        "properties": {"text": {"type": "string"}, "scope": {"enum": ["single", "multi", "none"]},
                       "kind": {"enum": ["attribute", "spatial", "reasoning"]},
                       "targets": {"type": "array", "items": {"type": "integer"}}},
        "required": ["text", "scope", "kind", "targets"]}}},
    "required": ["expressions"],
}
SYSTEM = ("You write referring expressions for object-detection training. Given the objects of one image "
          "(id, category, short phrase, colour, box [x, y, w, h] in pixels), return JSON with a list "
          "'expressions'. Each has 'text' (a noun phrase), 'scope' (single: exactly one object; multi: two or "
          "more; none: no object in the image), 'kind' (attribute, spatial or reasoning) and 'targets' (the ids "
          "it refers to, empty for none). Every expression must be true of the image. Use an object's colour "
          "only as given (null: no colour word). 'other_visible_objects' are visible but not to be referred "
          "to; an expression about 'objects' in general must stay true with them in view.")


def endpoint(params: dict) -> tuple[str, str, str]:
    base = params.get("base_url") or os.environ.get("SOCLAKE_LLM_BASE_URL", "")
    model = params.get("model") or os.environ.get("SOCLAKE_LLM_MODEL", "")
    if not base or not model:
        raise SoclakeError("the llm backend needs [refexp] base_url and model (or $SOCLAKE_LLM_BASE_URL and "
                           "$SOCLAKE_LLM_MODEL), e.g. a vLLM server: vllm serve Qwen/QwQ-32B-AWQ --port 8000")
    return base.rstrip("/"), model, os.environ.get(params.get("api_key_env") or "SOCLAKE_LLM_API_KEY", "EMPTY")


def check(params: dict) -> None:
    if params["backend"] == "llm":
        endpoint(params)
        try:  # an optional extra (llm), imported only by this backend
            import httpx  # noqa: F401
        except ImportError:
            raise SoclakeError("the llm backend needs httpx: pip install 'soclake[llm]'") from None


def user_prompt(graph: SceneGraph, counts: dict) -> str:
    """The objects an expression may refer to (annotated, >= min_pixels, colour as measured) and
    the other visible ones (too small, or unlabelled)."""
    objects = [{"id": o.ann_id, "category": o.category, "short_phrase": o.phrase, "colour": o.colour,
                "box": [round(v, 1) for v in o.bbox]} for o in graph.objects if o.usable]
    others = [{"box": [round(v, 1) for v in o.bbox]} for o in graph.objects if not o.usable]
    want = {f"{scope}/{kind}": n for (scope, kind), n in sorted(counts.items()) if n}
    return json.dumps({"image": {"width": graph.width, "height": graph.height}, "objects": objects,
                       "other_visible_objects": others, "expressions_per_bucket": want}, sort_keys=True)


def validate(answer: str, graph: SceneGraph) -> list[dict]:
    """Parsed, validated expressions; ValueError (with the reason) for anything invalid."""
    try:
        doc = json.loads(answer)
    except (TypeError, ValueError) as e:
        raise ValueError(f"malformed JSON ({e})") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("expressions"), list) or not doc["expressions"]:
        raise ValueError("no 'expressions' list")
    ids = {o.ann_id for o in graph.labelled if o.usable}
    out = []
    for e in doc["expressions"]:
        if not isinstance(e, dict) or not isinstance(e.get("text"), str) or not e["text"].strip():
            raise ValueError(f"expression without text: {str(e)[:80]}")
        targets = e.get("targets")
        if not isinstance(targets, list) or not all(isinstance(t, int) and not isinstance(t, bool) for t in targets):
            raise ValueError(f"targets of {e['text']!r} are not a list of ids")
        if not set(targets) <= ids:
            raise ValueError(f"{e['text']!r} refers to ids {sorted(set(targets) - ids)} that are not in the image")
        scope, kind = e.get("scope"), e.get("kind")
        if scope not in ("single", "multi", "none") or kind not in ("attribute", "spatial", "reasoning"):
            raise ValueError(f"{e['text']!r} has scope {scope!r} / kind {kind!r}")
        if (scope == "single") != (len(set(targets)) == 1) or (scope == "none") != (not targets):
            raise ValueError(f"{e['text']!r}: scope {scope} but {len(set(targets))} targets")
        out.append({"text": e["text"].strip(), "scope": scope, "kind": kind, "targets": sorted(set(targets))})
    return out


def graph_check(expr: dict, graph: SceneGraph, vocabulary: list[str] = ()) -> str:
    """The graph backend's verdict on an expression: 'verified' (its referents are certain and
    are the targets), 'contradicted', 'uncertain' (a margin could change them) when the text is
    in the graph grammar; otherwise its colour words are checked where a "<colour> <category>"
    names a target's category: 'contradicted' if the target does not show it dominantly, else
    'unchecked'."""
    categories = sorted({o.category for o in graph.labelled} | set(vocabulary))
    got = parse(expr["text"], categories)
    if got is None:
        return _colour_words_check(expr, graph)
    sel, many = got
    ref = referents(sel, graph)
    if ref is None:
        return "uncertain"
    if sorted(ref) != expr["targets"] or scope_of(ref) != expr["scope"] or many != (expr["scope"] == "multi"):
        return "contradicted"
    return "verified"


def _colour_words_check(expr: dict, graph: SceneGraph) -> str:
    text = expr["text"].lower().replace("gray", "grey")
    by_id = graph.by_id()
    for colour in BASIC_TERMS:
        for o in (by_id[t] for t in expr["targets"]):
            if re.search(rf"\b{colour} (\w+ )?({re.escape(o.category)}|{re.escape(plural(o.category))})\b", text) \
                    and sum(by_id[t].category == o.category for t in expr["targets"]) == 1 and o.colour != colour:
                return "contradicted"
    return "unchecked"


async def _ask(client, base: str, model: str, key: str, prompt: str, params: dict) -> str:
    body = {"model": model, "temperature": params["temperature"],
            "messages": [{"role": "system", "content": SYSTEM}, {"role": "user", "content": prompt}],
            "response_format": {"type": "json_schema", "json_schema": {"name": "refexps", "schema": SCHEMA}}}
    r = await client.post(f"{base}/chat/completions", json=body, headers={"Authorization": f"Bearer {key}"},
                          timeout=params["timeout"])
    r.raise_for_status()
    return r.json()["choices"][0]["message"]["content"]


async def _one(client, sem, graph, prompt, params, cache_dir) -> dict:
    base, model, key = endpoint(params)
    cache_key = hashlib.sha256(f"{model}\0{SYSTEM}\0{prompt}".encode()).hexdigest()
    path = os.path.join(cache_dir, f"{cache_key}.json") if cache_dir else None
    if path and os.path.exists(path):
        return json.load(open(path))
    errors = []
    for attempt in range(params["retries"] + 1):
        if attempt:
            await asyncio.sleep(min(0.05 * 2 ** attempt, 5.0))
        try:
            async with sem:
                answer = await _ask(client, base, model, key, prompt, params)
            exprs = validate(answer, graph)
        except Exception as e:  # network, HTTP status, protocol or validation: retried
            errors.append(f"{type(e).__name__}: {e}"[:200])
            continue
        for e in exprs:
            e["check"] = graph_check(e, graph, params.get("vocabulary") or [])
        doc = {"generator": "llm", "model": model,
               "expressions": [e for e in exprs if e["check"] in ("verified", "unchecked")],
               "rejected": [e for e in exprs if e["check"] not in ("verified", "unchecked")]}
        if path:
            os.makedirs(cache_dir, exist_ok=True)
            with open(path + ".tmp", "w") as f:
                json.dump(doc, f)
            os.replace(path + ".tmp", path)
        return doc
    return {"generator": "llm", "model": model, "expressions": [], "failed": errors[-1] if errors else "no answer",
            "attempts": len(errors)}


def describe_batch(graphs: list[SceneGraph], counts: dict, params: dict, cache_dir: str | None = None) -> list[dict]:
    """One document per image, requests in parallel (at most params['concurrency'] in flight)."""
    import httpx  # optional extra (llm): see check()

    async def main():
        sem = asyncio.Semaphore(params["concurrency"])
        async with httpx.AsyncClient() as client:
            return await asyncio.gather(*[_one(client, sem, g, user_prompt(g, counts), params, cache_dir)
                                          for g in graphs])

    return asyncio.run(main())
