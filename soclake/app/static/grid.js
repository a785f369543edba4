// Images grid: a run's samples, page by page (infinite scroll); each opens its sample page.
"use strict";

async function showGrid() {
  const [, job, fingerprint] = pathParts();
  const base = `/api/jobs/${encodeURIComponent(job)}/${encodeURIComponent(fingerprint)}/samples`;
  const first = await api(`${base}${qs({limit: 48})}`);
  const main = page(`${job} [${fingerprint}]`);
  main.append(el("p", {}, runLink(job, fingerprint, "run page"), el("span", {class: "badge"}, first.run.stage),
                  ` · ${number(first.total)} samples`));
  const grid = el("div", {class: "grid", id: "samples"});
  const sentinel = el("div", {class: "status"});
  main.append(grid, sentinel);
  let data = first, shown = 0;
  const add = (d) => {
    grid.append(...d.samples.map((s) => el("figure", {dataset: {key: s.key}},
      el("a", {href: s.page}, el("img", {src: s.thumbnail, alt: s.key, loading: "lazy", width: 200, height: 200})),
      el("figcaption", {}, el("a", {href: s.page}, s.key), ` · ${s.instances} instances`,
         s.dropped ? ` · ${s.dropped} dropped` : "", s.replaced ? el("span", {class: "badge none"}, `${s.replaced} replaced`) : null,
         s.factor ? el("span", {class: "badge"}, `${s.factor} ${s.factor_value}`) : null))));
    shown += d.samples.length;
    grid.dataset.shown = shown;
  };
  add(first);
  whenVisible(sentinel, async () => {
    if (data.next === null) { grid.dataset.done = "1"; sentinel.textContent = `all ${number(shown)} shown`; return false; }
    data = await api(`${base}${qs({after: data.next, limit: 48})}`);
    add(data);
    return true;
  });
}

showGrid().catch(showError);
