// The History page: every job ever kept (the history service's), searched by status, type, time,
// error text, owner, tags and params/result fields, a page at a time with a stable cursor. A job opens on its
// own page (steps, logs, replay) however old it is.

import { $, api, el, formatDuration, formatWhen } from "/ui.js";
import { STATUSES, TERMINAL } from "/vocabulary.js";

let pages = [null]; // the `before` cursor of each page shown so far (null: the newest)
let shown = 0;
let started = false;

export function openHistory() {
  if (started) return;
  started = true;
  $("history-form").addEventListener("submit", (event) => { event.preventDefault(); pages = [null]; show(0); });
  $("history-older").addEventListener("click", () => show(shown + 1));
  $("history-newer").addEventListener("click", () => show(shown - 1));
  $("history-retry").addEventListener("click", () => ask("retry"));
  $("history-delete").addEventListener("click", () => ask("delete"));
  $("history-cancel").addEventListener("click", () => ask("cancel"));
  $("history-retry-cancel").addEventListener("click", () => { $("history-retry-ask").hidden = true; });
  $("history-retry-confirm").addEventListener("click", act);
  show(0);
  showOperations();
}

// Bulk actions on what the filter matches (retry and delete: ended jobs; cancel: live ones): the
// count (a dry run) is shown first. Confirmed, a retry's new jobs are one batch, whose page follows
// them live; a cancel or a delete is a stored operation a conductor runs (it goes on if this page
// is closed: the recent operations below show how it ended), its progress in a bar.
let action = "retry";
const VERBS = { retry: "Retry", delete: "Delete", cancel: "Cancel jobs" };
const LIVE = STATUSES.filter((s) => !TERMINAL.includes(s));
const QUESTIONS = {
  retry: (what) => `Retry ${what}?`, delete: (what) => `Delete ${what} from history?`, cancel: (what) => `Cancel ${what}?`,
};

function actionQuery() {
  const params = query();
  params.delete("limit");
  return params;
}

async function ask(kind) {
  action = kind;
  $("history-error-text").textContent = "";
  const status = $("history-status").value;
  const allowed = kind === "cancel" ? LIVE : TERMINAL;
  if (!allowed.includes(status)) {
    $("history-error-text").textContent = `Choose ${kind === "cancel" ? "a live" : "an ended"} status `
      + `(${allowed.join(", ")}) to ${kind}.`;
    return;
  }
  try {
    const dry = await api(`/api/jobs/${kind}?${actionQuery()}&dry_run=true`, { method: "POST" });
    const what = `${dry.matched} ${status} job${dry.matched === 1 ? "" : "s"}`;
    $("history-retry-count").textContent = !dry.matched ? "No job matches." : QUESTIONS[kind](what);
    $("history-retry-confirm").textContent = VERBS[kind];
    $("history-retry-confirm").hidden = !dry.matched;
    $("history-retry-ask").hidden = false;
  } catch (error) {
    $("history-error-text").textContent = error.message;
  }
}

async function act() {
  $("history-retry-confirm").disabled = true;
  try {
    if (action === "retry") {
      const done = await api(`/api/jobs/retry?${actionQuery()}`, { method: "POST" });
      $("history-retry-ask").hidden = true;
      if (done.batch) location.hash = `#/batches/${done.batch}`;
    } else { // (the answer stays where the question was)
      $("history-retry-confirm").hidden = true;
      const done = await asOperation(`/api/jobs/${action}?${actionQuery()}`);
      if (done.status === "failed") throw new Error(`the operation failed: ${done.error}`);
      const n = action === "delete" ? done.deleted : done.cancelled + done.cancelling;
      $("history-retry-count").textContent = `${n} job${n === 1 ? "" : "s"} ${action === "delete" ? "deleted" : "cancelled"}.`;
      pages = [null];
      setTimeout(() => show(0), 500); // (the history service records the change a moment later)
    }
  } catch (error) {
    $("history-error-text").textContent = error.message;
  } finally {
    $("history-retry-confirm").disabled = false;
    showOperations();
  }
}

/** Store the bulk action as an operation and follow it (Server-Sent Events) in the bar; resolves
 * with its final record. A repeat of the same click (a retried request) is the same operation. */
async function asOperation(path) {
  const key = globalThis.crypto?.randomUUID?.() ?? `${Date.now()}-${Math.random()}`;
  const started = await api(path, { method: "POST", headers: {
    "content-type": "application/json", prefer: "respond-async", "idempotency-key": `history-page-${key}` } });
  const bar = $("history-bulk-bar");
  const fill = $("history-bulk-fill");
  bar.hidden = false;
  const shown = (record) => {
    const percent = record.matched ? Math.round((100 * record.done) / record.matched) : (record.status === "done" ? 100 : 0);
    fill.style.width = `${percent}%`;
    bar.setAttribute("aria-valuenow", String(percent));
  };
  return new Promise((resolve) => {
    const source = new EventSource(started.links.events);
    source.addEventListener("operation", (event) => shown(JSON.parse(event.data)));
    for (const end of ["done", "failed"]) {
      source.addEventListener(end, (event) => {
        source.close();
        const record = JSON.parse(event.data);
        shown(record);
        resolve(record);
      });
    }
    // (a dropped stream is reopened by the browser: the operation goes on meanwhile, on a conductor)
  });
}

/** The newest stored operations, as text. */
async function showOperations() {
  try {
    const operations = (await api("/api/operations")).slice(0, 5);
    $("history-operations").replaceChildren(...operations.map((op) => el("li", { "data-status": op.status },
      el("span", { class: "pill", "data-status": op.status === "done" ? "completed" : op.status }, op.status), " ",
      `${op.action} ${op.done} of ${op.matched ?? "?"} — ${formatWhen(op.created_at)}`,
      op.error ? el("span", { class: "error" }, ` ${op.error}`) : "")));
    $("history-operations-box").hidden = operations.length === 0;
  } catch {
    $("history-operations-box").hidden = true; // (a viewer without the list, or the gateway away: nothing to show)
  }
}

function moment(input) {
  return input.value ? String(new Date(input.value).getTime() / 1000) : null;
}

function query() {
  const params = new URLSearchParams({ limit: "50" });
  const set = (key, value) => { if (value) params.set(key, value); };
  set("status", $("history-status").value);
  set("type", $("history-type").value.trim());
  set("created_after", moment($("history-from")));
  set("created_before", moment($("history-to")));
  set("error", $("history-error").value.trim());
  set("owner", $("history-owner").value.replace(/\s+/g, ""));
  set("tag", $("history-tag").value.replace(/\s+/g, ""));
  for (const line of $("history-fields").value.split("\n")) {
    const [key, ...rest] = line.split("=");
    if (key.trim() && rest.length) params.append(key.trim(), rest.join("=").trim());
  }
  return params;
}

async function show(index) {
  const params = query();
  if (pages[index] != null) params.set("before", String(pages[index]));
  $("history-error-text").textContent = "";
  try {
    const page = await api(`/api/jobs?${params}`);
    shown = index;
    pages[index + 1] = page.next_before;
    $("history-partial").hidden = !page.partial;
    $("history-newer").disabled = index === 0;
    $("history-older").disabled = page.next_before == null;
    $("history-page").textContent = `page ${index + 1}`;
    $("history-rows").replaceChildren(...(page.jobs.length ? page.jobs.map(row) : [
      el("tr", {}, el("td", { colSpan: 8 }, "No job matches."))]));
  } catch (error) {
    $("history-error-text").textContent = error.message;
  }
}

function row(job) {
  const ran = job.finished_at != null && job.started_at != null ? job.finished_at - job.started_at : null;
  return el("tr", {},
    el("td", {}, el("a", { href: `#/jobs/${job.id}` }, job.id.slice(-10))),
    el("td", {}, job.type),
    el("td", {}, el("span", { class: "pill", "data-status": job.status }, job.status)),
    el("td", { title: (job.tags || []).map((t) => `#${t}`).join(" ") }, job.owner || ""),
    el("td", {}, formatWhen(job.created_at)),
    el("td", {}, formatWhen(job.finished_at)),
    el("td", {}, formatDuration(ran)),
    el("td", { class: "clip", title: job.error || "" }, job.error || ""));
}
