/* promptgrid report, the summary view: the decision (D.decision, promptgrid.decide's JSON)
 * drawn as it is — the verdicts in words, then per factor and score a forest plot of each
 * level's pass rate or mean with its interval, a cost-versus-quality chart (the Pareto front
 * marked) and the paired comparisons with their p-values; a heatmap of the first score over
 * two factors. Inline SVG and HTML only: nothing fetched, black on white for print.
 * Declares functions only; report.js (after it) calls drawSummary().
 */
"use strict";

/** A score as its value reads: a pass rate in percent, a mean to three digits. */
function scoreText(value, kind) {
  if (value === null || value === undefined) return "–";
  return kind === "bool" ? (100 * value).toFixed(1).replace(/\.0$/, "") + "%" : num3(value);
}

function num3(value) {
  if (value === null || value === undefined) return "–";
  return Number(value.toPrecision(3)).toLocaleString("en-US", { maximumSignificantDigits: 3 });
}

/** Dollars with enough digits to show a non-zero amount ($0.000042, not $0.0000). */
function money(value) {
  if (value === null || value === undefined) return "–";
  if (value === 0) return "$0";
  if (Math.abs(value) >= 0.01) return "$" + value.toFixed(4);
  const decimals = Math.min(12, 1 - Math.floor(Math.log10(Math.abs(value))));
  return "$" + value.toFixed(decimals);
}

const factorName = (f) => (f === "run_id" ? "run" : f);
const scoreName = (column) => column.replace(/^score_/, "");

function drawSummary() {
  const view = $("summary-view");
  const parts = [glance()];
  const decision = D.decision;
  if (decision.error) {
    parts.push(`<p class="empty">No verdict: ${esc(decision.error)}</p>`);
  } else if (!decision.scores.length) {
    parts.push('<p class="empty">No scores, so no verdict: add <code>scores:</code> to the experiment '
      + "file, or score this run with <code>promptgrid score RUN_ID --scores FILE</code>.</p>");
  } else if (!decision.factors.length) {
    parts.push('<p class="empty">Nothing varies, so there is nothing to compare.</p>');
  } else {
    parts.push(verdicts(decision), heatmap(decision.heatmap), ...factorBlocks(decision));
  }
  view.innerHTML = parts.join("");
}

/** One line of the run's totals: calls, errors, cost, latency. */
function glance() {
  const cells = [];
  for (const run of D.runs) {
    const t = Object.fromEntries(run.totals.map(([k, v, kind]) => [k, [v, kind]]));
    const bit = (k, label) => (t[k] ? `<span><b>${esc(k === "cost" ? money(t[k][0]) : fmt(t[k][0], t[k][1]))}</b> ${label}</span>` : "");
    cells.push(`<p class="glance">${D.runs.length > 1 ? `<span class="run-id">${esc(run.id)}</span>` : ""}`
      + bit("calls with a result", "calls") + bit("errors", "errors") + bit("cost", "spent")
      + bit("mean latency", "mean latency") + "</p>");
  }
  return cells.join("");
}

function verdicts(decision) {
  const lines = decision.pairs.map((p) => {
    const kind = p.outcome === "better" ? "win" : p.outcome === "no_difference" ? "same" : "few";
    return `<li class="${kind}"><b>${esc(scoreName(p.score))} by ${esc(factorName(p.factor))}</b>: ${esc(p.verdict)}</li>`;
  });
  for (const [factor, why] of Object.entries(decision.refused)) {
    lines.push(`<li class="few"><b>${esc(factorName(factor))}</b>: ${esc(why)}</li>`);
  }
  const pct = Math.round(100 * decision.confidence);
  return `<section class="verdicts"><h2>Verdict</h2><ul>${lines.join("")}</ul>`
    + `<p class="note">Each level against the best one of its factor, on paired cells (the same inputs `
    + `but for that factor); ${pct}% intervals; p-values Holm-adjusted over a factor's comparisons.</p></section>`;
}

function factorBlocks(decision) {
  const out = [];
  for (const factor of decision.factors) {
    if (factor in decision.refused) continue;
    const on = decision.paired_on[factor] || [];
    let html = `<section class="factor" data-factor="${esc(factor)}"><h2>By ${esc(factorName(factor))}</h2>`
      + `<p class="note">paired on ${on.length ? on.map(esc).join(", ") : "nothing (one cell a level)"}; `
      + "● the best level, with its interval</p>";
    for (const score of decision.scores) {
      const levels = decision.levels.filter((l) => l.factor === factor && l.score === score);
      if (!levels.length) continue;
      const pairs = decision.pairs.filter((p) => p.factor === factor && p.score === score);
      const kind = levels[0].kind;
      html += `<div class="block" data-score="${esc(score)}"><h3>${esc(scoreName(score))}: `
        + `${kind === "bool" ? "pass rate" : "mean"} by ${esc(factorName(factor))}</h3>`
        + `<div class="charts-row">${forest(levels, kind, factor, score)}${costQuality(levels, kind, factor, score)}</div>`
        + pairTable(pairs, kind) + "</div>";
    }
    out.push(html + "</section>");
  }
  return out;
}

/* ------------------------------------------------------------------ charts */

function scale(from, to, lo, hi) {
  return (v) => lo + ((v - from) / (to - from || 1)) * (hi - lo);
}

function range(levels, kind) {
  if (kind === "bool") return [0, 1];
  const values = levels.flatMap((l) => [l.ci_low, l.ci_high, l.mean]).filter((v) => v !== null);
  if (!values.length) return [0, 1];
  let lo = Math.min(...values), hi = Math.max(...values);
  if (lo === hi) { lo -= 1; hi += 1; }
  const pad = (hi - lo) * 0.05;
  return [lo - pad, hi + pad];
}

function ticks(lo, hi, kind) {
  if (kind === "bool") return [0, 0.25, 0.5, 0.75, 1];
  return Array.from({ length: 5 }, (_, k) => lo + ((hi - lo) * k) / 4);
}

/** Each level's pass rate or mean (a dot; the best filled) with its interval (a line). */
function forest(levels, kind, factor, score) {
  const labelW = Math.min(200, 16 + 7 * Math.max(...levels.map((l) => String(l.level).length)));
  const plotW = 300, textW = 230, rowH = 26, top = 6;
  const width = labelW + plotW + textW, height = top + levels.length * rowH + 28;
  const [lo, hi] = range(levels, kind);
  const x = scale(lo, hi, labelW, labelW + plotW);
  let svg = `<svg class="forest" width="${width}" height="${height}" role="img" `
    + `aria-label="${esc(scoreName(score))} by ${esc(factorName(factor))}: each level with its interval">`;
  for (const t of ticks(lo, hi, kind)) {
    svg += `<line class="grid" x1="${x(t)}" x2="${x(t)}" y1="${top}" y2="${height - 22}"></line>`
      + `<text class="tick" x="${x(t)}" y="${height - 8}" text-anchor="middle">${esc(scoreText(t, kind))}</text>`;
  }
  levels.forEach((l, k) => {
    const y = top + k * rowH + rowH / 2;
    svg += `<text class="label${l.best ? " best" : ""}" x="${labelW - 8}" y="${y + 4}" text-anchor="end">${esc(l.level)}</text>`;
    if (l.mean === null) {
      svg += `<text class="value" x="${labelW + 4}" y="${y + 4}">no scored call</text>`;
      return;
    }
    if (l.ci_low !== null && l.ci_high !== null) {
      svg += `<line class="ci" x1="${x(l.ci_low)}" x2="${x(l.ci_high)}" y1="${y}" y2="${y}"></line>`
        + `<line class="ci" x1="${x(l.ci_low)}" x2="${x(l.ci_low)}" y1="${y - 5}" y2="${y + 5}"></line>`
        + `<line class="ci" x1="${x(l.ci_high)}" x2="${x(l.ci_high)}" y1="${y - 5}" y2="${y + 5}"></line>`;
    }
    svg += `<circle class="point${l.best ? " best" : ""}" cx="${x(l.mean)}" cy="${y}" r="5"><title>${esc(l.level)}: ${esc(scoreText(l.mean, kind))}</title></circle>`
      + `<text class="value" x="${labelW + plotW + 10}" y="${y + 4}">${esc(scoreText(l.mean, kind))} `
      + `[${esc(scoreText(l.ci_low, kind))}, ${esc(scoreText(l.ci_high, kind))}] · ${l.cells} cells</text>`;
  });
  return svg + "</svg>";
}

/** Mean score against mean cost per call, one point a level; the Pareto front joined. */
function costQuality(levels, kind, factor, score) {
  const known = levels.filter((l) => l.cost_per_call !== null && l.mean !== null);
  if (!known.length) {
    return '<p class="empty cost">Cost per call unknown (no prices): give the models a price '
      + "(<code>pricing:</code>) to see cost against quality.</p>";
  }
  const width = 330, height = 210, left = 52, right = 16, top = 20, bottom = 34;
  const maxCost = Math.max(...known.map((l) => l.cost_per_call));
  const free = maxCost === 0;
  const x = free ? () => left + (width - left - right) / 2 : scale(0, maxCost * 1.1, left, width - right);
  const [lo, hi] = range(known, kind);
  const y = scale(lo, hi, height - bottom, top);
  let svg = `<svg class="cost" width="${width}" height="${height}" role="img" `
    + `aria-label="${esc(scoreName(score))} against cost per call, by ${esc(factorName(factor))}">`;
  for (const t of ticks(lo, hi, kind)) {
    svg += `<line class="grid" x1="${left}" x2="${width - right}" y1="${y(t)}" y2="${y(t)}"></line>`
      + `<text class="tick" x="${left - 6}" y="${y(t) + 4}" text-anchor="end">${esc(scoreText(t, kind))}</text>`;
  }
  svg += `<line class="axis" x1="${left}" x2="${width - right}" y1="${height - bottom}" y2="${height - bottom}"></line>`
    + `<text class="tick" x="${left}" y="${height - bottom + 14}">$0</text>`
    + (free ? "" : `<text class="tick" x="${width - right}" y="${height - bottom + 14}" text-anchor="end">${esc(money(maxCost * 1.1))}</text>`)
    + `<text class="axis-label" x="${(left + width - right) / 2}" y="${height - 4}" text-anchor="middle">`
    + `${free ? "every call was free" : "mean cost per call"}</text>`;
  const front = known.filter((l) => l.pareto === true).sort((a, b) => a.cost_per_call - b.cost_per_call);
  if (front.length > 1) {
    svg += `<polyline class="front" points="${front.map((l) => `${x(l.cost_per_call)},${y(l.mean)}`).join(" ")}"></polyline>`;
  }
  const at = new Map(); // levels drawn at one spot share one label
  for (const l of known) {
    const cx = x(l.cost_per_call), cy = y(l.mean), key = `${cx.toFixed(1)},${cy.toFixed(1)}`;
    svg += `<circle class="point${l.pareto === true ? " front" : " off"}" cx="${cx}" cy="${cy}" r="5">`
      + `<title>${esc(l.level)}: ${esc(scoreText(l.mean, kind))} at ${esc(money(l.cost_per_call))} a call</title></circle>`;
    if (!at.has(key)) at.set(key, [cx, cy, []]);
    at.get(key)[2].push(l.level);
  }
  for (const [cx, cy, names] of at.values()) {
    const leftward = cx > (left + width) / 2; // a label stays inside the chart
    svg += `<text class="value" x="${cx + (leftward ? -8 : 8)}" y="${cy - 7}" `
      + `text-anchor="${leftward ? "end" : "start"}">${esc(names.join(", "))}</text>`;
  }
  return `<figure class="cost">${svg}</svg><figcaption>${front.length ? "● on the Pareto front (nothing "
    + "scores better for less), ○ off it" : ""}</figcaption></figure>`;
}

function pairTable(pairs, kind) {
  if (!pairs.length) return "";
  const diff = (v) => (v === null ? "–" : kind === "bool" ? (v >= 0 ? "+" : "") + (100 * v).toFixed(1) + " pts" : (v >= 0 ? "+" : "") + num3(v));
  const rows = pairs.map((p) => `<tr class="${p.outcome}"><td>${esc(p.b)} vs ${esc(p.a)}</td>`
    + `<td>${p.pairs} (${p.informative} differ)</td>`
    + `<td>${esc(diff(p.diff))} [${esc(diff(p.ci_low))}, ${esc(diff(p.ci_high))}]</td>`
    + `<td>${esc(p.p_value_text ?? "–")}</td><td>${esc(p.p_adjusted_text ?? "–")}</td>`
    + `<td class="words">${esc(p.verdict)}</td></tr>`);
  return '<table class="pairs"><thead><tr><th scope="col">level vs the best</th><th scope="col">pairs</th>'
    + '<th scope="col">difference [interval]</th><th scope="col">p</th><th scope="col">p (Holm)</th>'
    + `<th scope="col">verdict</th></tr></thead><tbody>${rows.join("")}</tbody></table>`;
}

/** The first score's mean over two factors, a cell a combination, darker for higher. */
function heatmap(h) {
  if (!h) return "";
  const kind = D.decision.levels.find((l) => l.score === h.score)?.kind ?? "numeric";
  const values = h.mean.flat().filter((v) => v !== null);
  const lo = kind === "bool" ? 0 : Math.min(...values), hi = kind === "bool" ? 1 : Math.max(...values);
  const head = `<tr><th scope="col">${esc(factorName(h.x))} ↓ · ${esc(factorName(h.y))} →</th>`
    + h.y_levels.map((v) => `<th scope="col">${esc(v)}</th>`).join("") + "</tr>";
  const rows = h.x_levels.map((xv, r) => `<tr><th scope="row">${esc(xv)}</th>` + h.y_levels.map((_, c) => {
    const v = h.mean[r][c], n = h.samples[r][c];
    if (v === null) return '<td class="none">–</td>';
    const shade = 0.08 + 0.8 * ((v - lo) / (hi - lo || 1));
    const ink = shade > 0.5 ? "#fff" : "var(--ink)";
    return `<td style="background:rgba(9,105,218,${shade.toFixed(2)});color:${ink}">${esc(scoreText(v, kind))}`
      + `<span class="n"> (${n})</span></td>`;
  }).join("") + "</tr>");
  return `<section class="heatmap"><h2>${esc(scoreName(h.score))} by ${esc(factorName(h.x))} and ${esc(factorName(h.y))}</h2>`
    + `<table><thead>${head}</thead><tbody>${rows.join("")}</tbody></table>`
    + '<p class="note">Each cell: the pass rate or mean over its scored calls (their number in brackets).</p></section>';
}
