// dbload serve's page: the form posts /api/runs, the live view follows
// /api/runs/{id}/events (Server-Sent Events), the charts are plain SVG.
"use strict";

const SVG = "http://www.w3.org/2000/svg";
const MODE_COLOURS = { sequential: "#6b7280", threads: "#d97706", async: "#2563eb", processes: "#059669" };
const MORE_COLOURS = ["#7c3aed", "#db2777", "#0891b2", "#65a30d", "#b45309", "#4f46e5", "#be123c", "#0f766e"];
const $ = (id) => document.getElementById(id);
const acceptRuns = document.body.dataset.acceptRuns === "true";

let following = null; // { id, source, cells: [{mode, driver, concurrency, state, points}], view }

async function api(path, options = {}) {
  const response = await fetch(path, { headers: { "Content-Type": "application/json" }, ...options });
  const body = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(body.error || `${response.status} ${response.statusText}`);
  return body;
}

function el(tag, attrs = {}, text = "") {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, value);
  if (text) node.textContent = text;
  return node;
}

function svg(tag, attrs = {}, text = "") {
  const node = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, value);
  if (text) node.textContent = text;
  return node;
}

// -- the form ------------------------------------------------------------------------

async function loadSetup() {
  const [targets, workloads, modes] = await Promise.all([
    api("/api/targets"), api("/api/workloads"), api("/api/modes"),
  ]);
  targetList = targets;
  for (const t of targets) $("target").append(el("option", { value: t.name }, t.name));
  $("target").addEventListener("change", describeTarget);
  describeTarget();
  const workload = $("workload");
  for (const w of workloads) {
    workload.append(el("option", { value: w.name, title: w.description }, `${w.name} — ${w.description}`));
  }
  for (const mode of modes.modes) checkbox($("modes"), "mode", mode, true);
  for (const driver of modes.drivers) checkbox($("drivers"), "driver", driver, false);
}

let targetList = [];

async function loadTargets() {
  targetList = await api("/api/targets").catch(() => targetList);
  describeTarget();
}

function describeTarget() {
  const t = targetList.find((x) => x.name === $("target").value);
  if (!t) return;
  const busy = t.running.length ? `, running ${t.running[0]}` : "";
  const queued = t.queued.length ? `, ${t.queued.length} queued` : "";
  $("target-info").textContent = `${t.kind} ${t.url || "(resolved at its first run)"}${busy}${queued}`;
}

function checkbox(parent, name, value, checked) {
  const label = el("label");
  const box = el("input", { type: "checkbox", name, value });
  box.checked = checked;
  label.append(box, document.createTextNode(` ${value}`));
  parent.append(label);
}

function numberOf(id) {
  const text = $(id).value.trim();
  return text === "" ? null : Number(text);
}

function requestBody() {
  const checked = (name) => [...document.querySelectorAll(`input[name=${name}]:checked`)].map((b) => b.value);
  const body = { target: $("target").value, workload: $("workload").value, modes: checked("mode") };
  const drivers = checked("driver");
  if (drivers.length) body.drivers = drivers;
  const sweep = $("concurrency").value.split(/[,\s]+/).filter(Boolean).map(Number);
  if (sweep.length) body.concurrency = sweep.length === 1 ? sweep[0] : sweep;
  const transactions = numberOf("transactions");
  if (transactions !== null) body.transactions = transactions;
  else if (numberOf("duration") !== null) body.duration = numberOf("duration");
  for (const key of ["rate", "warmup", "seed"]) {
    const value = numberOf(key);
    if (value !== null && !(key === "rate" && value === 0)) body[key] = value;
  }
  return body;
}

async function start(event) {
  event.preventDefault();
  $("form-error").textContent = "";
  try {
    const started = await api("/api/runs", { method: "POST", body: JSON.stringify(requestBody()) });
    follow(started.id);
    loadHistory();
    loadTargets();
  } catch (error) {
    $("form-error").textContent = error.message;
  }
}

async function stop() {
  if (!following) return;
  $("stop").disabled = true;
  try {
    await api(`/api/runs/${following.id}/stop`, { method: "POST" });
  } catch (error) {
    $("form-error").textContent = error.message;
  }
}

// -- following a run -------------------------------------------------------------------

function follow(id) {
  if (following && following.source) following.source.close();
  following = { id, source: null, cells: [], view: null };
  location.hash = `run=${id}`;
  $("report-link").textContent = "";
  const source = new EventSource(`/api/runs/${encodeURIComponent(id)}/events`);
  following.source = source;
  source.addEventListener("snapshot", (e) => apply(JSON.parse(e.data)));
  source.addEventListener("final", (e) => {
    source.close();
    apply(JSON.parse(e.data));
    loadHistory();
  });
  source.onerror = () => {
    if (source.readyState === EventSource.CLOSED && following && following.id === id && !following.view) {
      setStatus("failed", `run ${id} cannot be followed (not on this server any more?)`);
    }
  };
}

function apply(view) {
  if (!following || view.id !== following.id) return;
  following.view = view;
  view.cells.forEach((cell, i) => {
    const mine = following.cells[i] || (following.cells[i] = { points: [] });
    Object.assign(mine, { mode: cell.mode, driver: cell.driver, concurrency: cell.concurrency, state: cell.state });
    mine.points.length = Math.min(mine.points.length, cell.points_from);
    mine.points.push(...cell.points);
  });
  const where = view.status === "queued" ? ` (${view.queue_position} ahead on ${view.request.target})` : "";
  const cell = view.current_cell !== null ? ` · cell ${view.current_cell + 1} of ${view.cells.length}` : "";
  setStatus(view.status, `${view.status}${where}${cell}${view.error ? ` — ${view.error}` : ""}`);
  $("live-title").textContent = `Run ${view.id}: ${view.request.workload}`;
  const db = view.database ? `${view.database.kind} ${view.database.url} (PostgreSQL ${view.database.server_version})` : "";
  $("live-info").textContent = db;
  const ended = ["done", "stopped", "failed"].includes(view.status);
  $("stop").disabled = !acceptRuns || ended;
  if (ended && acceptRuns) loadTargets();
  if (view.saved) {
    const link = el("a", { href: `/runs/${encodeURIComponent(view.id)}/report`, target: "_blank" }, "open the report");
    $("report-link").replaceChildren(link, document.createTextNode(" (the same page as compare --out's report.html)"));
  }
  drawCells();
  drawChart($("chart-tps"), [{ pick: (p) => p.tps }], "tps");
  drawChart($("chart-p99"), [{ pick: (p) => p.p99_ms }], "ms");
  drawChart($("chart-cpu"), [{ pick: (p) => p.client_cpu_pct }, { pick: (p) => p.server_cpu_pct, dash: "5 4" }], "%");
}

function setStatus(status, text) {
  const node = $("status");
  node.className = `status ${status}`;
  node.textContent = text;
}

function label(cell) {
  const driver = cell.driver ? ` ${cell.driver}` : "";
  // sequential holds one connection and runs the clients' streams in turn (as the report says)
  const clients = cell.mode === "sequential" && cell.concurrency > 1
    ? `c=1, ${cell.concurrency} streams` : `c=${cell.concurrency}`;
  return `${cell.mode}${driver} ${clients}`;
}

function colour(index) {
  const cell = following.cells[index];
  const same = following.cells.slice(0, index).filter((c) => c.mode === cell.mode).length;
  return same === 0 && MODE_COLOURS[cell.mode] ? MODE_COLOURS[cell.mode] : MORE_COLOURS[index % MORE_COLOURS.length];
}

function fmt(value, digits = 1) {
  return value === null || value === undefined ? "–" : Number(value).toLocaleString(undefined, { maximumFractionDigits: digits });
}

function drawCells() {
  const body = $("cells").querySelector("tbody");
  body.replaceChildren();
  const summary = (following.view && following.view.summary) || [];
  following.cells.forEach((cell, i) => {
    // once ended, the cell's whole-run figures (the report's), not its last second
    // a finished cell's last second often ends after its connections closed
    // (no server figures): its last second that has them stands for it
    const seen = cell.points.filter((p) => cell.state !== "done" || p.server_cpu_pct !== null);
    const latest = seen[seen.length - 1] || cell.points[cell.points.length - 1] || {};
    const whole = summary[i];
    const last = whole ? { ...latest, ...whole } : latest;
    const row = el("tr", cell.state === "running" ? { class: "current" } : {});
    const name = el("td");
    const swatch = el("span", { class: "swatch" });
    swatch.style.background = colour(i); // CSSOM, which the page's CSP allows (a style attribute it refuses)
    name.append(swatch, document.createTextNode(label(cell)));
    const backends = last.running === undefined || last.running === null ? "–" : `${last.running} / ${last.waiting} / ${last.idle}`;
    const bound = el("td", { title: last.why || "" }, last.bound || "–");
    row.append(
      name, el("td", {}, cell.state),
      el("td", { class: "num" }, fmt(last.tps, 0)), el("td", { class: "num" }, fmt(last.p99_ms, 3)),
      el("td", { class: "num" }, last.client_cpu_pct === undefined ? "–" : `${fmt(last.client_cpu_pct, 0)} %`),
      el("td", { class: "num" }, last.server_cpu_pct === undefined || last.server_cpu_pct === null ? "–" : `${fmt(last.server_cpu_pct, 0)} %`),
      el("td", { class: "num" }, backends), bound,
    );
    body.append(row);
  });
  // the running cell's verdict, with its reason: what bounds it this second
  const now = following.cells.findIndex((c) => c.state === "running");
  const shown = now >= 0 ? now : following.cells.length - 1;
  const cell = following.cells[shown];
  const last = cell && cell.points[cell.points.length - 1];
  $("explain").textContent = last ? `${label(cell)}, at ${fmt(last.t, 0)} s: ${last.bound} — ${last.why}` : "";
}

// -- the charts: one line per cell, x = seconds since the cell's start ------------------------

function niceMax(value) {
  if (!(value > 0)) return 1;
  const power = 10 ** Math.floor(Math.log10(value));
  for (const step of [1, 2, 2.5, 5, 10]) if (step * power >= value) return step * power;
  return 10 * power;
}

function drawChart(node, lines, unit) {
  const [W, H, left, right, top, bottom] = [640, 260, 56, 16, 12, 28]; // the cell table is the legend
  const series = [];
  following.cells.forEach((cell, i) => {
    for (const line of lines) {
      const points = cell.points.filter((p) => line.pick(p) !== null && line.pick(p) !== undefined);
      series.push({ i, line, points });
    }
  });
  const all = series.flatMap((s) => s.points.map((p) => ({ t: p.t, v: s.line.pick(p) })));
  const xMax = Math.max(5, ...all.map((p) => p.t));
  const yMax = niceMax(Math.max(0, ...all.map((p) => p.v)) * 1.05);
  const x = (t) => left + ((W - left - right) * t) / xMax;
  const y = (v) => H - bottom - ((H - top - bottom) * v) / yMax;
  node.replaceChildren();
  for (let k = 0; k <= 4; k++) {
    const v = (yMax * k) / 4;
    node.append(svg("line", { class: "axis", x1: left, x2: W - right, y1: y(v), y2: y(v) }));
    node.append(svg("text", { x: left - 6, y: y(v) + 4, "text-anchor": "end" }, fmt(v, unit === "ms" ? 2 : 0)));
  }
  for (let k = 0; k <= 5; k++) {
    const t = (xMax * k) / 5;
    node.append(svg("text", { x: x(t), y: H - 8, "text-anchor": "middle" }, `${fmt(t, 0)} s`));
  }
  for (const { i, line, points } of series) {
    if (!points.length) continue;
    const d = points.map((p, k) => `${k ? "L" : "M"}${x(p.t).toFixed(1)},${y(line.pick(p)).toFixed(1)}`).join("");
    const attrs = { class: "series", d, stroke: colour(i), "data-cell": i };
    if (line.dash) attrs["stroke-dasharray"] = line.dash;
    const path = svg("path", attrs);
    path.append(svg("title", {}, label(following.cells[i])));
    node.append(path);
  }
}

// -- history -------------------------------------------------------------------------------

async function loadHistory() {
  let runs;
  try {
    runs = await api("/api/runs");
  } catch (error) {
    return;
  }
  const keep = new Set(picked()); // the ticks outlive the refresh
  const body = $("runs").querySelector("tbody");
  body.replaceChildren();
  for (const run of runs) {
    const row = el("tr");
    const pick = el("td");
    if (run.saved) {
      const box = el("input", { type: "checkbox", name: "pick", value: run.id });
      box.checked = keep.has(run.id);
      pick.append(box);
    }
    const open = el("a", { href: `#run=${run.id}` }, run.id);
    open.addEventListener("click", (e) => {
      e.preventDefault();
      if (run.status === "saved") window.open(`/runs/${encodeURIComponent(run.id)}/report`, "_blank");
      else follow(run.id);
    });
    const cells = (run.cells || []).map((c) => `${c.mode} c=${c.concurrency}: ${fmt(c.tps, 0)}`).join(" · ");
    const report = el("td");
    if (run.saved) report.append(el("a", { href: `/runs/${encodeURIComponent(run.id)}/report`, target: "_blank" }, "report"));
    const idCell = el("td");
    idCell.append(open);
    row.append(pick, idCell, el("td", {}, run.workload), el("td", {}, run.error ? `${run.status}: ${run.error}` : run.status), el("td", {}, cells), report);
    body.append(row);
  }
  body.querySelectorAll("input[name=pick]").forEach((box) => box.addEventListener("change", pickedChanged));
  pickedChanged();
  return runs;
}

function picked() {
  return [...document.querySelectorAll("input[name=pick]:checked")].map((b) => b.value);
}

function pickedChanged() {
  $("diff").disabled = picked().length < 2;
}

function diff() {
  const query = picked().map((id) => `ids=${encodeURIComponent(id)}`).join("&");
  window.open(`/report?${query}`, "_blank");
}

async function main() {
  $("run-form").addEventListener("submit", start);
  $("stop").addEventListener("click", stop);
  $("diff").addEventListener("click", diff);
  if (acceptRuns) await loadSetup();
  else $("setup").hidden = true; // run --dashboard: the page of one CLI run
  const runs = await loadHistory();
  const asked = new URLSearchParams(location.hash.slice(1)).get("run");
  const live = (runs || []).find((r) => r.status !== "saved");
  if (asked) follow(asked);
  else if (!acceptRuns && live) follow(live.id);
  setInterval(loadHistory, 5000);
}

main();
