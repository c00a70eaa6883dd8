// The service logs page: every service's log records, live (/api/logs/stream), filtered by
// service and level. Rendered as text.

import { $, el, formatClock } from "/ui.js";

let serviceLogSource = null;

export function tailServiceLogs() {
  if (serviceLogSource) serviceLogSource.close();
  const params = new URLSearchParams({ level: $("svc-level").value });
  if ($("svc-service").value) params.set("service", $("svc-service").value);
  $("svc-log").replaceChildren();
  const source = (serviceLogSource = new EventSource(`/api/logs/stream?${params}`));
  $("svc-status").textContent = "connecting";
  source.onopen = () => { $("svc-status").textContent = "live"; };
  source.onerror = () => { $("svc-status").textContent = source.readyState === EventSource.CLOSED ? "closed" : "reconnecting"; };
  source.addEventListener("log", (message) => {
    const record = JSON.parse(message.data);
    const log = $("svc-log");
    const pinned = log.scrollTop + log.clientHeight >= log.scrollHeight - 8;
    log.append(el("li", { "data-level": record.level }, el("span", { class: "ts" }, formatClock(record.ts)),
      el("span", { class: "src" }, `${record.service} ${record.level}`), record.message));
    while (log.children.length > 2000) log.firstChild.remove();
    if (pinned) log.scrollTop = log.scrollHeight;
  });
}

export function stopServiceLogs() {
  if (serviceLogSource) serviceLogSource.close();
  serviceLogSource = null;
}

$("svc-service").addEventListener("change", tailServiceLogs);
$("svc-level").addEventListener("change", tailServiceLogs);
