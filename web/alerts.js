// The failure alerts banner: shown on every page while an alert rule fires (GET /api/alerts, every
// five seconds), with what it found; gone when the rule resolves. Text only.

import { $, api, el } from "/ui.js";

function describe(alert) {
  const rule = alert.rule;
  const what = rule.type ? `${rule.type} jobs` : "jobs";
  const minutes = rule.window_s >= 120 ? `${Math.round(rule.window_s / 60)} min` : `${rule.window_s} s`;
  return `Alert ${alert.name}: ${alert.state.failures} ${what} failed in the last ${minutes}`
    + ` (the rule: at least ${rule.min_failures}${rule.min_rate ? `, ${Math.round(rule.min_rate * 100)} % of those that ended` : ""}).`;
}

async function refresh() {
  let firing = [];
  try {
    firing = (await api("/api/alerts")).filter((alert) => alert.state.firing);
  } catch {
    firing = []; // (a token that may not read them, or the gateway away: no banner)
  }
  const banner = $("alerts-banner");
  banner.replaceChildren(...firing.map((alert) => el("p", { "data-alert": alert.name }, describe(alert))));
  banner.hidden = firing.length === 0;
}

export function startAlerts() {
  refresh();
  setInterval(refresh, 5000);
}
