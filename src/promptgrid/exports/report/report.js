/* promptgrid report: reads the JSON in #promptgrid-data and draws its views (VIEWS): the
 * summary (summary.js: the verdict), side by side, all calls, charts, settings.
 *
 * The data is column by column: calls.row / calls.col place each call in the grid, the inputs
 * and result filters (a score's outcome, the tool called) the page filters on are codes into
 * data.levels[name]. Every change (a filter, the search, an option, the page) recomputes which
 * calls pass and redraws the current page only, so 20,000 calls stay quick. Each answer shows
 * its scores as marks (✓ correct, ✗ concise, quality 4), its tool calls and refusals. No
 * framework, no network.
 */
"use strict";

const D = JSON.parse(document.getElementById("promptgrid-data").textContent);
const C = D.calls;
const N = C.row.length;
const PAGE = { grid: 50, long: 100 };
const SEP = "\n───\n";

const state = {
  view: "summary",
  search: "",
  changedOnly: false,
  failedOnly: false,
  diff: false,
  markdown: false,
  page: { grid: 0, long: 0 },
  off: {},             // filter name -> Set of unchecked codes
  hiddenCols: new Set(), // grid columns hidden by the reader
  hiddenLong: new Set(), // long-view columns hidden by the reader
};

const $ = (id) => document.getElementById(id);
const el = (tag, attrs = {}, ...children) => {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") node.className = v;
    else if (k === "html") node.innerHTML = v;
    else node.setAttribute(k, v);
  }
  for (const child of children) node.append(child);
  return node;
};
const esc = (s) => String(s).replace(/[&<>"']/g, (c) => ({
  "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));

/* ------------------------------------------------------------------ formatting */

function fmt(value, kind) {
  if (value === null || value === undefined) return "–";
  switch (kind) {
    case "cost": return money(value);
    case "latency": return value.toFixed(3) + " s";
    case "percent": case "rate": return (100 * value).toFixed(1) + "%";
    case "tokens": return Math.round(value).toLocaleString("en-US");
    case "int": return value.toLocaleString("en-US");
    default: return String(value);
  }
}

/** The text of one call as compared and searched: its answer and tool calls, or its error. */
function callText(i) {
  if (C.status[i] !== "ok" && C.response[i] === null) {
    return "[" + (C.error_type[i] ?? "error") + "] " + (C.error[i] ?? "");
  }
  const parts = [C.response[i] ?? ""];
  if (C.refusal[i] !== null) parts.push("[refused] " + C.refusal[i]);
  if (C.tools[i] !== null) parts.push(C.tools[i]);
  return parts.join("\n");
}

// A call fails when it erred or a pass/fail score failed ("Only failures").
const failing = new Uint8Array(N);
for (let i = 0; i < N; i++) failing[i] = C.status[i] !== "ok" ? 1 : 0;
for (const score of D.scores) {
  if (score.kind !== "bool") continue;
  score.values.forEach((v, i) => { if (v === false) failing[i] = 1; });
}

const lowered = new Array(N);
function lowerText(i) {
  if (lowered[i] === undefined) lowered[i] = callText(i).toLowerCase();
  return lowered[i];
}

/* ------------------------------------------------------------------ Markdown (a subset) */

/** Headings, lists, quotes, fenced code, paragraphs; inline code, bold, italic, http(s) links.
 * The text is escaped first, so an answer can never inject markup. */
function markdown(text) {
  const out = [];
  const lines = esc(text).split("\n");
  let list = null, para = [];
  const flushPara = () => { if (para.length) { out.push("<p>" + inline(para.join("\n")) + "</p>"); para = []; } };
  const flushList = () => { if (list) { out.push(`</${list}>`); list = null; } };
  for (let k = 0; k < lines.length; k++) {
    const line = lines[k];
    if (/^```/.test(line)) {
      flushPara(); flushList();
      const code = [];
      while (++k < lines.length && !/^```/.test(lines[k])) code.push(lines[k]);
      out.push("<pre><code>" + code.join("\n") + "</code></pre>");
      continue;
    }
    let m;
    if ((m = /^(#{1,6})\s+(.*)$/.exec(line))) {
      flushPara(); flushList();
      out.push(`<p><strong>${inline(m[2])}</strong></p>`);
    } else if ((m = /^\s*(?:[-*+]|(\d+)[.)])\s+(.*)$/.exec(line))) {
      flushPara();
      const kind = m[1] ? "ol" : "ul";
      if (list !== kind) { flushList(); out.push(`<${kind}>`); list = kind; }
      out.push("<li>" + inline(m[2]) + "</li>");
    } else if ((m = /^&gt;\s?(.*)$/.exec(line))) {
      flushPara(); flushList();
      out.push("<blockquote>" + inline(m[1]) + "</blockquote>");
    } else if (!line.trim()) {
      flushPara(); flushList();
    } else {
      flushList();
      para.push(line);
    }
  }
  flushPara(); flushList();
  return out.join("");
}

function inline(s) {
  return s
    .replace(/`([^`]+)`/g, "<code>$1</code>")
    .replace(/\*\*([^*]+)\*\*/g, "<strong>$1</strong>")
    .replace(/(^|[^*\w])\*([^*\n]+)\*(?!\w)/g, "$1<em>$2</em>")
    .replace(/(^|\W)_([^_\n]+)_(?!\w)/g, "$1<em>$2</em>")
    .replace(/\[([^\]]+)\]\((https?:\/\/[^\s)]+)\)/g,
      '<a href="$2" target="_blank" rel="noopener noreferrer">$1</a>')
    .replace(/\n/g, "<br>");
}

/* ------------------------------------------------------------------ word diff */

/** `other` as HTML, words missing from `base` in <ins>, words of `base` it lacks in <del>.
 * Longest common subsequence over words and spaces, after trimming the common ends; two very
 * long texts that share little are shown as one replacement. */
function wordDiff(base, other) {
  const a = base.match(/\s+|[^\s]+/g) || [], b = other.match(/\s+|[^\s]+/g) || [];
  let start = 0;
  while (start < a.length && start < b.length && a[start] === b[start]) start++;
  let endA = a.length, endB = b.length;
  while (endA > start && endB > start && a[endA - 1] === b[endB - 1]) { endA--; endB--; }
  const x = a.slice(start, endA), y = b.slice(start, endB);
  const head = esc(a.slice(0, start).join("")), tail = esc(a.slice(endA).join(""));
  if (x.length * y.length > 4e6) {
    return head + del(x.join("")) + ins(y.join("")) + tail;
  }
  const n = x.length, m = y.length;
  const L = Array.from({ length: n + 1 }, () => new Uint32Array(m + 1));
  for (let i = n - 1; i >= 0; i--)
    for (let j = m - 1; j >= 0; j--)
      L[i][j] = x[i] === y[j] ? L[i + 1][j + 1] + 1 : Math.max(L[i + 1][j], L[i][j + 1]);
  const parts = [];
  let i = 0, j = 0;
  while (i < n || j < m) {
    if (i < n && j < m && x[i] === y[j]) { parts.push(esc(x[i])); i++; j++; }
    else if (j < m && (i === n || L[i][j + 1] >= L[i + 1][j])) { parts.push(ins(y[j])); j++; }
    else { parts.push(del(x[i])); i++; }
  }
  return head + parts.join("").replace(/<\/ins><ins>|<\/del><del>/g, "") + tail;
}
const ins = (s) => (s ? "<ins>" + esc(s) + "</ins>" : "");
const del = (s) => (s ? "<del>" + esc(s) + "</del>" : "");

/** Plain text with the search term marked. */
function marked(text) {
  const q = state.search;
  if (!q) return esc(text);
  const lower = text.toLowerCase(), parts = [];
  let from = 0, at;
  while ((at = lower.indexOf(q, from)) !== -1) {
    parts.push(esc(text.slice(from, at)), "<mark>", esc(text.slice(at, at + q.length)), "</mark>");
    from = at + q.length;
  }
  parts.push(esc(text.slice(from)));
  return parts.join("");
}

/* ------------------------------------------------------------------ what passes */

/** Calls that pass the filters (the search is applied per view). */
function filtered() {
  const pass = new Uint8Array(N).fill(1);
  for (const [name, off] of Object.entries(state.off)) {
    if (!off.size) continue;
    const codes = C[name];
    for (let i = 0; i < N; i++) if (pass[i] && off.has(codes[i])) pass[i] = 0;
  }
  return pass;
}

const matches = (i) => !state.search || lowerText(i).includes(state.search);

// Grid cells: cells[row] maps a column to the calls in it, in grid order.
const nRows = D.grid.rows.length, nCols = D.grid.cols.length;
const cells = Array.from({ length: nRows }, () => new Map());
for (let i = 0; i < N; i++) {
  const row = cells[C.row[i]];
  if (!row.has(C.col[i])) row.set(C.col[i], []);
  row.get(C.col[i]).push(i);
}

function gridRows(pass) {
  const colHas = new Uint8Array(nCols);
  for (let i = 0; i < N; i++) if (pass[i]) colHas[C.col[i]] = 1;
  const cols = [];
  for (let c = 0; c < nCols; c++) if (colHas[c] && !state.hiddenCols.has(c)) cols.push(c);
  const rows = [];
  for (let r = 0; r < nRows; r++) {
    let any = false, found = !state.search, failed = !state.failedOnly;
    const texts = new Set();
    for (const c of cols) {
      const calls = (cells[r].get(c) || []).filter((i) => pass[i]);
      if (calls.length) any = true;
      if (!found && calls.some(matches)) found = true;
      if (!failed && calls.some((i) => failing[i])) failed = true;
      texts.add(calls.map(callText).join(SEP));
    }
    if (any && found && failed && (!state.changedOnly || texts.size > 1)) rows.push(r);
  }
  return { rows, cols };
}

/* ------------------------------------------------------------------ drawing */

function answerHtml(i, base) {
  if (C.status[i] !== "ok" && C.response[i] === null) {
    return `<div class="answer error"><span class="tag">${esc(C.error_type[i] ?? "error")}</span>`
      + `${marked(C.error[i] ?? "")}${meta(i)}</div>`;
  }
  const text = C.response[i] ?? "";
  let body;
  if (state.diff && base !== undefined) body = wordDiff(base, text);
  else if (state.markdown) return `<div class="answer md">${markdown(text)}${extras(i)}${marks(i)}${meta(i)}</div>`;
  else body = marked(text);
  return `<div class="answer">${body}${extras(i)}${marks(i)}${meta(i)}</div>`;
}

/** What came back besides the text: a refusal, the tools called, why it is not JSON. */
function extras(i) {
  let html = "";
  if (C.refusal[i] !== null) html += `<div class="refusal"><span class="tag">refused</span>${marked(C.refusal[i])}</div>`;
  if (C.tools[i] !== null) html += `<div class="tools"><span class="tag">tool call</span>${marked(C.tools[i])}</div>`;
  if (C.parse_error[i] !== null) html += `<div class="parse-error"><span class="tag">not JSON</span>${esc(C.parse_error[i])}</div>`;
  return html;
}

/** The call's scores: ✓ name (passed), ✗ name (failed), name value, name – (no score). */
function marks(i) {
  if (!D.scores.length) return "";
  const bits = D.scores.map((s) => {
    const v = s.values[i];
    if (v === null) return `<span class="mark none">${esc(s.name)} –</span>`;
    if (s.kind === "bool") return v ? `<span class="mark pass">✓ ${esc(s.name)}</span>` : `<span class="mark fail">✗ ${esc(s.name)}</span>`;
    return `<span class="mark value">${esc(s.name)} ${esc(num3(v))}</span>`;
  });
  return `<div class="marks">${bits.join("")}</div>`;
}

function meta(i) {
  const bits = [];
  if (C.latency_s[i] !== null) bits.push(fmt(C.latency_s[i], "latency"));
  const tokens = (C.prompt_tokens[i] ?? 0) + (C.completion_tokens[i] ?? 0);
  if (tokens) bits.push(fmt(tokens, "tokens") + " tok");
  if (C.cost_usd[i] !== null) bits.push(fmt(C.cost_usd[i], "cost"));
  if (C.cached[i]) bits.push("cached");
  return bits.length ? `<div class="meta">${bits.join(" · ")}</div>` : "";
}

function drawGrid(pass) {
  const { rows, cols } = gridRows(pass);
  const table = $("grid");
  const names = D.grid.colNames, rowNames = D.grid.rowNames;
  const head = [];
  const levels = Math.max(names.length, 1);
  for (let level = 0; level < levels; level++) {
    const last = level === levels - 1;
    let html = "<tr>";
    rowNames.forEach((name) => { html += `<th scope="col">${last ? esc(name) : ""}</th>`; });
    for (let k = 0; k < cols.length; k++) {
      const label = D.grid.cols[cols[k]];
      if (!last && k > 0 && sameUpTo(D.grid.cols[cols[k - 1]], label, level)) continue;
      let span = 1;
      while (!last && k + span < cols.length && sameUpTo(D.grid.cols[cols[k + span]], label, level)) span++;
      const name = names[level], value = label[level] ?? "";
      const text = !name || name === "prompt" || name === "run" ? value : `${name} = ${value}`;
      html += `<th scope="col" colspan="${span}" data-col="${cols[k]}">${esc(text)}</th>`;
    }
    head.push(html + "</tr>");
  }
  const { slice, from } = page("grid", rows);
  const body = slice.map((r) => {
    let html = `<tr data-row="${r}">`;
    D.grid.rows[r].forEach((v) => { html += `<th scope="row">${esc(v)}</th>`; });
    let base;
    cols.forEach((c, k) => {
      const calls = (cells[r].get(c) || []).filter((i) => pass[i]);
      if (k === 0) base = calls.map((i) => (C.status[i] === "ok" ? C.response[i] ?? "" : undefined));
      const inner = calls.length
        ? calls.map((i, n) => answerHtml(i, k === 0 ? undefined : base[n])).join("")
        : '<span class="empty">no call</span>';
      html += `<td data-col="${c}">${inner}</td>`;
    });
    return html + "</tr>";
  });
  table.innerHTML = `<thead>${head.join("")}</thead><tbody>${body.join("")}</tbody>`;
  count(`${rows.length.toLocaleString("en-US")} of ${nRows.toLocaleString("en-US")} rows`, from, slice.length, rows.length);
}

const sameUpTo = (a, b, level) => a.slice(0, level + 1).every((v, n) => v === b[n]);

function longColumns() {
  const inputs = D.filters.filter((f) => f !== "run");
  const cols = [...(D.mode === "runs" ? ["run"] : []), ...inputs];
  if (C.repeat.some((r) => r)) cols.push("repeat");
  return [...cols, "response", "status", "latency_s", "tokens", "cost_usd"];
}

function drawLong(pass) {
  const shown = [];
  for (let i = 0; i < N; i++) if (pass[i] && matches(i) && (!state.failedOnly || failing[i])) shown.push(i);
  const cols = longColumns().filter((c) => !state.hiddenLong.has(c));
  const { slice, from } = page("long", shown);
  const head = "<tr>" + cols.map((c) => `<th scope="col">${esc(label(c))}</th>`).join("") + "</tr>";
  const body = slice.map((i) => "<tr data-call=\"" + i + "\">" + cols.map((c) => longCell(i, c)).join("") + "</tr>");
  $("long").innerHTML = `<thead>${head}</thead><tbody>${body.join("")}</tbody>`;
  count(`${shown.length.toLocaleString("en-US")} of ${N.toLocaleString("en-US")} calls`, from, slice.length, shown.length);
}

const label = (c) => ({ latency_s: "latency", cost_usd: "cost", tokens: "tokens" }[c] || c);

function longCell(i, c) {
  if (c === "response") return `<td class="text">${answerHtml(i)}</td>`;
  if (c === "latency_s") return `<td>${fmt(C.latency_s[i], "latency")}</td>`;
  if (c === "cost_usd") return `<td>${fmt(C.cost_usd[i], "cost")}</td>`;
  if (c === "tokens") return `<td>${fmt((C.prompt_tokens[i] ?? 0) + (C.completion_tokens[i] ?? 0), "tokens")}</td>`;
  if (c in D.levels) return `<td>${esc(D.levels[c][C[c][i]])}</td>`;
  return `<td>${esc(C[c][i] ?? "")}</td>`;
}

function page(view, items) {
  const size = PAGE[view];
  const pages = Math.max(1, Math.ceil(items.length / size));
  state.page[view] = Math.min(state.page[view], pages - 1);
  const from = state.page[view] * size;
  $("page").textContent = `page ${state.page[view] + 1} of ${pages}`;
  $("prev").disabled = state.page[view] === 0;
  $("next").disabled = state.page[view] >= pages - 1;
  return { slice: items.slice(from, from + size), from };
}

function count(text, from, shown, total) {
  $("count").textContent = total > shown ? `${text} · showing ${from + 1}–${from + shown}` : text;
}

function drawCharts() {
  const view = $("charts-view");
  view.innerHTML = "";
  if (!D.charts.length) { view.append(el("p", { class: "empty" }, "No calls yet.")); return; }
  for (const chart of D.charts) {
    const bars = chart.bars;
    const max = chart.kind === "rate" ? 1 : Math.max(...bars.map(([, v]) => v ?? 0), 0) || 1;
    const labelWidth = Math.min(320, 12 + 7 * Math.max(...bars.map(([n]) => n.length)));
    const width = labelWidth + 520, rowH = 24, height = bars.length * rowH + 8;
    let svg = `<svg width="${width}" height="${height}" role="img" aria-label="${esc(chart.label)}">`;
    bars.forEach(([name, value, low, high], k) => {
      const y = 4 + k * rowH, w = value ? (300 * value) / max : 0;
      const bad = chart.kind === "percent" && value > 0 ? " bad" : "";
      const ci = low === undefined || low === null ? "" : ` (${fmt(low, "rate")}–${fmt(high, "rate")})`;
      svg += `<text x="${labelWidth - 8}" y="${y + 15}" text-anchor="end">${esc(name)}</text>`
        + `<rect class="bar${bad}" x="${labelWidth}" y="${y + 3}" width="${Math.max(w, value ? 1 : 0)}" height="${rowH - 8}"></rect>`
        + `<text x="${labelWidth + w + 6}" y="${y + 15}">${esc(fmt(value, chart.kind) + ci)}</text>`;
    });
    view.append(el("div", { class: "chart", html: `<h3>${esc(chart.label)}</h3>${svg}</svg>` }));
  }
}

function drawSettings() {
  const view = $("settings-view");
  view.innerHTML = "";
  for (const run of D.runs) {
    const rows = [];
    const about = [["experiment", run.experiment], ["description", run.description],
      ["results", run.results], ["created", run.created],
      ["experiment file", run.source]];
    for (const [k, v] of about) if (v) rows.push([k, esc(v)]);
    for (const [k, v, kind] of run.totals) rows.push([k, esc(fmt(v, kind))]);
    for (const [k, v] of Object.entries(run.settings || {})) rows.push([k, esc(v)]);
    for (const [k, v] of Object.entries(D.fixed)) rows.push([k + " (every call)", esc(v)]);
    let html = `<h3>Run ${esc(run.id)}</h3><table>`
      + rows.map(([k, v]) => `<tr><th scope="row">${esc(k)}</th><td>${v}</td></tr>`).join("") + "</table>";
    if (run.spec) html += `<details open><summary>Experiment, as the run stored it</summary><pre>${esc(run.spec)}</pre></details>`;
    else html += '<p class="empty">Settings not found: the run\'s store was not available when this report was written.</p>';
    view.append(el("section", { class: "run", html }));
  }
}

// Each view: what draws it, and whether it has the filters (a table of calls). One more view
// is one more entry here, a button in #views and a <div id="NAME-view" class="view">.
const VIEWS = {
  summary: { draw: drawSummary },
  grid: { draw: () => drawGrid(filtered()), table: true },
  long: { draw: () => drawLong(filtered()), table: true },
  charts: { draw: drawCharts },
  settings: { draw: drawSettings },
  race: { draw: drawRace },  // race.js
};

function draw() {
  for (const view of Object.keys(VIEWS)) $(view + "-view").hidden = view !== state.view;
  for (const b of document.querySelectorAll("#views button")) b.setAttribute("aria-pressed", String(b.dataset.view === state.view));
  const table = Boolean(VIEWS[state.view].table);
  $("sidebar").hidden = !table;
  $("toolbar").hidden = !table;
  if (table) drawColumnList();
  VIEWS[state.view].draw();
}

/* ------------------------------------------------------------------ controls */

function buildFilters() {
  const box = $("filters");
  const all = [...D.filters.map((f) => ({ key: f, label: f })), ...D.resultFilters];
  if (!all.length) { box.hidden = true; return; }
  for (const { key: name, label: legend } of all) {
    const values = D.levels[name];
    const counts = new Array(values.length).fill(0);
    for (const code of C[name]) counts[code]++;
    state.off[name] = new Set();
    const list = el("div", { class: "filter-values" });
    values.forEach((value, code) => {
      const box = el("input", { type: "checkbox", "data-filter": name, value: String(code) });
      box.checked = true;
      box.addEventListener("change", () => {
        if (box.checked) state.off[name].delete(code); else state.off[name].add(code);
        refresh();
      });
      list.append(el("label", {}, box, " " + value + " ", el("span", { class: "n" }, `(${counts[code]})`)));
    });
    const all = el("button", { type: "button", class: "quick" }, "all");
    const none = el("button", { type: "button", class: "quick" }, "none");
    const setAll = (on) => {
      for (const input of list.querySelectorAll("input")) input.checked = on;
      state.off[name] = on ? new Set() : new Set(values.map((_, code) => code));
      refresh();
    };
    all.addEventListener("click", () => setAll(true));
    none.addEventListener("click", () => setAll(false));
    box.append(el("fieldset", {}, el("legend", {}, legend, all, none), list));
  }
}

function drawColumnList() {
  const list = $("column-list");
  list.innerHTML = "";
  const grid = state.view === "grid";
  const items = grid
    ? D.grid.cols.map((label, c) => [c, label.join(" · ") || "answer"])
    : longColumns().map((c) => [c, label(c)]);
  const hidden = grid ? state.hiddenCols : state.hiddenLong;
  for (const [key, text] of items) {
    const box = el("input", { type: "checkbox", "data-column": String(key) });
    box.checked = !hidden.has(key);
    box.addEventListener("change", () => {
      if (box.checked) hidden.delete(key); else hidden.add(key);
      refresh();
    });
    list.append(el("label", {}, box, " " + text));
  }
}

function refresh() {
  state.page[state.view === "long" ? "long" : "grid"] = 0;
  draw();
}

function header() {
  $("title").textContent = D.title;
  const runs = D.runs.map((r) => r.id).join(" vs ");
  $("subtitle").textContent = `${runs ? "run " + runs + " · " : ""}${N.toLocaleString("en-US")} calls · `
    + `report written ${D.generated} by promptgrid ${D.version}`;
  const changed = Object.entries(D.changed);
  if (changed.length) {
    const box = $("changed-inputs");
    box.hidden = false;
    box.innerHTML = "Changed between the runs: " + changed.map(([name, values]) =>
      `<b>${esc(name)}</b> ${values.map((v) => esc(v.join(", ") || "(absent)")).join(" → ")}`).join("; ");
  }
  if (D.mode !== "runs") $("changed-only").parentElement.lastChild.textContent = " Only rows whose answers differ across columns";
}

function wire() {
  let timer;
  $("search").addEventListener("input", (e) => {
    clearTimeout(timer);
    timer = setTimeout(() => { state.search = e.target.value.trim().toLowerCase(); refresh(); }, 120);
  });
  $("search").addEventListener("keydown", (e) => {
    if (e.key === "Enter") { clearTimeout(timer); state.search = e.target.value.trim().toLowerCase(); refresh(); }
  });
  for (const [id, key] of [["changed-only", "changedOnly"], ["failed-only", "failedOnly"], ["diff", "diff"], ["markdown", "markdown"]]) {
    $(id).addEventListener("change", (e) => { state[key] = e.target.checked; refresh(); });
  }
  $("details").addEventListener("change", (e) => document.body.classList.toggle("hide-meta", !e.target.checked));
  for (const b of document.querySelectorAll("#views button")) {
    b.addEventListener("click", () => { state.view = b.dataset.view; draw(); });
  }
  $("prev").addEventListener("click", () => { state.page[state.view]--; draw(); });
  $("next").addEventListener("click", () => { state.page[state.view]++; draw(); });
}

header();
buildFilters();
wire();
draw();
