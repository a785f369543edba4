// Pool page: a gallery of segment thumbnails with filters, paged by keyset cursors (infinite scroll).
"use strict";

const FILTERS = ["view", "source", "category", "subcategory", "colour", "min_side", "max_side", "distractor", "sort"];

function select(name, options, value) {
  return el("select", {name}, options.map(([v, text]) => el("option", {value: v, selected: v === value}, text)));
}

async function showPool() {
  const params = new URLSearchParams(location.search);
  const state = Object.fromEntries(FILTERS.map((k) => [k, params.get(k) || ""]));
  const facets = await api("/api/pool/facets");
  const main = page("Pool");
  const form = el("form", {class: "filters card", id: "filters"},
    el("label", {}, "rows", select("view", facets.views.map((v) => [v, v]), state.view || "filter_0")),
    el("label", {}, "source", select("source", [["", "any"], ...facets.sources.map((s) => [s.value, `${s.value} (${number(s.segments)})`])], state.source)),
    el("label", {}, "category", el("input", {name: "category", list: "categories", value: state.category, placeholder: "any", autocomplete: "off"})),
    el("datalist", {id: "categories"}),
    el("label", {}, "subcategory", el("input", {name: "subcategory", value: state.subcategory, placeholder: "any"})),
    el("label", {}, "dominant colour", select("colour", [["", "any"], ...facets.colours.map((c) => [c.value, `${c.value} (${number(c.segments)})`])], state.colour)),
    el("label", {}, "longest side ≥", el("input", {name: "min_side", type: "number", min: 0, value: state.min_side})),
    el("label", {}, "≤", el("input", {name: "max_side", type: "number", min: 0, value: state.max_side})),
    el("label", {}, "distractors", select("distractor", facets.distractor.map((d) => [d, d]), state.distractor || "any")),
    el("label", {}, "order", select("sort", [["id", "segment id"], ["largest", "largest first"], ["smallest", "smallest first"]], state.sort || "id")),
    el("button", {type: "submit"}, "Apply"),
    el("button", {type: "button", class: "plain", onclick: () => { location.search = ""; }}, "Reset"));
  const status = el("div", {class: "status", id: "count"}, "counting…");
  const gallery = el("div", {class: "gallery", id: "gallery"});
  const sentinel = el("div", {id: "more", class: "status"});
  main.append(form, status, gallery, sentinel);

  const category = form.elements.category;
  category.addEventListener("input", async () => {
    const found = await api(`/api/pool/categories${qs({prefix: category.value, limit: 30})}`);
    $("#categories").replaceChildren(...found.map((c) => el("option", {value: c.category}, `${number(c.segments)} segments`)));
  });
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const values = Object.fromEntries(FILTERS.map((k) => [k, form.elements[k].value.trim()]));
    if (values.view === "filter_0") values.view = "";
    if (values.distractor === "any") values.distractor = "";
    if (values.sort === "id") values.sort = "";
    location.search = qs(values);
  });

  const filters = Object.fromEntries(FILTERS.map((k) => [k, state[k]]));
  api(`/api/pool/count${qs(filters)}`).then((c) => {
    status.textContent = `${number(c.segments)} segments`;
    status.dataset.count = c.segments;
  }).catch(showError);

  let after = "", shown = 0;
  whenVisible(sentinel, async () => {
    sentinel.textContent = "loading…";
    const data = await api(`/api/pool/segments${qs({...filters, after, limit: 100})}`);
    gallery.append(...data.segments.map((s) => el("figure", {dataset: {segment: s.segment_id}},
      el("a", {href: `/segments/${s.segment_id}`, title: `${s.category}${s.subcategory ? " / " + s.subcategory : ""} · ${s.width}×${s.height} · ${s.dominant_color}`},
        el("img", {src: s.thumbnail, alt: s.category, loading: "lazy", width: 112, height: 112}),
        el("figcaption", {}, s.category)))));
    shown += data.segments.length;
    after = data.next || "";
    gallery.dataset.shown = shown;
    if (!data.next) {
      gallery.dataset.done = "1";
      sentinel.textContent = shown ? `all ${number(shown)} shown` : "no segment passes these filters";
      return false;
    }
    sentinel.textContent = `${number(shown)} shown; scroll for more`;
    return true;
  });
}

showPool().catch(showError);
