// soclake audit report: sortable, paged tables. Each <div class="sl-table"> holds its rows as
// JSON ({columns, rows, page}); this script draws one page at a time. No dependencies, no
// network: the report is one self-contained file. Cells are set with textContent (category
// names are data, never markup).
(function () {
  "use strict";
  var SIZES = [25, 100, 500, 0];  // 0: all rows

  function fmt(v) {
    if (v === null || v === undefined) return "";
    if (typeof v === "number" && !Number.isInteger(v)) return Number(v.toPrecision(3)).toString();
    if (typeof v === "boolean") return v ? "yes" : "";
    return String(v);
  }

  function compare(a, b) {
    var an = a === null || a === undefined || a === "", bn = b === null || b === undefined || b === "";
    if (an || bn) return an === bn ? 0 : an ? 1 : -1;  // empty cells last
    if (typeof a === "number" && typeof b === "number") return a - b;
    if (typeof a === "boolean" && typeof b === "boolean") return (a ? 1 : 0) - (b ? 1 : 0);
    return String(a).localeCompare(String(b));
  }

  function el(tag, text, cls) {
    var e = document.createElement(tag);
    if (text !== undefined) e.textContent = text;
    if (cls) e.className = cls;
    return e;
  }

  function setup(box) {
    var data = JSON.parse(box.querySelector("script[type='application/json']").textContent);
    var st = {col: -1, dir: 1, page: 0, size: data.page || 25, query: ""};
    var order = data.rows.map(function (_, i) { return i; });
    var bar = el("div", undefined, "sl-bar");
    var find = el("input");
    find.type = "search";
    find.placeholder = "filter rows";
    var prev = el("button", "\u2039 prev"), next = el("button", "next \u203a");
    var info = el("span", "", "sl-info");
    var size = el("select");
    var sizes = SIZES.indexOf(st.size) < 0 ? [st.size].concat(SIZES) : SIZES;
    sizes.forEach(function (n) {
      var o = el("option", n ? n + " rows" : "all rows");
      o.value = String(n);
      if (n === st.size) o.selected = true;
      size.appendChild(o);
    });
    [find, prev, next, size, info].forEach(function (c) { bar.appendChild(c); });
    var table = el("table"), thead = el("thead"), tbody = el("tbody"), hr = el("tr");
    data.columns.forEach(function (name, c) {
      var th = el("th", name);
      th.title = "sort by " + name;
      th.addEventListener("click", function () {
        st.dir = st.col === c ? -st.dir : (typeof firstValue(c) === "number" ? -1 : 1);
        st.col = c;
        st.page = 0;
        refilter();
      });
      hr.appendChild(th);
    });
    thead.appendChild(hr);
    table.appendChild(thead);
    table.appendChild(tbody);
    var scroll = el("div", undefined, "sl-scroll");
    scroll.appendChild(table);
    box.appendChild(bar);
    box.appendChild(scroll);

    function firstValue(c) {
      for (var i = 0; i < data.rows.length; i++) if (data.rows[i][c] !== null) return data.rows[i][c];
      return null;
    }

    function refilter() {
      var q = st.query.toLowerCase();
      order = [];
      data.rows.forEach(function (r, i) {
        if (!q || r.some(function (v) { return fmt(v).toLowerCase().indexOf(q) >= 0; })) order.push(i);
      });
      if (st.col >= 0) {
        order.sort(function (i, j) {
          var a = data.rows[i][st.col], b = data.rows[j][st.col];
          var empty = (a === null || a === "") - (b === null || b === "");
          return empty || st.dir * compare(a, b) || i - j;
        });
      }
      draw();
    }

    function draw() {
      var n = order.length, per = st.size || n || 1, pages = Math.max(1, Math.ceil(n / per));
      st.page = Math.min(st.page, pages - 1);
      var lo = st.page * per, hi = Math.min(n, lo + per);
      while (tbody.firstChild) tbody.removeChild(tbody.firstChild);
      for (var k = lo; k < hi; k++) {
        var tr = el("tr");
        data.rows[order[k]].forEach(function (v) {
          var td = el("td", fmt(v));
          if (typeof v === "number") td.className = "num";
          tr.appendChild(td);
        });
        tbody.appendChild(tr);
      }
      Array.prototype.forEach.call(hr.children, function (th, c) {
        th.className = c === st.col ? (st.dir > 0 ? "asc" : "desc") : "";
      });
      info.textContent = n ? "rows " + (lo + 1) + "\u2013" + hi + " of " + n +
        (n < data.rows.length ? " (filtered from " + data.rows.length + ")" : "") +
        ", page " + (st.page + 1) + " of " + pages : "no rows";
      prev.disabled = st.page === 0;
      next.disabled = st.page >= pages - 1;
    }

    prev.addEventListener("click", function () { st.page -= 1; draw(); });
    next.addEventListener("click", function () { st.page += 1; draw(); });
    size.addEventListener("change", function () { st.size = Number(size.value); st.page = 0; draw(); });
    find.addEventListener("input", function () { st.query = find.value; st.page = 0; refilter(); });
    refilter();
  }

  document.querySelectorAll("div.sl-table").forEach(setup);
})();
