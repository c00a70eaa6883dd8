// The new-job form's fields, drawn from the job type's params schema (`/api/types`: each type's
// `params_schema`, the JSON Schema its processor advertises). The raw JSON stays as the advanced
// option: the fields write into it, and editing it moves the fields.

import { el } from "/ui.js";

const UPLOAD = /(^|_)upload$/; // params named like this take an upload id: the file picker fills them

function propertiesOf(schema) {
  let root = schema || {};
  const ref = root.$ref || "";
  if (ref.startsWith("#/$defs/")) root = (schema.$defs || {})[ref.slice(8)] || {};
  return { properties: root.properties || {}, required: new Set(root.required || []) };
}

function kindOf(spec) {
  const types = new Set([spec.type, ...(spec.anyOf || []).map((o) => o.type)].flat().filter(Boolean));
  const nullable = types.delete("null");
  const enumValues = spec.enum || (spec.anyOf || []).find((o) => o.enum)?.enum;
  if (enumValues) return { kind: "enum", nullable, values: enumValues };
  if (types.size === 1) return { kind: [...types][0], nullable };
  return { kind: "json", nullable };
}

/** Fill `fieldset` with a field per param; `onChange()` is called after each edit. */
export function drawParamFields(fieldset, info, values, onChange) {
  const legend = fieldset.querySelector("legend");
  const { properties, required } = propertiesOf(info?.params_schema);
  const names = Object.keys(properties).filter((name) => !UPLOAD.test(name));
  const fields = names.map((name) => {
    const spec = properties[name];
    const { kind, values: options } = kindOf(spec);
    const value = values[name] ?? spec.default;
    const id = `param-${name}`;
    let input;
    if (kind === "boolean") {
      input = el("input", { id, type: "checkbox", checked: Boolean(value) });
    } else if (kind === "enum") {
      input = el("select", { id }, ...options.map((o) => el("option", { value: String(o) }, String(o))));
      if (value != null) input.value = String(value);
    } else if (kind === "integer" || kind === "number") {
      input = el("input", { id, type: "number", step: kind === "integer" ? "1" : "any",
        value: value == null ? "" : String(value), placeholder: spec.default == null ? "" : String(spec.default) });
      if (spec.minimum != null) input.min = String(spec.minimum);
      if (spec.maximum != null) input.max = String(spec.maximum);
    } else if (kind === "string") {
      input = el("input", { id, type: "text", value: value == null ? "" : String(value) });
    } else {
      input = el("input", { id, type: "text", value: value == null ? "" : JSON.stringify(value), spellcheck: false });
      input.dataset.json = "1";
    }
    input.dataset.param = name;
    input.dataset.kind = kind;
    input.required = required.has(name) && kind !== "boolean";
    input.addEventListener("input", onChange);
    input.addEventListener("change", onChange);
    const label = el("label", { class: kind === "boolean" ? "inline" : undefined }, `${name}${input.required ? " *" : ""} `, input);
    const hint = spec.description || (kind === "json" ? "JSON" : "");
    if (hint) label.append(el("span", { class: "muted" }, ` ${hint}`));
    return label;
  });
  fieldset.replaceChildren(legend, ...fields);
  fieldset.hidden = fields.length === 0;
}

/** The params the fields say, over `base` (keys without a field are kept). Throws on bad JSON. */
export function paramsFromFields(fieldset, base) {
  const params = { ...base };
  for (const input of fieldset.querySelectorAll("[data-param]")) {
    const name = input.dataset.param;
    const raw = input.type === "checkbox" ? input.checked : input.value;
    if (input.type === "checkbox") params[name] = raw;
    else if (raw === "") delete params[name]; // left empty: the type's default
    else if (input.dataset.kind === "integer" || input.dataset.kind === "number") params[name] = Number(raw);
    else if (input.dataset.json) {
      try {
        params[name] = JSON.parse(raw);
      } catch {
        throw new Error(`${name} is not valid JSON`);
      }
    } else params[name] = raw;
  }
  return params;
}

/** Move the fields to what `params` says (after the raw JSON was edited). */
export function setFields(fieldset, params) {
  for (const input of fieldset.querySelectorAll("[data-param]")) {
    const value = params[input.dataset.param];
    if (input.type === "checkbox") input.checked = Boolean(value);
    else if (value === undefined || value === null) input.value = "";
    else input.value = input.dataset.json ? JSON.stringify(value) : String(value);
  }
}
