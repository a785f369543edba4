// Segment page: one segment's metadata, every pyramid level, its rejects and duplicates, and the jobs that used it.
"use strict";

async function showSegment() {
  const id = pathParts()[1];
  const data = await api(`/api/segments/${encodeURIComponent(id)}`);
  const s = data.segment;
  const main = page(`${s.category}${s.subcategory ? " / " + s.subcategory : ""}`);
  main.append(el("p", {class: "muted mono"}, s.segment_id));
  const levels = el("div", {class: "levels", id: "levels"}, s.levels.map((lv) => el("figure", {},
    el("img", {src: lv.url, alt: `level ${lv.side}`, width: lv.width, height: lv.height, loading: "lazy"}),
    el("figcaption", {}, `${lv.side} px: ${lv.width}×${lv.height}, ${bytes(lv.length)}`))));
  const skip = new Set(["levels"]);
  const meta = el("dl", {class: "meta"}, Object.entries(s).filter(([k]) => !skip.has(k)).flatMap(([k, v]) => [
    el("dt", {}, k), el("dd", {class: k.endsWith("id") || k === "sha256" ? "mono" : null}, cell(v))]));
  main.append(el("h2", {}, `Pyramid levels (${s.levels.length})`), levels,
              el("div", {class: "columns"},
                el("section", {class: "card"}, el("h2", {}, "Metadata"), meta),
                el("section", {}, el("h2", {}, "Jobs that used it"),
                  table(data.jobs, {columns: ["job", "fingerprint", "planned", "planned_images", "instances", "first_image_id"],
                                    format: {fingerprint: (fp, r) => runLink(r.job, fp, fp),
                                             first_image_id: (v, r) => (v === null ? "" : el("a", {href: `/images/${r.job}/${r.fingerprint}/${String(v).padStart(9, "0")}`}, `sample ${v}`))},
                                    id: "jobs"}),
                  el("h2", {}, "Rejects and duplicates"),
                  table(data.rejects, {id: "rejects"}))));
}

showSegment().catch(showError);
