// The Batches page: the newest batches, and one batch live — its overall bar, a grid of its jobs
// coloured by status (each a link to the job), failures only on demand, and "Retry failed" (a new
// batch of the failed jobs' specs). Data becomes text and attributes only.

import { $, api, el, formatSeconds, formatWhen } from "/ui.js";

let source = null;
let shown = null; // the batch on screen: {id, total, jobs: Map(id → status)}

export function closeBatches() {
  if (source) source.close();
  source = null;
}

export async function openBatches(batchId) {
  closeBatches();
  $("batch-detail").hidden = !batchId;
  $("batch-list-box").hidden = Boolean(batchId);
  if (!batchId) {
    const batches = await api("/api/batches");
    $("batch-rows").replaceChildren(...(batches.length ? batches.map((b) => el("tr", {},
      el("td", {}, el("a", { href: `#/batches/${b.id}` }, b.id)), el("td", {}, formatWhen(b.created_at)),
      el("td", {}, String(b.total)))) : [el("tr", {}, el("td", { colSpan: 3 }, "No batch yet."))]));
    return;
  }
  $("batch-id").textContent = batchId;
  render(await api(`/api/batches/${encodeURIComponent(batchId)}`));
  if (shown.status === "completed") return;
  source = new EventSource(`/api/batches/${encodeURIComponent(batchId)}/events`);
  source.addEventListener("snapshot", (e) => render(JSON.parse(e.data)));
  source.addEventListener("progress", (e) => bar(JSON.parse(e.data)));
  source.addEventListener("job_ended", (e) => {
    const data = JSON.parse(e.data);
    shown.jobs.set(data.job_id, data.status);
    const cell = $("batch-grid").querySelector(`[data-job="${CSS.escape(data.job_id)}"]`);
    if (cell) cell.dataset.status = data.status;
    bar({ ...data, progress: null });
  });
  source.addEventListener("batch_completed", (e) => { render(JSON.parse(e.data)); closeBatches(); });
}

function bar(data) {
  const fraction = data.progress ?? (data.ended / data.total);
  $("batch-progress").setAttribute("aria-valuenow", String(Math.round(fraction * 100)));
  $("batch-fill").style.width = `${fraction * 100}%`;
  const counts = Object.entries(data.counts || {}).map(([status, n]) => `${n} ${status}`).join(", ");
  $("batch-counts").textContent = `${data.ended} of ${data.total} ended${counts ? ` — ${counts}` : ""}`;
}

function render(state) {
  shown = { id: state.id, total: state.total, status: state.status, jobs: new Map(state.jobs.map((j) => [j.id, j.status])) };
  bar(state);
  $("batch-status").textContent = state.status;
  $("batch-status").dataset.status = state.status === "completed" ? "completed" : "running";
  $("batch-eta").textContent = state.eta_s != null ? `about ${formatSeconds(state.eta_s)} left` : "";
  $("batch-grid").replaceChildren(...state.jobs.map((job) =>
    el("a", { href: `#/jobs/${job.id}`, class: "cell", "data-job": job.id, "data-status": job.status, title: job.id })));
  $("batch-failures").replaceChildren(...state.failures.map((f) =>
    el("li", {}, el("a", { href: `#/jobs/${f.id}` }, f.id), `: ${f.error || f.status}`)));
  $("batch-retry").disabled = state.failures.length === 0;
}

async function retryFailed() {
  const failed = [...shown.jobs].filter(([, status]) => status === "failed" || status === "expired").map(([id]) => id);
  try {
    const specs = await Promise.all(failed.map(async (id) => {
      const job = await api(`/api/jobs/${encodeURIComponent(id)}`);
      return { type: job.type, params: job.params, timeout_s: job.timeout_s, max_attempts: job.max_attempts };
    }));
    const accepted = await api("/api/batches", { method: "POST", body: JSON.stringify({ jobs: specs }) });
    location.hash = `#/batches/${accepted.id}`;
  } catch (error) {
    $("batch-error").textContent = error.message;
  }
}

$("batch-only-failures").addEventListener("change", () => {
  $("batch-grid").classList.toggle("only-failures", $("batch-only-failures").checked);
});
$("batch-retry").addEventListener("click", retryFailed);
