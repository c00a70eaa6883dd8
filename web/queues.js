// The dashboard's Queues card: each job type's queue — paused or not, its limits, jobs waiting and
// running — with Pause/Resume. Refreshed every two seconds while the dashboard is shown.

import { $, api, el } from "/ui.js";

export function startQueues() {
  refresh();
  setInterval(() => { if (!$("page-jobs").hidden) refresh(); }, 2000);
}

async function refresh() {
  try {
    const queues = await api("/api/queues");
    $("queue-rows").replaceChildren(...queues.map(row));
    $("queues-error").textContent = "";
  } catch (error) {
    $("queues-error").textContent = error.message;
  }
}

function limits(queue) {
  const parts = [];
  if (queue.concurrency != null) parts.push(`${queue.concurrency} at once`);
  if (queue.key_concurrency != null) parts.push(`${queue.key_concurrency} per key`);
  if (queue.rate_max != null) parts.push(`${queue.rate_max} per ${queue.rate_window_s} s`);
  return parts.join(", ") || "none";
}

function row(queue) {
  const action = queue.paused ? "resume" : "pause";
  const button = el("button", { type: "button", class: "secondary", "data-action": action, "data-needs": "operate" }, queue.paused ? "Resume" : "Pause");
  button.addEventListener("click", async () => {
    button.disabled = true;
    try {
      await api(`/api/queues/${encodeURIComponent(queue.type)}/${action}`, { method: "POST" });
      await refresh();
    } catch (error) {
      $("queues-error").textContent = error.message;
      button.disabled = false;
    }
  });
  return el("tr", { "data-queue": queue.type },
    el("td", {}, queue.type),
    el("td", { class: "state" }, el("span", { class: "pill", "data-status": queue.paused ? "cancelled" : "running" },
      queue.paused ? "paused" : "active")),
    el("td", { class: "waiting" }, String(queue.waiting)),
    el("td", { class: "running" }, String(queue.running)),
    el("td", { class: "workers" }, String(queue.workers ?? 0)),
    el("td", {}, limits(queue)),
    el("td", {}, button));
}
