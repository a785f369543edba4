// Jobs page: every run of every job with stage, fingerprint, progress, state and lineage.
"use strict";

function progress(r) {
  const planned = r.shards || 0, done = r.shards_committed || 0;
  const share = planned ? Math.min(1, done / planned) : 0;
  return el("span", {}, el("span", {class: "progress", title: `${done} of ${planned} shards committed`},
                           el("span", {style: {width: `${(share * 100).toFixed(1)}%`}})), `${done} / ${planned}`);
}

function lineageTree(runs) {
  const byFp = new Map(runs.map((r) => [r.fingerprint, r]));
  const roots = runs.filter((r) => !r.input || !byFp.has(r.input.fingerprint));
  const node = (r) => el("li", {}, runLink(r.job, r.fingerprint), el("span", {class: "badge"}, r.stage),
    r.current ? el("span", {class: "badge"}, "current") : null,
    r.outputs.length ? el("ul", {class: "tree"}, r.outputs.map((o) => byFp.get(o.fingerprint)).filter(Boolean).map(node)) : null);
  return el("ul", {class: "tree", id: "lineage"}, roots.map(node));
}

async function showJobs() {
  const {runs} = await api("/api/jobs");
  const main = page("Jobs");
  if (!runs.length) {
    main.append(el("p", {class: "muted"}, "No jobs yet: run one with `soclake run jobs/demo.toml --lake LAKE`."));
    return;
  }
  main.append(table(runs, {
    columns: ["job", "stage", "fingerprint", "current", "progress", "state", "images", "bytes", "input", "outputs", "images page"],
    id: "runs",
    format: {
      fingerprint: (fp, r) => runLink(r.job, fp, fp),
      current: (v) => (v ? "yes" : ""),
      progress: (v, r) => progress(r),
      bytes: (v) => bytes(v),
      input: (v) => (v ? runLink(v.job, v.fingerprint) : ""),
      outputs: (v) => el("span", {}, v.map((o) => [runLink(o.job, o.fingerprint, `${o.job} (${o.stage})`), " "])),
      "images page": (v, r) => (r.shards_committed ? el("a", {href: `/images/${r.job}/${r.fingerprint}`}, "images") : ""),
    },
  }), el("h2", {}, "Lineage (compose → relight → refexp)"), lineageTree(runs));
}

showJobs().catch(showError);
