// s3-pipeline console: a list of executions and one execution in detail, from /api/.
"use strict";

const REFRESH_MS = 2000;
const $ = (sel) => document.querySelector(sel);
let graph = null;
let timer = null;

function text(tag, content, cls) {
  const el = document.createElement(tag);
  if (content !== undefined && content !== null) el.textContent = String(content);
  if (cls) el.className = cls;
  return el;
}

function duration(ms) {
  if (ms === null || ms === undefined) return "-";
  return ms >= 1000 ? (ms / 1000).toFixed(2) + " s" : ms + " ms";
}

function time(ms) {
  return ms ? new Date(ms).toLocaleTimeString() : "-";
}

async function api(path) {
  const res = await fetch(path, { cache: "no-store" });
  const body = await res.json();
  if (!res.ok) throw new Error(body.error || res.statusText);
  return body;
}

function showError(e) {
  const el = $("#error");
  el.hidden = !e;
  el.textContent = e ? "Error: " + e.message : "";
}

async function refreshList() {
  const status = $("#status-filter").value;
  const data = await api("/api/executions?status=" + encodeURIComponent(status));
  $("#refreshed").textContent = "refreshed " + new Date().toLocaleTimeString();
  const c = data.counters;
  $("#count-processed").textContent = c.processed;
  $("#count-quarantined").textContent = c.quarantined;
  $("#count-failed").textContent = c.failed;
  $("#count-running").textContent = c.running;
  $("#count-rate").textContent = c.per_minute.toFixed(1);
  const body = $("#executions tbody");
  // Rebuild the rows only when they changed (keeps hover and clicks steady between refreshes).
  const seen = JSON.stringify(data.executions);
  if (body.dataset.seen === seen) return;
  body.dataset.seen = seen;
  body.replaceChildren(...data.executions.map((e) => {
    const tr = document.createElement("tr");
    tr.dataset.execution = e.name;
    tr.dataset.key = e.key;
    tr.dataset.status = e.status;
    tr.append(
      text("td", e.key || "(not a pipeline input)"),
      (() => { const td = text("td"); td.append(text("span", e.status + (e.error ? " (" + e.error + ")" : ""), "status " + e.status)); return td; })(),
      text("td", time(e.start_ms)),
      text("td", duration(e.duration_ms)),
      text("td", e.name),
    );
    tr.addEventListener("click", () => { location.hash = "#/execution/" + encodeURIComponent(e.name); });
    return tr;
  }));
}

const SVG = "http://www.w3.org/2000/svg";
function svg(tag, attrs) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, v);
  return el;
}

function drawGraph(states) {
  const root = svg("svg", { width: graph.width, height: graph.height, viewBox: `0 0 ${graph.width} ${graph.height}`, id: "graph-svg" });
  const defs = svg("defs");
  const marker = svg("marker", { id: "arrow", viewBox: "0 0 10 10", refX: 10, refY: 5, markerWidth: 7, markerHeight: 7, orient: "auto-start-reverse" });
  marker.append(svg("path", { d: "M 0 0 L 10 5 L 0 10 z", fill: "#8c959f" }));
  defs.append(marker);
  root.append(defs);
  for (const e of graph.edges) {
    const [[x1, y1], [x2, y2]] = e.points;
    const d = y2 > y1
      ? `M ${x1} ${y1} C ${x1} ${(y1 + y2) / 2}, ${x2} ${(y1 + y2) / 2}, ${x2} ${y2}`
      : `M ${x1} ${y1} C ${x1 + 60} ${y1}, ${x2 + 60} ${y2}, ${x2} ${y2}`;
    const path = svg("path", { d, class: "edge " + e.kind, "marker-end": "url(#arrow)", "data-from": e.from, "data-to": e.to });
    const title = svg("title");
    title.textContent = `${e.from} → ${e.to} (${e.kind})`;
    path.append(title);
    root.append(path);
  }
  for (const n of graph.nodes) {
    const run = states[n.name];
    const status = run ? run.status : "not-run";
    const g = svg("g", { class: "state", "data-state": n.name, "data-status": status });
    g.append(svg("rect", { x: n.x, y: n.y, width: n.width, height: n.height, rx: 6 }));
    const label = svg("text", { x: n.x + n.width / 2, y: n.y + 17 });
    label.textContent = n.name;
    const sub = svg("text", { x: n.x + n.width / 2, y: n.y + 32, class: "duration" });
    sub.textContent = run ? `${status} · ${duration(run.duration_ms)}` : n.kind;
    const title = svg("title");
    title.textContent = `${n.name} (${n.kind}): ${status}` + (run ? `, ${duration(run.duration_ms)}, entered ${run.entered}×` : "");
    g.append(label, sub, title);
    root.append(g);
  }
  $("#graph").replaceChildren(root);
}

function pretty(json) {
  if (!json) return "-";
  try { return JSON.stringify(JSON.parse(json), null, 2); } catch (_) { return json; }
}

async function refreshDetail(name) {
  if (!graph) graph = await api("/api/graph");
  const d = await api("/api/executions/" + encodeURIComponent(name));
  const e = d.execution;
  $("#detail-title").textContent = e.key || e.name;
  const summary = $("#detail-summary");
  summary.replaceChildren(
    text("span", e.status, "status " + e.status),
    document.createTextNode(` execution ${e.name} · Step Functions status ${e.execution_status} · started ${time(e.start_ms)} · ${duration(e.duration_ms)}`),
  );
  summary.dataset.status = e.status;
  const q = $("#quarantine");
  q.hidden = !d.quarantine;
  if (d.quarantine) {
    $("#quarantine-error").textContent = d.quarantine.error;
    $("#quarantine-reason").textContent = d.quarantine.cause;
  }
  drawGraph(d.states);
  const thumbs = $("#thumbnails");
  const wanted = d.thumbnails.join("\n");
  if (thumbs.dataset.keys !== wanted) {
    thumbs.dataset.keys = wanted;
    thumbs.replaceChildren(...(d.thumbnails.length ? d.thumbnails.map((key) => {
      const img = document.createElement("img");
      img.className = "thumbnail";
      img.alt = key;
      img.title = key;
      img.src = "/api/thumbnail?key=" + encodeURIComponent(key);
      return img;
    }) : [text("p", "none")]));
  }
  $("#input").textContent = pretty(d.input);
  $("#output").textContent = pretty(d.output || (d.error ? JSON.stringify({ Error: d.error, Cause: d.cause }) : null));
  $("#history tbody").replaceChildren(...d.history.map((h) => {
    const tr = document.createElement("tr");
    tr.dataset.kind = h.kind;
    const detail = text("td");
    if (h.detail) detail.append(text("code", h.detail.length > 300 ? h.detail.slice(0, 300) + "…" : h.detail));
    tr.append(text("td", h.id), text("td", h.kind), text("td", h.state || ""), text("td", time(h.at_ms)), detail);
    return tr;
  }));
  return e.status === "running";
}

async function tick() {
  clearTimeout(timer);
  const m = location.hash.match(/^#\/execution\/(.+)$/);
  $("#list-view").hidden = !!m;
  $("#detail-view").hidden = !m;
  let again = true;
  try {
    if (m) again = await refreshDetail(decodeURIComponent(m[1]));
    else await refreshList();
    showError(null);
  } catch (e) {
    showError(e);
  }
  if (again) timer = setTimeout(tick, REFRESH_MS);
}

async function upload(files) {
  const status = $("#upload-status");
  let done = 0;
  for (const file of files) {
    status.textContent = `uploading ${file.name} (${done + 1}/${files.length})…`;
    const res = await fetch("/api/upload?key=" + encodeURIComponent(file.name), { method: "POST", body: file });
    if (!res.ok) {
      const body = await res.json().catch(() => ({}));
      status.textContent = `upload of ${file.name} failed: ${body.error || res.statusText}`;
      return;
    }
    done += 1;
  }
  status.textContent = `uploaded ${done} file(s)`;
  tick();
}

function setup() {
  const zone = $("#drop-zone");
  zone.addEventListener("dragover", (ev) => { ev.preventDefault(); zone.classList.add("over"); });
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", (ev) => {
    ev.preventDefault();
    zone.classList.remove("over");
    upload([...ev.dataTransfer.files]);
  });
  $("#file-input").addEventListener("change", (ev) => {
    const files = [...ev.target.files];
    ev.target.value = "";
    upload(files);
  });
  $("#status-filter").addEventListener("change", tick);
  window.addEventListener("hashchange", () => { $("#thumbnails").dataset.keys = ""; tick(); });
  api("/api/stack").then((s) => { $("#stack").textContent = `stack ${s.stack} · s3://${s.input_bucket}`; }).catch(showError);
  tick();
}

setup();
