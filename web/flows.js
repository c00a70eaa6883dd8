// The flow a job belongs to, on its page: the tree of its jobs, each with its status and its
// progress rolled up from its children (GET /api/flows/{id}), refreshed every second until every
// job has ended. Data becomes text and attributes only.

import { TERMINAL } from "/jobstate.js";
import { $, api, el } from "/ui.js";

let shownFlow = null;
let timer = null;

export function closeFlow() {
  clearTimeout(timer);
  timer = null;
  shownFlow = null;
  $("job-flow").hidden = true;
}

// Show the flow of `job` (nothing for a job outside any flow).
export function showFlow(job) {
  const flowId = job && job.flow;
  if (!flowId) {
    closeFlow();
    return;
  }
  if (shownFlow === flowId) return;
  closeFlow();
  shownFlow = flowId;
  $("job-flow").hidden = false;
  refresh(flowId);
}

async function refresh(flowId) {
  let tree;
  try {
    tree = await api(`/api/flows/${encodeURIComponent(flowId)}`);
  } catch (error) {
    if (shownFlow === flowId) $("flow-tree").replaceChildren(el("li", { class: "error" }, error.message));
    return;
  }
  if (shownFlow !== flowId) return;
  $("flow-tree").replaceChildren(node(tree));
  if (!everyEnded(tree)) timer = setTimeout(() => refresh(flowId), 1000);
}

function everyEnded(n) {
  return TERMINAL.includes(n.status) && n.children.every(everyEnded);
}

function node(n) {
  const percent = Math.round(n.rollup * 100);
  const fill = el("div", { class: "fill" });
  fill.style.width = `${percent}%`;
  const bar = el("div", { class: "progress small", role: "progressbar", "aria-valuemin": "0", "aria-valuemax": "100",
    "aria-valuenow": String(percent), "aria-label": `${n.name || "flow"} progress` }, fill);
  const status = el("span", { class: "pill" }, n.status);
  status.dataset.status = n.status;
  const waits = n.status === "blocked" && n.blocked_on.length ? ` · waits for ${n.blocked_on.length}` : "";
  const item = el("li", { "data-job": n.id },
    el("div", { class: "row" }, el("a", { href: `#/jobs/${n.id}` }, n.name || n.id), " ",
      el("span", { class: "muted" }, n.type), " ", status, el("span", { class: "muted" }, ` ${percent}%${waits}`)),
    bar);
  if (n.children.length) item.append(el("ul", { class: "flow-tree" }, ...n.children.map(node)));
  return item;
}
