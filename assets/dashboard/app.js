// crew's dashboard: one EventSource on /v1/events, redrawn on each message. Plain
// browser JavaScript (no build step); charts by uPlot, served by the cluster itself.
"use strict";

const MAX_POINTS = 300; // five minutes of one-second samples, as the server keeps
const MAX_EVENTS = 200;
const CHART_HEIGHT = 146; // px, axes included; the legend goes below
const $ = (sel) => document.querySelector(sel);

/** A DOM element with attributes and children (text is always set as text, never parsed as HTML). */
function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") el.className = v;
    else if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  for (const child of children) if (child !== null && child !== undefined) el.append(child instanceof Node ? child : String(child));
  return el;
}

function ms(value) {
  if (value === null || value === undefined) return "–";
  if (value < 1) return `${value.toFixed(2)} ms`;
  if (value < 1000) return `${Math.round(value)} ms`;
  if (value < 60_000) return `${(value / 1000).toFixed(1)} s`;
  if (value < 3_600_000) return `${Math.floor(value / 60_000)} m ${Math.round((value % 60_000) / 1000)} s`;
  return `${Math.floor(value / 3_600_000)} h ${Math.round((value % 3_600_000) / 60_000)} m`;
}

function bytes(value) {
  if (value === null || value === undefined) return "–";
  return value >= 1 << 30 ? `${(value / 2 ** 30).toFixed(1)} GiB` : `${(value / 2 ** 20).toFixed(1)} MiB`;
}

/** An axis label: 1500 → "1.5k", 2000000 → "2M". */
function compact(value) {
  if (value >= 1e6) return `${+(value / 1e6).toFixed(1)}M`;
  if (value >= 1e3) return `${+(value / 1e3).toFixed(1)}k`;
  return `${+value.toFixed(2)}`;
}

function clock(t) {
  return new Date(t).toLocaleTimeString([], { hour12: false });
}

let noticeTimer = 0;

/** Shows a line under the header for ten seconds (empty text hides it). */
function notice(text) {
  const el = $("#notice");
  el.textContent = text;
  el.hidden = !text;
  clearTimeout(noticeTimer);
  if (text) noticeTimer = setTimeout(() => (el.hidden = true), 10_000);
}

// ---- charts ----------------------------------------------------------------------------

const charts = {};
const data = { t: [], ok: [], failed: [], refused: [], p50: [], p99: [], queue: [], inFlight: [] };

function cssVar(name) {
  return getComputedStyle(document.documentElement).getPropertyValue(name).trim();
}

function chartSpec() {
  return {
    throughput: [
      { label: "ok/s", key: "ok", color: "--ok" },
      { label: "errors/s", key: "failed", color: "--bad" },
      { label: "refused/s", key: "refused", color: "--warn" },
    ],
    latency: [
      { label: "p50", key: "p50", color: "--accent" },
      { label: "p99", key: "p99", color: "--info" },
    ],
    load: [
      { label: "queued", key: "queue", color: "--warn" },
      { label: "on nodes", key: "inFlight", color: "--accent" },
    ],
  };
}

function buildCharts() {
  const text = cssVar("--muted");
  const grid = cssVar("--grid");
  for (const [name, series] of Object.entries(chartSpec())) {
    const el = $(`#chart-${name}`);
    charts[name]?.chart.destroy();
    el.textContent = "";
    const axis = { stroke: text, grid: { stroke: grid, width: 1 }, ticks: { stroke: grid, width: 1 } };
    const opts = {
      width: Math.max(200, el.clientWidth),
      height: CHART_HEIGHT,
      cursor: { drag: { x: false, y: false } },
      scales: { x: { time: true }, y: { range: (_u, min, max) => [0, Math.max(1, max * 1.1)] } },
      axes: [axis, { ...axis, size: 56, values: (_u, ticks) => ticks.map(compact) }],
      // A second without answers has no latency: the line spans it rather than breaking.
      series: [{}, ...series.map((s) => ({ label: s.label, stroke: cssVar(s.color), width: 1.5, spanGaps: true }))],
    };
    charts[name] = { chart: new uPlot(opts, chartData(series), el), series };
  }
}

function chartData(series) {
  return [data.t, ...series.map((s) => data[s.key])];
}

function addSamples(samples) {
  for (const s of samples) {
    data.t.push(s.t / 1000);
    for (const key of ["ok", "failed", "refused", "p50", "p99", "queue", "inFlight"]) data[key].push(s[key]);
  }
  if (data.t.length > MAX_POINTS) for (const key of Object.keys(data)) data[key].splice(0, data.t.length - MAX_POINTS);
  for (const { chart, series } of Object.values(charts)) chart.setData(chartData(series));
  document.body.dataset.samples = String(data.t.length);
}

new ResizeObserver(() => {
  for (const [name, { chart }] of Object.entries(charts)) {
    const el = $(`#chart-${name}`);
    chart.setSize({ width: Math.max(200, el.clientWidth), height: CHART_HEIGHT });
  }
}).observe($(".charts"));
matchMedia("(prefers-color-scheme: dark)").addEventListener("change", buildCharts);

// ---- summary, nodes, requests -----------------------------------------------------------

function summary(snap) {
  const c = snap.counters;
  const nodes = snap.hosts.flatMap((host) => host.nodes);
  const items = [
    ["uptime", ms(snap.uptimeMs)],
    ["nodes up", `${nodes.filter((n) => n.state === "up").length} / ${nodes.length}`],
    ["queue", `${snap.queue.length} / ${snap.queue.max}`],
    ["in flight", snap.requestsTotal],
    ["completed", c.completed],
    ["failed", c.failed],
    ["refused", c.refused],
    ["retries", c.retries],
    ["checkpoints", c.checkpoints],
    ["balancer", snap.balancer],
  ];
  if (snap.draining) items.unshift(["state", "draining"]);
  $("#summary").replaceChildren(...items.map(([k, v]) => h("div", {}, h("dt", {}, k), h("dd", {}, v))));
}

function nodeRows(snap) {
  const several = snap.hosts.length > 1;
  const rows = [];
  for (const host of snap.hosts) {
    if (several) {
      const seen = host.self ? "this host" : `seen ${ms(host.lastSeenMs)} ago${host.held === undefined ? "" : `, holds ${host.held}`}`;
      rows.push(h("tr", { class: "host", "data-host": host.id }, h("td", { colspan: 12 }, `host ${host.id} (${seen})`)));
    }
    for (const n of host.nodes) {
      const kill = host.self ? h("button", { class: "danger", type: "button", "data-kill": n.id, disabled: n.state !== "up", onclick: () => killNode(n.id) }, "kill") : "";
      rows.push(
        h("tr", { "data-node": n.id, "data-host": host.id },
          h("td", {}, n.id), h("td", {}, n.kind), h("td", {}, n.threadId == null ? (n.pid ?? "–") : `${n.pid ?? "–"} / ${n.threadId}`),
          h("td", {}, h("span", { class: `state state-${n.state}` }, n.state)),
          h("td", { class: "num" }, n.inFlight ?? "–"), h("td", { class: "num" }, n.completed ?? "–"),
          h("td", { class: "num" }, n.crashes ?? "–"), h("td", { class: "num" }, n.restarts ?? "–"),
          h("td", { class: "num" }, bytes(n.heapUsed)), h("td", { class: "num" }, bytes(n.rss)),
          h("td", {}, n.lastExit ?? ""), h("td", {}, kill)),
      );
    }
  }
  $("#nodes tbody").replaceChildren(...rows);
}

function requestRows(snap) {
  const shown = snap.requests.length;
  $("#requests-count").textContent = shown < snap.requestsTotal ? `the ${shown} oldest of ${snap.requestsTotal}` : `${snap.requestsTotal}`;
  const rows = snap.requests.map((r) =>
    h("tr", { "data-request": r.id },
      h("td", {}, r.id), h("td", {}, r.handler), h("td", {}, h("span", { class: `state state-${r.state}` }, r.state)),
      h("td", {}, r.node ?? (r.lastNode ? `(last: ${r.lastNode})` : "–")),
      h("td", { class: "num" }, r.attempt), h("td", { class: "num" }, r.priority),
      h("td", { class: "num" }, ms(r.ageMs)), h("td", { class: "num" }, ms(r.checkpointAgeMs))),
  );
  if (rows.length === 0) rows.push(h("tr", {}, h("td", { colspan: 8, class: "empty" }, "none")));
  $("#requests tbody").replaceChildren(...rows);
}

// ---- timeline ---------------------------------------------------------------------------

const KIND_LABELS = { "node-added": "added", "node-removed": "retired", "reload-failed": "no reload", "host-joined": "host up", "host-lost": "host lost" };

function addEvents(events) {
  const list = $("#timeline");
  list.querySelector(".empty")?.remove();
  for (const e of events) {
    list.prepend(
      h("li", { "data-kind": e.kind, "data-node": e.node, "data-request": e.requestId, "data-seq": e.seq },
        h("time", { datetime: new Date(e.t).toISOString() }, clock(e.t)),
        h("span", { class: `kind kind-${e.kind}` }, KIND_LABELS[e.kind] ?? e.kind),
        h("span", {}, e.message)),
    );
  }
  while (list.children.length > MAX_EVENTS) list.lastElementChild.remove();
  if (list.children.length === 0) list.append(h("li", { class: "empty" }, "nothing has happened yet"));
}

// ---- admin actions ----------------------------------------------------------------------

/** POSTs an admin endpoint; on 403 asks once for the admin token (kept for this tab only). */
async function admin(path) {
  for (let asked = false; ; asked = true) {
    const token = sessionStorage.getItem("crew-admin-token");
    const headers = token ? { authorization: `Bearer ${token}`, "x-crew-admin-token": token } : {};
    const res = await fetch(path, { method: "POST", headers });
    if (res.status !== 403 || asked) return res;
    const given = prompt("This cluster's admin endpoints need its admin token (--admin-token):");
    if (!given) return res;
    sessionStorage.setItem("crew-admin-token", given);
  }
}

async function answer(res) {
  const body = await res.json().catch(() => ({}));
  return body.error ? `${body.error.code}: ${body.error.message}` : `HTTP ${res.status}`;
}

async function killNode(id) {
  if (!confirm(`Kill node ${id}? Its requests are retried on other nodes and it is restarted.`)) return;
  const res = await admin(`/v1/nodes/${encodeURIComponent(id)}/kill`);
  notice(res.ok ? "" : `kill ${id}: ${await answer(res)}`);
}

$("#reload").addEventListener("click", async () => {
  const button = $("#reload");
  button.disabled = true;
  try {
    const res = await admin("/v1/reload");
    if (res.status === 404 || res.status === 405) {
      button.hidden = true;
      notice("This version of crew has no reload endpoint.");
    } else notice(res.ok ? "Handlers reloaded." : `reload: ${await answer(res)}`);
  } catch (err) {
    notice(`reload: ${err.message}`);
  } finally {
    button.disabled = false;
  }
});

// ---- the stream -------------------------------------------------------------------------

function connect() {
  const conn = $("#conn");
  const source = new EventSource("/v1/events");
  const onMessage = (msg) => {
    const body = JSON.parse(msg.data);
    if (body.snapshot) {
      summary(body.snapshot);
      nodeRows(body.snapshot);
      requestRows(body.snapshot);
    }
    if (body.samples.length > 0) addSamples(body.samples);
    addEvents(body.events);
    conn.dataset.state = "live";
    conn.textContent = "live";
  };
  source.addEventListener("tick", onMessage);
  source.addEventListener("events", onMessage);
  source.addEventListener("open", () => {
    // A new stream sends all the history it keeps: start from nothing.
    for (const key of Object.keys(data)) data[key].length = 0;
    $("#timeline").replaceChildren();
  });
  source.addEventListener("error", () => {
    conn.dataset.state = "lost";
    conn.textContent = "reconnecting…";
    // EventSource retries by itself after a dropped stream, but not after an HTTP error
    // (503 past the cap of streams, a restarting primary): then we retry.
    if (source.readyState === EventSource.CLOSED) setTimeout(connect, 5000);
  });
}

// For the browser test and for curious people in the console: what the charts hold.
window.crewDashboard = { data, charts };

buildCharts();
addEvents([]);
connect();
