// Lunar GS instructor console: clock control, fault injection, ground truth, bookmarks, audit.
import {
  FAR_SIDE, AlarmTable, ClockView, EventLog, LinkView, LiveSocket, MissionClock,
  api, argField, collectArgs, connView, errorText, every, fmtMET, load, loadDictionary, fmtUTC, h, markValidity, parseMET,
  shortTimeCell, timeCell,
} from "/static/console.js";

const I = "/api/v1/instructor";
const $ = (sel) => document.querySelector(sel);

const clock = new MissionClock();
let link = null;
let dict = null;
let alarms = null;
let events = null;
let catalogue = { kinds: [], trigger_kinds: [] };
const nodeRows = new Map();   // node -> {tr, packet, stale}
const truthSeen = new Set();
const lgs = { ready: false };
window.lgsConsole = lgs;

// -- clock control ---------------------------------------------------------------------------------------

function buildClockControl() {
  const err = $("#clock-error");
  const rate = $("#clock-rate");
  const until = $("#clock-until");
  const hint = $("#clock-until-hint");
  const post = async (body) => {
    err.textContent = "";
    const answer = await api("POST", `${I}/clock`, body);
    if (answer.ok && answer.data) clock.set(answer.data);
    else err.textContent = errorText(answer);
  };
  $("#clock-pause").addEventListener("click", () => post({ action: "pause" }));
  $("#clock-resume").addEventListener("click", () => post({ action: "resume" }));
  const setRate = () => {
    const v = Number(rate.value);
    if (rate.value.trim() === "" || !Number.isFinite(v)) { err.textContent = "give a rate (a number)"; return; }
    post({ action: "rate", rate: v });
  };
  $("#clock-set-rate").addEventListener("click", setRate);
  rate.addEventListener("keydown", (ev) => { if (ev.key === "Enter") setRate(); });
  const runUntil = () => {
    let met;
    try { met = parseMET(until.value); } catch (exc) { err.textContent = exc.message; return; }
    post({ action: "run_until", until: clock.epoch + met });
  };
  $("#clock-run-until").addEventListener("click", runUntil);
  until.addEventListener("keydown", (ev) => { if (ev.key === "Enter") runUntil(); });
  until.addEventListener("input", () => {
    try { const met = parseMET(until.value); hint.textContent = `${fmtMET(met)} = ${fmtUTC(clock.epoch + met)}`; }
    catch { hint.textContent = ""; }
  });
  let seeded = false;
  clock.listeners.push((c) => {
    if (!seeded && Number.isFinite(c.rate) && document.activeElement !== rate && rate.value === "") {
      rate.value = String(c.rate);
      seeded = true;
    }
  });
}

// -- fault injection -------------------------------------------------------------------------------------

const LAYER_ORDER = ["model", "sensor", "link", "process"];

function buildFaultForm() {
  const kindSel = $("#fault-kind"), targetSel = $("#fault-target"), paramsBox = $("#fault-params");
  const info = $("#fault-info"), result = $("#fault-result");
  const trigSel = $("#fault-trigger"), trigVal = $("#fault-trigger-value");
  const layers = new Map();
  for (const k of catalogue.kinds || []) {
    const layer = k.layer || "other";
    if (!layers.has(layer)) layers.set(layer, []);
    layers.get(layer).push(k);
  }
  const order = [...layers.keys()].sort((a, b) => {
    const ia = LAYER_ORDER.indexOf(a), ib = LAYER_ORDER.indexOf(b);
    return (ia < 0 ? 99 : ia) - (ib < 0 ? 99 : ib);
  });
  kindSel.replaceChildren(...order.map((layer) => h("optgroup", { label: `${layer} faults` },
    ...layers.get(layer).map((k) => h("option", { value: k.kind, text: `${k.kind} — ${k.summary || ""}` })))));
  const current = () => (catalogue.kinds || []).find((k) => k.kind === kindSel.value);
  const fill = () => {
    const k = current();
    targetSel.replaceChildren(...((k && k.targets) || []).map((t) => h("option", { value: t, text: t })));
    paramsBox.replaceChildren(...((k && k.params) || []).map((p) => argField(p)));
    if (!k || !(k.params || []).length) paramsBox.append(h("span", { class: "no-args", text: "no parameters" }));
    const list = (label, xs) => (xs && xs.length ? [h("b", { text: ` ${label} ` }), xs.join(", ")] : []);
    info.replaceChildren(...(k ? [h("span", { class: "summary", text: k.summary || "" }),
      k.target_form ? h("span", {}, h("b", { text: " · target " }), k.target_form) : "",
      h("br"), ...list("recovers:", k.recovers), ...list(" worsens:", k.worsens)] : []));
  };
  kindSel.addEventListener("change", fill);
  fill();
  const placeholders = { now: "", at: "d HH:MM:SS", after: "seconds", before_los: "seconds" };
  const trig = () => {
    trigVal.placeholder = placeholders[trigSel.value] || "";
    trigVal.classList.toggle("idle", trigSel.value === "now");
  };
  trigSel.addEventListener("change", trig);
  trig();

  const show = (state, text, faultId) => {
    result.dataset.result = state;
    if (faultId) result.dataset.faultId = faultId; else delete result.dataset.faultId;
    result.textContent = text;
  };

  $("#fault-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const k = current();
    if (!k) return;
    markValidity(paramsBox);
    const trigger = {};
    const mode = trigSel.value;
    if (mode !== "now") {
      try {
        trigger[mode] = parseMET(trigVal.value);   // seconds, or HH:MM:SS
      } catch (exc) {
        show("error", exc.message);
        return;
      }
    }
    const durText = $("#fault-duration").value.trim();
    const body = {
      kind: k.kind, target: targetSel.value, params: collectArgs(paramsBox), trigger,
      duration: durText === "" ? null : Number(durText), label: $("#fault-label").value.trim(),
    };
    $("#fault-inject").disabled = true;
    const answer = await api("POST", `${I}/faults`, body);
    $("#fault-inject").disabled = false;
    const rec = answer.data || {};
    if (answer.status === 201) {
      show("accepted", `ACCEPTED  ${rec.fault_id || ""}  ${rec.kind || k.kind} → ${rec.target || body.target}`
        + `${rec.detail ? "  · " + rec.detail : ""}`, rec.fault_id);
      if (rec.entry) addTruth(rec);
      loadActive();
    } else if (answer.status === 422) {
      show("rejected", `REJECTED  ${rec.reason || rec.detail || rec.error || "no reason given"}`, rec.fault_id);
      if (rec.entry) addTruth(rec);
    } else {
      show("rejected", `REJECTED  ${errorText(answer)}`);
    }
  });
}

function renderActive(active) {
  const tbody = $("#active-faults tbody");
  const list = (active && Array.isArray(active.faults)) ? active.faults : Array.isArray(active) ? active : [];
  tbody.replaceChildren(...list.map((f) => {
    const btn = h("button", { class: "clear-fault", type: "button", text: "CLEAR", title: `clear ${f.fault_id}` });
    const err = h("span", { class: "alarm-error" });
    const tr = h("tr", { "data-fault-id": f.fault_id, "data-state": f.state || "" },
      h("td", { class: "kind", text: f.kind || "", title: f.fault_id }),
      h("td", { class: "target", text: f.target || "", title: f.target || null }),
      h("td", { class: "state", text: String(f.state || "").toUpperCase() }),
      h("td", { class: "since" }, ...(Number.isFinite(f.since) ? shortTimeCell(f.since, clock.epoch) : ["—"])),
      h("td", { class: "trigger", text: [f.trigger, f.label ? `“${f.label}”` : "", f.clears_at ? `clears ${fmtMET(f.clears_at - clock.epoch)}` : ""].filter(Boolean).join(" · ") }),
      h("td", { class: "actions" }, btn, err));
    btn.addEventListener("click", async () => {
      btn.disabled = true;
      err.textContent = "";
      const answer = await api("DELETE", `${I}/faults/${encodeURIComponent(f.fault_id)}`);
      if (answer.ok) { tr.classList.add("busy"); btn.textContent = "CLEARING"; setTimeout(loadActive, 1500); }
      else { btn.disabled = false; err.textContent = errorText(answer); }
    });
    return tr;
  }));
  const empty = tbody.closest(".scroll").querySelector(".empty-note");
  if (empty) empty.hidden = list.length > 0;
}

async function loadActive() {
  const answer = await api("GET", `${I}/faults/active`);
  if (answer.ok) renderActive(answer.data || {});
}

// -- ground truth ----------------------------------------------------------------------------------------

function truthKey(r) {
  return [r.source, r.seq, r.entry, r.fault_id, r.request_id, r.sim_time].join("|");
}

function addTruth(r) {
  if (!r || !r.entry) return;
  const key = truthKey(r);
  if (truthSeen.has(key)) return;
  truthSeen.add(key);
  const tbody = $("#truth tbody");
  const t = Number.isFinite(r.sim_time) && r.sim_time > 0 ? r.sim_time
    : Number.isFinite(r.mission_time) ? clock.epoch + r.mission_time : NaN;
  const tr = h("tr", { "data-entry": r.entry, "data-fault-id": r.fault_id || "", "data-sim-time": String(t) },
    h("td", { class: "time" }, ...shortTimeCell(t, clock.epoch)),
    h("td", { class: "entry", text: String(r.entry).toUpperCase(), title: r.via ? `via ${r.via}` : null }),
    h("td", { class: "kind", text: r.kind || "" }),
    h("td", { class: "target", text: r.target || "", title: r.target || null }),
    h("td", { class: "fault", text: r.fault_id || "", title: r.request_id || "" }),
    h("td", { class: "detail", title: r.detail || null, text: [r.label ? `“${r.label}”` : "", r.detail || "", Object.keys(r.params || {}).length ? JSON.stringify(r.params) : ""].filter(Boolean).join(" · ") }));
  let before = tbody.firstElementChild;
  while (before && Number(before.dataset.simTime) > t) before = before.nextElementSibling;
  tbody.insertBefore(tr, before);
  while (tbody.children.length > 1000) tbody.lastElementChild.remove();
}

async function loadTruth() {
  const answer = await api("GET", `${I}/truth?limit=200`);
  if (answer.ok && answer.data) for (const r of answer.data.records || []) addTruth(r);
}

// -- bookmarks -------------------------------------------------------------------------------------------

function addBookmark(b) {
  if (!b) return;
  const list = $("#bookmarks");
  const id = String(b.id ?? `${b.sim_time}`);
  if (list.querySelector(`li[data-bookmark-id="${CSS.escape(id)}"]`)) return;
  const li = h("li", { "data-bookmark-id": id, "data-sim-time": String(b.sim_time) },
    h("span", { class: "met", text: fmtMET(b.sim_time - clock.epoch) }),
    h("span", { class: "utc dim", text: fmtUTC(b.sim_time) }),
    h("span", { class: "note", text: b.note || "" }),
    h("span", { class: "by", text: b.by || "" }));
  let before = list.firstElementChild;
  while (before && Number(before.dataset.simTime) > b.sim_time) before = before.nextElementSibling;
  list.insertBefore(li, before);
}

function buildBookmarks() {
  const note = $("#bookmark-note"), err = $("#bookmark-error");
  const add = async () => {
    err.textContent = "";
    const answer = await api("POST", `${I}/bookmarks`, { note: note.value });
    if (answer.ok && answer.data) { addBookmark(answer.data.bookmark || answer.data); note.value = ""; }
    else err.textContent = errorText(answer);
  };
  $("#bookmark-add").addEventListener("click", add);
  note.addEventListener("keydown", (ev) => { if (ev.key === "Enter") add(); });
}

async function loadBookmarks() {
  const answer = await api("GET", `${I}/bookmarks`);
  if (!answer.ok || !answer.data) return;
  const d = answer.data;
  const list = Array.isArray(d) ? d : d.bookmarks || d.entries || [];
  for (const b of list) addBookmark(b);
}

// -- audit -----------------------------------------------------------------------------------------------

const AUDIT_KNOWN = new Set(["sim_time", "wall_time", "role", "action", "by"]);

async function loadAudit() {
  const answer = await api("GET", "/api/v1/audit?limit=200");
  if (!answer.ok || !answer.data) return;
  const entries = [...(answer.data.entries || [])];
  entries.sort((a, b) => (b.wall_time || 0) - (a.wall_time || 0) || (b.sim_time || 0) - (a.sim_time || 0));
  const tbody = $("#audit tbody");
  tbody.replaceChildren(...entries.map((e) => {
    const rest = Object.fromEntries(Object.entries(e).filter(([k]) => !AUDIT_KNOWN.has(k)));
    const detail = JSON.stringify(rest);
    return h("tr", { "data-action": e.action || "" },
      h("td", { class: "time" }, ...timeCell(Number(e.sim_time), clock.epoch)),
      h("td", { class: "time" }, h("span", { class: "utc dim", text: Number.isFinite(e.wall_time) ? fmtUTC(e.wall_time) : "—" })),
      h("td", { class: "role", text: e.role || e.by || "" }),
      h("td", { class: "action", text: e.action || "" }),
      h("td", { class: "detail", text: detail === "{}" ? "" : detail, title: detail }));
  }));
}

// -- nodes -----------------------------------------------------------------------------------------------

function buildNodes() {
  const tbody = $("#nodes tbody");
  for (const node of dict.nodes) {
    const tr = h("tr", { "data-node": node, "data-stale": "true" },
      h("td", { class: "node", text: node }), h("td", { class: "mode" }), h("td", { class: "seq" }),
      h("td", { class: "time", text: "no packet" }),
      h("td", { class: "flag" }, h("span", { class: "stale-tag", text: "STALE" })));
    tbody.append(tr);
    nodeRows.set(node, { tr, packet: null, stale: true });
  }
}

function notePacket(node, p) {
  const n = nodeRows.get(node);
  if (!n || (n.packet && p.sim_time < n.packet.sim_time)) return;
  n.packet = p;
  const c = n.tr.children;
  c[1].textContent = p.values && p.values.mode !== undefined ? String(p.values.mode).toUpperCase() : "";
  c[2].textContent = Number.isFinite(p.seq) ? String(p.seq) : "";
  c[3].textContent = fmtUTC(p.sim_time);
  evalStale();
}

function evalStale() {
  const now = clock.now();
  for (const [node, n] of nodeRows) {
    const p = n.packet;
    let stale = !p || !!p.staleFlag
      || (now !== null && Number.isFinite(dict.stale_after_s) && now - p.sim_time > dict.stale_after_s);
    if (FAR_SIDE.has(node) && link.state === "los") stale = true;
    n.tr.dataset.stale = String(stale);
  }
}

async function loadLatest() {
  const answer = await api("GET", "/api/v1/latest");
  if (!answer.ok || !answer.data) return;
  for (const [node, p] of Object.entries(answer.data)) {
    if (p && typeof p === "object") notePacket(node, { seq: p.seq, sim_time: p.sim_time, values: p.values || {}, staleFlag: !!p.stale });
  }
}

// -- loading and the live stream -------------------------------------------------------------------------

function onItems(items) {
  const newest = new Map();
  for (const it of items) {
    if (!it || typeof it !== "object") continue;
    switch (it.kind) {
      case "tm": {
        const prev = newest.get(it.node);
        if (!prev || it.sim_time >= prev.sim_time) newest.set(it.node, it);
        if (FAR_SIDE.has(it.node) && Number.isFinite(it.received_sim) && Number.isFinite(it.sim_time)) {
          clock.notePacket({ node: it.node, spacecraft_time: it.sim_time, ground_receive_time: it.received_sim, delay_s: it.received_sim - it.sim_time });
        }
        break;
      }
      case "event": events.add(it); break;
      case "alarm": alarms.update(it); break;
      case "clock": clock.set(it.clock || it); break;
      case "link": link.set(it.link || it); evalStale(); break;
      case "truth": addTruth(it.record || it.truth || it); break;   // a record has a `kind` of its own
      case "faults": renderActive(it.active || (it.faults && !Array.isArray(it.faults) ? it.faults : it)); break;
      default: break;
    }
  }
  for (const [node, it] of newest) notePacket(node, { seq: it.seq, sim_time: it.sim_time, values: it.values || {}, staleFlag: false });
}


async function loadCatalogue() {
  const answer = await api("GET", `${I}/faults/catalogue`);
  if (answer.ok && answer.data) catalogue = answer.data;
  else $("#fault-result").replaceChildren(`no fault catalogue: ${errorText(answer)}`);
}

const loadEvents = () => load("/api/v1/events?limit=500", (d) => { for (const e of d.events || []) events.add(e); });

const loadAlarms = () => load("/api/v1/alarms", (d) => alarms.load(d.alarms || []));

const loadClock = () => load("/api/v1/clock", (d) => clock.set(d));

const loadLink = () => load("/api/v1/link", (d) => { link.set(d); evalStale(); });

async function main() {
  link = new LinkView($("#link"), clock);
  new ClockView($("#clock"), clock);
  const status = connView($("#conn"));

  dict = await loadDictionary((why) => { $("#mission").textContent = `no dictionary: ${why}`; });
  clock.epoch = Number(dict.epoch);
  $("#mission").textContent = `mission ${dict.mission || "?"}`;
  document.title = `Lunar GS · Instructor · ${dict.mission || ""}`;
  buildNodes();
  buildClockControl();
  buildBookmarks();
  const summary = $("#alarm-summary");
  alarms = new AlarmTable($("#alarms tbody"), {
    epoch: clock.epoch, readonly: true,
    onCount: ({ total, unack }) => {
      summary.textContent = unack ? `ALARMS ${total} · ${unack} UNACK` : `ALARMS ${total}`;
      summary.dataset.unack = String(unack);
    },
  });
  events = new EventLog($("#events tbody"), {
    nodeSelect: $("#event-node"), sevSelect: $("#event-severity"),
    nodes: [...dict.nodes, "ground-control", "instructor"], epoch: clock.epoch, max: 500, compact: true,
  });

  let helloResolve;
  const hello = new Promise((r) => { helloResolve = r; });
  const socket = new LiveSocket({
    onStatus: status,
    onHello: (msg, reconnect) => {
      if (msg.clock) clock.set(msg.clock);
      if (msg.link) { link.set(msg.link); evalStale(); }
      helloResolve();
      if (reconnect) { loadLatest(); loadAlarms(); loadEvents(); loadActive(); loadTruth(); }
    },
    onItems,
    onOverflow: () => { loadLatest(); loadAlarms(); loadEvents(); loadActive(); loadTruth(); loadClock(); loadLink(); },
  });
  socket.start();

  await loadCatalogue();
  buildFaultForm();
  await Promise.all([loadLatest(), loadAlarms(), loadEvents(), loadClock(), loadLink(), loadActive(), loadTruth(),
    loadBookmarks()]);
  await Promise.race([hello, new Promise((r) => setTimeout(r, 5000))]);
  lgs.ready = true;

  every(4000, loadAudit);
  setInterval(evalStale, 1000);
  setInterval(loadClock, 15000);
}

main();
