// The replay page: a finished job's stored timeline played back at any speed (and, for a job of
// a flow, the flow's other jobs beside it), folded with the same rules as the live view.

import { applyEvent, startJob, TERMINAL } from "/jobstate.js";
import { $, api, el, formatClock, formatSeconds } from "/ui.js";

const player = { events: [], flow: [], start: 0, duration: 0, position: 0, playing: false, timer: null, jobId: null };
const REPLAYED_FLOW_JOBS = 100; // a flow's jobs replayed beside the job (the first ones, depth first)

export async function openReplay(jobId) {
  stopPlaying();
  player.jobId = jobId;
  $("replay-id").textContent = jobId;
  $("replay-back").setAttribute("href", `#/jobs/${jobId}`);
  const body = await api(`/api/jobs/${encodeURIComponent(jobId)}/timeline`);
  player.events = body.events;
  player.flow = await flowTimelines(jobId, body.events);
  // A job of a flow replays over the whole flow's time: its jobs' timelines play together.
  const times = [player.events, ...player.flow.map((m) => m.events)].flat().map((e) => e.event.ts);
  player.start = times.length ? Math.min(...times) : 0;
  player.duration = times.length ? Math.max(...times) - player.start : 0;
  $("replay-flow-box").hidden = player.flow.length === 0;
  seek(0);
}

// The timelines of every job of the flow `events` belong to ([] for a job outside any flow).
async function flowTimelines(jobId, events) {
  const marked = events.find(({ event }) => event.flow || (event.job && event.job.flow));
  const flowId = marked && (marked.event.flow || marked.event.job.flow);
  if (!flowId) return [];
  const members = [];
  const walk = (node, depth) => {
    members.push({ id: node.id, name: node.name || "flow", depth });
    node.children.forEach((child) => walk(child, depth + 1));
  };
  walk(await api(`/api/flows/${encodeURIComponent(flowId)}`), 0);
  return Promise.all(members.slice(0, REPLAYED_FLOW_JOBS).map(async (member) => ({ ...member,
    events: member.id === jobId ? events : (await api(`/api/jobs/${encodeURIComponent(member.id)}/timeline`)).events })));
}

function foldUntil(events, at) {
  let job = null;
  for (const { seq, event } of events) {
    if (event.ts > at) break;
    if (!job) job = startJob(event, seq);
    else applyEvent(job, event, seq);
  }
  return job;
}

function seek(position) {
  player.position = Math.max(0, Math.min(position, player.duration));
  // At the end, every event counts (start + duration can round below the last timestamp).
  const at = player.position >= player.duration ? Infinity : player.start + player.position;
  let job = null;
  const lines = [];
  for (const { seq, event } of player.events) {
    if (event.ts > at) break;
    if (!job) job = startJob(event, seq);
    else applyEvent(job, event, seq);
    if (event.kind === "logged") lines.push(event);
  }
  const percent = job ? Math.round((job.progress ?? (job.status === "completed" ? 1 : 0)) * 100) : 0;
  $("replay-progress").setAttribute("aria-valuenow", String(percent));
  $("replay-fill").style.width = `${percent}%`;
  $("replay-status").textContent = job ? job.status : "";
  $("replay-message").textContent = job?.message || "";
  $("replay-steps").replaceChildren(...(job?.steps || []).map((s) => el("li", { "data-status": s.status }, s.name)));
  $("replay-flow").replaceChildren(...player.flow.map((member) => {
    const state = foldUntil(member.events, at);
    const status = state ? state.status : "not yet";
    const done = state ? Math.round((state.progress ?? (TERMINAL.includes(state.status) ? 1 : 0)) * 100) : 0;
    const fill = el("div", { class: "fill" });
    fill.style.width = `${done}%`;
    const pill = el("span", { class: "pill" }, status);
    pill.dataset.status = status;
    const item = el("li", { "data-job": member.id }, el("div", { class: "row" }, member.name, " ", pill),
      el("div", { class: "progress small", role: "progressbar", "aria-valuemin": "0", "aria-valuemax": "100",
        "aria-valuenow": String(done), "aria-label": `${member.name} at this moment` }, fill));
    item.style.marginLeft = `${member.depth}rem`;
    return item;
  }));
  $("replay-log").replaceChildren(...lines.map((l) => el("li", { "data-level": l.level },
    el("span", { class: "ts" }, formatClock(l.ts)), l.message)));
  $("replay-log").scrollTop = $("replay-log").scrollHeight;
  $("replay-scrub").value = String(player.duration ? Math.round((player.position / player.duration) * 1000) : 0);
  $("replay-clock").textContent = `${formatSeconds(player.position)} / ${formatSeconds(player.duration)}`;
}

export function stopPlaying() {
  player.playing = false;
  clearInterval(player.timer);
  $("replay-play").textContent = "Play";
}

function togglePlay() {
  if (player.playing) return stopPlaying();
  if (player.position >= player.duration) seek(0);
  player.playing = true;
  $("replay-play").textContent = "Pause";
  let last = performance.now();
  player.timer = setInterval(() => { // the playback clock of the player, not a poll
    const t = performance.now();
    seek(player.position + ((t - last) / 1000) * Number($("replay-speed").value));
    last = t;
    if (player.position >= player.duration) stopPlaying();
  }, 50);
}

$("replay-play").addEventListener("click", togglePlay);
$("replay-scrub").addEventListener("input", () => seek((Number($("replay-scrub").value) / 1000) * player.duration));
