// Jobline web UI: plain ES module, no build step. Every piece of data is rendered as text
// (textContent / text nodes), never as HTML. One live connection per tab: the dashboard, the job
// being watched and its log lines all come over one multiplexed EventSource (/api/events).

import { renderGantt, startActivity, refreshActivitySoon } from "/charts.js";
import { closeBatches, openBatches } from "/batches.js";
import { closeFlow, showFlow } from "/flows.js";
import { openHistory } from "/history.js";
import { startQueues } from "/queues.js";
import { closeSchedules, openSchedules } from "/schedules.js";
import { applyEvent, longJobNotice, startJob, TERMINAL } from "/jobstate.js";
import { StreamHub } from "/stream-hub.js";
import { drawParamFields, paramsFromFields, setFields } from "/paramform.js";
import { $, api, el, formatClock, formatSeconds, LEVELS, now } from "/ui.js";
import { STATUSES } from "/vocabulary.js";

for (const select of document.querySelectorAll("select[data-statuses]")) {
  select.append(...STATUSES.map((status) => el("option", { value: status }, status)));
}

// ---- state ---------------------------------------------------------------------------------
const jobs = new Map(); // id -> state (as GET /api/jobs/{id} returns it)
let watched = null; // the job shown in detail
let types = [];
let shownLines = new Set();

// ---- the one live connection (shared by every tab) -----------------------------------------
function setConnection(state) {
  const pill = $("connection");
  pill.dataset.state = state;
  pill.textContent = state;
}

function openStream() {
  let port;
  try {
    port = new SharedWorker("/stream-worker.js", { type: "module", name: "jobline-stream" }).port;
  } catch {
    const channel = new MessageChannel(); // no SharedWorker here: the hub runs in this page
    new StreamHub().add(channel.port2);
    port = channel.port1;
  }
  port.onmessage = (message) => {
    const msg = message.data;
    if (msg.type === "status") setConnection(msg.state);
    else if (msg.type === "event") onStreamMessage(msg.kind, JSON.parse(msg.data), msg.id);
  };
  port.start();
  window.addEventListener("pagehide", () => port.postMessage({ type: "bye" }));
  return port;
}

const port = openStream();
let serviceLogSource = null;

function onStreamMessage(kind, data, id) {
  if (kind === "snapshot" || kind === "reset") {
    for (const job of data.jobs) {
      const known = jobs.get(job.id);
      if (!known || job.seq >= known.seq) jobs.set(job.id, job);
    }
    if (watched && data.logs[watched]) data.logs[watched].forEach((line) => appendLog(line));
    renderAll();
    return;
  }
  onEvent(data, id);
}

function onEvent(event, seq) {
  const n = Number(seq);
  let job = jobs.get(event.job_id);
  if (job && n && n <= job.seq) {
    // Already folded in (history fetched by this tab, or a resumed stream repeating it).
    if (event.kind === "logged" && event.job_id === watched) appendLog(event, n);
    return;
  }
  if (!job) {
    job = startJob(event, n);
    if (job) jobs.set(event.job_id, job);
  } else {
    applyEvent(job, event, n);
  }
  if (event.job_id === watched) {
    if (event.kind === "logged") appendLog(event, n);
    else appendTimeline(event, seq);
  }
  if (event.kind !== "logged") renderAll();
  if (TERMINAL.includes(event.kind)) refreshActivitySoon();
}

async function loadRecentJobs() {
  const page = await api("/api/jobs?limit=100");
  for (const job of page.jobs) {
    const known = jobs.get(job.id);
    if (!known || job.seq >= known.seq) jobs.set(job.id, job);
  }
  renderAll();
}

// ---- dashboard ---------------------------------------------------------------------------
let renderQueued = false;
function renderAll() {
  if (renderQueued) return;
  renderQueued = true;
  requestAnimationFrame(() => {
    renderQueued = false;
    renderJobs();
    renderDetail();
  });
}

function renderJobs() {
  const status = $("filter-status").value;
  const type = $("filter-type").value;
  const rows = [...jobs.values()]
    .filter((j) => (!status || j.status === status) && (!type || j.type === type))
    .sort((a, b) => b.created_at - a.created_at)
    .slice(0, 100);
  $("jobs").replaceChildren(...rows.map((j) => {
    const percent = Math.round((j.progress ?? (j.status === "completed" ? 1 : 0)) * 100);
    return el("tr", { "aria-selected": String(j.id === watched) },
      el("td", {}, el("a", { href: `#/jobs/${j.id}` }, j.id.slice(-10))),
      el("td", {}, j.type),
      el("td", {}, el("span", { class: "pill", "data-status": j.status }, j.status)),
      el("td", { class: "bar-cell" }, el("div", { class: "progress mini", role: "progressbar", "aria-valuenow": percent,
        "aria-valuemin": 0, "aria-valuemax": 100, "aria-label": `${j.id} progress` }, fill(percent))),
      el("td", {}, formatSeconds(now() - j.created_at)));
  }));
  const known = new Set([...jobs.values()].map((j) => j.type));
  const select = $("filter-type");
  const current = new Set([...select.options].map((o) => o.value));
  for (const t of known) if (!current.has(t)) select.append(el("option", { value: t }, t));
}

function fill(percent) {
  const bar = el("div", { class: "fill" });
  bar.style.width = `${percent}%`;
  return bar;
}

// ---- job detail ---------------------------------------------------------------------------
function renderDetail() {
  const job = watched && jobs.get(watched);
  $("job").hidden = !job;
  $("page-jobs").classList.toggle("watching", Boolean(job));
  if (!job) {
    closeFlow();
    return;
  }
  showFlow(job);
  $("job-id").textContent = job.id;
  $("job-type-name").textContent = job.type;
  // Where it came from: its batch (a link to the batch page) or the recurring schedule that made it.
  const origin = job.batch ? el("a", { href: `#/batches/${job.batch}` }, "its batch")
    : job.schedule ? el("a", { href: "#/schedules" }, `schedule ${job.schedule}`) : null;
  $("job-origin").replaceChildren(...(origin ? ["· ", origin] : []));
  const status = $("job-status");
  const retries = job.attempt - (job.resumes || 0); // (a run after its spawned children is not a retry)
  status.textContent = job.status + (retries > 1 ? ` · attempt ${retries}` : "")
    + (job.priority ? ` · priority ${job.priority}` : "");
  status.dataset.status = job.status;
  const percent = Math.round((job.progress ?? (job.status === "completed" ? 1 : 0)) * 100);
  const bar = $("progress");
  bar.setAttribute("aria-valuenow", String(percent));
  bar.setAttribute("aria-valuetext", `${percent}%`);
  $("progress-fill").style.width = `${percent}%`;
  $("job-message").textContent = job.message || (job.status === "pending" && job.waiting_for)
    || (job.status === "blocked" && `waiting for ${job.blocked_on.length} job(s) of its flow`) || "";
  const end = job.finished_at || now();
  const elapsed = job.started_at ? end - job.started_at : null;
  const parts = [];
  if (job.status === "scheduled" && job.run_at) {
    parts.push(`starts at ${formatClock(job.run_at)} (in ${formatSeconds(Math.max(0, job.run_at - now()))})`);
  }
  if (elapsed != null) parts.push(`elapsed ${formatSeconds(elapsed)}`);
  if (job.status === "running" && job.eta_s != null) parts.push(`about ${formatSeconds(job.eta_s)} left`);
  $("job-times").textContent = parts.join(" · ");
  const notice = longJobNotice(job, elapsed, types.find((t) => t.name === job.type)?.timeout_s);
  $("job-notice").hidden = !notice;
  $("job-notice").textContent = notice || "";
  $("steps").replaceChildren(...job.steps.map((step) =>
    el("li", { "data-status": step.status, title: step.status }, step.name,
      step.duration_s != null ? el("span", { class: "duration" }, formatSeconds(step.duration_s)) : "")));
  $("job-error").textContent = job.error && !["completed", "running"].includes(job.status)
    ? `${job.status === "retrying" ? "Retrying after" : "Why"}: ${job.error}` : "";
  $("job-result-box").hidden = job.result == null;
  $("job-result").textContent = job.result == null ? "" : JSON.stringify(job.result, null, 2);
  renderGantt($("gantt"), job);
  $("cancel").disabled = TERMINAL.includes(job.status) || job.cancel_requested;
  $("retry").disabled = !TERMINAL.includes(job.status);
  $("replay-link").hidden = !TERMINAL.includes(job.status);
  $("replay-link").setAttribute("href", `#/jobs/${job.id}/replay`);
  renderArtifacts(job);
}


let renderedArtifacts = "";
function renderArtifacts(job) {
  const key = job.id + job.artifacts.map((a) => a.name).join(",");
  if (key === renderedArtifacts) return;
  renderedArtifacts = key;
  $("artifacts").replaceChildren(...job.artifacts.map((artifact) => {
    const link = el("a", { href: artifact.url, download: artifact.name }, `${artifact.name} (${Math.ceil(artifact.size / 1024)} KB)`);
    if (artifact.content_type.startsWith("video/")) {
      return el("figure", {}, el("video", { src: artifact.url, controls: true, preload: "metadata" }), link);
    }
    if (artifact.content_type.startsWith("image/")) {
      return el("figure", {}, el("img", { src: artifact.url, alt: artifact.name }), link);
    }
    return el("figure", {}, link);
  }));
}

function appendLog(line, seq) {
  const key = seq ? `#${seq}` : `${line.ts}|${line.attempt}|${line.message}`; // shown once, however it arrives
  if (shownLines.has(key)) return;
  shownLines.add(key);
  const log = $("log");
  const pinned = log.scrollTop + log.clientHeight >= log.scrollHeight - 8; // paused when scrolled up
  const item = el("li", { "data-level": line.level }, el("span", { class: "ts" }, formatClock(line.ts)), line.message);
  item.hidden = LEVELS[line.level] < LEVELS[$("log-level").value];
  log.append(item);
  if (pinned) log.scrollTop = log.scrollHeight;
}

function appendTimeline(event, seq) {
  const list = $("timeline");
  const label = event.kind === "logged" ? `logged (${event.level})`
    : event.kind.startsWith("step") ? `${event.kind} ${event.name}` : event.kind;
  list.append(el("li", {}, `#${seq} ${formatClock(event.ts)} ${label}`));
  while (list.children.length > 300) list.firstChild.remove();
}

async function watch(jobId) {
  if (watched === jobId) return;
  watched = jobId;
  shownLines = new Set();
  renderedArtifacts = "";
  $("log").replaceChildren();
  $("timeline").replaceChildren();
  let since = null;
  try {
    // The job's history up to now, folded here; the shared stream resumes from its end.
    const body = await api(`/api/jobs/${encodeURIComponent(jobId)}/timeline`);
    if (watched !== jobId) return;
    let job = null;
    for (const { seq, event } of body.events) {
      if (!job) job = startJob(event, seq);
      else applyEvent(job, event, seq);
      if (event.kind === "logged") appendLog(event, seq);
      else appendTimeline(event, seq);
      since = seq;
    }
    const known = jobs.get(jobId);
    if (job && (!known || job.seq >= known.seq)) jobs.set(jobId, job);
    // A job that has ended gets nothing more: the shared stream need not go back to its history
    // (which may be older than the stream itself).
    if (job && TERMINAL.includes(job.status)) since = null;
  } catch (error) {
    $("job-error").textContent = error.message;
  }
  port.postMessage({ type: "watch", job: jobId, since });
  renderAll();
}

function unwatch() {
  watched = null;
  port.postMessage({ type: "watch", job: null });
  renderAll();
}

// ---- new job (with an optional upload and its progress) -------------------------------------
async function loadTypes() {
  types = await api("/api/types");
  const select = $("job-type");
  select.replaceChildren(...types.map((t) => el("option", { value: t.name }, t.name)));
  if (types.some((t) => t.name === "demo")) select.value = "demo";
  showTypeDefaults();
}

function showTypeDefaults() {
  const info = types.find((t) => t.name === $("job-type").value);
  $("type-description").textContent = info?.description || "";
  const defaults = { ...(info?.params || {}) };
  if (typeof defaults.upload === "string" && defaults.upload.startsWith("<")) delete defaults.upload; // the file fills it
  $("job-params").value = JSON.stringify(defaults, null, 2);
  $("file-field").hidden = !(info && "upload" in (info.params || {}));
  drawParamFields($("param-fields"), info, defaults, fieldsChanged);
  // A type that advertises no schema (older processors) is edited as JSON.
  $("raw-params").open = $("param-fields").hidden;
}

function fieldsChanged() {
  try {
    const params = paramsFromFields($("param-fields"), JSON.parse($("job-params").value || "{}"));
    $("job-params").value = JSON.stringify(params, null, 2);
    $("form-error").textContent = "";
  } catch (error) {
    $("form-error").textContent = error.message;
  }
}

function jsonChanged() {
  try {
    setFields($("param-fields"), JSON.parse($("job-params").value || "{}"));
  } catch {
    /* still being typed: the fields follow once it parses */
  }
}

function uploadFile(file) {
  // XMLHttpRequest, not fetch: it reports upload progress.
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("POST", `/api/uploads?filename=${encodeURIComponent(file.name)}`);
    xhr.setRequestHeader("content-type", file.type || "application/octet-stream");
    xhr.upload.onprogress = (e) => {
      if (!e.lengthComputable) return;
      const percent = Math.round((e.loaded / e.total) * 100);
      $("upload-bar").setAttribute("aria-valuenow", String(percent));
      $("upload-fill").style.width = `${percent}%`;
      $("upload-text").textContent = `Uploading ${file.name}: ${percent}%`;
    };
    xhr.onload = () => {
      const body = JSON.parse(xhr.responseText || "{}");
      if (xhr.status === 201) resolve(body); else reject(new Error(body.detail || `upload failed (${xhr.status})`));
    };
    xhr.onerror = () => reject(new Error("upload failed: network error"));
    xhr.send(file);
  });
}

async function submitJob(event) {
  event.preventDefault();
  $("form-error").textContent = "";
  let params;
  try {
    params = JSON.parse($("job-params").value || "{}");
  } catch (error) {
    $("form-error").textContent = `Params are not valid JSON: ${error.message}`;
    return;
  }
  $("submit").disabled = true;
  try {
    const file = $("job-file").files[0];
    if (!$("file-field").hidden && file) {
      $("upload").hidden = false;
      const stored = await uploadFile(file);
      $("upload-text").textContent = `Uploaded ${stored.filename} (${Math.ceil(stored.size / 1024)} KB)`;
      params.upload = stored.id;
    }
    const delay = $("job-delay").value;
    const priority = $("job-priority").value;
    await submit($("job-type").value, params, delay === "" ? undefined : Number(delay),
      priority === "" ? undefined : Number(priority));
  } catch (error) {
    $("form-error").textContent = error.message;
  } finally {
    $("submit").disabled = false;
  }
}

async function submit(type, params, delay_s, priority) {
  const accepted = await api("/api/jobs", { method: "POST", body: JSON.stringify({ type, params, delay_s, priority }) });
  location.hash = `#/jobs/${accepted.id}`;
}

// ---- replay ------------------------------------------------------------------------------
const player = { events: [], flow: [], start: 0, duration: 0, position: 0, playing: false, timer: null, jobId: null };
const REPLAYED_FLOW_JOBS = 100; // a flow's jobs replayed beside the job (the first ones, depth first)

async function openReplay(jobId) {
  stopPlaying();
  player.jobId = jobId;
  $("replay-id").textContent = jobId;
  $("replay-back").setAttribute("href", `#/jobs/${jobId}`);
  const body = await api(`/api/jobs/${encodeURIComponent(jobId)}/timeline`);
  player.events = body.events;
  player.flow = await flowTimelines(jobId, body.events);
  // A job of a flow replays over the whole flow's time: its jobs' timelines play together.
  const times = [player.events, ...player.flow.map((m) => m.events)].flat().map((e) => e.event.ts);
  player.start = times.length ? Math.min(...times) : 0;
  player.duration = times.length ? Math.max(...times) - player.start : 0;
  $("replay-flow-box").hidden = player.flow.length === 0;
  seek(0);
}

// The timelines of every job of the flow `events` belong to ([] for a job outside any flow).
async function flowTimelines(jobId, events) {
  const marked = events.find(({ event }) => event.flow || (event.job && event.job.flow));
  const flowId = marked && (marked.event.flow || marked.event.job.flow);
  if (!flowId) return [];
  const members = [];
  const walk = (node, depth) => {
    members.push({ id: node.id, name: node.name || "flow", depth });
    node.children.forEach((child) => walk(child, depth + 1));
  };
  walk(await api(`/api/flows/${encodeURIComponent(flowId)}`), 0);
  return Promise.all(members.slice(0, REPLAYED_FLOW_JOBS).map(async (member) => ({ ...member,
    events: member.id === jobId ? events : (await api(`/api/jobs/${encodeURIComponent(member.id)}/timeline`)).events })));
}

function foldUntil(events, at) {
  let job = null;
  for (const { seq, event } of events) {
    if (event.ts > at) break;
    if (!job) job = startJob(event, seq);
    else applyEvent(job, event, seq);
  }
  return job;
}

function seek(position) {
  player.position = Math.max(0, Math.min(position, player.duration));
  // At the end, every event counts (start + duration can round below the last timestamp).
  const at = player.position >= player.duration ? Infinity : player.start + player.position;
  let job = null;
  const lines = [];
  for (const { seq, event } of player.events) {
    if (event.ts > at) break;
    if (!job) job = startJob(event, seq);
    else applyEvent(job, event, seq);
    if (event.kind === "logged") lines.push(event);
  }
  const percent = job ? Math.round((job.progress ?? (job.status === "completed" ? 1 : 0)) * 100) : 0;
  $("replay-progress").setAttribute("aria-valuenow", String(percent));
  $("replay-fill").style.width = `${percent}%`;
  $("replay-status").textContent = job ? job.status : "";
  $("replay-message").textContent = job?.message || "";
  $("replay-steps").replaceChildren(...(job?.steps || []).map((s) => el("li", { "data-status": s.status }, s.name)));
  $("replay-flow").replaceChildren(...player.flow.map((member) => {
    const state = foldUntil(member.events, at);
    const status = state ? state.status : "not yet";
    const done = state ? Math.round((state.progress ?? (TERMINAL.includes(state.status) ? 1 : 0)) * 100) : 0;
    const fill = el("div", { class: "fill" });
    fill.style.width = `${done}%`;
    const pill = el("span", { class: "pill" }, status);
    pill.dataset.status = status;
    const item = el("li", { "data-job": member.id }, el("div", { class: "row" }, member.name, " ", pill),
      el("div", { class: "progress small", role: "progressbar", "aria-valuemin": "0", "aria-valuemax": "100",
        "aria-valuenow": String(done), "aria-label": `${member.name} at this moment` }, fill));
    item.style.marginLeft = `${member.depth}rem`;
    return item;
  }));
  $("replay-log").replaceChildren(...lines.map((l) => el("li", { "data-level": l.level },
    el("span", { class: "ts" }, formatClock(l.ts)), l.message)));
  $("replay-log").scrollTop = $("replay-log").scrollHeight;
  $("replay-scrub").value = String(player.duration ? Math.round((player.position / player.duration) * 1000) : 0);
  $("replay-clock").textContent = `${formatSeconds(player.position)} / ${formatSeconds(player.duration)}`;
}

function stopPlaying() {
  player.playing = false;
  clearInterval(player.timer);
  $("replay-play").textContent = "Play";
}

function togglePlay() {
  if (player.playing) return stopPlaying();
  if (player.position >= player.duration) seek(0);
  player.playing = true;
  $("replay-play").textContent = "Pause";
  let last = performance.now();
  player.timer = setInterval(() => { // the playback clock of the player, not a poll
    const t = performance.now();
    seek(player.position + ((t - last) / 1000) * Number($("replay-speed").value));
    last = t;
    if (player.position >= player.duration) stopPlaying();
  }, 50);
}

// ---- service logs --------------------------------------------------------------------------
function tailServiceLogs() {
  if (serviceLogSource) serviceLogSource.close();
  const params = new URLSearchParams({ level: $("svc-level").value });
  if ($("svc-service").value) params.set("service", $("svc-service").value);
  $("svc-log").replaceChildren();
  const source = (serviceLogSource = new EventSource(`/api/logs/stream?${params}`));
  $("svc-status").textContent = "connecting";
  source.onopen = () => { $("svc-status").textContent = "live"; };
  source.onerror = () => { $("svc-status").textContent = source.readyState === EventSource.CLOSED ? "closed" : "reconnecting"; };
  source.addEventListener("log", (message) => {
    const record = JSON.parse(message.data);
    const log = $("svc-log");
    const pinned = log.scrollTop + log.clientHeight >= log.scrollHeight - 8;
    log.append(el("li", { "data-level": record.level }, el("span", { class: "ts" }, formatClock(record.ts)),
      el("span", { class: "src" }, `${record.service} ${record.level}`), record.message));
    while (log.children.length > 2000) log.firstChild.remove();
    if (pinned) log.scrollTop = log.scrollHeight;
  });
}

// ---- routing ------------------------------------------------------------------------------
function show(page) {
  for (const name of ["jobs", "replay", "logs", "history", "schedules", "batches"]) $(`page-${name}`).hidden = name !== page;
  if (page !== "schedules") closeSchedules();
  if (page !== "batches") closeBatches();
  for (const [name, link] of [["jobs", $("nav-jobs")], ["history", $("nav-history")], ["logs", $("nav-logs")],
                              ["schedules", $("nav-schedules")], ["batches", $("nav-batches")]]) {
    if (name === page) link.setAttribute("aria-current", "page"); else link.removeAttribute("aria-current");
  }
}


function stopServiceLogs() {
  if (serviceLogSource) serviceLogSource.close();
  serviceLogSource = null;
}

function route() {
  const hash = location.hash;
  let match;
  if ((match = hash.match(/^#\/jobs\/([A-Za-z0-9_-]{1,64})\/replay$/))) {
    stopServiceLogs();
    show("replay");
    openReplay(match[1]).catch((error) => { $("replay-status").textContent = error.message; });
  } else if (hash === "#/logs") {
    stopPlaying();
    show("logs");
    tailServiceLogs();
  } else if ((match = hash.match(/^#\/batches(?:\/([A-Za-z0-9_-]{1,64}))?$/))) {
    stopPlaying();
    stopServiceLogs();
    show("batches");
    openBatches(match[1]).catch((error) => { $("batch-error").textContent = error.message; });
  } else if (hash === "#/schedules") {
    stopPlaying();
    stopServiceLogs();
    show("schedules");
    openSchedules();
  } else if (hash === "#/history") {
    stopPlaying();
    stopServiceLogs();
    show("history");
    openHistory();
  } else {
    stopPlaying();
    stopServiceLogs();
    show("jobs");
    match = hash.match(/^#\/jobs\/([A-Za-z0-9_-]{1,64})$/);
    if (match) watch(match[1]);
    else if (watched !== null) unwatch();
  }
}

$("login").addEventListener("submit", async (event) => {
  event.preventDefault();
  try {
    // The token becomes an HttpOnly session cookie, which fetch and the event stream then carry.
    await api("/api/session", { method: "POST", body: JSON.stringify({ token: $("login-token").value }) });
    location.reload();
  } catch (error) {
    $("login-error").textContent = error.message;
  }
});
$("job-type").addEventListener("change", showTypeDefaults);
$("job-params").addEventListener("input", jsonChanged);
$("new-job").addEventListener("submit", submitJob);
$("filter-status").addEventListener("change", renderJobs);
$("filter-type").addEventListener("change", renderJobs);
$("log-level").addEventListener("change", () => {
  for (const item of $("log").children) item.hidden = LEVELS[item.dataset.level] < LEVELS[$("log-level").value];
});
$("cancel").addEventListener("click", () => {
  if (watched) api(`/api/jobs/${watched}/cancel`, { method: "POST" }).catch((e) => { $("job-error").textContent = e.message; });
});
$("retry").addEventListener("click", () => {
  const job = jobs.get(watched);
  if (job) submit(job.type, job.params).catch((e) => { $("job-error").textContent = e.message; });
});
$("replay-play").addEventListener("click", togglePlay);
$("replay-scrub").addEventListener("input", () => seek((Number($("replay-scrub").value) / 1000) * player.duration));
$("svc-service").addEventListener("change", tailServiceLogs);
$("svc-level").addEventListener("change", tailServiceLogs);
window.addEventListener("hashchange", route);
setInterval(() => { if (!$("page-jobs").hidden) renderAll(); }, 1000); // ages and elapsed times tick
loadTypes().catch((error) => { $("form-error").textContent = `Could not load job types: ${error.message}`; });
loadRecentJobs().catch(() => {});
startActivity();
startQueues();
route();
