"""`[refexp] request = "soc"`: the LLM asked as SOC asks it (SOC_FACTS 3.2-3.4): one user message
from a template file (soclake/data/soc_refexp_prompt.txt, soclake's wording; $objects, $counts and
$schema are filled in), SOC's object table and count lines, SOC's response schema
(single_object / multi_object, each attribute / spatial / reasoning lists of {q, ids}) as a JSON
schema response format, no system message.

Validation keeps every valid expression and records each dropped one with its reason (unknown ids,
a single with other than one id, a multi with fewer than two, no text); an image fails only when
nothing valid remains after the retries. Kept expressions are checked against the scene graph
(llm_backend.graph_check). Endpoint, key and cache as the llm backend; httpx is imported here only.
"""
from __future__ import annotations

import asyncio
import hashlib
import json
import os
from functools import lru_cache
from string import Template

from soclake.errors import SoclakeError
from soclake.resources import package_data
from soclake.stages.refexp import llm_backend
from soclake.stages.refexp.scene import SceneGraph

SCOPES = (("single", "single_object"), ("multi", "multi_object"))
KINDS = ("attribute", "spatial", "reasoning")
PLACEHOLDERS = ("objects", "counts", "schema")


@lru_cache(maxsize=1)
def response_schema() -> dict:
    """SOC's RefExpressions model as a JSON schema (soclake/data/soc_refexp_schema.json)."""
    return json.loads(package_data("soc_refexp_schema.json").read_text())


def template_path(params: dict) -> str:
    value = params.get("template") or ""
    if not value:
        return str(package_data("soc_refexp_prompt.txt"))
    return value if os.path.isabs(value) else os.path.join(params.get("spec_dir", "."), value)


@lru_cache(maxsize=8)
def load_template(path: str) -> Template:
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as e:
        raise SoclakeError(f"[refexp] template {path}: cannot be read ({e.strerror})") from None
    missing = [p for p in PLACEHOLDERS if f"${p}" not in text and f"${{{p}}}" not in text]
    if missing:
        raise SoclakeError(f"[refexp] template {path} lacks {', '.join('$' + p for p in missing)}; a template "
                           f"holds the placeholders {', '.join('$' + p for p in PLACEHOLDERS)}")
    return Template(text)


def template_digest(params: dict) -> str:
    """sha256 of a template file of one's own ("" for the default, which the code version covers)."""
    if not params.get("template"):
        return ""
    with open(template_path(params), "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def check(params: dict) -> None:
    llm_backend.check(params)
    load_template(template_path(params))


def object_line(inst: dict) -> str:
    """SOC's table line of one object; values as Python's str() prints them (lists as ['a', 'b'])."""
    a = inst.get("attributes") or {}
    bbox = [int(round(v)) for v in inst["bbox"]]
    return (f"[ID: {inst['ann_id']}] {inst['category']} | short_phrase: {a.get('short_phrase')} | "
            f"features: {list(a.get('features') or [])} | description: {a.get('description')} | bbox: {bbox}")


def count_lines(counts: dict) -> str:
    return "\n".join(f"- {scope}/{kind}: {counts.get((scope, kind), 0)} expressions" for scope, _ in SCOPES
                     for kind in KINDS)


def message(info: dict, counts: dict, params: dict) -> str:
    """The single user message of one image."""
    schema = "single_object and multi_object, each with lists attribute, spatial and reasoning of {\"q\": text, " \
             "\"ids\": [object ids]}"
    return load_template(template_path(params)).safe_substitute(
        objects="\n".join(object_line(i) for i in info["instances"]), counts=count_lines(counts), schema=schema)


def request_body(model: str, text: str, params: dict) -> dict:
    return {"model": model, "temperature": params["temperature"], "messages": [{"role": "user", "content": text}],
            "response_format": {"type": "json_schema",
                                "json_schema": {"name": "RefExpressions", "schema": response_schema(), "strict": True}}}


def clean(text: str) -> str:
    """SOC's text cleaning: trailing '?', '.' and spaces removed."""
    return text.strip().rstrip("?. ")


def parse(answer: str, graph: SceneGraph) -> tuple[list[dict], list[dict]]:
    """(kept, dropped) expressions of an answer; ValueError when the answer is not of the schema's shape."""
    try:
        doc = json.loads(answer)
    except (TypeError, ValueError) as e:
        raise ValueError(f"malformed JSON ({e})") from None
    if not isinstance(doc, dict) or not all(isinstance(doc.get(k), dict) for _, k in SCOPES):
        raise ValueError("not {single_object: {...}, multi_object: {...}}")
    ids = {o.ann_id for o in graph.objects}
    kept, dropped = [], []
    for scope, key in SCOPES:
        for kind in KINDS:
            items = doc[key].get(kind, [])
            if not isinstance(items, list):
                raise ValueError(f"{key}.{kind} is not a list")
            for e in items:
                reason, expr = _check(e, scope, ids)
                if reason:
                    dropped.append({**expr, "scope": scope, "kind": kind, "reason": reason})
                else:
                    kept.append({**expr, "scope": scope, "kind": kind})
    return kept, dropped


def _check(e, scope: str, ids: set[int]) -> tuple[str | None, dict]:
    if not isinstance(e, dict):
        return "not an object {q, ids}", {"text": str(e)[:200], "ids": []}
    text, got = e.get("q"), e.get("ids")
    shown = {"text": text if isinstance(text, str) else str(text)[:200], "ids": got if isinstance(got, list) else []}
    if not isinstance(text, str) or not clean(text):
        return "no text", shown
    if not isinstance(got, list) or not all(isinstance(i, int) and not isinstance(i, bool) for i in got):
        return "ids are not a list of integers", shown
    unknown = sorted(set(got) - ids)
    if unknown:
        return f"ids {unknown} are not objects of the image", shown
    n = len(set(got))
    if scope == "single" and n != 1:
        return f"a single-object expression with {n} ids", shown
    if scope == "multi" and n < 2:
        return f"a multi-object expression with {n} id{'s' if n != 1 else ''}", shown
    return None, {"text": clean(text), "targets": sorted(set(got))}


async def _ask(client, base: str, key: str, body: dict, params: dict) -> str:
    r = await client.post(f"{base}/chat/completions", json=body, headers={"Authorization": f"Bearer {key}"},
                          timeout=params["timeout"])
    r.raise_for_status()
    return r.json()["choices"][0]["message"]["content"]


async def _one(client, sem, info: dict, graph: SceneGraph, counts: dict, params: dict, cache_dir: str | None) -> dict:
    base, model, key = llm_backend.endpoint(params)
    body = request_body(model, message(info, counts, params), params)
    cache_key = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()
    path = os.path.join(cache_dir, f"soc-{cache_key}.json") if cache_dir else None
    if path and os.path.exists(path):
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    errors, dropped = [], []
    for attempt in range(params["retries"] + 1):
        if attempt:
            await asyncio.sleep(min(0.05 * 2 ** attempt, 10.0))
        try:
            async with sem:
                answer = await _ask(client, base, key, body, params)
            kept, dropped = parse(answer, graph)
        except Exception as e:  # network, HTTP status, protocol or shape: retried
            errors.append(f"{type(e).__name__}: {e}"[:200])
            continue
        if not kept:
            errors.append(f"no valid expression ({len(dropped)} dropped)")
            continue
        for e in kept:
            e["check"] = llm_backend.graph_check(e, graph)
        doc = {"generator": "llm", "request": "soc", "model": model, "expressions": kept, "dropped": dropped,
               "attempts": attempt + 1}
        if path:
            os.makedirs(cache_dir, exist_ok=True)
            with open(path + ".tmp", "w", encoding="utf-8") as f:
                json.dump(doc, f)
            os.replace(path + ".tmp", path)
        return doc
    return {"generator": "llm", "request": "soc", "model": model, "expressions": [], "dropped": dropped,
            "failed": errors[-1] if errors else "no answer", "attempts": len(errors)}


def describe_batch(infos: list[dict], graphs: list[SceneGraph], counts: dict, params: dict,
                   cache_dir: str | None = None) -> list[dict]:
    """One document per image (KEY.json `infos`, their scene graphs), at most
    params['concurrency'] requests in flight."""
    import httpx  # optional extra (llm): see llm_backend.check

    async def main():
        sem = asyncio.Semaphore(params["concurrency"])
        async with httpx.AsyncClient() as client:
            return await asyncio.gather(*[_one(client, sem, info, g, counts, params, cache_dir)
                                          for info, g in zip(infos, graphs)])

    return asyncio.run(main())
