// soclake app: what every page shares (DOM helpers, the JSON API client, tables, errors).
"use strict";

const $ = (selector, root = document) => root.querySelector(selector);
const $$ = (selector, root = document) => Array.from(root.querySelectorAll(selector));

/** el("a", {href: "/x", class: "y", onclick: f}, "text", child) */
function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") node.className = v;
    else if (k === "text") node.textContent = v;
    else if (k === "dataset") Object.assign(node.dataset, v);
    else if (k === "style") Object.assign(node.style, v);  // CSSOM: the content policy refuses inline style text
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else if (k in node && typeof v !== "string") node[k] = v;
    else node.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}

class ApiError extends Error {
  constructor(message, status) { super(message); this.status = status; }
}

/** GET (or POST with body) a JSON endpoint; a non-2xx answer throws its {"error"} message. */
async function api(path, body) {
  const options = body === undefined ? {} : {method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify(body)};
  const response = await fetch(path, options);
  let data = null;
  try { data = await response.json(); } catch (e) { data = null; }
  if (!response.ok) throw new ApiError((data && data.error) || `${response.status} ${response.statusText}`, response.status);
  return data;
}

function showError(e) {
  const box = $("#error");
  box.hidden = false;
  box.textContent = (e && e.message) ? e.message : String(e);
}

function clearError() { const box = $("#error"); box.hidden = true; box.textContent = ""; }

window.addEventListener("unhandledrejection", (event) => { showError(event.reason); event.preventDefault(); });
window.addEventListener("error", (event) => { showError(event.error || event.message); });

/** The page's main element, emptied. */
function page(title) {
  const main = $("#main");
  main.replaceChildren();
  if (title) main.append(el("h1", {}, title));
  return main;
}

/** A cell's text: NULL for null, JSON for lists and structs; fractions to 4 digits unless `exact`. */
function cell(v, exact = true) {
  if (v === null || v === undefined) return "NULL";
  if (typeof v === "object") return JSON.stringify(v);
  if (!exact && typeof v === "number" && !Number.isInteger(v)) return String(Number(v.toPrecision(4)));
  return String(v);
}

function number(n) { return typeof n === "number" ? n.toLocaleString("en-US") : cell(n); }

function bytes(n) {
  if (typeof n !== "number") return cell(n);
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i += 1; }
  return `${n.toFixed(i ? 1 : 0)} ${units[i]}`;
}

/** A table of rows (objects, or arrays with `columns`); `format` maps a column to a cell node;
 *  `exact` shows every digit of fractions (the console), else four. */
function table(rows, {columns = null, format = {}, limit = null, id = null, exact = false} = {}) {
  if (!rows.length && !columns) return el("p", {class: "muted"}, "none");
  const names = columns || Object.keys(rows[0]);
  const shown = limit ? rows.slice(0, limit) : rows;
  const body = shown.map((row) => el("tr", {}, names.map((name, i) => {
    const v = Array.isArray(row) ? row[i] : row[name];
    const content = format[name] ? format[name](v, row) : cell(v, exact);
    return el("td", {class: typeof v === "number" ? "num" : null}, content);
  })));
  const t = el("table", {id}, el("thead", {}, el("tr", {}, names.map((n) => el("th", {}, n)))), el("tbody", {}, body));
  const wrap = el("div", {class: "scroll"}, t);
  if (limit && rows.length > limit) {
    const more = el("button", {class: "plain", type: "button", onclick: () => wrap.replaceWith(table(rows, {columns, format, id, exact}))},
                    `show all ${rows.length} rows`);
    wrap.append(el("p", {}, more));
  }
  return wrap;
}

/** A query string of the non-empty values of `params`. */
function qs(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== null && v !== undefined && v !== "") q.set(k, v);
  const s = q.toString();
  return s ? `?${s}` : "";
}

function runLink(job, fingerprint, text) {
  return el("a", {href: `/jobs/${encodeURIComponent(job)}/${encodeURIComponent(fingerprint)}`}, text || `${job} [${fingerprint}]`);
}

/** A colour per panoptic id, the same on every page. */
function palette(id) {
  let h = (id * 2654435761) >>> 0;
  const hue = (h % 360) / 360, sat = 0.65 + ((h >>> 9) % 30) / 100, light = 0.5 + ((h >>> 17) % 15) / 100;
  const q = light < 0.5 ? light * (1 + sat) : light + sat - light * sat, p = 2 * light - q;
  const channel = (t) => {
    t = (t + 1) % 1;
    const v = t < 1 / 6 ? p + (q - p) * 6 * t : t < 1 / 2 ? q : t < 2 / 3 ? p + (q - p) * (2 / 3 - t) * 6 : p;
    return Math.round(v * 255);
  };
  return [channel(hue + 1 / 3), channel(hue), channel(hue - 1 / 3)];
}

/** Calls `load` while `sentinel` is in or near view (infinite scroll), until it returns false. */
function whenVisible(sentinel, load) {
  let busy = false, done = false;
  const near = () => sentinel.getBoundingClientRect().top < window.innerHeight + 600;
  async function pump() {
    if (busy || done) return;
    busy = true;
    try {
      do { done = !(await load()); } while (!done && near());
    } catch (e) { showError(e); done = true; }
    busy = false;
    if (done) observer.disconnect();
  }
  const observer = new IntersectionObserver((entries) => { if (entries.some((e) => e.isIntersecting)) pump(); },
                                            {rootMargin: "600px"});
  observer.observe(sentinel);
  return {pump, isDone: () => done};
}

for (const a of $$("header nav a")) {
  if (a.dataset.nav.split(" ").includes(document.body.dataset.page)) a.classList.add("active");
}

/** Path segments of the page's URL, decoded: /images/J/FP/KEY -> ["images", "J", "FP", "KEY"]. */
function pathParts() { return location.pathname.split("/").filter(Boolean).map(decodeURIComponent); }
