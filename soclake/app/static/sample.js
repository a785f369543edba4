// Sample page: the composite with each instance's mask, box and label toggleable (per instance and all),
// the panoptic map, fg mask, the sample in the other runs of its lineage (original, relit), referring
// expressions by bucket (hover or click one to highlight exactly its targets), captions, QA and the sample JSON.
"use strict";

const MASK_ALPHA = 0.45, HIGHLIGHT_ALPHA = 0.6, HIGHLIGHT = [255, 214, 0];

async function bitmap(url) {
  const response = await fetch(url);
  if (!response.ok) throw new ApiError(`${url}: ${response.status} ${response.statusText}`, response.status);
  // exact pixel values: panoptic ids are colours, so no colour management and no premultiplication
  return createImageBitmap(await response.blob(), {colorSpaceConversion: "none", premultiplyAlpha: "none"});
}

function pixelsOf(image, checkerboard) {
  const c = el("canvas", {width: image.width, height: image.height});
  const ctx = c.getContext("2d", {willReadFrequently: true});
  if (checkerboard) {
    for (let y = 0; y < image.height; y += 16) for (let x = 0; x < image.width; x += 16) {
      ctx.fillStyle = ((x + y) / 16) % 2 ? "#9a9a9a" : "#d2d2d2";
      ctx.fillRect(x, y, 16, 16);
    }
  }
  ctx.drawImage(image, 0, 0);
  return ctx.getImageData(0, 0, image.width, image.height);
}

/** Panoptic ids from KEY.pan.png: id = R + 256 G + 256^2 B (COCO panoptic). */
function panopticIds(pan) {
  const d = pixelsOf(pan, false).data, ids = new Int32Array(pan.width * pan.height);
  for (let i = 0, p = 0; i < ids.length; i += 1, p += 4) ids[i] = d[p] + 256 * d[p + 1] + 65536 * d[p + 2];
  return ids;
}

class Stage {
  constructor(canvas, base, ids, instances) {
    this.canvas = canvas; this.ctx = canvas.getContext("2d", {willReadFrequently: true});
    this.base = base; this.ids = ids; this.instances = instances;
    const top = Math.max(0, ...instances.map((i) => i.panoptic_id));
    this.mask = new Uint8Array(top + 1); this.hl = new Uint8Array(top + 1);
    this.box = new Map(); this.label = new Map();
    for (const i of instances) { this.mask[i.panoptic_id] = 1; this.box.set(i.panoptic_id, true); this.label.set(i.panoptic_id, true); }
    this.colour = new Map(instances.map((i) => [i.panoptic_id, palette(i.panoptic_id)]));
  }

  set(layer, pid, on) {
    if (layer === "mask") this.mask[pid] = on ? 1 : 0; else this[layer].set(pid, on);
  }

  highlight(pids) { this.hl.fill(0); for (const p of pids) if (p < this.hl.length) this.hl[p] = 1; this.draw(); }

  draw() {
    const out = new ImageData(new Uint8ClampedArray(this.base.data), this.base.width, this.base.height);
    const d = out.data, ids = this.ids, top = this.mask.length;
    const r = new Float32Array(top), g = new Float32Array(top), b = new Float32Array(top);
    for (const [pid, c] of this.colour) { r[pid] = c[0]; g[pid] = c[1]; b[pid] = c[2]; }
    for (let i = 0, p = 0; i < ids.length; i += 1, p += 4) {
      const id = ids[i];
      if (id <= 0 || id >= top) continue;
      if (this.mask[id]) {
        d[p] = d[p] * (1 - MASK_ALPHA) + r[id] * MASK_ALPHA; d[p + 1] = d[p + 1] * (1 - MASK_ALPHA) + g[id] * MASK_ALPHA;
        d[p + 2] = d[p + 2] * (1 - MASK_ALPHA) + b[id] * MASK_ALPHA;
      }
      if (this.hl[id]) {
        d[p] = d[p] * (1 - HIGHLIGHT_ALPHA) + HIGHLIGHT[0] * HIGHLIGHT_ALPHA; d[p + 1] = d[p + 1] * (1 - HIGHLIGHT_ALPHA) + HIGHLIGHT[1] * HIGHLIGHT_ALPHA;
        d[p + 2] = d[p + 2] * (1 - HIGHLIGHT_ALPHA) + HIGHLIGHT[2] * HIGHLIGHT_ALPHA;
      }
    }
    const ctx = this.ctx;
    ctx.putImageData(out, 0, 0);
    ctx.lineWidth = 2;
    ctx.font = "12px system-ui, sans-serif";
    for (const inst of this.instances) {
      const [x, y, w, h] = inst.bbox, c = this.colour.get(inst.panoptic_id), rgb = `rgb(${c.join(",")})`;
      if (this.box.get(inst.panoptic_id)) { ctx.strokeStyle = rgb; ctx.strokeRect(x + 1, y + 1, Math.max(w - 2, 1), Math.max(h - 2, 1)); }
      if (this.label.get(inst.panoptic_id)) {
        const text = `${inst.category} #${inst.panoptic_id}`, tw = ctx.measureText(text).width + 6;
        ctx.fillStyle = rgb; ctx.fillRect(x, y, tw, 15);
        ctx.fillStyle = "#000"; ctx.fillText(text, x + 3, y + 12);
      }
    }
  }
}

function panopticView(ids, width, height) {
  const c = el("canvas", {width, height, id: "panoptic"}), ctx = c.getContext("2d");
  const out = ctx.createImageData(width, height), d = out.data;
  const cache = new Map();
  for (let i = 0, p = 0; i < ids.length; i += 1, p += 4) {
    const id = ids[i];
    if (id) {
      if (!cache.has(id)) cache.set(id, palette(id));
      const col = cache.get(id); d[p] = col[0]; d[p + 1] = col[1]; d[p + 2] = col[2];
    }
    d[p + 3] = 255;
  }
  ctx.putImageData(out, 0, 0);
  return c;
}

function instanceTable(stage, instances) {
  const all = (layer) => el("input", {type: "checkbox", id: `all-${layer}`, checked: true, title: `every ${layer}`, onchange: (e) => {
    for (const box of $$(`input[data-layer="${layer}"]`)) { box.checked = e.target.checked; stage.set(layer, Number(box.dataset.pid), box.checked); }
    stage.draw();
  }});
  const toggle = (layer, pid) => el("input", {type: "checkbox", checked: true, dataset: {layer, pid}, title: `${layer} of #${pid}`,
    onchange: (e) => { stage.set(layer, pid, e.target.checked); stage.draw(); }});
  const head = el("tr", {}, el("th", {}, "instance"), el("th", {}, "category"), el("th", {}, "area"), el("th", {}, "visible"),
                  el("th", {}, "shown"), el("th", {}, "blend"), el("th", {}, "mask ", all("mask")), el("th", {}, "box ", all("box")),
                  el("th", {}, "label ", all("label")));
  const rows = instances.map((i) => el("tr", {dataset: {pid: i.panoptic_id, ann: i.ann_id}},
    el("td", {}, el("span", {class: "swatch", style: {background: `rgb(${palette(i.panoptic_id).join(",")})`}}), `#${i.panoptic_id}`),
    el("td", {}, i.segment_id ? el("a", {href: `/segments/${i.segment_id}`}, i.category) : i.category),
    el("td", {class: "num"}, number(i.area)), el("td", {class: "num"}, cell(i.visible_fraction === null ? null : +i.visible_fraction.toFixed(3))),
    el("td", {class: "num"}, cell(i.shown_fraction == null ? null : +i.shown_fraction.toFixed(3))), el("td", {}, cell(i.blend)),
    el("td", {}, toggle("mask", i.panoptic_id)), el("td", {}, toggle("box", i.panoptic_id)), el("td", {}, toggle("label", i.panoptic_id))));
  return el("table", {id: "instances"}, el("thead", {}, head), el("tbody", {}, rows));
}

/** Items that highlight their targets (ann_ids) on hover, and keep them highlighted when clicked. */
function targeting(stage, annToPid) {
  let pinned = null;
  const apply = (item) => {
    const pids = item ? JSON.parse(item.dataset.pids) : [];
    stage.highlight(pids);
    for (const row of $$("#instances tbody tr")) row.classList.toggle("hl", pids.includes(Number(row.dataset.pid)));
    $("#composite").dataset.highlight = pids.join(",");
  };
  return (item, targets) => {
    const pids = (targets || []).map((a) => annToPid.get(a)).filter((p) => p !== undefined);
    item.dataset.pids = JSON.stringify(pids);
    item.dataset.targets = (targets || []).join(",");
    item.addEventListener("mouseenter", () => apply(item));
    item.addEventListener("mouseleave", () => apply(pinned));
    item.addEventListener("click", () => {
      if (pinned) pinned.classList.remove("on");
      pinned = pinned === item ? null : item;
      if (pinned) pinned.classList.add("on");
      apply(pinned);
    });
    return item;
  };
}

function expressionsView(refexp, target, instances) {
  const byAnn = new Map(instances.map((i) => [i.ann_id, i]));
  const names = (targets) => targets.map((a) => byAnn.has(a) ? `#${byAnn.get(a).panoptic_id} ${byAnn.get(a).category}` : `ann ${a}`).join(", ");
  const section = el("section", {id: "refexp"}, el("h2", {}, "Referring expressions"),
    el("p", {class: "muted"}, `from `, runLink(refexp.run.job, refexp.run.fingerprint), ` (${refexp.generator || "?"}); hover or click one to highlight its targets`));
  if (refexp.failed) section.append(el("p", {class: "badge none"}, `failed: ${cell(refexp.failed)}`));
  for (const bucket of refexp.buckets || []) {
    section.append(el("h3", {}, `${bucket.bucket} (${bucket.expressions.length})`),
      el("ul", {class: "expr"}, bucket.expressions.map((e) => target(el("li", {dataset: {scope: e.scope, kind: e.kind}}, e.text,
        e.targets.length ? el("span", {class: "badge"}, `→ ${names(e.targets)}`) : el("span", {class: "badge none"}, "no target")), e.targets))));
  }
  if (refexp.caption) section.append(el("h2", {}, "Caption"), el("p", {id: "caption"}, refexp.caption));
  if ((refexp.segment_captions || []).length) {
    section.append(el("h3", {}, "Per-segment captions"), el("ul", {class: "expr", id: "segment-captions"},
      refexp.segment_captions.map((c) => target(el("li", {}, `#${byAnn.has(c.ann_id) ? byAnn.get(c.ann_id).panoptic_id : c.ann_id}: ${c.caption}`), [c.ann_id]))));
  }
  if ((refexp.qa || []).length) {
    section.append(el("h2", {}, "Questions and answers"), el("ul", {class: "expr", id: "qa"}, refexp.qa.map((q) =>
      target(el("li", {}, `${q.question} `, el("strong", {}, q.answer), el("span", {class: "badge"}, q.type)), q.targets || []))));
  }
  if (refexp.variation_qa) section.append(el("h3", {}, "Variation QA"), el("pre", {}, JSON.stringify(refexp.variation_qa, null, 1)));
  return section;
}

async function showSample() {
  const [, job, fingerprint, key] = pathParts();
  const data = await api(`/api/jobs/${encodeURIComponent(job)}/${encodeURIComponent(fingerprint)}/samples/${encodeURIComponent(key)}`);
  const img = data.image;
  const [composite, pan] = await Promise.all([bitmap(data.composite), data.members["pan.png"] ? bitmap(data.members["pan.png"]) : null]);
  const ids = pan ? panopticIds(pan) : new Int32Array(composite.width * composite.height);
  const canvas = el("canvas", {id: "composite", class: "stage-canvas", width: composite.width, height: composite.height});
  const stage = new Stage(canvas, pixelsOf(composite, /\/members\/rgba\./.test(data.composite)), ids, data.instances);
  stage.draw();

  const main = page();
  main.append(el("h1", {}, `${data.run.job} · ${img.key}`),
    el("p", {}, runLink(data.run.job, data.run.fingerprint), el("span", {class: "badge"}, data.run.stage),
       ` · ${img.width}×${img.height} · ${img.instances} instances of ${img.planned} planned`,
       img.dropped ? ` · ${img.dropped} dropped (${img.unseen} unseen)` : "", img.replaced ? ` · ${img.replaced} replaced` : "",
       " · ", el("a", {href: `/images/${data.run.job}/${data.run.fingerprint}`}, "all samples")));
  const hover = el("div", {class: "muted", id: "under-cursor"}, "point at the image to name the instance under the cursor");
  canvas.addEventListener("mousemove", (e) => {
    const rect = canvas.getBoundingClientRect();
    const x = Math.floor((e.clientX - rect.left) * canvas.width / rect.width), y = Math.floor((e.clientY - rect.top) * canvas.height / rect.height);
    const id = ids[y * canvas.width + x], inst = data.instances.find((i) => i.panoptic_id === id);
    hover.textContent = inst ? `#${id} ${inst.category} (area ${number(inst.area)})` : id ? `#${id} (not annotated)` : "background";
  });
  const annToPid = new Map(data.instances.map((i) => [i.ann_id, i.panoptic_id]));
  const target = targeting(stage, annToPid);
  const views = el("div", {class: "side-by-side", id: "views"},
    data.views.filter((v) => !v.this).map((v) => el("figure", {dataset: {stage: v.stage}},
      el("a", {href: v.page}, el("img", {src: v.composite, alt: `${v.job} ${v.stage}`, loading: "lazy"})),
      el("figcaption", {}, `${v.stage === "compose" ? "original" : v.stage === "relight" ? "relit" : v.stage}: ${v.job}`))),
    pan ? el("figure", {}, panopticView(ids, pan.width, pan.height), el("figcaption", {}, "panoptic map (KEY.pan.png)")) : null,
    data.members["fg.png"] ? el("figure", {}, el("img", {src: data.members["fg.png"], alt: "foreground mask", id: "fg"}), el("figcaption", {}, "foreground mask (KEY.fg.png)")) : null);
  const left = el("section", {}, canvas, hover, el("h2", {}, "Instances"), instanceTable(stage, data.instances),
                  el("h2", {}, "Other views"), views);
  const right = el("section", {class: "panel"}, data.refexp ? expressionsView(data.refexp, target, data.instances)
                                              : el("p", {class: "muted"}, "No refexp run covers this sample yet (run a refexp job on this job)."));
  main.append(el("div", {class: "sample-layout"}, left, right));
  if (data.failed_reads.length) main.append(el("h2", {}, "Failed segment reads"), table(data.failed_reads));
  const json = el("pre", {id: "sample-json"}, "…");
  const details = el("details", {}, el("summary", {}, "sample JSON (KEY.json)"), json);
  details.addEventListener("toggle", async () => {
    if (!details.open || json.dataset.loaded) return;
    const response = await fetch(`${data.members.json}?pretty=1`);
    json.textContent = await response.text();
    json.dataset.loaded = "1";
  });
  main.append(el("h2", {}, "Members"), el("p", {}, Object.entries(data.members).map(([m, url]) => [el("a", {href: url}, m), " "])), details);
  document.body.dataset.ready = "1";
}

showSample().catch(showError);
