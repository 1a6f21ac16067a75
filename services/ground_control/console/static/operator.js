// Lunar GS operator console: telemetry, plots, alarms, events, commanding.
import {
  FAR_SIDE, SEV_RANK, AlarmTable, ClockView, EventLog, LinkView, LiveSocket, MissionClock,
  api, argField, load, loadDictionary, collectArgs, connView, errorText, fmtArgs, fmtUTC, fmtValue, h, markValidity, timeCell,
} from "/static/console.js";

const PLOT_KEYS = [
  "lander-drill.depth_m",
  "lander-drill.torque_nm",
  "ascent-vehicle.altitude_km",
  "lander-arm.bus_voltage_v",
  "lander-drill.bit_temperature_c",
  "ascent-vehicle.velocity_mps",
];
const PLOT_COLOURS = ["#4fb3ff", "#ffb000", "#3ddc84", "#c792ea", "#ff7a59", "#5eead4"];
const MAX_POINTS = 5000;
const PLOT_REDRAW_MS = 500;   // twice a second: redrawing 5,000-point plots is most of a busy page's CPU
const MAX_COMMAND_ROWS = 500;
const TIME_PARAMS = new Set(["next_los", "next_aos"]);   // mission times: shown as UTC (data-value stays raw)

const $ = (sel) => document.querySelector(sel);

const clock = new MissionClock();
let link = null;
let dict = null;
const params = new Map();      // key -> dictionary parameter
const nodes = new Map();       // node -> {section, rows: Map(path -> {tr, def}), packet, stale}
const series = new Map();      // key -> Series
const plots = new Map();       // key -> Plot
let alarms = null;
let events = null;
let commands = null;

// plotData(key): a copy of a plot's points ([times], [values]), for tests and the browser's console.
function plotData(key) {
  const s = series.get(key);
  return s ? [s.t.slice(), s.v.slice()] : [[], []];
}

const lgs = { ready: false, plotData };
window.lgsConsole = lgs;

const pathOf = (key, node) => key.slice(node.length + 1);

// -- plot data: sorted by sim_time, one point per packet -------------------------------------------------

function lowerBound(arr, x) {
  let lo = 0, hi = arr.length;
  while (lo < hi) { const mid = (lo + hi) >> 1; if (arr[mid] < x) lo = mid + 1; else hi = mid; }
  return lo;
}

class Series {
  constructor(key, node, path) {
    this.key = key; this.node = node; this.path = path;
    this.all = { t: [], v: [], ids: [] };
    this.seen = new Set();
    this.dirty = false;
  }

  /** Adds one packet's value; a packet already held (same seq and sim_time) or the same instant is not added twice. */
  add(seq, t, value) {
    if (typeof t !== "number" || !Number.isFinite(t)) return false;
    const id = `${seq}@${t}`;
    if (this.seen.has(id)) return false;
    let v = typeof value === "boolean" ? (value ? 1 : 0) : value;
    if (typeof v !== "number" || !Number.isFinite(v)) v = null;
    const a = this.all;
    const n = a.t.length;
    if (n === 0 || t > a.t[n - 1]) {
      a.t.push(t); a.v.push(v); a.ids.push(id);
    } else {
      if (n >= MAX_POINTS && t < a.t[n - MAX_POINTS]) return false;   // older than everything kept
      const i = lowerBound(a.t, t);
      if (a.t[i] === t) return false;   // that instant is held already
      a.t.splice(i, 0, t); a.v.splice(i, 0, v); a.ids.splice(i, 0, id);
    }
    this.seen.add(id);
    // trimmed in chunks; only the newest MAX_POINTS are ever shown or handed out
    if (a.t.length > MAX_POINTS + 500) {
      const drop = a.t.length - MAX_POINTS;
      a.t.splice(0, drop); a.v.splice(0, drop);
      for (const old of a.ids.splice(0, drop)) this.seen.delete(old);
    }
    this.dirty = true;
    return true;
  }

  get t() { return this.all.t.length > MAX_POINTS ? this.all.t.slice(-MAX_POINTS) : this.all.t; }
  get v() { return this.all.v.length > MAX_POINTS ? this.all.v.slice(-MAX_POINTS) : this.all.v; }
  get length() { return Math.min(this.all.t.length, MAX_POINTS); }
  get last() { const t = this.all.t; return t.length ? t[t.length - 1] : null; }
  get lastValue() { const v = this.all.v; return v.length ? v[v.length - 1] : null; }
}

const PLOT_HEIGHT = 128;
const p2 = (n) => String(n).padStart(2, "0");

/** An x tick in UTC, 24 h: `22:30`, `22:30:15` under a minute apart, `06-02 00:00` at midnight. */
function timeTick(t, incr) {
  const d = new Date(t * 1000);
  const hm = `${p2(d.getUTCHours())}:${p2(d.getUTCMinutes())}`;
  if (incr < 60) return `${hm}:${p2(d.getUTCSeconds())}`;
  if (incr >= 86400 || (d.getUTCHours() === 0 && d.getUTCMinutes() === 0)) return `${p2(d.getUTCMonth() + 1)}-${p2(d.getUTCDate())} ${hm}`;
  return hm;
}

class Plot {
  constructor(container, key, def, colour) {
    this.key = key;
    this.series = series.get(key);
    this.unit = (def && def.unit) || "";
    this.readout = h("span", { class: "readout", text: "—" });
    this.el = h("div", { class: "plot", "data-key": key, "data-points": "0" },
      h("div", { class: "plot-head" }, h("span", { class: "plot-title", text: key }),
        this.unit ? h("span", { class: "unit", text: `[${this.unit}]` }) : null, this.readout),
      h("div", { class: "plot-body" }));
    container.append(this.el);
    const body = this.el.querySelector(".plot-body");
    const axis = { stroke: "#8593a6", grid: { stroke: "#1c2633", width: 1 }, ticks: { stroke: "#2a3646", width: 1 },
      font: "11px 'DejaVu Sans Mono', monospace" };
    const opts = {
      width: Math.max(200, body.clientWidth || 480), height: PLOT_HEIGHT,
      tzDate: (ts) => uPlot.tzDate(new Date(ts * 1000), "Etc/UTC"),
      scales: { x: { time: true } },
      legend: { show: false },
      cursor: { points: { size: 5 }, drag: { x: false, y: false } },
      series: [{}, { label: key, stroke: colour, width: 1.5, spanGaps: false, points: { show: false } }],
      axes: [{ ...axis, size: 26, space: 70, values: (u, splits, ax, space, incr) => splits.map((t) => timeTick(t, incr)) },
        { ...axis, size: 54, space: 22, values: (u, splits) => splits.map((v) => fmtValue(v)) }],
      hooks: { setCursor: [(u) => this._hover(u)] },
    };
    this.u = new uPlot(opts, [[], []], body);
    this.body = body;
  }

  _hover(u) {
    const i = u.cursor.idx;
    if (i === null || i === undefined || !u.data[0].length) { this._showLatest(); return; }
    this.hovering = true;
    this.readout.textContent = `${fmtUTC(u.data[0][i])}  ${fmtValue(u.data[1][i])}`;
  }

  _showLatest() {
    this.hovering = false;
    const s = this.series;
    this.readout.textContent = s.length ? fmtValue(s.lastValue) : "—";
  }

  redraw() {
    const s = this.series;
    if (!s.dirty) return;
    s.dirty = false;
    this.u.setData([s.t.slice(), s.v.slice()]);
    if (!this.hovering) this._showLatest();
  }

  resize() {
    const w = this.body.clientWidth;
    if (w > 0 && Math.abs(w - this.u.width) > 1) this.u.setSize({ width: w, height: PLOT_HEIGHT });
  }
}

function noteCounts() {
  for (const p of plots.values()) {
    const n = String(p.series.length);
    if (p.el.dataset.points !== n) p.el.dataset.points = n;
  }
}

// -- telemetry tables ------------------------------------------------------------------------------------

function limitText(limits) {
  return (limits || []).map((l) => {
    const lo = l.low ?? null, hi = l.high ?? null;
    let t = lo !== null && hi !== null ? `${fmtValue(lo)} … ${fmtValue(hi)}` : lo !== null ? `≥ ${fmtValue(lo)}` : hi !== null ? `≤ ${fmtValue(hi)}` : "";
    if (l.when_mode || l.when_true) t += "*";
    return t;
  }).filter(Boolean).join(" | ");
}

function limitTitle(limits) {
  return (limits || []).map((l) => {
    const cond = l.when_mode ? ` when mode in ${l.when_mode.join(", ")}` : l.when_true ? ` when ${l.when_true}` : "";
    return `${l.severity || "warning"}: ${l.low ?? "−∞"} … ${l.high ?? "∞"}${cond}`;
  }).join("\n");
}

/** The worst limit the value breaks: ok, warning, error or critical (booleans count as 0/1). */
function limitState(def, path, value, values) {
  const num = typeof value === "boolean" ? (value ? 1 : 0) : value;
  if (typeof num !== "number" || !Number.isFinite(num)) return "ok";
  if (Array.isArray(values.missing) && values.missing.includes(path)) return "ok";
  let worst = "ok", rank = -1;
  for (const l of def.limits || []) {
    if (Array.isArray(l.when_mode) && !l.when_mode.includes(values.mode)) continue;
    if (l.when_true && values[l.when_true] !== true) continue;
    const hit = (l.low !== null && l.low !== undefined && num < l.low) || (l.high !== null && l.high !== undefined && num > l.high);
    const sev = l.severity || "warning";
    if (hit && (SEV_RANK[sev] ?? 1) > rank) { worst = sev; rank = SEV_RANK[sev] ?? 1; }
  }
  return worst;
}

function buildTables() {
  const root = $("#parameters");
  root.replaceChildren();
  const byNode = new Map(dict.nodes.map((n) => [n, []]));
  for (const p of dict.parameters) {
    if (!byNode.has(p.node)) byNode.set(p.node, []);
    byNode.get(p.node).push(p);
  }
  // two columns, each node table whole, filled greedily so the columns come out about as tall
  const cols = [h("div", { class: "param-col" }), h("div", { class: "param-col" })];
  const heights = [0, 0];
  root.append(...cols);
  for (const [node, list] of byNode) {
    const rows = new Map();
    const tbody = h("tbody");
    for (const def of list) {
      const path = pathOf(def.key, node);
      const tr = h("tr", { "data-key": def.key, "data-stale": "true", "data-limit": "ok" },
        h("td", { class: "name", text: def.name || path, title: def.key }),
        h("td", { class: "value", text: "—" }),
        h("td", { class: "unit", text: def.unit || "" }),
        h("td", { class: "limits", text: limitText(def.limits), title: limitTitle(def.limits) || null }),
        h("td", { class: "sim-time", text: "—" }),
        h("td", { class: "flag" }, h("span", { class: "stale-tag", text: "STALE" })));
      rows.set(path, { tr, def, valueCell: tr.children[1], timeCell: tr.children[4] });
      tbody.append(tr);
    }
    const head = h("div", { class: "node-head" },
      h("span", { class: "node-name", text: node }),
      h("span", { class: "node-mode", text: "" }),
      h("span", { class: "node-seq", text: "" }),
      h("span", { class: "node-time", text: "no packet" }),
      FAR_SIDE.has(node) ? h("span", { class: "far-tag", text: "FAR SIDE", title: "reaches Earth through the relay" }) : null,
      h("span", { class: "stale-tag", text: "STALE" }));
    const table = h("table", { class: "grid params" },
      h("thead", {}, h("tr", {}, h("th", { text: "Parameter" }), h("th", { text: "Value" }), h("th", { text: "Unit" }),
        h("th", { text: "Limits" }), h("th", { text: "Packet time (UTC)" }), h("th", { text: "" }))),
      tbody);
    const section = h("section", { class: "node", "data-node": node, "data-stale": "true" }, head, table);
    const c = heights[0] <= heights[1] ? 0 : 1;
    cols[c].append(section);
    heights[c] += list.length + 3;
    nodes.set(node, { section, head, rows, packet: null, stale: null });
  }
}

/** A newer packet for a node (from `latest` or a `tm` item). */
function notePacket(node, packet) {
  let n = nodes.get(node);
  if (!n) return;
  if (n.packet && Number.isFinite(n.packet.sim_time) && packet.sim_time < n.packet.sim_time) return;
  n.packet = packet;
  scheduleRender(n);
}

/** Renders a node's table once per display frame at most (at a high clock rate packets come in hundreds a
 * second, and only the newest can be seen): the value shows at the next frame, never later. */
function scheduleRender(n) {
  if (n.renderPending) return;
  n.renderPending = true;
  requestAnimationFrame(() => {
    n.renderPending = false;
    renderNode(n);
  });
}

function renderNode(n) {
  const p = n.packet;
  if (!p) return;
  const values = p.values || {};
  const missing = Array.isArray(values.missing) ? values.missing : [];
  for (const [path, r] of n.rows) {
    const has = Object.prototype.hasOwnProperty.call(values, path);
    const v = has ? values[path] : null;
    const text = !has ? "—" : TIME_PARAMS.has(path) && Number.isFinite(v) ? fmtUTC(v) : fmtValue(v);
    if (r.valueCell.textContent !== text) r.valueCell.textContent = text;
    const lim = has ? limitState(r.def, path, v, values) : "ok";
    if (r.tr.dataset.limit !== lim) r.tr.dataset.limit = lim;
    r.tr.classList.toggle("missing", missing.includes(path));
    if (has) {   // the value and the packet time it came with, always together
      r.valueCell.setAttribute("data-value", JSON.stringify(v));
      r.timeCell.dataset.simTime = String(p.sim_time);
      r.timeCell.textContent = fmtUTC(p.sim_time);
    } else {
      r.valueCell.removeAttribute("data-value");
      delete r.timeCell.dataset.simTime;
      r.timeCell.textContent = "—";
    }
  }
  n.head.querySelector(".node-mode").textContent = values.mode !== undefined ? String(values.mode).toUpperCase() : "";
  n.head.querySelector(".node-seq").textContent = Number.isFinite(p.seq) ? `#${p.seq}` : "";
  n.head.querySelector(".node-time").textContent = fmtUTC(p.sim_time);
  evalNodeStale(n);
}

function evalNodeStale(n) {
  const node = n.section.dataset.node;
  const now = clock.now();
  const p = n.packet;
  let stale = !p;
  if (p) {
    if (p.staleFlag) stale = true;
    if (now !== null && Number.isFinite(dict.stale_after_s) && now - p.sim_time > dict.stale_after_s) stale = true;
  }
  if (FAR_SIDE.has(node) && link && link.state === "los") stale = true;
  if (n.stale === stale) return;
  n.stale = stale;
  const s = String(stale);
  n.section.dataset.stale = s;
  for (const r of n.rows.values()) r.tr.dataset.stale = s;
}

function evalStale() {
  for (const n of nodes.values()) evalNodeStale(n);
}

// -- commands --------------------------------------------------------------------------------------------

const STAGE_ORDER = { acceptance: 0, start: 1, progress: 2, completion: 3 };
const STAGE_LABEL = { acceptance: "ACC", start: "START", progress: "PROG", completion: "DONE" };

function stageTime(v) {
  if (typeof v === "number") return v;
  if (Array.isArray(v)) return stageTime(v[v.length - 1]);
  if (v && typeof v === "object") return Number(v.sim_time ?? v.time ?? v.at);
  return NaN;
}

/** The stages reached, in the order reached: [{stage, failed, time, count}]. */
function stagesOf(entry) {
  const list = [];
  for (const [key, v] of Object.entries(entry.stages || {})) {
    const failed = /_failed$/.test(key);
    const stage = key.replace(/_failed$/, "");
    let count = null;
    if (stage === "progress") {
      count = Array.isArray(v) ? v.length : (v && typeof v === "object" && Number.isFinite(v.count)) ? v.count : entry.progress;
    }
    list.push({ stage, failed, time: stageTime(v), count });
  }
  list.sort((a, b) => {
    const ta = Number.isFinite(a.time) ? a.time : Infinity, tb = Number.isFinite(b.time) ? b.time : Infinity;
    if (ta !== tb) return ta - tb;
    return (STAGE_ORDER[a.stage] ?? 9) - (STAGE_ORDER[b.stage] ?? 9) || (a.failed - b.failed);
  });
  // one span per stage: a stage that failed after being reported keeps its place, marked failed
  const out = [];
  for (const s of list) {
    const prev = out.find((o) => o.stage === s.stage);
    if (prev) { prev.failed = prev.failed || s.failed; if (s.count !== null) prev.count = s.count; }
    else out.push(s);
  }
  const fs = entry.failed_stage;
  if (fs) {
    const hit = out.find((o) => o.stage === fs);
    if (hit) hit.failed = true;
    else out.push({ stage: fs, failed: true, time: entry.final_at, count: fs === "progress" ? entry.progress : null });
  }
  return out;
}

class CommandTable {
  constructor(tbody) {
    this.tbody = tbody;
    this.rows = new Map();
    this.epoch = dict.epoch;
  }

  load(list) {
    const sorted = (list || []).filter((e) => e && e.request_id).sort((a, b) => (a.sent_at || 0) - (b.sent_at || 0));
    for (const e of sorted) this.update(e);
  }

  update(e) {
    if (!e || !e.request_id) return;
    let row = this.rows.get(e.request_id);
    if (!row) {
      row = h("tr", { "data-request-id": e.request_id },
        ...["sent", "node", "command", "args", "origin", "state", "stages", "reason"].map((c) => h("td", { class: c })));
      row.sentAt = Number(e.sent_at);
      this.rows.set(e.request_id, row);
      let before = this.tbody.firstElementChild;
      while (before && before.sentAt > row.sentAt) before = before.nextElementSibling;
      this.tbody.insertBefore(row, before);
      while (this.tbody.children.length > MAX_COMMAND_ROWS) {
        const last = this.tbody.lastElementChild;
        this.rows.delete(last.dataset.requestId);
        last.remove();
      }
    }
    const q = (c) => row.querySelector(`td.${c}`);
    row.dataset.state = e.state || "";
    row.className = `cmd st-${e.state || "sent"}`;
    q("sent").replaceChildren(...timeCell(e.sent_at, this.epoch));
    q("node").textContent = e.node || "";
    q("command").textContent = e.command || "";
    q("command").title = e.request_id + (e.client_ref ? ` · ${e.client_ref}` : "");
    const args = fmtArgs(e.args);
    q("args").replaceChildren(h("span", { class: "clip", text: args, title: args || null }));
    q("origin").textContent = e.origin || "";
    q("state").textContent = String(e.state || "").toUpperCase().replace("_", " ");
    q("stages").replaceChildren(...stagesOf(e).map((s) => {
      const label = (STAGE_LABEL[s.stage] || s.stage.toUpperCase()) + (s.stage === "progress" && Number.isFinite(s.count) ? ` ${s.count}` : "");
      return h("span", {
        class: `stage${s.failed ? " failed" : " ok"}`, "data-stage": s.stage,
        title: `${s.stage}${s.failed ? " failed" : ""}${Number.isFinite(s.time) ? " at " + fmtUTC(s.time, true) : ""}`,
      }, `${s.failed ? "✗" : "✓"} ${label}`);
    }));
    const reason = q("reason");
    reason.dataset.failedStage = e.failed_stage || "";
    const code = e.failure_code ? `${e.failure_code}` : "";
    reason.replaceChildren(code ? h("span", { class: "code", text: code }) : "", code && e.reason ? " " : "", e.reason || "");
    reason.title = e.reason || "";
    const note = this.tbody.closest(".scroll").querySelector(".empty-note");
    if (note) note.hidden = this.rows.size > 0;
  }
}

function buildCommandForm() {
  const form = $("#command-form");
  const nodeSel = $("#cmd-node"), nameSel = $("#cmd-name"), argsBox = $("#cmd-args");
  const errBox = $("#cmd-error"), status = $("#cmd-status"), send = $("#cmd-send");
  const byNode = new Map();
  for (const c of dict.commands || []) {
    if (!byNode.has(c.node)) byNode.set(c.node, []);
    byNode.get(c.node).push(c);
  }
  const order = [...dict.nodes.filter((n) => byNode.has(n)), ...[...byNode.keys()].filter((n) => !dict.nodes.includes(n))];
  nodeSel.replaceChildren(...order.map((n) => h("option", { value: n, text: n })));
  const current = () => (byNode.get(nodeSel.value) || []).find((c) => c.name === nameSel.value);
  const fillNames = () => {
    nameSel.replaceChildren(...(byNode.get(nodeSel.value) || []).map((c) =>
      h("option", { value: c.name, text: c.name + (c.hazardous ? " ⚠" : "") })));
    fillArgs();
  };
  const fillArgs = () => {
    const cmd = current();
    argsBox.replaceChildren(...((cmd && cmd.args) || []).map((a) => argField(a)));
    if (!cmd || !(cmd.args || []).length) argsBox.append(h("span", { class: "no-args", text: "no arguments" }));
    $("#cmd-hazard").hidden = !(cmd && cmd.hazardous);
    errBox.textContent = "";
  };
  nodeSel.addEventListener("change", fillNames);
  nameSel.addEventListener("change", fillArgs);
  fillNames();

  const dialog = $("#confirm-dialog");
  const ask = (cmd) => new Promise((resolve) => {
    $("#confirm-text").replaceChildren("Send the hazardous command ", h("b", { text: cmd.name }), " to ",
      h("b", { text: cmd.node }), "?", h("br"), h("span", { class: "dim", text: fmtArgs(collectArgs(argsBox)) || "no arguments" }));
    const done = () => { dialog.removeEventListener("close", done); resolve(dialog.returnValue === "yes"); };
    dialog.returnValue = "";
    dialog.addEventListener("close", done);
    dialog.showModal();
  });

  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const cmd = current();
    if (!cmd) return;
    markValidity(argsBox);
    errBox.textContent = "";
    status.textContent = "";
    const args = collectArgs(argsBox);
    let confirm = false;
    if (cmd.hazardous) {
      confirm = await ask(cmd);
      if (!confirm) { status.textContent = "cancelled"; return; }
    }
    const body = { node: cmd.node, command: cmd.name, args, confirm, client_ref: `op-${Date.now().toString(36)}` };
    send.disabled = true;
    const answer = await api("POST", "/api/v1/commands", body);
    send.disabled = false;
    if (answer.ok && answer.data) {
      const e = answer.data;
      if (e.request_id) commands.update(e);
      status.className = "cmd-status";
      if (e.state === "failed") {
        status.classList.add("refused");
        status.textContent = `${e.request_id || ""} refused at ${e.failed_stage || "acceptance"}: ${e.failure_code || ""} ${e.reason || ""}`;
      } else {
        status.textContent = `${e.request_id || "sent"} · ${String(e.state || "sent").toUpperCase()}`;
      }
    } else {
      errBox.textContent = errorText(answer);
    }
  });
}

// -- loading and the live stream -------------------------------------------------------------------------


async function loadLatest() {
  const answer = await api("GET", "/api/v1/latest");
  if (!answer.ok || !answer.data) return;
  for (const [node, p] of Object.entries(answer.data)) {
    if (!p || typeof p !== "object") continue;
    notePacket(node, { seq: p.seq, sim_time: p.sim_time, received_sim: p.received_sim, values: p.values || {}, staleFlag: !!p.stale });
    // the server's view of staleness wins for the packet it describes
    const n = nodes.get(node);
    if (n && n.packet && n.packet.sim_time === p.sim_time) { n.packet.staleFlag = !!p.stale; evalNodeStale(n); }
  }
}

const loadAlarms = () => load("/api/v1/alarms", (d) => alarms.load(d.alarms || []));

/** The newest events ground control kept (GET /api/v1/events, beside the documented API); the live stream adds to them. */
const loadEvents = () => load("/api/v1/events?limit=500", (d) => { for (const e of d.events || []) events.add(e); });

const loadCommands = () => load("/api/v1/commands", (d) => commands.load(d.commands || []));

const loadClock = () => load("/api/v1/clock", (d) => clock.set(d));

const loadLink = () => load("/api/v1/link", (d) => { link.set(d); evalStale(); });

/** History of the plotted parameters, one request per node; `sinceLast`: only after the newest point held. */
async function backfill(sinceLast) {
  const byNode = new Map();
  for (const s of series.values()) {
    if (!byNode.has(s.node)) byNode.set(s.node, []);
    byNode.get(s.node).push(s);
  }
  await Promise.all([...byNode].map(async ([node, list]) => {
    let url = `/api/v1/history?node=${encodeURIComponent(node)}&parameters=${list.map((s) => encodeURIComponent(s.path)).join(",")}&limit=${MAX_POINTS}`;
    if (sinceLast) {
      const lasts = list.map((s) => s.last).filter((t) => t !== null);
      if (lasts.length) url += `&since=${Math.min(...lasts)}`;
    }
    const answer = await api("GET", url);
    if (!answer.ok || !answer.data) return;
    for (const row of answer.data.rows || []) {
      const values = row.values || {};
      for (const s of list) s.add(row.seq, row.sim_time, values[s.path]);
    }
  }));
  noteCounts();
  redrawPlots();
}

function redrawPlots() {
  for (const p of plots.values()) p.redraw();
}

function addTmToPlots(it) {
  const values = it.values || {};
  for (const s of series.values()) if (s.node === it.node) s.add(it.seq, it.sim_time, values[s.path]);
}

function onItems(items) {
  const newest = new Map();
  let tm = false;
  for (const it of items) {
    if (!it || typeof it !== "object") continue;
    switch (it.kind) {
      case "tm": {
        tm = true;
        const n = nodes.get(it.node);
        addTmToPlots(it);
        if (n) {
          const prev = newest.get(it.node);
          if (!prev || it.sim_time >= prev.sim_time) newest.set(it.node, it);
        }
        if (FAR_SIDE.has(it.node) && Number.isFinite(it.received_sim) && Number.isFinite(it.sim_time)) {
          clock.notePacket({ node: it.node, spacecraft_time: it.sim_time, ground_receive_time: it.received_sim, delay_s: it.received_sim - it.sim_time });
        }
        break;
      }
      case "event": events.add(it); break;
      case "alarm": alarms.update(it); break;
      case "command": commands.update(it); break;
      case "clock": clock.set(it.clock || it); break;
      case "link": link.set(it.link || it); evalStale(); break;
      default: break;
    }
  }
  for (const [node, it] of newest) {
    notePacket(node, { seq: it.seq, sim_time: it.sim_time, received_sim: it.received_sim, values: it.values || {}, staleFlag: false });
  }
  if (tm) noteCounts();
}

async function main() {
  link = new LinkView($("#link"), clock);
  new ClockView($("#clock"), clock);
  const status = connView($("#conn"));

  dict = await loadDictionary((why) => { $("#mission").textContent = `no dictionary: ${why}`; });
  clock.epoch = Number(dict.epoch);
  $("#mission").textContent = `mission ${dict.mission || "?"}`;
  document.title = `Lunar GS · Operator · ${dict.mission || ""}`;
  for (const p of dict.parameters) params.set(p.key, p);
  buildTables();

  const plotBox = $("#plots");
  PLOT_KEYS.filter((k) => params.has(k)).forEach((key, i) => {
    const def = params.get(key);
    series.set(key, new Series(key, def.node, pathOf(key, def.node)));
    plots.set(key, new Plot(plotBox, key, def, PLOT_COLOURS[i % PLOT_COLOURS.length]));
  });
  new ResizeObserver(() => { for (const p of plots.values()) p.resize(); }).observe(plotBox);

  const summary = $("#alarm-summary");
  alarms = new AlarmTable($("#alarms tbody"), {
    epoch: clock.epoch,
    onCount: ({ total, unack }) => {
      $("#alarm-count").textContent = total ? `${total} · ${unack} unacknowledged` : "";
      summary.textContent = unack ? `ALARMS ${total} · ${unack} UNACK` : `ALARMS ${total}`;
      summary.dataset.unack = String(unack);
    },
  });
  events = new EventLog($("#events tbody"), {
    nodeSelect: $("#event-node"), sevSelect: $("#event-severity"),
    nodes: [...dict.nodes, "ground-control"], epoch: clock.epoch, max: 500,
  });
  commands = new CommandTable($("#commands tbody"));
  buildCommandForm();

  let helloResolve;
  const hello = new Promise((r) => { helloResolve = r; });
  const socket = new LiveSocket({
    onStatus: status,
    onHello: (msg, reconnect) => {
      if (msg.clock) clock.set(msg.clock);
      if (msg.link) { link.set(msg.link); evalStale(); }
      helloResolve();
      if (reconnect) {
        backfill(true);
        loadLatest(); loadAlarms(); loadCommands(); loadEvents();
      }
    },
    onItems,
    onOverflow: () => { backfill(false); loadLatest(); loadAlarms(); loadCommands(); loadEvents(); loadClock(); loadLink(); },
  });
  socket.start();

  await Promise.all([loadLatest(), loadAlarms(), loadCommands(), loadEvents(), loadClock(), loadLink(), backfill(false)]);
  await Promise.race([hello, new Promise((r) => setTimeout(r, 5000))]);
  lgs.ready = true;

  setInterval(evalStale, 1000);
  setInterval(redrawPlots, PLOT_REDRAW_MS);
  setInterval(loadClock, 15000);
}

main();
