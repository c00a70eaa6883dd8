// Folding a job's events into its state, in the browser: the same rules as the services' one fold
// (services/contract/job_state.py), used for live updates and for replays.

import { formatSeconds } from "/ui.js";
import { BLANK_JOB, TERMINAL } from "/vocabulary.js";

export { TERMINAL };

// The fold is a line-by-line copy of the Python one: tests/test_web_fold.py feeds recorded timelines
// to both and compares every field, so a change on one side without the other fails there.

function newState(event, seq) {
  if (event.kind === "blocked") {
    const job = newState(event.job, seq);
    return Object.assign(job, { status: "blocked", blocked_on: [...event.blocked_on], created_at: event.ts });
  }
  const job = Object.assign(structuredClone(BLANK_JOB), {
    id: event.job_id, type: event.type, params: event.params ?? {}, created_at: event.ts,
    steps: (event.steps ?? []).map((name) => newStep(name)), created_seq: seq, seq,
    timeout_s: event.timeout_s ?? null, max_attempts: event.max_attempts ?? null, webhook_url: event.webhook_url ?? null,
    batch: event.batch ?? null, concurrency_key: event.concurrency_key ?? null, priority: event.priority ?? 0,
    owner: event.owner ?? null, tags: [...(event.tags ?? [])], retry_of: event.retry_of ?? null,
    trace_id: event.traceparent ? event.traceparent.slice(3, 35) : null,
  });
  if (event.kind === "created") {
    Object.assign(job, { schedule: event.schedule ?? null, tick: event.tick ?? null, flow: event.flow ?? null,
      parent: event.parent ?? null, name: event.name ?? null, children: [...(event.children ?? [])] });
  }
  if (event.kind === "scheduled") Object.assign(job, { status: "scheduled", run_at: event.run_at });
  return job;
}

// A job's first event starts its state: `created`, `scheduled` for a delayed job, `blocked` for a job
// of a flow that waits for others (null otherwise).
export function startJob(event, seq) {
  return ["created", "scheduled", "blocked"].includes(event.kind) ? newState(event, seq) : null;
}

function newStep(name) {
  return { name, status: "pending", started_at: null, finished_at: null, duration_s: null };
}

function stepNamed(job, name) {
  let step = job.steps.find((s) => s.name === name && (s.status === "pending" || s.status === "running"));
  if (!step) {
    step = newStep(name);
    job.steps.push(step);
  }
  return step;
}

// Python's `{x:g}` (six significant digits, no trailing zeros), for the text of an expiry.
export function formatG(x) {
  if (!Number.isFinite(x)) return Number.isNaN(x) ? "nan" : x > 0 ? "inf" : "-inf";
  if (x === 0) return Object.is(x, -0) ? "-0" : "0";
  const exp = Number(x.toExponential(5).split("e")[1]);
  const trim = (digits) => (digits.includes(".") ? digits.replace(/0+$/, "").replace(/\.$/, "") : digits);
  if (exp < -4 || exp >= 6) {
    const [mantissa, power] = x.toExponential(5).split("e");
    const sign = power.startsWith("-") ? "-" : "+";
    return `${trim(mantissa)}e${sign}${power.replace(/^[+-]/, "").padStart(2, "0")}`;
  }
  return trim(x.toFixed(5 - exp));
}

// Fold one event into the state; false when it was ignored (see job_state.apply for why each rule).
export function applyEvent(job, e, seq) {
  if (seq <= job.seq) return false;
  if (e.kind === "webhook_attempted") { // delivered after the end, by design
    job.seq = seq;
    job.webhook = { attempts: e.attempt, delivered: e.delivered, status: e.status ?? null, error: e.error ?? null,
      final: e.final ?? false };
    return true;
  }
  if (TERMINAL.includes(job.status)) return false;
  if (e.attempt && e.attempt < job.attempt) return false; // a superseded attempt
  job.seq = seq;
  switch (e.kind) {
    case "waiting": // no processor could start it yet, and why
      if (job.status !== "pending" && job.status !== "retrying") return false;
      job.waiting_for = e.reason;
      break;
    case "started":
      Object.assign(job, { run_seq: seq, status: "running", waiting_for: null, attempt: e.attempt,
        next_attempt_in_s: null, worker: e.worker, started_at: e.ts, progress: null, current: null, total: null,
        eta_s: null, step: null, message: null });
      job.steps = ((e.steps ?? []).length ? e.steps : job.steps.map((s) => s.name)).map((name) => newStep(name));
      break;
    case "step_started":
      Object.assign(stepNamed(job, e.name), { status: "running", started_at: e.ts });
      job.step = e.name;
      break;
    case "step_finished":
      Object.assign(stepNamed(job, e.name), { status: e.outcome, finished_at: e.ts, duration_s: e.duration_s });
      if (job.step === e.name) job.step = null;
      break;
    case "progressed":
      if (e.fraction != null && job.progress != null && e.fraction < job.progress) return false;
      Object.assign(job, { progress: e.fraction ?? null, current: e.current ?? null, total: e.total ?? null,
        eta_s: e.eta_s ?? null });
      if (e.message != null) job.message = e.message;
      break;
    case "logged":
      job.log_lines += 1;
      break;
    case "suspended": // it added children and waits for them, its slot freed
      Object.assign(job, { run_seq: seq, status: "blocked", step: null, eta_s: null,
        blocked_on: e.children.map((c) => c.id), children: [...job.children, ...e.children] });
      break;
    case "awaiting_signal": // its handler waits for a signal, its slot freed
      Object.assign(job, { run_seq: seq, status: "waiting", step: null, eta_s: null, awaiting_signal: e.name,
        signal_timeout_at: e.timeout_at ?? null });
      break;
    case "signalled": // only the first message of a signal's subject counts
      if (job.signals.some((s) => s.name === e.name)) return false;
      job.signals = [...job.signals, { name: e.name, at: e.ts, timed_out: e.timed_out ?? false }];
      break;
    case "retrying":
      Object.assign(job, { run_seq: seq, status: "retrying", error: e.error, next_attempt_in_s: e.delay_s, step: null,
        eta_s: null });
      break;
    case "cancel_requested":
      job.cancel_requested = true;
      break;
    case "artifact_stored":
      job.artifacts = [...job.artifacts, { name: e.name, size: e.size, content_type: e.content_type,
        sha256: e.sha256 ?? "", url: `/api/jobs/${job.id}/artifacts/${e.name}` }];
      break;
    case "completed":
      Object.assign(job, { run_seq: seq, status: "completed", result: e.result ?? null, finished_at: e.ts, progress: 1,
        eta_s: 0, step: null, error: null });
      break;
    case "failed":
      Object.assign(job, { run_seq: seq, status: "failed", finished_at: e.ts, error: e.error,
        error_reason: e.reason ?? null, eta_s: null, attempt: Math.max(job.attempt, e.attempt ?? 0) });
      break;
    case "cancelled":
      Object.assign(job, { run_seq: seq, status: "cancelled", finished_at: e.ts, eta_s: null,
        error: e.reason || "cancelled", error_reason: "cancelled" });
      break;
    case "expired":
      Object.assign(job, { run_seq: seq, status: "expired", finished_at: e.ts, error_reason: "expired",
        error: `expired after waiting ${formatG(e.waited_s)}s (queue timeout ${formatG(e.queue_timeout_s)}s)` });
      break;
    case "created": // a delayed job's time came, a blocked one was released (or resumed), a waiting one resumed
      if (!["scheduled", "blocked", "waiting"].includes(job.status)) return false;
      Object.assign(job, { status: "pending", blocked_on: [], flow: e.flow || job.flow, resumes: e.resumed ?? 0,
        awaiting_signal: null, signal_timeout_at: null });
      if ((e.children ?? []).length) job.children = [...e.children];
      break;
    case "scheduled":
    case "blocked":
      return false;
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
