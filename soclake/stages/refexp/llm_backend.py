"""The `llm` language backend: referring expressions from an OpenAI-compatible chat endpoint
(vLLM in production), one request per image asking for every bucket as JSON that matches a
JSON schema. Answers are validated (shape, referenced ids exist, target counts agree with
the scope) and checked against the scene graph where the text is checkable; an image whose
answers stay invalid after the retries is recorded as failed, never written with unvalidated
content. Results are cached by (image, prompt, model), so reruns do not pay twice.
httpx is imported here only (pip install 'soclake[llm]').
"""
from __future__ import annotations

import asyncio
import hashlib
import json
import os
import re

from soclake.errors import SoclakeError
from soclake.stages.refexp.programs import Selector, execute
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
          "it refers to, empty for none). Every expression must be true of the image.")
RELATION_WORDS = re.compile(r"\b(left|right|above|below|top|bottom|behind|front|next|near|between|largest|"
                            r"smallest|bigger|smaller|middle|center|centre|beside|under|over|of the)\b")
COLOUR_WORDS = ("black", "white", "grey", "gray", "red", "orange", "yellow", "green", "blue", "purple", "pink",
                "brown")


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
    objects = [{"id": o.ann_id, "category": o.category, "short_phrase": o.phrase, "colour": o.colour,
                "box": [round(v, 1) for v in o.bbox]} for o in graph.objects]
    want = {f"{scope}/{kind}": n for (scope, kind), n in sorted(counts.items()) if n}
    return json.dumps({"image": {"width": graph.width, "height": graph.height}, "objects": objects,
                       "expressions_per_bucket": want}, sort_keys=True)


def validate(answer: str, graph: SceneGraph) -> list[dict]:
    """Parsed, validated expressions; ValueError (with the reason) for anything invalid."""
    try:
        doc = json.loads(answer)
    except (TypeError, ValueError) as e:
        raise ValueError(f"malformed JSON ({e})") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("expressions"), list) or not doc["expressions"]:
        raise ValueError("no 'expressions' list")
    ids = {o.ann_id for o in graph.objects}
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


def graph_check(expr: dict, graph: SceneGraph) -> str:
    """'verified' / 'contradicted' when the text is a plain (colour) category phrase the graph
    can evaluate, else 'unchecked'."""
    text = expr["text"].lower()
    if RELATION_WORDS.search(text):
        return "unchecked"
    cats = sorted({o.category for o in graph.objects if re.search(rf"\b{re.escape(o.category)}", text)}, key=len)
    colours = [c for c in COLOUR_WORDS if re.search(rf"\b{c}\b", text)]
    if len(cats) != 1 or len(colours) > 1:
        return "unchecked"
    sel = Selector(category=cats[-1], colour=(colours[0].replace("gray", "grey") if colours else None))
    ref = execute(sel, graph)
    if expr["scope"] == "multi" or "all " in text or text.endswith("s"):
        return "verified" if sorted(ref) == expr["targets"] else "contradicted"
    return "verified" if sorted(ref) == expr["targets"] and len(ref) <= 1 else "contradicted"


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
            e["check"] = graph_check(e, graph)
        doc = {"generator": "llm", "model": model, "expressions": exprs}
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
