// SQL console: one SELECT over the lake's tables and views on the sandboxed connection; paged results and downloads.
"use strict";

const PAGE_ROWS = 100;

async function showConsole() {
  const lake = await api("/api/lake");
  const main = page("SQL");
  const asked = new URLSearchParams(location.search).get("q");
  const initial = asked || "SELECT category, count(*) AS segments FROM filter_0 GROUP BY category ORDER BY segments DESC";
  const box = el("textarea", {id: "sql", spellcheck: "false"}, initial);
  const run = el("button", {type: "submit", id: "run"}, "Run");
  const chips = el("div", {class: "chips"}, lake.views.map((v) => el("button", {type: "button", title: "query this view",
    onclick: () => { box.value = `SELECT * FROM ${v} LIMIT 100`; form.requestSubmit(); }}, v)));
  const form = el("form", {class: "card", id: "console"}, box,
    el("div", {class: "pager"}, run, el("span", {class: "muted"},
      `one SELECT; read-only sandbox (no file outside the lake, no URL, extension or setting); ${lake.query_seconds} s limit; Ctrl+Enter runs`)),
    el("details", {}, el("summary", {}, `tables and views (${lake.views.length})`), chips));
  const result = el("section", {id: "result"});
  main.append(form, result);
  box.addEventListener("keydown", (e) => { if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) { e.preventDefault(); form.requestSubmit(); } });

  async function show(sql, offset) {
    clearError();
    run.disabled = true;
    result.dataset.state = "running";
    try {
      const data = await api("/api/sql", {sql, offset, limit: PAGE_ROWS});
      const last = offset + data.rows.length;
      const total = data.more ? `more than ${number(data.held)} rows (the first ${number(data.held)} are kept for paging; download for all)`
                              : `${number(data.held)} rows`;
      const prev = el("button", {type: "button", class: "plain", disabled: offset === 0, onclick: () => show(sql, Math.max(0, offset - PAGE_ROWS))}, "‹ previous");
      const next = el("button", {type: "button", class: "plain", disabled: last >= data.held, onclick: () => show(sql, last)}, "next ›");
      const link = (fmt) => el("a", {href: `/api/sql/download${qs({q: sql, format: fmt})}`, download: `result.${fmt}`}, fmt.toUpperCase());
      result.replaceChildren(
        el("div", {class: "pager", id: "pager"}, prev, next,
           el("span", {id: "rows"}, data.rows.length ? `rows ${number(offset + 1)}–${number(last)} of ${total}` : `no rows (${total})`),
           el("span", {class: "muted"}, `${data.seconds} s`), "download:", link("csv"), link("parquet")),
        table(data.rows, {columns: data.columns.map((c) => c.name), id: "result-table", exact: true}));
      result.dataset.state = "done";
      history.replaceState(null, "", `/console${qs({q: sql})}`);
    } catch (e) {
      result.replaceChildren();
      result.dataset.state = "error";
      showError(e);
    } finally {
      run.disabled = false;
    }
  }
  form.addEventListener("submit", (e) => { e.preventDefault(); show(box.value, 0); });
  if (asked) show(asked, 0);  // a link to /console?q=... runs its query
}

showConsole().catch(showError);
