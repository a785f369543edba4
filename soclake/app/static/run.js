// Run page: one run's status, lineage, failures, shards and spec (its job.json).
"use strict";

async function showRun() {
  const [, job, fingerprint] = pathParts();
  const data = await api(`/api/jobs/${encodeURIComponent(job)}/${encodeURIComponent(fingerprint)}`);
  const r = data.run;
  const main = page(`${r.job} [${r.fingerprint}]`);
  const f = data.failures;
  const failures = el("dl", {class: "meta", id: "failures"},
    el("dt", {}, "missing shards"), el("dd", {}, (f.missing_shards || []).length ? f.missing_shards.join(", ") : "none"),
    f.degraded ? Object.entries(f.degraded).flatMap(([k, v]) => [el("dt", {}, k.replaceAll("_", " ")), el("dd", {}, number(v))]) : []);
  main.append(
    el("p", {}, el("span", {class: "badge"}, r.stage), " ", r.state, ` · ${number(r.shards_committed)} of ${number(r.shards)} shards committed · ${number(r.images)} images · ${bytes(r.bytes)}`,
       r.shards_committed ? [" · ", el("a", {href: `/images/${r.job}/${r.fingerprint}`}, "images")] : null),
    el("h2", {}, "Lineage"),
    el("ol", {id: "run-lineage"}, data.lineage.map((x) => el("li", {}, x.fingerprint === r.fingerprint ? el("strong", {}, `${x.job} [${x.fingerprint}]`) : runLink(x.job, x.fingerprint),
                                                         el("span", {class: "badge"}, x.stage), ` ${x.state}`))),
    el("h2", {}, "Failures and degradation"), failures,
    el("h2", {}, `Shards (${data.shards.length})`),
    table(data.shards, {columns: ["shard", "samples", "bytes", "sha256", "code_version", "inputs"], format: {bytes: (v) => bytes(v)}, limit: 50, id: "shards"}),
    el("h2", {}, "Spec (job.json)"),
    el("pre", {id: "spec"}, JSON.stringify(data.marker, null, 1)));
}

showRun().catch(showError);
