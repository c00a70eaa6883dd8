// The new-job form: a type (its params as fields drawn from its schema, or as JSON), an optional
// file uploaded first with its progress, a delay and a priority.

import { drawParamFields, paramsFromFields, setFields } from "/paramform.js";
import { $, api, el } from "/ui.js";
import { sendWithProgress } from "/upload.js";

let types = []; // GET /api/types

/** The time limit a type advertises (for a job that set none itself). */
export function typeTimeout(name) {
  return types.find((t) => t.name === name)?.timeout_s;
}

export async function loadTypes() {
  types = await api("/api/types");
  const select = $("job-type");
  select.replaceChildren(...types.map((t) => el("option", { value: t.name }, t.name)));
  if (types.some((t) => t.name === "demo")) select.value = "demo";
  showTypeDefaults();
}

function showTypeDefaults() {
  const info = types.find((t) => t.name === $("job-type").value);
  $("type-description").textContent = info?.description || "";
  const defaults = { ...(info?.params || {}) };
  if (typeof defaults.upload === "string" && defaults.upload.startsWith("<")) delete defaults.upload; // the file fills it
  $("job-params").value = JSON.stringify(defaults, null, 2);
  $("file-field").hidden = !(info && "upload" in (info.params || {}));
  drawParamFields($("param-fields"), info, defaults, fieldsChanged);
  // A type that advertises no schema (older processors) is edited as JSON.
  $("raw-params").open = $("param-fields").hidden;
}

function fieldsChanged() {
  try {
    const params = paramsFromFields($("param-fields"), JSON.parse($("job-params").value || "{}"));
    $("job-params").value = JSON.stringify(params, null, 2);
    $("form-error").textContent = "";
  } catch (error) {
    $("form-error").textContent = error.message;
  }
}

function jsonChanged() {
  try {
    setFields($("param-fields"), JSON.parse($("job-params").value || "{}"));
  } catch {
    /* still being typed: the fields follow once it parses */
  }
}

function uploadFile(file) {
  return sendWithProgress(`/api/uploads?filename=${encodeURIComponent(file.name)}`, file, {
    expect: 201, headers: { "Content-Type": file.type || "application/octet-stream" },
    onProgress: (percent) => {
      $("upload-bar").setAttribute("aria-valuenow", String(percent));
      $("upload-fill").style.width = `${percent}%`;
      $("upload-text").textContent = `Uploading ${file.name}: ${percent}%`;
    },
  });
}

async function submitJob(event) {
  event.preventDefault();
  $("form-error").textContent = "";
  $("form-notice").textContent = "";
  let params;
  try {
    params = JSON.parse($("job-params").value || "{}");
  } catch (error) {
    $("form-error").textContent = `Params are not valid JSON: ${error.message}`;
    return;
  }
  $("submit").disabled = true;
  try {
    const file = $("job-file").files[0];
    if (!$("file-field").hidden && file) {
      $("upload").hidden = false;
      const stored = await uploadFile(file);
      $("upload-text").textContent = `Uploaded ${stored.filename} (${Math.ceil(stored.size / 1024)} KB)`;
      params.upload = stored.id;
    }
    const number = (id) => ($(id).value === "" ? undefined : Number($(id).value));
    const options = { delay_s: number("job-delay"), priority: number("job-priority") };
    const key = $("job-unique-key").value.trim();
    if (key) {
      options.unique_key = key;
      options.unique_mode = $("job-unique-mode").value;
      if (options.unique_mode !== "active") options.unique_window_s = number("job-unique-window") ?? 60;
    }
    await submit($("job-type").value, params, options);
  } catch (error) {
    $("form-error").textContent = error.message;
  } finally {
    $("submit").disabled = false;
  }
}

/** Submit and open the job; with a unique key that another job holds, open that one and say so. */
export async function submit(type, params, options = {}) {
  const response = await fetch("/api/jobs", { method: "POST", headers: { "content-type": "application/json" },
    body: JSON.stringify({ type, params, ...options }) });
  if (response.status === 401) $("login").hidden = false;
  const body = await response.json().catch(() => null);
  if (!response.ok) throw new Error(body?.detail || `${response.status} ${response.statusText}`);
  if (response.headers.get("unique-key-held") === "true") {
    $("form-notice").textContent = `Not submitted: the key is held by job ${body.id} (${body.status}), opened here.`;
  }
  location.hash = `#/jobs/${body.id}`;
}

$("job-type").addEventListener("change", showTypeDefaults);
$("job-params").addEventListener("input", jsonChanged);
$("new-job").addEventListener("submit", submitJob);
