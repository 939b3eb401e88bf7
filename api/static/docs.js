// Reads openapi.json and lists every operation with its parameters, body, responses and scopes.
// Everything is built with DOM nodes and textContent: nothing from the document is parsed as HTML.
"use strict";

const METHODS = ["get", "post", "put", "patch", "delete"];
const TOKEN_KEY = "opsflow-docs-token";

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (name === "class") node.className = value;
    else node.setAttribute(name, value);
  }
  for (const child of children) {
    if (child === null || child === undefined) continue;
    node.append(typeof child === "string" ? document.createTextNode(child) : child);
  }
  return node;
}

function resolve(spec, value, depth) {
  // Inline $refs a few levels deep so that a schema reads on its own.
  if (depth > 6 || value === null || typeof value !== "object") return value;
  if (Array.isArray(value)) return value.map((item) => resolve(spec, item, depth + 1));
  if (typeof value.$ref === "string" && value.$ref.startsWith("#/")) {
    let target = spec;
    for (const part of value.$ref.slice(2).split("/")) target = target ? target[part] : undefined;
    return resolve(spec, target, depth + 1);
  }
  const out = {};
  for (const [key, item] of Object.entries(value)) out[key] = resolve(spec, item, depth + 1);
  return out;
}

function token() {
  return sessionStorage.getItem(TOKEN_KEY) || "";
}

function showTokenState() {
  document.getElementById("token-state").textContent = token() ? "token set for this tab" : "no token";
}

function parametersTable(params) {
  if (!params.length) return null;
  const rows = params.map((p) =>
    el("tr", {}, el("td", {}, p.name), el("td", {}, p.in), el("td", {}, p.required ? "required" : ""),
      el("td", {}, (p.schema && (p.schema.type || p.schema.format)) || ""), el("td", {}, p.description || "")));
  return el("table", {}, el("tr", {}, el("th", {}, "name"), el("th", {}, "in"), el("th", {}, ""),
    el("th", {}, "type"), el("th", {}, "description")), ...rows);
}

function responsesList(spec, responses) {
  const items = Object.entries(responses || {}).map(([status, raw]) => {
    const response = resolve(spec, raw, 0);
    const content = response.content || {};
    const types = Object.keys(content);
    const schema = types.length ? content[types[0]].schema : null;
    return el("details", {}, el("summary", {}, `${status} ${response.description || ""} `,
      types.length ? el("code", {}, types.join(", ")) : null),
    schema ? el("pre", {}, JSON.stringify(schema, null, 2)) : null);
  });
  return el("div", {}, el("h4", {}, "Responses"), ...items);
}

function tryForm(path, method, params, hasBody) {
  const inputs = {};
  const form = el("form", { class: "try" });
  for (const p of params.filter((item) => item.in === "path" || item.in === "query")) {
    const input = el("input", { name: p.name });
    inputs[p.name] = { input, where: p.in };
    form.append(el("label", {}, `${p.name} (${p.in})`), input);
  }
  const body = hasBody ? el("textarea", {}, "{}") : null;
  if (body) form.append(el("label", {}, "JSON body"), body);
  const output = el("pre", {});
  form.append(el("button", { type: "submit" }, "Send"), output);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    let url = path;
    const query = new URLSearchParams();
    for (const [name, { input, where }] of Object.entries(inputs)) {
      if (!input.value) continue;
      if (where === "path") url = url.replace(`{${name}}`, encodeURIComponent(input.value));
      else query.append(name, input.value);
    }
    const headers = { Accept: "application/json" };
    if (token()) headers.Authorization = `Bearer ${token()}`;
    if (body) headers["Content-Type"] = "application/json";
    const qs = query.toString();
    try {
      const response = await fetch(qs ? `${url}?${qs}` : url, { method: method.toUpperCase(), headers, body: body ? body.value : undefined });
      const text = await response.text();
      output.className = response.ok ? "status-ok" : "status-error";
      output.textContent = `${response.status} ${response.statusText}\n${text}`;
    } catch (error) {
      output.className = "status-error";
      output.textContent = String(error);
    }
  });
  return el("details", {}, el("summary", {}, "Try it"), form);
}

function operation(spec, path, method, op) {
  const params = (op.parameters || []).map((p) => resolve(spec, p, 0));
  const scopes = (op.security || []).flatMap((entry) => Object.values(entry).flat());
  const requestBody = op.requestBody ? resolve(spec, op.requestBody, 0) : null;
  const body = el("div", { class: "op-body" },
    op.description ? el("p", {}, op.description) : null,
    op.security ? el("p", {}, "Needs a bearer token", scopes.length ? ` with scope ${scopes.join(" ")}` : "", ".") : null,
    parametersTable(params),
    requestBody ? el("div", {}, el("h4", {}, `Request body (${Object.keys(requestBody.content || {}).join(", ")})`),
      el("pre", {}, JSON.stringify(Object.values(requestBody.content || {})[0]?.schema || {}, null, 2))) : null,
    responsesList(spec, op.responses),
    tryForm(path, method, params, Boolean(requestBody && (requestBody.content || {})["application/json"])));
  return el("details", { class: "op" },
    el("summary", {}, el("span", { class: `method ${method}` }, method), el("span", { class: "path" }, path),
      el("span", { class: "op-summary" }, op.summary || ""), el("span", { class: "lock" }, scopes.join(" "))),
    body);
}

function render(spec) {
  document.getElementById("title").textContent = `${spec.info.title} ${spec.info.version}`;
  const summary = document.getElementById("summary");
  summary.textContent = `OpenAPI ${spec.openapi}. Every error is application/problem+json. `;
  summary.append(el("a", { href: "openapi.json" }, "openapi.json"));
  const groups = new Map();
  for (const tag of spec.tags || []) groups.set(tag.name, { tag, ops: [] });
  for (const [path, item] of Object.entries(spec.paths || {})) {
    for (const method of METHODS) {
      if (!item[method]) continue;
      const name = (item[method].tags || ["other"])[0];
      if (!groups.has(name)) groups.set(name, { tag: { name }, ops: [] });
      groups.get(name).ops.push(operation(spec, path, method, item[method]));
    }
  }
  const main = document.getElementById("operations");
  for (const { tag, ops } of groups.values()) {
    if (!ops.length) continue;
    main.append(el("h2", {}, tag.name), tag.description ? el("p", { class: "tag-description" }, tag.description) : null, ...ops);
  }
}

document.addEventListener("DOMContentLoaded", async () => {
  document.getElementById("auth").addEventListener("submit", (event) => {
    event.preventDefault();
    sessionStorage.setItem(TOKEN_KEY, document.getElementById("token").value.trim());
    document.getElementById("token").value = "";
    showTokenState();
  });
  document.getElementById("forget").addEventListener("click", () => {
    sessionStorage.removeItem(TOKEN_KEY);
    showTokenState();
  });
  showTokenState();
  try {
    const response = await fetch("openapi.json", { headers: { Accept: "application/json" } });
    render(await response.json());
  } catch (error) {
    document.getElementById("summary").textContent = `Could not load openapi.json: ${error}`;
  }
});
