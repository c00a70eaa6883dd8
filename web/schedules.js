// The Schedules page: every recurring schedule with its next run, what it made and missed; pause,
// resume and delete them; create one. Refreshed every two seconds while the page is shown.

import { $, api, el, formatWhen } from "/ui.js";

let timer = null;
let started = false;
const opened = new Set(); // schedules whose details the user opened (kept open across refreshes)
const deleting = new Set(); // schedules whose Delete was clicked once

export function openSchedules() {
  if (!started) {
    started = true;
    $("schedule-tz").value = Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC";
    $("schedule-form").addEventListener("submit", create);
    api("/api/types").then((types) => {
      $("schedule-type").replaceChildren(...types.map((t) => el("option", { value: t.name }, t.name)));
    }).catch((error) => { $("schedules-error").textContent = `Could not load job types: ${error.message}`; });
  }
  refresh();
  if (timer === null) timer = setInterval(refresh, 2000);
}

export function closeSchedules() {
  if (timer !== null) clearInterval(timer);
  timer = null;
}

async function refresh() {
  try {
    const schedules = await api("/api/schedules");
    $("schedule-rows").replaceChildren(...(schedules.length ? schedules.map(row) : [
      el("tr", {}, el("td", { colSpan: 8 }, "No schedule yet."))]));
    $("schedules-error").textContent = "";
  } catch (error) {
    $("schedules-error").textContent = error.message;
  }
}

async function act(path, options) {
  try {
    await api(path, options);
    await refresh();
  } catch (error) {
    $("schedules-error").textContent = error.message;
  }
}

function details(schedule) {
  const box = el("details", { open: opened.has(schedule.name) },
    el("summary", {}, schedule.name),
    el("p", { class: "muted" }, `job: ${JSON.stringify(schedule.job)}`),
    el("p", {}, "Last jobs: ", ...schedule.recent_jobs.slice(-5).reverse().flatMap((id) => [
      el("a", { href: `#/jobs/${id}` }, id), " "])),
    ...schedule.missed.slice(-5).reverse().map((m) =>
      el("p", { class: "muted" }, `missed ${m.count}× from ${formatWhen(m.tick)}: ${m.reason}`)));
  box.addEventListener("toggle", () => { if (box.open) opened.add(schedule.name); else opened.delete(schedule.name); });
  return box;
}

function row(schedule) {
  const name = encodeURIComponent(schedule.name);
  const toggle = el("button", { type: "button", class: "secondary", "data-needs": "operate",
    "data-action": schedule.paused ? "resume" : "pause" },
    schedule.paused ? "Resume" : "Pause");
  toggle.addEventListener("click", () => act(`/api/schedules/${name}/${schedule.paused ? "resume" : "pause"}`, { method: "POST" }));
  // Two clicks, no native dialog: the first arms it (kept across refreshes), the second deletes.
  const armed = deleting.has(schedule.name);
  const remove = el("button", { type: "button", class: "secondary", "data-needs": "operate",
    "data-action": armed ? "confirm-delete" : "delete",
    title: "Its jobs stay" }, armed ? "Really delete?" : "Delete");
  remove.addEventListener("click", () => {
    if (!deleting.has(schedule.name)) {
      deleting.add(schedule.name);
      refresh();
      return;
    }
    deleting.delete(schedule.name);
    act(`/api/schedules/${name}`, { method: "DELETE" });
  });
  return el("tr", { "data-schedule": schedule.name },
    el("td", {}, details(schedule)),
    el("td", {}, el("code", {}, schedule.cron), " ", el("span", { class: "muted" }, schedule.timezone)),
    el("td", {}, schedule.job.type),
    el("td", { class: "next-run" }, schedule.paused ? "paused" : (schedule.next_runs[0] || "")),
    el("td", { class: "made" }, String(schedule.jobs_created)),
    el("td", {}, String(schedule.missed_total)),
    el("td", {}, el("span", { class: "pill", "data-status": schedule.paused ? "cancelled" : "running" },
      schedule.paused ? "paused" : "active")),
    el("td", {}, toggle, " ", remove));
}

async function create(event) {
  event.preventDefault();
  $("schedule-form-error").textContent = "";
  let params;
  try {
    params = JSON.parse($("schedule-params").value || "{}");
  } catch (error) {
    $("schedule-form-error").textContent = `Params are not JSON: ${error.message}`;
    return;
  }
  try {
    await api("/api/schedules", { method: "POST", body: JSON.stringify({
      name: $("schedule-name").value.trim(), cron: $("schedule-cron").value.trim(), timezone: $("schedule-tz").value.trim(),
      overlap: $("schedule-overlap").value, job: { type: $("schedule-type").value, params } }) });
    $("schedule-name").value = "";
    await refresh();
  } catch (error) {
    $("schedule-form-error").textContent = error.message;
  }
}
