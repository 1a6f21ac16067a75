// Lunar GS consoles: what the operator and instructor pages share.
// The API is docs/console-api.md. Same origin only; the session cookie is HttpOnly, so no tokens here.

export const FAR_SIDE = new Set(["lander-drill", "lander-arm", "ascent-vehicle"]);
export const SEVERITIES = ["info", "warning", "error", "critical"];
export const SEV_RANK = { ok: 0, info: 0, warning: 1, error: 2, critical: 3 };
const SEV_SHORT = { info: "INFO", warning: "WARN", error: "ERR", critical: "CRIT" };

// -- HTTP ------------------------------------------------------------------------------------------------

/** One request; never throws for an HTTP error status. Returns {ok, status, data}. */
export async function api(method, path, body) {
  const opts = { method, credentials: "same-origin", headers: { Accept: "application/json" } };
  if (body !== undefined) {
    opts.headers["Content-Type"] = "application/json";
    opts.body = JSON.stringify(body);
  }
  let resp;
  try {
    resp = await fetch(path, opts);
  } catch (exc) {
    return { ok: false, status: 0, data: { error: "no connection to ground control" } };
  }
  let data = null;
  const text = await resp.text();
  if (text) {
    try { data = JSON.parse(text); } catch { data = { error: text.slice(0, 300) }; }
  }
  return { ok: resp.ok, status: resp.status, data };
}

/** GET `path` and hand its JSON to `apply`; returns the answer, so a caller can report a failure. */
export async function load(path, apply) {
  const answer = await api("GET", path);
  if (answer.ok && answer.data) apply(answer.data);
  return answer;
}

/** The mission dictionary, retried with backoff until ground control answers (the page needs it to draw). */
export async function loadDictionary(onFailure) {
  for (let delay = 1; ; delay = Math.min(delay * 2, 10)) {
    const answer = await api("GET", "/api/v1/dictionary");
    if (answer.ok && answer.data && Array.isArray(answer.data.parameters)) return answer.data;
    onFailure(errorText(answer));
    await new Promise((r) => setTimeout(r, delay * 1000));
  }
}

export class ApiError extends Error {
  constructor(answer) {
    super(errorText(answer));
    this.answer = answer;
  }
}

/** GET a JSON document; throws ApiError on an error status. */
export async function getJSON(path) {
  const answer = await api("GET", path);
  if (!answer.ok) throw new ApiError(answer);
  return answer.data;
}

/** `400 a comment is required (comment)` from an error answer. */
export function errorText(answer) {
  const d = (answer && answer.data) || {};
  const what = d.error || d.reason || d.message || "request failed";
  const status = answer && answer.status ? `${answer.status} ` : "";
  return `${status}${what}${d.field ? ` (${d.field})` : ""}`;
}

// -- formatting ------------------------------------------------------------------------------------------

const pad = (n, w = 2) => String(n).padStart(w, "0");

/** Unix seconds as `2024-06-01 22:30:04Z`. */
export function fmtUTC(t, ms = false) {
  if (t === null || t === undefined || !Number.isFinite(t)) return "—";
  const d = new Date(t * 1000);
  const frac = ms ? "." + pad(d.getUTCMilliseconds(), 3) : "";
  return `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())} `
    + `${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())}${frac}Z`;
}

/** Unix seconds as `22:30:04Z` (time of day only). */
export function fmtTimeOfDay(t) {
  if (t === null || t === undefined || !Number.isFinite(t)) return "—";
  const d = new Date(t * 1000);
  return `${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())}Z`;
}

/** Mission elapsed seconds as `T+00:06:48`, `T+1d 02:03:04`, `T-00:00:10`. */
export function fmtMET(s) {
  if (s === null || s === undefined || !Number.isFinite(s)) return "T+—";
  const sign = s < 0 ? "-" : "+";
  let v = Math.floor(Math.abs(s));
  const days = Math.floor(v / 86400);
  v -= days * 86400;
  const hh = Math.floor(v / 3600);
  const mm = Math.floor((v % 3600) / 60);
  const ss = v % 60;
  return `T${sign}${days ? days + "d " : ""}${pad(hh)}:${pad(mm)}:${pad(ss)}`;
}

/** A duration for people: `3h 12m`, `12m 05s`, `42s`, `1d 03h`. */
export function fmtSpan(s) {
  if (!Number.isFinite(s)) return "—";
  let v = Math.max(0, Math.round(s));
  const d = Math.floor(v / 86400); v -= d * 86400;
  const h = Math.floor(v / 3600); v -= h * 3600;
  const m = Math.floor(v / 60); const sec = v - m * 60;
  if (d) return `${d}d ${pad(h)}h`;
  if (h) return `${h}h ${pad(m)}m`;
  if (m) return `${m}m ${pad(sec)}s`;
  return `${sec}s`;
}

/** A parameter value: numbers with up to 3 decimals. */
export function fmtValue(v) {
  if (v === null || v === undefined) return "—";
  if (typeof v === "number") {
    if (!Number.isFinite(v)) return String(v);
    if (Number.isInteger(v)) return String(v);
    const r = Number(v.toFixed(3));
    return String(Object.is(r, -0) ? 0 : r);
  }
  if (typeof v === "boolean") return v ? "true" : "false";
  if (typeof v === "object") return JSON.stringify(v);
  return String(v);
}

export function fmtRate(rate) {
  if (!Number.isFinite(rate)) return "×—";
  return "×" + (Number.isInteger(rate) ? String(rate) : String(Number(rate.toFixed(3))));
}

export function fmtArgs(args) {
  if (!args || typeof args !== "object") return "";
  return Object.entries(args).map(([k, v]) => `${k}=${fmtValue(v)}`).join(" ");
}

/** Parse a mission elapsed time: `HH:MM:SS`, `d HH:MM:SS` (or `1d 02:03:04`), `T+...`, or seconds. */
export function parseMET(text) {
  let s = String(text || "").trim();
  if (!s) throw new Error("give a mission elapsed time (HH:MM:SS, d HH:MM:SS or seconds)");
  s = s.replace(/^T\s*\+\s*/i, "");
  let m;
  if ((m = /^(\d+(?:\.\d+)?)\s*s?$/.exec(s))) return Number(m[1]);
  if ((m = /^(?:(\d+)\s*d?\s+)?(\d+):([0-5]?\d):([0-5]?\d(?:\.\d+)?)$/.exec(s))) {
    return Number(m[1] || 0) * 86400 + Number(m[2]) * 3600 + Number(m[3]) * 60 + Number(m[4]);
  }
  if ((m = /^(\d+)\s*d$/.exec(s))) return Number(m[1]) * 86400;
  throw new Error(`not a mission elapsed time: ${text} (HH:MM:SS, d HH:MM:SS or seconds)`);
}

/** document.createElement with attributes and children. `text`, `class`, `on*` and `data-*` understood. */
export function h(tag, attrs, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") e.className = v;
    else if (k === "text") e.textContent = v;
    else if (k.startsWith("on") && typeof v === "function") e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of kids.flat()) {
    if (c === null || c === undefined || c === false) continue;
    e.append(c instanceof Node ? c : String(c));
  }
  return e;
}

export function sevBadge(severity) {
  const sev = severity || "info";
  return h("span", { class: `sev-badge sev-${sev}`, text: SEV_SHORT[sev] || sev.toUpperCase() });
}

/** A time cell's content: UTC and, dimmer, MET. */
export function timeCell(t, epoch) {
  return [h("span", { class: "utc", text: fmtUTC(t) }), " ",
    h("span", { class: "met", text: Number.isFinite(t) && Number.isFinite(epoch) ? fmtMET(t - epoch) : "" })];
}

/** A compact time cell: UTC time of day and MET; the full UTC date in the title. */
export function shortTimeCell(t, epoch) {
  const ok = Number.isFinite(t);
  return [h("span", { class: "utc", text: fmtTimeOfDay(t), title: ok ? fmtUTC(t, true) : null }), " ",
    h("span", { class: "met", text: ok && Number.isFinite(epoch) ? fmtMET(t - epoch) : "" })];
}

// -- the mission clock -----------------------------------------------------------------------------------

const wallNow = () => performance.now() / 1000;

/** The clock as last reported, extrapolated between reports: sim_time + elapsed wall × rate. */
export class MissionClock {
  constructor() {
    this.clock = null;
    this.wallAt = 0;
    this.epoch = null;
    this.lastPacket = null;
    this.listeners = [];
  }

  set(clock) {
    if (!clock || typeof clock !== "object") return;
    this.clock = { ...(this.clock || {}), ...clock };
    this.wallAt = wallNow();
    if (!Number.isFinite(this.epoch) && Number.isFinite(clock.epoch)) this.epoch = clock.epoch;
    if (clock.last_packet) this.notePacket(clock.last_packet);
    for (const fn of this.listeners) fn(this.clock);
  }

  /** A far-side packet's spacecraft time against its ground receive time; the newest one wins. */
  notePacket(p) {
    if (!p || !Number.isFinite(p.ground_receive_time)) return;
    if (this.lastPacket && this.lastPacket.ground_receive_time > p.ground_receive_time) return;
    this.lastPacket = { ...p };
  }

  get known() { return !!(this.clock && Number.isFinite(this.clock.sim_time)); }
  get paused() { return !!(this.clock && this.clock.paused); }
  get rate() { return this.clock ? Number(this.clock.rate) : NaN; }

  /** Extrapolated mission time (Unix seconds), or null before the first report. */
  now() {
    if (!this.known) return null;
    const c = this.clock;
    if (c.paused) return c.sim_time;
    const rate = Number.isFinite(c.rate) ? c.rate : 1;
    return c.sim_time + (wallNow() - this.wallAt) * rate;
  }

  met() {
    const n = this.now();
    return n === null || !Number.isFinite(this.epoch) ? null : n - this.epoch;
  }
}

/** Fills `#clock` with its fields and keeps them running. */
export class ClockView {
  constructor(root, clock) {
    this.root = root;
    this.clock = clock;
    const field = (name, title) => h("span", { class: "v", "data-field": name, title: title || null, text: "—" });
    const item = (label, ...kids) => h("span", { class: "clk-item" }, h("span", { class: "k", text: label }), ...kids);
    root.replaceChildren(
      h("div", { class: "clk-row clk-main" },
        item("UTC", field("utc")),
        item("MET", field("met")),
        item("RATE", field("rate")),
        h("span", { class: "clk-item" }, field("paused"))),
      h("div", { class: "clk-row clk-sub" },
        item("SC TIME", field("spacecraft-time", "spacecraft time of the last far-side packet")),
        item("GND RX", field("ground-receive-time", "mission time the last far-side packet reached the ground")),
        item("DELAY", field("delay", "delay of the last far-side packet"))),
    );
    this.f = {};
    for (const e of root.querySelectorAll("[data-field]")) this.f[e.dataset.field] = e;
    this.render();
    setInterval(() => this.render(), 100);
  }

  render() {
    const c = this.clock;
    const now = c.now();
    this.f.utc.textContent = fmtUTC(now);
    this.f.met.textContent = now === null ? "T+—" : fmtMET(c.met());
    this.f.rate.textContent = c.known ? fmtRate(c.rate) : "×—";
    const state = !c.known ? "NO CLOCK" : c.paused ? "PAUSED" : "RUNNING";
    if (this.f.paused.textContent !== state) {
      this.f.paused.textContent = state;
      this.root.dataset.paused = String(c.paused);
      this.f.paused.className = "v run-state " + (c.paused ? "paused" : "running");
    }
    const p = c.lastPacket;
    this.f["spacecraft-time"].textContent = p ? fmtUTC(p.spacecraft_time) : "—";
    this.f["ground-receive-time"].textContent = p ? fmtUTC(p.ground_receive_time) : "—";
    this.f.delay.textContent = p && Number.isFinite(p.delay_s) ? `${p.delay_s.toFixed(2)} s` : "—";
    if (p && p.node) this.f["spacecraft-time"].title = `${p.node}: spacecraft time of the last far-side packet`;
  }
}

/** Fills `#link` with the relay link's state and the next window. */
export class LinkView {
  constructor(root, clock) {
    this.root = root;
    this.clock = clock;
    this.link = null;
    const field = (name) => h("span", { class: "v", "data-field": name, text: "—" });
    root.replaceChildren(
      h("span", { class: "link-state", "data-field": "state", text: "LINK ?" }),
      h("span", { class: "clk-item" }, h("span", { class: "k", text: "OWLT" }), field("one-way-delay")),
      h("span", { class: "clk-item" }, h("span", { class: "k", text: "STORED" }), field("stored")),
      h("span", { class: "clk-item" }, h("span", { class: "k", "data-field": "next-label", text: "NEXT" }),
        field("next-utc"), h("span", { class: "v next-in", "data-field": "next-in", text: "" })),
    );
    this.f = {};
    for (const e of root.querySelectorAll("[data-field]")) this.f[e.dataset.field] = e;
    root.dataset.state = "unknown";
    this.render();
    setInterval(() => this.render(), 1000);
  }

  get state() {
    const l = this.link;
    if (!l) return "unknown";
    if (l.state === "in_view" || l.state === "los" || l.state === "unknown") return l.state;
    if (l.far_side_visible === true) return "in_view";
    if (l.far_side_visible === false) return "los";
    return "unknown";
  }

  set(link) {
    if (!link || typeof link !== "object") return;
    this.link = { ...(this.link || {}), ...link };
    this.render();
  }

  render() {
    const state = this.state;
    const l = this.link || {};
    if (this.root.dataset.state !== state) this.root.dataset.state = state;
    this.f.state.textContent = { in_view: "IN VIEW", los: "LOSS OF SIGNAL", unknown: "LINK UNKNOWN" }[state];
    this.f["one-way-delay"].textContent = Number.isFinite(l.one_way_delay_s) ? `${l.one_way_delay_s.toFixed(2)} s` : "—";
    this.f.stored.textContent = Number.isFinite(l.stored_messages) ? String(l.stored_messages) : "—";
    const next = state === "los" ? l.next_aos : l.next_los;
    this.f["next-label"].textContent = state === "los" ? "AOS" : "LOS";
    this.f["next-utc"].textContent = Number.isFinite(next) ? fmtUTC(next) : "none scheduled";
    const now = this.clock.now();
    let inText = "";
    if (Number.isFinite(next) && now !== null) inText = next > now ? `in ${fmtSpan(next - now)}` : "due";
    this.f["next-in"].textContent = inText;
  }
}

// -- the live stream -------------------------------------------------------------------------------------

/** `/api/v1/live`, reconnected with backoff (0.5 s doubling to 5 s). */
export class LiveSocket {
  constructor({ onHello, onItems, onOverflow, onStatus }) {
    this.onHello = onHello || (() => {});
    this.onItems = onItems || (() => {});
    this.onOverflow = onOverflow || (() => {});
    this.onStatus = onStatus || (() => {});
    this.delay = 0.5;
    this.helloCount = 0;
    this.ws = null;
  }

  start() { this._connect(); }

  _connect() {
    const url = `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/api/v1/live`;
    this.onStatus(this.helloCount ? "reconnecting" : "connecting");
    let ws;
    try {
      ws = new WebSocket(url);
    } catch {
      this._retry();
      return;
    }
    this.ws = ws;
    ws.onmessage = (ev) => {
      let msg;
      try { msg = JSON.parse(ev.data); } catch { return; }
      if (!msg || typeof msg !== "object") return;
      if (msg.type === "hello") {
        this.delay = 0.5;
        const reconnect = this.helloCount > 0;
        this.helloCount += 1;
        this.onStatus("live");
        this.onHello(msg, reconnect);
      } else if (msg.type === "batch") {
        this.onItems(Array.isArray(msg.items) ? msg.items : []);
      } else if (msg.type === "overflow") {
        this.onOverflow(msg);
      }
    };
    ws.onerror = () => {};
    ws.onclose = () => {
      if (this.ws !== ws) return;
      this.ws = null;
      this.onStatus("reconnecting");
      this._retry();
    };
  }

  _retry() {
    const d = this.delay;
    this.delay = Math.min(5, this.delay * 2);
    setTimeout(() => this._connect(), d * 1000);
  }
}

export function connView(root) {
  return (status) => {
    root.dataset.status = status;
    root.textContent = { live: "● LIVE", connecting: "○ CONNECTING", reconnecting: "◌ RECONNECTING" }[status] || status;
  };
}

// -- alarms ----------------------------------------------------------------------------------------------

const ALARM_STATE_TEXT = { unacknowledged: "UNACK", acknowledged: "ACK", shelved: "SHELVED", cleared: "CLEARED" };

/** The alarm list: rows `tr[data-alarm]`, updated in place; cleared ones leave. */
export class AlarmTable {
  constructor(tbody, { epoch, readonly = false, onCount } = {}) {
    this.tbody = tbody;
    this.epoch = epoch;
    this.readonly = readonly;
    this.onCount = onCount || (() => {});
    this.rows = new Map();
  }

  load(entries) {
    const list = (entries || []).filter((e) => e && e.name && e.state !== "cleared");
    const order = (e) => [e.state === "unacknowledged" ? 0 : e.state === "shelved" ? 2 : 1, -(SEV_RANK[e.severity] || 0), -(e.raised_at || 0)];
    list.sort((a, b) => {
      const x = order(a), y = order(b);
      for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) return x[i] - y[i];
      return 0;
    });
    const keep = new Set(list.map((e) => e.name));
    for (const [name, row] of this.rows) if (!keep.has(name)) { row.remove(); this.rows.delete(name); }
    for (const e of list) this.update(e, false);
    // order as sorted, without rebuilding rows (typed comments survive)
    for (const e of list) this.tbody.append(this.rows.get(e.name));
    this._count();
  }

  update(entry, count = true) {
    if (!entry || !entry.name) return;
    let row = this.rows.get(entry.name);
    if (entry.state === "cleared") {
      if (row) { row.remove(); this.rows.delete(entry.name); }
      if (count) this._count();
      return;
    }
    if (!row) {
      row = this._build(entry.name);
      this.rows.set(entry.name, row);
      this.tbody.prepend(row);
    }
    this._fill(row, entry);
    if (count) this._count();
  }

  _count() {
    const all = [...this.rows.values()];
    this.onCount({ total: all.length, unack: all.filter((r) => r.dataset.state === "unacknowledged").length });
    const empty = this.tbody.parentElement && this.tbody.parentElement.parentElement
      && this.tbody.parentElement.parentElement.querySelector(".empty-note");
    if (empty) empty.hidden = all.length > 0;
  }

  _build(name) {
    const row = h("tr", { "data-alarm": name });
    const cells = this.readonly ? ["sev", "name", "valuelimit", "raised", "state"]
      : ["sev", "name", "valuelimit", "message", "raised", "state", "ackby"];
    for (const c of cells) row.append(h("td", { class: c }));
    if (!this.readonly) {
      const comment = h("input", { class: "alarm-comment", type: "text", placeholder: "comment", maxlength: "500" });
      const btn = (cls, label, title) => h("button", { class: cls, type: "button", text: label, title });
      const actions = h("td", { class: "actions" },
        h("div", { class: "action-line" }, comment,
          btn("ack", "ACK", "acknowledge with the comment"),
          btn("shelve", "SHELVE", "shelve for 600 s of mission time, with the comment"),
          btn("unshelve", "UNSHELVE", "unshelve"),
          btn("clear", "CLEAR", "remove the alarm (only once its condition is no longer active)")),
        h("div", { class: "alarm-error", role: "alert" }));
      row.append(actions);
      actions.addEventListener("click", (ev) => {
        const b = ev.target.closest("button");
        if (b && !b.disabled) this._act(row, b.className.split(" ")[0]);
      });
      comment.addEventListener("keydown", (ev) => { if (ev.key === "Enter") this._act(row, "ack"); });
    }
    return row;
  }

  _fill(row, e) {
    row.dataset.state = e.state || "";
    row.dataset.severity = e.severity || "";
    row.dataset.active = String(!!e.active);
    row.className = `alarm sev-${e.severity || "info"}${e.state === "unacknowledged" ? " unack" : ""}${e.active ? "" : " inactive"}`;
    const q = (c) => row.querySelector(`td.${c}`);
    q("sev").replaceChildren(sevBadge(e.severity));
    q("name").textContent = e.name;
    q("name").title = e.node ? `${e.node} · ${e.parameter || ""}` : "";
    const limit = e.limit === null || e.limit === undefined ? "" : ` / ${fmtValue(e.limit)}`;
    q("valuelimit").textContent = `${fmtValue(e.value)}${limit}`;
    const message = (e.message || "") + (e.raise_count > 1 ? `  (×${e.raise_count})` : "");
    if (q("message")) q("message").textContent = message;
    else row.title = message;
    q("raised").replaceChildren(...(this.readonly ? shortTimeCell(e.raised_at, this.epoch) : timeCell(e.raised_at, this.epoch)));
    let st = ALARM_STATE_TEXT[e.state] || String(e.state || "").toUpperCase();
    if (e.state === "shelved" && Number.isFinite(e.shelved_until)) st += ` → ${fmtTimeOfDay(e.shelved_until)}`;
    if (!e.active) st += " · RTN";
    q("state").textContent = st;
    q("state").title = e.active ? "condition active" : "back in limits (RTN)";
    const ackby = q("ackby");
    if (ackby) {
      const a = e.acknowledged;
      ackby.replaceChildren();
      if (a) {
        ackby.append(h("span", { class: "by", text: a.by || "?" }),
          a.comment ? h("span", { class: "comment", text: ` “${a.comment}”` }) : "",
          Number.isFinite(a.sim_time) ? h("span", { class: "met", text: ` ${fmtTimeOfDay(a.sim_time)}` }) : "");
      }
    }
    if (!this.readonly) {
      row.querySelector("button.clear").disabled = !!e.active;
    }
  }

  async _act(row, action) {
    const name = row.dataset.alarm;
    const input = row.querySelector("input.alarm-comment");
    const err = row.querySelector(".alarm-error");
    const comment = input.value;
    const body = action === "unshelve" ? {} : action === "shelve" ? { comment, duration_s: 600 } : { comment };
    err.textContent = "";
    row.classList.add("busy");
    const verb = action === "ack" ? "acknowledge" : action;
    const answer = await api("POST", `/api/v1/alarms/${encodeURIComponent(name)}/${verb}`, body);
    row.classList.remove("busy");
    if (answer.ok && answer.data && answer.data.name) {
      input.value = "";
      this.update(answer.data);
    } else if (answer.ok) {
      input.value = "";
    } else {
      err.textContent = errorText(answer);
    }
  }
}

// -- the event log ---------------------------------------------------------------------------------------

/** Newest first, at most `max` rows; filters by node and by "at least this severity". */
export class EventLog {
  constructor(tbody, { nodeSelect, sevSelect, nodes = [], epoch, max = 500, compact = false } = {}) {
    this.tbody = tbody;
    this.nodeSelect = nodeSelect;
    this.sevSelect = sevSelect;
    this.epoch = epoch;
    this.max = max;
    this.compact = compact;
    this.nodes = new Set();
    this.seen = new Set();   // node|sim_time|event|message: what came over HTTP and again on the stream is shown once
    if (nodeSelect) {
      nodeSelect.replaceChildren(h("option", { value: "", text: "all nodes" }));
      nodeSelect.addEventListener("change", () => this.applyFilter());
    }
    if (sevSelect) {
      sevSelect.replaceChildren(h("option", { value: "", text: "all severities" }),
        ...SEVERITIES.map((s) => h("option", { value: s, text: `≥ ${s}` })));
      sevSelect.addEventListener("change", () => this.applyFilter());
    }
    for (const n of nodes) this._noteNode(n);
  }

  _noteNode(node) {
    if (!node || this.nodes.has(node)) return;
    this.nodes.add(node);
    if (this.nodeSelect) this.nodeSelect.append(h("option", { value: node, text: node }));
  }

  add(ev) {
    if (!ev) return;
    this._noteNode(ev.node);
    const sev = SEVERITIES.includes(ev.severity) ? ev.severity : "info";
    const t = Number(ev.sim_time);
    const key = `${ev.node}|${ev.sim_time}|${ev.event}|${ev.message}`;
    if (this.seen.has(key)) return;
    this.seen.add(key);
    const data = ev.data && typeof ev.data === "object" ? fmtArgs(ev.data) : "";
    const row = h("tr", { "data-node": ev.node || "", "data-severity": sev, "data-sim-time": String(t), class: `ev sev-${sev}` },
      h("td", { class: "time" }, ...(this.compact ? [h("span", { class: "utc", text: fmtTimeOfDay(t) })] : timeCell(t, this.epoch))),
      h("td", { class: "sev" }, sevBadge(sev)),
      h("td", { class: "node", text: ev.node || "" }),
      h("td", { class: "event", text: ev.event || "" }),
      h("td", { class: "message", text: ev.message || "", title: data || null }),
      this.compact ? null : h("td", { class: "data", text: data }));
    row.hidden = !this._passes(row);
    // newest first by mission time; almost always at the top
    let before = this.tbody.firstElementChild;
    while (before && Number(before.dataset.simTime) > t) before = before.nextElementSibling;
    this.tbody.insertBefore(row, before);
    row.eventKey = key;
    while (this.tbody.children.length > this.max) {
      const last = this.tbody.lastElementChild;
      this.seen.delete(last.eventKey);
      last.remove();
    }
  }

  _passes(row) {
    const node = this.nodeSelect ? this.nodeSelect.value : "";
    const sev = this.sevSelect ? this.sevSelect.value : "";
    if (node && row.dataset.node !== node) return false;
    if (sev && (SEV_RANK[row.dataset.severity] || 0) < SEV_RANK[sev]) return false;
    return true;
  }

  applyFilter() {
    for (const row of this.tbody.children) row.hidden = !this._passes(row);
  }
}

// -- form fields typed from a dictionary (command args, fault params) -----------------------------------

/** One labelled field for an argument {name, type, required, minimum, maximum, default, choices}. */
export function argField(arg) {
  const name = arg.name;
  const id = `f-${Math.random().toString(36).slice(2, 9)}`;
  const rawType = String(arg.type || "").toLowerCase();
  const type = rawType.includes("bool") ? "boolean" : rawType.includes("int") || (arg.integer === true && rawType === "number")
    ? "integer" : /number|float|double/.test(rawType) ? "number" : rawType;
  const hasDefault = arg.default !== null && arg.default !== undefined;
  const wrap = h("div", { class: "field", "data-arg": name });
  const label = h("label", { for: id }, name, arg.required ? h("span", { class: "req", text: "*", title: "required" }) : null);
  let input;
  let hint = null;
  if (Array.isArray(arg.choices) && arg.choices.length) {
    input = h("select", { id, name, "data-kind": "choice" });
    if (!arg.required || !hasDefault) input.append(h("option", { value: "", text: arg.required ? "— choose —" : "—" }));
    for (const c of arg.choices) {
      const o = h("option", { value: String(c), text: String(c) });
      o.choiceValue = c;
      input.append(o);
    }
    if (hasDefault) input.value = String(arg.default);
  } else if (type === "boolean") {
    input = h("input", { id, name, type: "checkbox", "data-kind": "boolean" });
    input.checked = arg.default === true;
  } else if (type === "number" || type === "integer") {
    const integer = type === "integer";
    input = h("input", {
      id, name, type: "number", step: integer ? "1" : "any", "data-kind": integer ? "integer" : "number",
      min: Number.isFinite(arg.minimum) ? arg.minimum : null, max: Number.isFinite(arg.maximum) ? arg.maximum : null,
    });
    if (hasDefault) input.value = String(arg.default);
    const lo = Number.isFinite(arg.minimum) ? fmtValue(arg.minimum) : null;
    const hi = Number.isFinite(arg.maximum) ? fmtValue(arg.maximum) : null;
    if (lo !== null || hi !== null) hint = h("span", { class: "range", text: `${lo ?? "−∞"} … ${hi ?? "∞"}` });
    const check = () => {
      const raw = input.value.trim();
      let bad = false;
      if (raw === "") bad = input.validity.badInput || !!arg.required;
      else {
        const v = Number(raw);
        bad = !Number.isFinite(v) || (lo !== null && v < arg.minimum) || (hi !== null && v > arg.maximum)
          || (integer && !Number.isInteger(v));
      }
      input.classList.toggle("invalid", bad);
      input.setAttribute("aria-invalid", String(bad));
    };
    input.addEventListener("input", check);
    input.addEventListener("change", check);
    input._check = check;
  } else {
    input = h("input", { id, name, type: "text", "data-kind": type === "string" ? "string" : "any", autocomplete: "off" });
    if (hasDefault) input.value = String(arg.default);
    if (type && type !== "string") hint = h("span", { class: "range", text: type });
  }
  wrap.append(label, input);
  if (arg.unit) wrap.append(h("span", { class: "unit", text: arg.unit }));
  if (hint) wrap.append(hint);
  if (!arg.required && !hasDefault && input.type !== "checkbox") wrap.append(h("span", { class: "opt", text: "optional" }));
  return wrap;
}

/** The values of the fields `argField` made; empty optional fields are left out. */
export function collectArgs(container) {
  const out = {};
  for (const el of container.querySelectorAll("[name]")) {
    const kind = el.dataset.kind;
    if (kind === "boolean") { out[el.name] = el.checked; continue; }
    if (kind === "choice") {
      if (el.value === "") continue;
      const opt = el.selectedOptions[0];
      out[el.name] = opt && "choiceValue" in opt ? opt.choiceValue : el.value;
      continue;
    }
    const raw = el.value.trim();
    if (raw === "") continue;
    if (kind === "number" || kind === "integer") {
      const v = Number(raw);
      out[el.name] = Number.isFinite(v) ? v : raw;
    } else if (kind === "any") {
      // untyped: a number or a boolean when it reads as one
      out[el.name] = raw === "true" ? true : raw === "false" ? false : Number.isFinite(Number(raw)) ? Number(raw) : raw;
    } else {
      out[el.name] = el.value;
    }
  }
  return out;
}

export function markValidity(container) {
  for (const el of container.querySelectorAll("input[type=number]")) if (el._check) el._check();
}

/** Runs fn now and every `ms`, never overlapping itself. */
export function every(ms, fn) {
  let busy = false;
  const tick = async () => {
    if (busy) return;
    busy = true;
    try { await fn(); } finally { busy = false; }
  };
  tick();
  return setInterval(tick, ms);
}
