// Images page: the runs that committed samples; each opens its grid.
"use strict";

async function showImages() {
  const {runs} = await api("/api/jobs");
  const main = page("Images");
  const withImages = runs.filter((r) => r.shards_committed > 0);
  if (!withImages.length) {
    main.append(el("p", {class: "muted"}, "No committed samples yet: run a job with `soclake run SPEC --lake LAKE`."));
    return;
  }
  main.append(el("div", {class: "grid", id: "runs"}, withImages.map((r) => el("figure", {class: "card"},
    el("figcaption", {}, el("a", {href: `/images/${r.job}/${r.fingerprint}`}, `${r.job} [${r.fingerprint}]`),
       el("span", {class: "badge"}, r.stage), r.current ? el("span", {class: "badge"}, "current") : null,
       el("div", {class: "muted"}, `${number(r.images)} images in ${number(r.shards_committed)} shards`))))));
}

showImages().catch(showError);
