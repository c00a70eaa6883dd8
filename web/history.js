// The History page: every job ever kept (the history service's), searched by status, type, time,
// error text, owner, tags and params/result fields, a page at a time with a stable cursor. A job opens on its
// own page (steps, logs, replay) however old it is.

import { $, api, el, formatDuration, formatWhen } from "/ui.js";

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
  $("history-retry-cancel").addEventListener("click", () => { $("history-retry-ask").hidden = true; });
  $("history-retry-confirm").addEventListener("click", act);
  show(0);
}

// Bulk actions on what the filter matches (ended jobs only): the count (a dry run) is shown first.
// Confirmed, a retry's new jobs are one batch, whose page follows them live; a delete removes the
// jobs from history and the list is shown again.
let action = "retry";
const VERBS = { retry: "Retry", delete: "Delete" };

function actionQuery() {
  const params = query();
  params.delete("limit");
  return params;
}

async function ask(kind) {
  action = kind;
  $("history-error-text").textContent = "";
  const status = $("history-status").value;
  if (!["failed", "expired", "cancelled", "completed"].includes(status)) {
    $("history-error-text").textContent = `Choose an ended status (failed, expired, cancelled, completed) to ${kind}.`;
    return;
  }
  try {
    const dry = await api(`/api/jobs/${kind}?${actionQuery()}&dry_run=true`, { method: "POST" });
    const what = `${dry.matched} ${status} job${dry.matched === 1 ? "" : "s"}`;
    $("history-retry-count").textContent = !dry.matched ? "No job matches."
      : kind === "retry" ? `Retry ${what}?` : `Delete ${what} from history?`;
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
    const done = await api(`/api/jobs/${action}?${actionQuery()}`, { method: "POST" });
    if (action === "retry") {
      $("history-retry-ask").hidden = true;
      if (done.batch) location.hash = `#/batches/${done.batch}`;
    } else { // (the answer stays where the question was)
      $("history-retry-count").textContent = `${done.deleted} job${done.deleted === 1 ? "" : "s"} deleted.`
        + (done.more ? " More match: delete again." : "");
      $("history-retry-confirm").hidden = true;
      pages = [null];
      setTimeout(() => show(0), 500); // (the history service removes them a moment later)
    }
  } catch (error) {
    $("history-error-text").textContent = error.message;
  } finally {
    $("history-retry-confirm").disabled = false;
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
