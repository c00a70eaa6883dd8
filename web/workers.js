// The Workers page: every processor at work — its types, slots, the jobs it runs, its last beat and
// state (up, draining, drained, gone) — with Drain/Resume. Refreshed every second while shown.

import { $, api, el } from "/ui.js";

let timer = null;

export function openWorkers() {
  refresh();
  if (timer === null) timer = setInterval(refresh, 1000);
}

export function closeWorkers() {
  if (timer !== null) clearInterval(timer);
  timer = null;
}

async function refresh() {
  try {
    const workers = await api("/api/workers");
    $("worker-rows").replaceChildren(...(workers.length ? workers.map(row) : [
      el("tr", {}, el("td", { colSpan: 8 }, "No processor is running."))]));
    $("workers-error").textContent = "";
  } catch (error) {
    $("workers-error").textContent = error.message;
  }
}

const PILL = { up: "completed", draining: "running", drained: "pending", gone: "failed" };

function action(worker) {
  if (worker.state === "gone") return el("span", { class: "muted" }, "");
  const verb = worker.draining ? "resume" : "drain";
  const button = el("button", { type: "button", class: "secondary", "data-action": verb, "data-needs": "operate",
    title: verb === "drain" ? "Take no new job; finish the running ones" : "Take jobs again" },
  verb === "drain" ? "Drain" : "Resume");
  button.addEventListener("click", async () => {
    button.disabled = true;
    try {
      await api(`/api/workers/${encodeURIComponent(worker.id)}/${verb}`, { method: "POST" });
      await refresh();
    } catch (error) {
      $("workers-error").textContent = error.message;
      button.disabled = false;
    }
  });
  return button;
}

function jobLinks(worker) {
  if (!worker.jobs.length) return "—";
  const links = [];
  for (const id of worker.jobs.slice(0, 5)) {
    if (links.length) links.push(" ");
    links.push(el("a", { href: `#/jobs/${encodeURIComponent(id)}` }, id.slice(-8)));
  }
  if (worker.running > 5) links.push(` +${worker.running - 5}`);
  return el("span", {}, ...links);
}

function row(worker) {
  const ago = Math.max(0, Date.now() / 1000 - worker.beat_at);
  return el("tr", { "data-worker": worker.id },
    el("td", { title: worker.instance }, worker.id),
    el("td", { class: "state" }, el("span", { class: "pill", "data-status": PILL[worker.state] }, worker.state)),
    el("td", {}, worker.types.join(", ")),
    el("td", { class: "slots" }, `${worker.running} / ${worker.slots}`),
    el("td", { class: "running-jobs" }, jobLinks(worker)),
    el("td", {}, String(worker.jobs_done)),
    el("td", {}, `${ago.toFixed(0)} s ago`),
    el("td", {}, action(worker)));
}
