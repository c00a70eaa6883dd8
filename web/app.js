// Jobline web UI: plain ES module, no build step. Every piece of data is rendered as text
// (textContent / text nodes), never as HTML.

const $ = (id) => document.getElementById(id);

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key.startsWith("data-") || key.startsWith("aria-") || key === "href" || key === "class") {
      node.setAttribute(key, String(value));
    } else {
      node[key] = value;
    }
  }
  for (const child of children) node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  return node;
}

async function api(path, options = {}) {
  const response = await fetch(path, { headers: { "content-type": "application/json" }, ...options });
  const body = response.status === 204 ? null : await response.json();
  if (!response.ok) throw new Error(body?.detail || `${response.status} ${response.statusText}`);
  return body;
}

const formatTime = (ts) => new Date(ts * 1000).toLocaleTimeString();
const formatSeconds = (s) => (s < 60 ? `${s.toFixed(1)} s` : `${Math.floor(s / 60)} min ${Math.round(s % 60)} s`);

// ---- new job form -----------------------------------------------------------------------
let types = [];

async function loadTypes() {
  types = await api("/api/types");
  const select = $("job-type");
  select.replaceChildren(...types.map((t) => el("option", { value: t.name }, t.name)));
  const demo = types.find((t) => t.name === "demo");
  if (demo) select.value = "demo";
  showTypeDefaults();
}

function showTypeDefaults() {
  const info = types.find((t) => t.name === $("job-type").value);
  $("type-description").textContent = info?.description || "";
  $("job-params").value = JSON.stringify(info?.params || {}, null, 2);
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
    const accepted = await api("/api/jobs", { method: "POST", body: JSON.stringify({ type: $("job-type").value, params }) });
    location.hash = `#/jobs/${accepted.id}`;
    loadJobs();
  } catch (error) {
    $("form-error").textContent = error.message;
  } finally {
    $("submit").disabled = false;
  }
}

// ---- one job, live --------------------------------------------------------------------------
let source = null;
let job = null;

function setConnection(state) {
  const pill = $("connection");
  pill.dataset.state = state;
  pill.textContent = state;
}

function render() {
  if (!job) return;
  $("job").hidden = false;
  $("job-id").textContent = job.id;
  const status = $("job-status");
  status.textContent = job.status;
  status.dataset.status = job.status;
  const percent = Math.round((job.progress ?? 0) * 100);
  const bar = $("progress");
  bar.setAttribute("aria-valuenow", String(percent));
  bar.setAttribute("aria-valuetext", `${percent}%`);
  $("progress-fill").style.width = `${percent}%`;
  $("job-message").textContent = job.message || "";
  $("job-eta").textContent = job.status === "running" && job.eta_s != null ? `about ${formatSeconds(job.eta_s)} left` : "";
  $("steps").replaceChildren(
    ...job.steps.map((step) =>
      el("li", { "data-status": step.status, title: step.status }, step.name,
        step.duration_s != null ? el("span", { class: "duration" }, formatSeconds(step.duration_s)) : ""),
    ),
  );
  $("job-error").textContent = job.error ? `Failed: ${job.error}` : "";
  $("job-result-box").hidden = job.result == null;
  $("job-result").textContent = job.result == null ? "" : JSON.stringify(job.result, null, 2);
}

function findStep(name) {
  let step = job.steps.find((s) => s.name === name && (s.status === "pending" || s.status === "running"));
  if (!step) {
    step = { name, status: "pending" };
    job.steps.push(step);
  }
  return step;
}

let shownLines = new Set();

function appendLog(line) {
  // A reconnect sends a fresh snapshot with the recent lines again: show each line once.
  const key = `${line.ts}|${line.message}`;
  if (shownLines.has(key)) return;
  shownLines.add(key);
  const log = $("log");
  const pinned = log.scrollTop + log.clientHeight >= log.scrollHeight - 4;
  log.append(el("li", { "data-level": line.level }, el("span", { class: "ts" }, formatTime(line.ts)), line.message));
  if (pinned) log.scrollTop = log.scrollHeight;
}

const handlers = {
  snapshot(data) { job = data.job; data.logs.forEach(appendLog); },
  started(e) {
    Object.assign(job, { status: "running", attempt: e.attempt, worker: e.worker, started_at: e.ts, progress: null });
    if (e.steps.length) job.steps = e.steps.map((name) => ({ name, status: "pending" }));
  },
  step_started(e) { Object.assign(findStep(e.name), { status: "running", started_at: e.ts }); job.step = e.name; },
  step_finished(e) { Object.assign(findStep(e.name), { status: e.outcome, duration_s: e.duration_s }); },
  progressed(e) {
    if (e.fraction != null) job.progress = Math.max(job.progress ?? 0, e.fraction);
    if (e.message != null) job.message = e.message;
    job.eta_s = e.eta_s;
  },
  logged(e) { appendLog(e); },
  completed(e) { Object.assign(job, { status: "completed", result: e.result, progress: 1, finished_at: e.ts }); },
  failed(e) { Object.assign(job, { status: "failed", error: e.error, finished_at: e.ts }); },
};

async function watch(jobId) {
  if (source) source.close();
  job = null;
  shownLines = new Set();
  $("log").replaceChildren();
  source = new EventSource(`/api/jobs/${encodeURIComponent(jobId)}/events`);
  setConnection("connecting");
  source.onopen = () => setConnection("live");
  source.onerror = () => setConnection(source.readyState === EventSource.CLOSED ? "closed" : "reconnecting");
  for (const [kind, handle] of Object.entries(handlers)) {
    source.addEventListener(kind, (message) => {
      handle(JSON.parse(message.data));
      render();
      if (job && (job.status === "completed" || job.status === "failed")) {
        source.close();  // the stream is over; EventSource would otherwise reconnect
        setConnection("idle");
        loadJobs();
      }
    });
  }
}

// ---- recent jobs ---------------------------------------------------------------------------
async function loadJobs() {
  const page = await api("/api/jobs?limit=20");
  $("jobs").replaceChildren(
    ...page.jobs.map((j) =>
      el("tr", {},
        el("td", {}, el("a", { href: `#/jobs/${j.id}` }, j.id.slice(-8))),
        el("td", {}, j.type),
        el("td", {}, el("span", { class: "pill", "data-status": j.status }, j.status)),
        el("td", {}, `${Math.round((j.progress ?? 0) * 100)}%`),
        el("td", {}, formatTime(j.created_at)),
      ),
    ),
  );
}

function route() {
  const match = location.hash.match(/^#\/jobs\/([A-Za-z0-9_-]{1,64})$/);
  if (match) watch(match[1]);
}

$("job-type").addEventListener("change", showTypeDefaults);
$("new-job").addEventListener("submit", submitJob);
$("refresh").addEventListener("click", loadJobs);
window.addEventListener("hashchange", route);
loadTypes().catch((error) => { $("form-error").textContent = `Could not load job types: ${error.message}`; });
loadJobs().catch(() => {});
route();
