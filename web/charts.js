// Pictures: the dashboard's activity charts (jobs ended per minute by outcome, run-time
// percentiles per type, totals over all history) and a job's steps as a Gantt strip. Drawn as SVG
// from DOM calls (no HTML strings), each with a text alternative: a title naming what it shows and
// a table with the numbers.

import { $, api, el, formatDuration, svg } from "/ui.js";
import { TERMINAL as OUTCOMES } from "/vocabulary.js";
const REFRESH_MS = 30000;

// ---- the dashboard's activity -----------------------------------------------------------------
let refreshTimer = null;
let soonTimer = null;

export function startActivity() {
  $("activity-window").addEventListener("change", () => refreshActivity());
  $("activity-owner").addEventListener("change", () => refreshActivity()); // (Enter, or leaving the field)
  refreshActivity();
}

/** After a job ends: redraw shortly (many ends in a burst make one redraw). */
export function refreshActivitySoon() {
  if (soonTimer) return;
  soonTimer = setTimeout(() => { soonTimer = null; refreshActivity(); }, 2000);
}

async function refreshActivity() {
  clearTimeout(refreshTimer);
  refreshTimer = setTimeout(refreshActivity, REFRESH_MS); // the charts' own pace, not a wait for an event
  const span = $("activity-window").value;
  const owner = $("activity-owner").value.trim();
  const whose = owner ? `&owner=${encodeURIComponent(owner)}` : "";
  try {
    const [counts, activity] = await Promise.all([api(`/api/stats/counts?${whose.slice(1)}`),
      api(`/api/stats/activity?window=${span}${whose}`)]);
    $("activity-error").textContent = "";
    renderTotals(counts, owner);
    renderEnded(activity, span);
    renderDurations(activity);
  } catch (error) {
    $("activity-error").textContent = `History unavailable: ${error.message}`;
  }
}

function renderTotals(counts, owner) {
  const parts = Object.entries(counts.by_status).filter(([, n]) => n > 0).map(([status, n]) => `${n.toLocaleString()} ${status}`);
  $("totals").textContent = `${owner ? `${owner}'s history` : "All history"}: `
    + `${counts.total.toLocaleString()} job${counts.total === 1 ? "" : "s"}`
    + (parts.length ? ` — ${parts.join(", ")}` : "");
}

function bucketLabel(start, span) {
  const moment = new Date(start * 1000);
  return span === "week" ? moment.toLocaleString([], { weekday: "short", hour: "2-digit", minute: "2-digit" })
    : moment.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
}

function renderEnded(activity, span) {
  const buckets = activity.buckets;
  const totals = buckets.map((b) => OUTCOMES.reduce((sum, o) => sum + b[o], 0));
  const most = Math.max(1, ...totals);
  const width = 10;
  const height = 100;
  const chart = svg("svg", { viewBox: `0 0 ${buckets.length * width} ${height + 14}`, class: "chart",
    role: "img", "aria-labelledby": "ended-title", preserveAspectRatio: "none" });
  const sums = Object.fromEntries(OUTCOMES.map((o) => [o, buckets.reduce((sum, b) => sum + b[o], 0)]));
  const busiest = totals.indexOf(Math.max(...totals));
  const per = { 60: "minute", 900: "15 minutes", 3600: "hour" }[activity.bucket_s] || `${activity.bucket_s / 60} minutes`;
  const summary = `Jobs ended per ${per} over the last ${span}: `
    + OUTCOMES.map((o) => `${sums[o]} ${o}`).join(", ")
    + (totals[busiest] ? `; busiest ${bucketLabel(buckets[busiest].start, span)} with ${totals[busiest]}.` : ".");
  chart.append(svg("title", { id: "ended-title" }, summary));
  buckets.forEach((bucket, index) => {
    let y = height;
    for (const outcome of OUTCOMES) {
      if (!bucket[outcome]) continue;
      const h = (bucket[outcome] / most) * height;
      y -= h;
      chart.append(svg("rect", { x: index * width + 1, y, width: width - 2, height: h, class: `bar-${outcome}` },
        svg("title", {}, `${bucketLabel(bucket.start, span)}: ${bucket[outcome]} ${outcome}`)));
    }
  });
  for (const index of [0, Math.floor(buckets.length / 2), buckets.length - 1]) {
    if (buckets[index]) {
      chart.append(svg("text", { x: index * width + width / 2, y: height + 12, class: "axis",
        "text-anchor": index === 0 ? "start" : index === buckets.length - 1 ? "end" : "middle" },
      bucketLabel(buckets[index].start, span)));
    }
  }
  $("ended-chart").replaceChildren(chart);
  $("ended-caption").textContent = summary;
  const rows = buckets.filter((b, i) => totals[i] > 0).map((b) => el("tr", {}, el("th", { scope: "row" }, bucketLabel(b.start, span)),
    ...OUTCOMES.map((o) => el("td", {}, b[o]))));
  $("ended-table").replaceChildren(
    el("thead", {}, el("tr", {}, el("th", { scope: "col" }, "from"), ...OUTCOMES.map((o) => el("th", { scope: "col" }, o)))),
    el("tbody", {}, ...(rows.length ? rows : [el("tr", {}, el("td", { colSpan: 5 }, "no job ended in this window"))])));
}

function renderDurations(activity) {
  const rows = activity.durations;
  const longest = Math.max(0.002, ...rows.map((r) => r.max_s || 0));
  const scale = (s) => (Math.log10(Math.max(s, 0.001)) + 3) / (Math.log10(longest) + 3); // 1 ms .. longest, log
  $("durations").replaceChildren(
    el("thead", {}, el("tr", {}, ...["type", "ran", "p50", "p90", "p99", "max", "p50 – p99"].map((h) => el("th", { scope: "col" }, h)))),
    el("tbody", {}, ...(rows.length ? rows.map((row) => {
      const range = svg("svg", { viewBox: "0 0 100 10", class: "range", role: "img",
        "aria-label": `${row.type}: half of the runs took up to ${formatDuration(row.p50_s)}, 99 % up to ${formatDuration(row.p99_s)}` });
      const from = scale(row.p50_s) * 100;
      range.append(svg("rect", { x: 0, y: 4, width: 100, height: 2, class: "track" }),
        svg("rect", { x: from, y: 1, width: Math.max(scale(row.p99_s) * 100 - from, 1), height: 8, class: "span" }));
      return el("tr", {}, el("th", { scope: "row" }, row.type), el("td", {}, row.count),
        ...[row.p50_s, row.p90_s, row.p99_s, row.max_s].map((s) => el("td", {}, formatDuration(s))), el("td", {}, range));
    }) : [el("tr", {}, el("td", { colSpan: 7 }, "no runs in this window"))])));
}

// ---- a job's steps as a Gantt strip -------------------------------------------------------------
export function renderGantt(container, job) {
  const steps = job.steps.filter((s) => s.started_at != null);
  container.hidden = steps.length === 0;
  if (!steps.length) return;
  const clock = Date.now() / 1000;
  const endOf = (s) => s.finished_at ?? (s.duration_s != null ? s.started_at + s.duration_s : (job.finished_at ?? clock));
  const t0 = Math.min(job.started_at ?? steps[0].started_at, ...steps.map((s) => s.started_at));
  const t1 = Math.max(job.finished_at ?? 0, ...steps.map(endOf), t0 + 0.001);
  const lane = 14;
  const chart = svg("svg", { viewBox: `0 0 1000 ${steps.length * lane}`, class: "gantt", role: "img",
    height: steps.length * 16, preserveAspectRatio: "none", "aria-label": "Steps over time: " + steps.map((s) =>
      `${s.name} ${formatDuration(endOf(s) - s.started_at)}${s.status === "running" ? " so far" : ""}${s.status === "failed" ? " (failed)" : ""}`).join(", ") });
  steps.forEach((step, index) => {
    const x = ((step.started_at - t0) / (t1 - t0)) * 1000;
    const w = Math.max(((endOf(step) - step.started_at) / (t1 - t0)) * 1000, 4);
    chart.append(svg("rect", { x, y: index * lane + 2, width: w, height: lane - 4, class: `step-${step.status}` },
      svg("title", {}, `${step.name}: ${formatDuration(endOf(step) - step.started_at)} (${step.status})`)));
  });
  container.replaceChildren(chart, el("div", { class: "gantt-labels" },
    ...steps.map((s) => el("span", { "data-status": s.status }, `${s.name} ${formatDuration(endOf(s) - s.started_at)}`))));
}
