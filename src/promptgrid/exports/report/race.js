
/* ------------------------------------------------------------------ the race tab (race.js)
 *
 * D.race (a raced run only): summary lines, and per variant (best first) its standing, its
 * drop and its path over the rounds: [blocks run, the leader's lead over it, low, high], in
 * the score's units (span = high - low of the score). One lane per variant: the interval as
 * a band, the lead as a line, 0 dashed; × where it was dropped. Text goes through esc().
 */

if (D.race) $("race-tab").hidden = false;

function drawRace() {
  const view = $("race-view");
  const R = D.race;
  view.innerHTML = "";
  if (!R) { view.append(el("p", { class: "empty" }, "This run did not race.")); return; }
  view.append(el("pre", { class: "race-summary" }, R.summary.join("\n")));
  view.append(el("h3", {}, `The leader's lead over each ${R.factor}, round by round`));
  view.append(el("p", { class: "race-note" },
    `In ${R.score}'s units, on the blocks (cases) both ran, with its anytime-valid interval (the band). `
    + "A variant is dropped once a rival's lead over it is confidently above 0 (×); "
    + "the leader of a round has no lead over itself."));
  view.append(el("div", { class: "race-chart", html: raceLanes(R) }));
  view.append(el("div", { class: "race-standings", html: raceTable(R) }));
}

function raceLanes(R) {
  const labelWidth = Math.min(280, 16 + 7 * Math.max(...R.variants.map((v) => v.name.length + v.status.length + 3)));
  const plot = 520, laneH = 56, pad = 6, top = 18;
  const width = labelWidth + plot + 70, height = top + R.variants.length * laneH + 18;
  const maxBlocks = Math.max(R.blocks, 1);
  // One vertical scale for every lane: the widest interval end, at most the score's span.
  const ends = R.variants.flatMap((v) => v.path.flatMap((p) => [p[2], p[3]])).filter((e) => e !== null);
  const span = Math.min(R.span || 1, Math.max(...ends.map(Math.abs), 1e-9));
  const x = (b) => labelWidth + (plot * b) / maxBlocks;
  let svg = `<svg width="${width}" height="${height}" role="img" aria-label="The race, round by round">`;
  svg += `<text x="${labelWidth}" y="12" class="axis">0</text>`
    + `<text x="${labelWidth + plot}" y="12" class="axis" text-anchor="end">${esc(fmt(R.blocks, "int"))} blocks</text>`;
  R.variants.forEach((v, k) => {
    const y0 = top + k * laneH, mid = y0 + laneH / 2, half = laneH / 2 - pad;
    const y = (value) => mid - (half * Math.max(-span, Math.min(span, value))) / span;
    svg += `<text x="${labelWidth - 8}" y="${mid + 4}" text-anchor="end">${esc(v.name)} `
      + `<tspan class="status ${esc(v.status)}">${esc(v.status)}</tspan></text>`;
    svg += `<line class="zero" x1="${x(0)}" x2="${x(maxBlocks)}" y1="${mid}" y2="${mid}"></line>`;
    const points = v.path.filter((p) => p[1] !== null && p[2] !== null && p[3] !== null);
    if (points.length) {
      const upper = points.map((p) => `${x(p[0])},${y(p[3])}`);
      const lower = points.slice().reverse().map((p) => `${x(p[0])},${y(p[2])}`);
      svg += `<polygon class="band" points="${upper.concat(lower).join(" ")}"></polygon>`;
      svg += `<polyline class="lead" points="${points.map((p) => `${x(p[0])},${y(p[1])}`).join(" ")}"></polyline>`;
    }
    if (v.dropped) {
      const px = x(v.dropped.blocks), py = y(v.dropped.lead ?? 0);
      svg += `<text class="drop" x="${px}" y="${py + 4}" text-anchor="middle">×</text>`
        + `<text class="note" x="${x(maxBlocks) + 6}" y="${mid + 4}">round ${esc(v.dropped.round)}</text>`;
    }
    svg += `<line class="lane" x1="${labelWidth}" x2="${x(maxBlocks)}" y1="${y0 + laneH}" y2="${y0 + laneH}"></line>`;
  });
  return svg + "</svg>";
}

function raceTable(R) {
  const num = (value) => (value === null || value === undefined ? "" : Number(value).toPrecision(3));
  const signed = (value) => (value === null || value === undefined ? "" : (value >= 0 ? "+" : "") + num(value));
  const head = ["rank", R.factor, "status", "mean", "cases", "calls", "dropped", "its lead [interval]"];
  const rows = R.variants.map((v) => {
    const d = v.dropped;
    const dropped = d ? `round ${d.round}, after ${fmt(d.blocks, "int")} blocks, by ${d.against}` : "";
    const lead = d ? `${signed(d.lead)} [${signed(d.low)}, ${signed(d.high)}]` : "";
    return [v.rank, v.name, v.status, num(v.mean), fmt(v.cases, "int"), fmt(v.calls, "int"), dropped, lead];
  });
  return `<table><thead><tr>${head.map((h) => `<th>${esc(h)}</th>`).join("")}</tr></thead><tbody>`
    + rows.map((r) => `<tr>${r.map((c) => `<td>${esc(c)}</td>`).join("")}</tr>`).join("")
    + "</tbody></table>";
}
