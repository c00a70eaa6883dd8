// Jobline on any page: `watchJob()` and the `<jobline-progress>` / `<jobline-upload>` elements.
//
//   <script type="module" src="https://jobs.example.com/jobline.js"></script>
//   <jobline-progress job="01j…"></jobline-progress>
//
// One EventSource per page, whatever the number of elements (browsers allow six connections per
// host): it follows the union of the watched jobs and resumes with Last-Event-ID after a drop, so
// nothing is missed or repeated. Everything is drawn as text (never HTML) with constructed style
// sheets, so it works under a strict Content-Security-Policy. docs/clients.md has the details.

import { TERMINAL } from "./vocabulary.js";
import { applyEvent, longJobNotice } from "./jobstate.js";
import { followEvents } from "./live-stream.js";
import { sendWithProgress } from "./upload.js";

// The first connection waits for the page's own module scripts (they run before DOMContentLoaded),
// so a page that calls configure() is never first connected without its token.
const pageReady = new Promise((resolve) => {
  const navigation = performance.getEntriesByType("navigation")[0];
  if (document.readyState === "loading" || (navigation && !navigation.domContentLoadedEventStart)) {
    document.addEventListener("DOMContentLoaded", () => resolve(), { once: true });
  } else resolve();
});

const settings = {
  gateway: new URL(import.meta.url).origin, // where this module was loaded from
  // async (purpose: "stream" | "form", { jobs }) => token, for a gateway with API tokens; `jobs`: the
  // ids a stream token is wanted for (the backend may mint one for those jobs only).
  token: null,
};

/** Point the elements at a gateway, and give them tokens when it has API tokens. */
export function configure({ gateway, token } = {}) {
  if (gateway) settings.gateway = gateway.replace(/\/$/, "");
  if (token !== undefined) settings.token = token;
  connection.restart();
}

async function withToken(path, purpose, jobs = []) {
  const url = new URL(path, settings.gateway);
  if (settings.token) url.searchParams.set("access_token", await settings.token(purpose, { jobs }));
  return url.toString();
}

// --- one connection for the page ----------------------------------------------------------
class Connection {
  constructor() {
    this.watchers = new Map(); // job id -> Set of handlers
    this.states = new Map(); // job id -> state
    this.missing = new Set(); // jobs the gateway says do not exist (for this token): left out of the stream
    this.source = null;
    this.key = "";
    this.lastId = null;
    this.status = "idle";
    this.pending = false;
    this.retry = 0;
    this.generation = 0;
  }

  watch(jobId, handlers) {
    this.missing.delete(jobId); // (asked again: it may exist by now)
    if (!this.watchers.has(jobId)) this.watchers.set(jobId, new Set());
    this.watchers.get(jobId).add(handlers);
    const known = this.states.get(jobId);
    if (known) queueMicrotask(() => handlers.onState?.(known));
    this.schedule();
    return () => {
      const set = this.watchers.get(jobId);
      set?.delete(handlers);
      if (set && set.size === 0) this.watchers.delete(jobId);
      this.schedule();
    };
  }

  schedule() {
    if (this.pending) return;
    this.pending = true;
    queueMicrotask(() => { // elements added together share one (re)connection
      this.pending = false;
      this.sync();
    });
  }

  restart() {
    this.key = "";
    this.schedule();
  }

  sync() {
    const live = [...this.watchers.keys()]
      .filter((id) => !this.missing.has(id) && !TERMINAL.includes(this.states.get(id)?.status));
    const key = live.sort().join(",");
    if (key === this.key && this.source) return;
    const added = live.some((id) => !this.key.split(",").includes(id));
    this.key = key;
    this.close();
    if (!live.length) return;
    // A job new to this stream needs its snapshot: open fresh. Fewer jobs: resume where it was.
    this.open(added ? null : this.lastId);
  }

  async open(after) {
    const generation = ++this.generation; // a later open() or close() supersedes this one
    await pageReady;
    const params = new URLSearchParams({ jobs: this.key, firehose: "0", logs: "1" });
    if (after !== null) params.set("after", after);
    let url;
    try {
      url = await withToken(`/api/events?${params}`, "stream", this.key.split(","));
    } catch (error) {
      this.setStatus("error");
      return this.later(after);
    }
    if (generation !== this.generation) return; // superseded while the token came
    const stream = (this.source = followEvents(url, {
      onStatus: (status) => {
        if (stream !== this.source) return;
        if (status === "live") this.retry = 0;
        if (status === "closed") { // refused (an expired token, a 5xx, a job not found): open again, later
          this.source = null;
          this.later(this.lastId);
          // EventSource does not say why: a job with no state yet is asked for, to tell its element.
          for (const id of this.key.split(",")) if (id && !this.states.has(id)) this.fetchState(id);
        } else this.setStatus(status);
      },
      onMessage: (kind, text, id) => {
        if (stream !== this.source) return;
        if (id) this.lastId = id;
        this.receive(kind, JSON.parse(text), Number(id));
      },
    }));
    this.setStatus("connecting");
  }

  later(after) {
    this.retry = Math.min(this.retry + 1, 6);
    const generation = this.generation;
    setTimeout(() => { if (generation === this.generation && !this.source && this.key) this.open(after); },
      500 * 2 ** this.retry);
  }

  close() {
    this.generation++;
    if (this.source) this.source.close();
    this.source = null;
  }

  receive(kind, data, seq) {
    if (kind === "snapshot" || kind === "reset") {
      const seen = new Set();
      for (const job of data.jobs) {
        seen.add(job.id);
        this.setState(job);
        for (const line of data.logs?.[job.id] || []) this.emit(job.id, "onLog", line);
      }
      for (const id of this.watchers.keys()) if (!seen.has(id)) this.fetchState(id); // older than the gateway's memory
      return;
    }
    const state = this.states.get(data.job_id);
    if (state && applyEvent(state, data, seq)) this.emit(data.job_id, "onState", state);
    this.emit(data.job_id, "onEvent", data);
    if (kind === "logged") this.emit(data.job_id, "onLog", data);
    if (TERMINAL.includes(kind)) this.schedule();
  }

  async fetchState(jobId) {
    try {
      const response = await fetch(await withToken(`/api/jobs/${encodeURIComponent(jobId)}`, "stream", [jobId]),
        { headers: { Accept: "application/json" } });
      if (response.ok) this.setState(await response.json());
      else {
        // A job that is not there (or not for this token) must not hold up the stream of the others.
        if (response.status === 404) { this.missing.add(jobId); this.schedule(); }
        this.emit(jobId, "onError", `${response.status}: ${(await response.json()).detail || response.statusText}`);
      }
    } catch (error) {
      this.emit(jobId, "onError", String(error));
    }
  }

  setState(job) {
    this.states.set(job.id, job);
    this.emit(job.id, "onState", job);
    if (TERMINAL.includes(job.status)) this.schedule();
  }

  emit(jobId, name, value) {
    for (const handlers of this.watchers.get(jobId) || []) handlers[name]?.(value);
  }

  setStatus(status) {
    this.status = status;
    for (const set of this.watchers.values()) for (const handlers of set) handlers.onStatus?.(status);
  }
}

const connection = new Connection();

/** Follow one job: onState(state) on every change, onEvent(event), onLog(line), onStatus(status),
 *  onError(text). Returns a function that stops watching. */
export function watchJob(jobId, handlers = {}) {
  return connection.watch(jobId, handlers);
}

// --- <jobline-progress job="…"> ------------------------------------------------------------
const sheet = new CSSStyleSheet();
sheet.replaceSync(`
  :host { display: block; font: var(--jobline-font, 14px/1.4 system-ui, sans-serif); color: var(--jobline-fg, #1d2330); }
  [part~="bar"] { height: var(--jobline-bar-height, 10px); background: var(--jobline-track, #e4e7ee);
    border-radius: var(--jobline-radius, 5px); overflow: hidden; }
  [part~="fill"] { height: 100%; width: 0; background: var(--jobline-accent, #2f6fde); transition: width .2s; }
  :host([status="completed"]) [part~="fill"] { background: var(--jobline-done, #1f9d55); }
  :host([status="failed"]) [part~="fill"], :host([status="expired"]) [part~="fill"] { background: var(--jobline-error, #c62828); }
  [part~="head"] { display: flex; gap: .75em; justify-content: space-between; margin-bottom: .35em; }
  [part~="steps"] { display: flex; flex-wrap: wrap; gap: .35em; list-style: none; padding: 0; margin: .5em 0; }
  [part~="step"] { padding: .1em .6em; border-radius: 1em; background: var(--jobline-track, #e4e7ee); color: var(--jobline-muted, #5b6275); }
  [part~="current"] { background: var(--jobline-accent, #2f6fde); color: #fff; }
  [part~="done"] { background: var(--jobline-done-bg, #d7f2e2); color: var(--jobline-done, #1f7a44); }
  [part~="failed"] { background: #fde2e2; color: var(--jobline-error, #c62828); }
  [part~="time"], [part~="late"] { color: var(--jobline-muted, #5b6275); font-size: .9em; }
  [part~="late"] { color: var(--jobline-warn, #a35b00); }
  [part~="logs"] { font: var(--jobline-mono, 12px/1.4 ui-monospace, monospace); background: var(--jobline-log-bg, #f5f6f9);
    margin: .5em 0 0; padding: .4em .6em; white-space: pre-wrap; overflow-wrap: anywhere; max-height: 10em; overflow: auto; }
  [part~="error"] { color: var(--jobline-error, #c62828); }
  [part~="result"] { overflow-wrap: anywhere; }
  [part~="artifact-row"] { margin: .35em 0; }
  video, img { display: block; max-width: 100%; margin-top: .35em; border-radius: var(--jobline-radius, 5px); }
  [hidden] { display: none !important; }
`);

function seconds(value) {
  if (value == null || !Number.isFinite(value)) return "";
  const s = Math.max(0, Math.round(value));
  return s >= 3600 ? `${Math.floor(s / 3600)}h ${Math.floor((s % 3600) / 60)}m` : s >= 60 ? `${Math.floor(s / 60)}m ${s % 60}s` : `${s}s`;
}

function make(tag, part, parent) {
  const node = document.createElement(tag);
  if (part) node.setAttribute("part", part);
  if (parent) parent.append(node);
  return node;
}

export class JoblineProgress extends HTMLElement {
  static observedAttributes = ["job"];

  constructor() {
    super();
    const root = this.attachShadow({ mode: "open" });
    root.adoptedStyleSheets = [sheet];
    const head = make("div", "head", root);
    this.$status = make("span", "status", head);
    this.$time = make("span", "time", head);
    this.$bar = make("div", "bar", root);
    this.$bar.setAttribute("role", "progressbar");
    this.$bar.setAttribute("aria-valuemin", "0");
    this.$bar.setAttribute("aria-valuemax", "100");
    this.$fill = make("div", "fill", this.$bar);
    this.$late = make("div", "late", root);
    this.$late.hidden = true;
    this.$steps = make("ol", "steps", root);
    this.$error = make("div", "error", root);
    this.$error.setAttribute("role", "alert");
    this.$result = make("div", "result", root);
    this.$logs = make("pre", "logs", root);
    this.$logs.hidden = true;
    this.lines = [];
    this.state = null;
  }

  connectedCallback() { this.start(); }

  disconnectedCallback() { this.stop(); }

  attributeChangedCallback() { if (this.isConnected) this.start(); }

  start() {
    this.stop();
    const job = this.getAttribute("job");
    this.lines = [];
    this.state = null;
    if (!job) return;
    this.$status.textContent = "connecting…";
    this.unwatch = watchJob(job, {
      onState: (state) => { this.state = state; this.render(); },
      onLog: (line) => this.log(line),
      onError: (text) => { this.$error.textContent = text; },
      onStatus: (status) => this.setAttribute("connection", status),
    });
    this.timer = setInterval(() => this.renderTime(), 1000);
  }

  stop() {
    this.unwatch?.();
    this.unwatch = null;
    clearInterval(this.timer);
  }

  get maxLines() {
    const value = Number(this.getAttribute("log-lines") ?? 5);
    return Number.isFinite(value) ? value : 5;
  }

  log(line) {
    if (this.maxLines <= 0) return;
    this.lines.push(line.message);
    if (this.lines.length > this.maxLines) this.lines.splice(0, this.lines.length - this.maxLines);
    this.$logs.textContent = this.lines.join("\n"); // text, never HTML
    this.$logs.hidden = false;
  }

  render() {
    const job = this.state;
    this.setAttribute("status", job.status);
    const percent = Math.round((job.progress ?? (job.status === "completed" ? 1 : 0)) * 100);
    this.$fill.style.width = `${percent}%`; // CSSOM, allowed under a strict CSP
    this.$bar.setAttribute("aria-valuenow", String(percent));
    this.$bar.setAttribute("aria-label", `${job.type} progress`);
    const words = { scheduled: "scheduled", blocked: "waiting for its flow", pending: "waiting to start", running: job.step || "running", retrying: "retrying",
      completed: "done", failed: "failed", cancelled: "cancelled", expired: "expired" };
    this.$status.textContent = `${words[job.status] || job.status} · ${percent}%`;
    this.$steps.replaceChildren(...job.steps.map((step) => {
      const item = make("li", `step ${step.status === "running" ? "current" : step.status}`);
      item.textContent = step.name;
      if (step.status === "running") item.setAttribute("aria-current", "step");
      return item;
    }));
    this.$error.textContent = job.status !== "completed" && TERMINAL.includes(job.status) ? job.error || job.status : "";
    this.renderResult(job);
    this.renderTime();
    this.dispatchEvent(new CustomEvent("jobline-state", { detail: job }));
  }

  renderTime() {
    const job = this.state;
    if (!job) return;
    const end = job.finished_at ?? Date.now() / 1000;
    const elapsed = job.created_at ? end - job.created_at : null;
    const ended = TERMINAL.includes(job.status);
    const eta = !ended && job.eta_s != null ? ` · about ${seconds(job.eta_s)} left` : "";
    this.$time.textContent = job.status === "scheduled" && job.run_at
      ? `starts in ${seconds(job.run_at - Date.now() / 1000)}` : elapsed == null ? "" : `${seconds(elapsed)}${eta}`;
    const expected = Number(this.getAttribute("expected-s"));
    const ran = job.started_at ? end - job.started_at : null;
    const notice = expected && !ended && elapsed > expected
      ? "This takes longer than expected." : ended ? null : longJobNotice(job, ran);
    this.$late.hidden = !notice;
    this.$late.textContent = notice || "";
  }

  renderResult(job) {
    if (job.status !== "completed") {
      this.$result.replaceChildren();
      return;
    }
    const parts = [];
    if (job.result != null) {
      const text = make("code", "result-value");
      text.textContent = typeof job.result === "string" ? job.result : JSON.stringify(job.result);
      parts.push(text);
    }
    for (const artifact of job.artifacts || []) {
      const link = make("a", "artifact");
      link.textContent = artifact.name;
      const kind = artifact.content_type.split("/")[0];
      const media = kind === "video" ? make("video", "video") : kind === "image" ? make("img", "image") : null;
      if (media && kind === "video") media.controls = true;
      if (media && kind === "image") media.alt = artifact.name;
      withToken(artifact.url, "stream", [job.id]).then((href) => {
        link.href = href;
        if (media) media.src = href;
      });
      const row = make("div", "artifact-row");
      row.append(link);
      if (media) row.append(media);
      parts.push(row);
    }
    this.$result.replaceChildren(...parts);
  }
}

// --- <jobline-upload type="video-transcode" field="upload"> ---------------------------------
// A file picker that sends the file and the job in one request (a multipart POST /api/jobs)
// with an upload bar, then shows the job it started in a <jobline-progress>.
export class JoblineUpload extends HTMLElement {
  constructor() {
    super();
    const root = this.attachShadow({ mode: "open" });
    root.adoptedStyleSheets = [sheet];
    this.$form = make("form", "form", root);
    this.$input = make("input", "input", this.$form);
    this.$input.type = "file";
    this.$button = make("button", "button", this.$form);
    this.$button.type = "submit";
    this.$button.textContent = "Upload";
    this.$bar = make("div", "bar upload-bar", root);
    this.$bar.setAttribute("role", "progressbar");
    this.$bar.setAttribute("aria-label", "Upload");
    this.$fill = make("div", "fill", this.$bar);
    this.$bar.hidden = true;
    this.$error = make("div", "error", root);
    this.$error.setAttribute("role", "alert");
    this.$progress = make("jobline-progress", "job", root);
    this.$progress.hidden = true;
    this.$form.addEventListener("submit", (event) => { event.preventDefault(); this.send(); });
  }

  connectedCallback() {
    this.$input.accept = this.getAttribute("accept") || "";
    this.$input.setAttribute("aria-label", this.getAttribute("label") || "File");
    this.$button.textContent = this.getAttribute("button") || "Upload";
  }

  async send() {
    const file = this.$input.files[0];
    if (!file) return;
    const form = new FormData();
    form.set("type", this.getAttribute("type") || "");
    form.set("params", this.getAttribute("params") || "{}");
    form.set(this.getAttribute("field") || "upload", file, file.name);
    this.$error.textContent = "";
    this.$button.disabled = true;
    this.$bar.hidden = false;
    try {
      const accepted = await sendWithProgress(await withToken("/api/jobs", "form"), form, { expect: 202,
        onProgress: (percent) => { this.$fill.style.width = `${percent}%`; } });
      this.$progress.setAttribute("job", accepted.id);
      this.$progress.hidden = false;
      this.dispatchEvent(new CustomEvent("jobline-submitted", { detail: accepted }));
    } catch (error) {
      this.$error.textContent = error.message;
    } finally {
      this.$button.disabled = false;
    }
  }
}

if (!customElements.get("jobline-progress")) customElements.define("jobline-progress", JoblineProgress);
if (!customElements.get("jobline-upload")) customElements.define("jobline-upload", JoblineUpload);
