// Audit page: the numbers of `soclake audit` (the headline; the pool first: its categories, problems,
// near-duplicates, funnel, sizes; then vocabulary coverage, the dataset and its sampling shift) with the
// report's plots.
"use strict";

const TOP = 40;

function plot(plots, title) {
  const p = plots.find((x) => x.title === title || x.title.startsWith(title));
  return p ? el("figure", {class: "plots"}, el("img", {src: `data:image/png;base64,${p.png}`, alt: p.title})) : null;
}

/** The numbers a reader needs first (as the report's headline), each linking to its table. */
function headline(result) {
  const h = result.headline, n = h.near_duplicates;
  const link = (id, text) => el("a", {href: `#${id}`}, text);
  const items = [
    [el("strong", {}, `${h.segments.toLocaleString()} segments`), " in ", link("pool-categories", `${h.categories} categories`),
     ` after ${h.filter}`],
    h.coverage ? [`vocabulary ${h.vocabulary}: `, link("coverage", `${h.coverage.covered} covered, ${h.coverage.thin} thin, ` +
                  `${h.coverage.missing} missing`)] : null,
    [`the ${h.top_categories} largest categories hold ${(100 * h.top_share).toFixed(1)}% of the segments; ` +
     `${h.over_represented} over-represented, ${h.thin} thin, ${h.thin_in_diversity} thin in diversity`],
    [link("near-duplicates", `${n.groups} near-duplicate groups`), ` of ${n.segments} segments (${n.copies} copies; ` +
     `${n.across_sources} across sources, ${n.across_categories} across categories)`],
    ...h.problems.map((p) => [link("problems", p.problem.replaceAll("_", " ")),
                              `: ${p.segments} segments in ${p.categories} categories (${p.rule})`]),
    h.problems.length ? null : [link("problems", "no alpha or size problem found")],
    h.unknown_note ? [h.unknown_note] : null,
  ].filter(Boolean);
  return el("section", {class: "card", id: "headline"}, el("ul", {}, items.map((parts) => el("li", {}, ...parts))));
}

async function showAudit() {
  const params = new URLSearchParams(location.search);
  const choice = {vocab: params.get("vocab") || "lvis", job: params.get("job") || "", filter: params.get("filter") || "",
                  min_segments: params.get("min_segments") || "10"};
  const [lake, {runs}] = await Promise.all([api("/api/lake"), api("/api/jobs")]);
  const main = page("Audit");
  const jobsWithPlans = [...new Set(runs.filter((r) => r.stage === "compose").map((r) => r.job))];
  const form = el("form", {class: "filters card", id: "audit-form"},
    el("label", {}, "vocabulary", el("select", {name: "vocab"}, ["lvis", "coco", "none"].map((v) => el("option", {value: v, selected: v === choice.vocab}, v)))),
    el("label", {}, "job", el("select", {name: "job"}, [el("option", {value: ""}, "none"), ...jobsWithPlans.map((j) => el("option", {value: j, selected: j === choice.job}, j))])),
    el("label", {}, "filter", el("select", {name: "filter"}, [el("option", {value: ""}, "default (the job's, else filter_0)"),
      ...lake.filters.map((f) => el("option", {value: f, selected: f === choice.filter}, f))])),
    el("label", {}, "thin below", el("input", {name: "min_segments", type: "number", min: 0, value: choice.min_segments})),
    el("button", {type: "submit"}, "Audit"));
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    location.search = qs(Object.fromEntries(["vocab", "job", "filter", "min_segments"].map((k) => [k, form.elements[k].value])));
  });
  const status = el("p", {class: "muted", id: "audit-status"}, "computing the audit (one pass over the pool)…");
  main.append(form, status);
  const {result, plots} = await api(`/api/audit${qs(choice)}`);
  const f = result.filter;
  status.textContent = `${result.lake} · ${f.name} (${f.why}) · thin below ${result.min_segments} segments`;
  const pool = result.pool;
  main.append(headline(result),
    el("section", {id: "pool"},
      el("h2", {}, `Pool categories (${pool.categories.length}): thin first, then covered`),
      table(pool.categories, {limit: TOP, id: "pool-categories"}), plot(plots, "Long tail"),
      el("h2", {id: "problems"}, "Problems"),
      table(pool.problems.map((p) => ({problem: p.problem, segments: p.segments, categories: p.categories, rule: p.rule,
                                        view: p.view_name})), {id: "problems-table"}),
      el("h2", {}, `Near-duplicate groups (${pool.near_duplicates.groups})`),
      table(pool.near_duplicate_groups, {limit: TOP, id: "near-duplicates"}),
      el("h2", {}, "Quality-filter funnel"), table(pool.funnel, {id: "funnel"}), plot(plots, "Quality-filter funnel"),
      el("h2", {}, "Segment sizes"), table(pool.size_histogram, {id: "sizes"}), plot(plots, "Segment sizes"),
      el("h2", {}, `Exact duplicates rejected at ingest (${pool.duplicates.length})`), table(pool.duplicates, {limit: TOP}),
      el("h2", {}, "Sources and quality filters"), table(f.sources, {id: "sources"}), f.note ? el("p", {}, f.note) : null));
  if (result.vocabulary) {
    const v = result.vocabulary;
    main.append(el("section", {id: "vocabulary"},
      el("h2", {}, `Vocabulary ${v.name}: ${v.size} names`),
      el("p", {id: "coverage-counts"}, `covered ${v.counts.covered}, thin ${v.counts.thin}, missing ${v.counts.missing}`),
      plot(plots, "Vocabulary coverage"),
      el("h3", {}, "Every name, missing and thin first"), table(v.coverage, {limit: TOP, id: "coverage"}),
      el("h3", {}, "Pool categories not in the vocabulary"), table(v.unmatched_pool_categories, {limit: TOP})));
  }
  if (result.dataset) {
    const d = result.dataset;
    main.append(el("section", {id: "dataset"},
      el("h2", {}, `Dataset ${d.job} [${d.fingerprint}]`), plot(plots, `Dataset ${d.job}`),
      el("p", {}, `LVIS buckets ${JSON.stringify(d.lvis_frequency)}; COCO sizes ${JSON.stringify(d.sizes)}`,
         d.missing_shards.length ? ` · ${d.missing_shards.length} shards not committed` : ""),
      table(d.categories, {limit: TOP}), el("h3", {}, "Most frequent category pairs"), table(d.top_pairs, {limit: TOP}),
      el("h3", {}, "Planned vs rendered"), table(d.planned_vs_rendered, {limit: TOP})));
  }
  if (result.sampling) {
    const s = result.sampling;
    main.append(el("section", {id: "sampling"}, el("h2", {}, `Sampling shift of ${s.job} [${s.fingerprint}]`),
      plot(plots, "Sampling shift"), table(s.categories, {limit: TOP}),
      s.sizes ? [el("h3", {}, "Size mix by size feedback"), table(Object.entries(s.sizes).map(([size, x]) => ({size, ...x})))] : null));
  }
}

showAudit().catch(showError);
