// Jobline web UI: plain ES module, no build step. Every piece of data is rendered as text
// (textContent / text nodes), never as HTML. One live connection per tab: the dashboard, the job
// being watched and its log lines all come over one multiplexed EventSource (/api/events).

import { renderGantt, startActivity, refreshActivitySoon } from "/charts.js";
import { startAlerts } from "/alerts.js";
import { closeBatches, openBatches } from "/batches.js";
import { closeFlow, showFlow } from "/flows.js";
import { openHistory } from "/history.js";
import { startQueues } from "/queues.js";
import { closeSchedules, openSchedules } from "/schedules.js";
import { applyEvent, longJobNotice, startJob, TERMINAL } from "/jobstate.js";
import { loadTypes, submit, typeTimeout } from "/new-job.js";
import { openReplay, stopPlaying } from "/replay.js";
import { stopServiceLogs, tailServiceLogs } from "/service-logs.js";
import { closeWorkers, openWorkers } from "/workers.js";
import { StreamHub } from "/stream-hub.js";
import { $, api, el, formatClock, formatSeconds, LEVELS, now } from "/ui.js";
import { STATUSES } from "/vocabulary.js";

for (const select of document.querySelectorAll("select[data-statuses]")) {
  select.append(...STATUSES.map((status) => el("option", { value: status }, status)));
}

// ---- state ---------------------------------------------------------------------------------
const jobs = new Map(); // id -> state (as GET /api/jobs/{id} returns it)
let watched = null; // the job shown in detail
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
  const again = job.retry_of ? el("a", { href: `#/jobs/${job.retry_of}`, class: "retry-of" }, `retry of ${job.retry_of.slice(-10)}`) : null;
  const trace = job.trace_id ? el("span", { class: "trace-id", title: `OpenTelemetry trace ${job.trace_id}` }, `trace ${job.trace_id.slice(0, 8)}…`) : null;
  $("job-origin").replaceChildren(...(origin ? ["· ", origin] : []), ...(again ? [" · ", again] : []),
    ...(trace ? [" · ", trace] : []));
  // Whose it is and its labels, as chips (text).
  $("job-labels").replaceChildren(
    ...(job.owner ? [el("span", { class: "pill", "data-label": "owner", title: "owner" }, job.owner)] : []),
    ...(job.tags || []).map((tag) => el("span", { class: "pill", "data-label": "tag", title: "tag" }, `#${tag}`)));
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
  $("job-message").textContent = (job.status === "waiting" && `waiting for signal ${job.awaiting_signal}`)
    || job.message || (job.status === "pending" && job.waiting_for)
    || (job.status === "blocked" && `waiting for ${job.blocked_on.length} job(s) of its flow`) || "";
  renderSignalBox(job);
  const end = job.finished_at || now();
  const elapsed = job.started_at ? end - job.started_at : null;
  const parts = [];
  if (job.status === "scheduled" && job.run_at) {
    parts.push(`starts at ${formatClock(job.run_at)} (in ${formatSeconds(Math.max(0, job.run_at - now()))})`);
  }
  if (elapsed != null) parts.push(`elapsed ${formatSeconds(elapsed)}`);
  if (job.status === "running" && job.eta_s != null) parts.push(`about ${formatSeconds(job.eta_s)} left`);
  $("job-times").textContent = parts.join(" · ");
  const notice = longJobNotice(job, elapsed, typeTimeout(job.type));
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

// ---- routing ------------------------------------------------------------------------------
function show(page) {
  for (const name of ["jobs", "replay", "logs", "history", "schedules", "batches", "workers"]) $(`page-${name}`).hidden = name !== page;
  if (page !== "schedules") closeSchedules();
  if (page !== "batches") closeBatches();
  if (page !== "workers") closeWorkers();
  for (const [name, link] of [["jobs", $("nav-jobs")], ["history", $("nav-history")], ["logs", $("nav-logs")],
                              ["schedules", $("nav-schedules")], ["batches", $("nav-batches")], ["workers", $("nav-workers")]]) {
    if (name === page) link.setAttribute("aria-current", "page"); else link.removeAttribute("aria-current");
  }
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
  } else if (hash === "#/workers") {
    stopPlaying();
    stopServiceLogs();
    show("workers");
    openWorkers();
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
$("filter-status").addEventListener("change", renderJobs);
$("filter-type").addEventListener("change", renderJobs);
$("log-level").addEventListener("change", () => {
  for (const item of $("log").children) item.hidden = LEVELS[item.dataset.level] < LEVELS[$("log-level").value];
});
// A job whose handler waits for a signal (ctx.wait_for_signal): say what for, and offer to send it.
function renderSignalBox(job) {
  const name = job.status === "waiting" ? job.awaiting_signal : null;
  $("job-signal").hidden = !name;
  if (!name) return;
  $("signal-title").textContent = `Waiting for ${name}`;
  $("signal-until").textContent = job.signal_timeout_at ? `until ${formatClock(job.signal_timeout_at)}` : "";
}

// Approve/Reject add `approved` to the payload (a JSON object, or nothing); Send sends it as it is.
async function sendSignal(approved) {
  const job = jobs.get(watched);
  if (!job || !job.awaiting_signal) return;
  const raw = $("signal-payload").value.trim();
  let payload = null;
  try {
    payload = raw ? JSON.parse(raw) : null;
  } catch {
    throw new Error("the payload is not JSON");
  }
  if (approved !== undefined) {
    if (payload !== null && (typeof payload !== "object" || Array.isArray(payload))) {
      throw new Error("Approve and Reject add to a JSON object: use Send for any other payload");
    }
    payload = { ...(payload ?? {}), approved };
  }
  await api(`/api/jobs/${job.id}/signals/${encodeURIComponent(job.awaiting_signal)}`,
    { method: "POST", body: JSON.stringify(payload) });
  $("signal-payload").value = "";
}
const signalFailed = (error) => { $("job-error").textContent = error.message; };
$("job-signal").addEventListener("submit", (event) => {
  event.preventDefault();
  sendSignal(true).catch(signalFailed);
});
$("signal-reject").addEventListener("click", () => sendSignal(false).catch(signalFailed));
$("signal-send").addEventListener("click", () => sendSignal(undefined).catch(signalFailed));
$("cancel").addEventListener("click", () => {
  if (watched) api(`/api/jobs/${watched}/cancel`, { method: "POST" }).catch((e) => { $("job-error").textContent = e.message; });
});
$("retry").addEventListener("click", () => {
  const job = jobs.get(watched);
  if (job) submit(job.type, job.params).catch((e) => { $("job-error").textContent = e.message; });
});
window.addEventListener("hashchange", route);
setInterval(() => { if (!$("page-jobs").hidden) renderAll(); }, 1000); // ages and elapsed times tick
// What this token's role may do: the page hides the rest (the gateway refuses it anyway).
api("/api/session").then((session) => {
  document.body.dataset.can = session.can.join(" ");
  $("role").textContent = session.auth ? session.role : "";
}).catch(() => {});
loadTypes().catch((error) => { $("form-error").textContent = `Could not load job types: ${error.message}`; });
loadRecentJobs().catch(() => {});
startActivity();
startQueues();
startAlerts();
route();
