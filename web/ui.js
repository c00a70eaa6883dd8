// Small helpers every page of the UI shares. Data always becomes text (text nodes, textContent,
// attributes), never HTML.

export const $ = (id) => document.getElementById(id);

export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null) continue;
    if (key.startsWith("data-") || key.startsWith("aria-") || ["href", "class", "role", "src", "download", "scope", "title"].includes(key)) {
      node.setAttribute(key, String(value));
    } else {
      node[key] = value;
    }
  }
  for (const child of children) node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  return node;
}

const SVG = "http://www.w3.org/2000/svg";
export function svg(tag, attrs = {}, ...children) {
  const node = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value !== undefined && value !== null) node.setAttribute(key, String(value));
  }
  for (const child of children) node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  return node;
}

export async function api(path, options = {}) {
  const response = await fetch(path, { headers: { "content-type": "application/json" }, ...options });
  if (response.status === 401) $("login").hidden = false; // this gateway wants an API token
  const body = response.status === 204 || response.status === 304 ? null : await response.json();
  if (!response.ok) throw new Error(body?.detail || `${response.status} ${response.statusText}`);
  return body;
}

export const LEVELS = { debug: 10, info: 20, warning: 30, error: 40, critical: 50 };
export const formatClock = (ts) => new Date(ts * 1000).toLocaleTimeString();
export function formatWhen(ts) {
  if (ts == null) return "";
  const moment = new Date(ts * 1000);
  return moment.toDateString() === new Date().toDateString() ? moment.toLocaleTimeString() : moment.toLocaleString();
}
export function formatSeconds(s) {
  if (s == null || !isFinite(s)) return "";
  if (s < 60) return `${s.toFixed(s < 10 ? 1 : 0)} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${Math.round(s % 60)} s`;
  return `${Math.floor(s / 3600)} h ${Math.round((s % 3600) / 60)} min`;
}
export const now = () => Date.now() / 1000;
/** A run time, with milliseconds below a second. */
export const formatDuration = (s) => (s != null && s < 1 ? `${Math.max(Math.round(s * 1000), 1)} ms` : formatSeconds(s));
