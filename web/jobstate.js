// Folding a job's events into its state, in the browser: the same rules as the services' one fold
// (services/contract/job_state.py), used for live updates and for replays.

import { formatSeconds } from "/ui.js";
import { TERMINAL } from "/vocabulary.js";

export { TERMINAL };

// A job's first event starts its state: `created`, `scheduled` for a delayed job, `blocked` for a job
// of a flow that waits for others (null otherwise).
export function startJob(event, seq) {
  if (event.kind === "blocked") {
    return Object.assign(newJobFromCreated({ ...event.job, ts: event.ts }, seq),
      { status: "blocked", blocked_on: event.blocked_on });
  }
  if (event.kind !== "created" && event.kind !== "scheduled") return null;
  const job = newJobFromCreated(event, seq);
  if (event.kind === "scheduled") Object.assign(job, { status: "scheduled", run_at: event.run_at });
  return job;
}

export function newJobFromCreated(event, seq) {
  return {
    id: event.job_id, type: event.type, status: "pending", params: event.params || {}, run_at: null,
    progress: null, message: null, eta_s: null, step: null,
    steps: (event.steps || []).map((name) => ({ name, status: "pending" })),
    attempt: 0, created_at: event.ts, started_at: null, finished_at: null, result: null, error: null,
    error_reason: null, timeout_s: event.timeout_s ?? null, cancel_requested: false, artifacts: [],
    batch: event.batch ?? null, schedule: event.schedule ?? null, tick: event.tick ?? null,
    priority: event.priority ?? 0, flow: event.flow ?? null, parent: event.parent ?? null, name: event.name ?? null,
    children: event.children || [], blocked_on: [],
    created_seq: seq, seq,
  };
}

function stepNamed(job, name) {
  let step = job.steps.find((s) => s.name === name && (s.status === "pending" || s.status === "running"));
  if (!step) {
    step = { name, status: "pending" };
    job.steps.push(step);
  }
  return step;
}

export function applyEvent(job, e, seq) {
  if (TERMINAL.includes(job.status)) return false;
  if (e.attempt && e.attempt < job.attempt) return false; // a superseded attempt
  job.seq = seq;
  switch (e.kind) {
    case "created": // a delayed job's time came, or a blocked one was released
      if (job.status !== "scheduled" && job.status !== "blocked") return false;
      job.status = "pending";
      job.blocked_on = [];
      job.flow = e.flow ?? job.flow;
      job.resumes = e.resumed || 0;
      if (e.children && e.children.length) job.children = e.children;
      break;
    case "waiting": // no processor could start it yet, and why
      if (job.status !== "pending" && job.status !== "retrying") return false;
      job.waiting_for = e.reason;
      break;
    case "started":
      Object.assign(job, { status: "running", attempt: e.attempt, worker: e.worker, started_at: e.ts, progress: null,
        eta_s: null, message: null, step: null, error: null, waiting_for: null });
      job.steps = (e.steps.length ? e.steps : job.steps.map((s) => s.name)).map((name) => ({ name, status: "pending" }));
      break;
    case "step_started":
      Object.assign(stepNamed(job, e.name), { status: "running", started_at: e.ts });
      job.step = e.name;
      break;
    case "step_finished":
      Object.assign(stepNamed(job, e.name), { status: e.outcome, duration_s: e.duration_s });
      if (job.step === e.name) job.step = null;
      break;
    case "progressed":
      if (e.fraction != null && job.progress != null && e.fraction < job.progress) return false;
      job.progress = e.fraction;
      job.eta_s = e.eta_s;
      if (e.message != null) job.message = e.message;
      break;
    case "suspended": // it added children and waits for them, its slot freed
      Object.assign(job, { status: "blocked", step: null, eta_s: null, blocked_on: e.children.map((c) => c.id),
        children: [...job.children, ...e.children] });
      break;
    case "retrying":
      Object.assign(job, { status: "retrying", error: e.error, next_attempt_in_s: e.delay_s, step: null, eta_s: null });
      break;
    case "cancel_requested":
      job.cancel_requested = true;
      break;
    case "artifact_stored":
      job.artifacts = [...job.artifacts, { name: e.name, size: e.size, content_type: e.content_type,
        url: `/api/jobs/${job.id}/artifacts/${e.name}` }];
      break;
    case "completed":
      Object.assign(job, { status: "completed", result: e.result, progress: 1, eta_s: 0, step: null, finished_at: e.ts, error: null });
      break;
    case "failed":
      Object.assign(job, { status: "failed", error: e.error, error_reason: e.reason, finished_at: e.ts, eta_s: null });
      break;
    case "cancelled":
      Object.assign(job, { status: "cancelled", error: e.reason || "cancelled", error_reason: "cancelled", finished_at: e.ts });
      break;
    case "expired":
      Object.assign(job, { status: "expired", error: `expired after waiting ${e.waited_s}s`, error_reason: "expired",
        finished_at: e.ts });
      break;
    default:
      break;
  }
  return true;
}

// What a person watching a job should be told about its time: stopped at its limit, close to it,
// or slower than its own progress says (the dashboard and <jobline-progress> both show it).
// `typeTimeout`: the type's advertised limit (GET /api/types), for a job that set none itself.
export function longJobNotice(job, elapsed, typeTimeout = null) {
  if (job.status === "failed" && job.error_reason === "timeout") return `This job was stopped: ${job.error}.`;
  if (job.status !== "running" || elapsed == null) return null;
  const timeout = job.timeout_s ?? typeTimeout;
  if (timeout && elapsed > timeout * 0.8) {
    return `This job is close to its time limit (${formatSeconds(timeout)}); it will be stopped at the limit.`;
  }
  const expected = job.progress ? elapsed / job.progress : null;
  if ((job.eta_s != null && elapsed > 10 && job.eta_s > elapsed * 2) || (expected && elapsed > 30 && expected > elapsed * 3)) {
    return "This takes longer than expected. It is still running; you can leave this page and come back.";
  }
  return null;
}
