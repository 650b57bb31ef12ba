// Shared by every page: calls to the JSON API through the dashboard's same-origin proxy, problem
// answers, form error display, and small formatting helpers. No framework.

import { csvText } from "./csv.js";

const CSRF = document.querySelector('meta[name="csrf-token"]')?.content ?? "";

/** A problem+json answer (RFC 9457): `status`, stable `code`, `detail`, `errors` by field. */
export class ApiProblem extends Error {
  constructor(status, body) {
    super(body?.detail || `HTTP ${status}`);
    this.status = status;
    this.code = body?.code || `http_${status}`;
    this.detail = body?.detail || `The server answered ${status}.`;
    this.errors = body?.errors || {};
  }
}

/** Call the API as the signed-in merchant: `api("POST", "/offers", {...})` is POST /v1/offers. */
export async function api(method, path, body, { headers = {}, base = "/dashboard/api" } = {}) {
  const init = { method, headers: { Accept: "application/json", ...headers }, credentials: "same-origin" };
  if (method !== "GET" && method !== "HEAD") init.headers["X-CSRF-Token"] = CSRF;
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(base + path, init);
  } catch (error) {
    throw new ApiProblem(0, { code: "network", detail: "The server could not be reached. Check the connection and try again." });
  }
  const type = response.headers.get("Content-Type") || "";
  // 204 No Content carries the API's JSON content type but no body.
  const data = type.includes("json") && response.status !== 204 ? await response.json() : null;
  if (response.status === 401) {
    // The session ended (signed out elsewhere, key revoked, expired): back to the sign-in page.
    window.location.assign(`/dashboard/sign-in?next=${encodeURIComponent(location.pathname + location.search)}`);
  }
  if (!response.ok) throw new ApiProblem(response.status, data);
  return data;
}

/** The dashboard's own JSON endpoints (not the API), e.g. the till's code check. */
export function dashboardCall(method, path, body) {
  return api(method, path, body, { base: "/dashboard" });
}

/** Create an element: el("p", {class: "x"}, "text", child). */
export function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === false || value === null || value === undefined) continue;
    if (name === "text") node.textContent = value;
    else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

/**
 * Show a problem on a form: each field's messages under its input (aria-invalid and
 * aria-describedby), and a summary at the top that takes focus, with links to the fields.
 * `fieldFor(name)` maps an API field name ("rule.visits", "geofence") to an input's id.
 */
export function showProblem(form, problem, fieldFor = (name) => name) {
  clearProblem(form);
  const summary = form.querySelector(".error-summary");
  const items = [];
  for (const [field, messages] of Object.entries(problem.errors || {})) {
    const id = fieldFor(field);
    const input = id && form.querySelector(`#${CSS.escape(id)}`);
    const text = `${Array.isArray(messages) ? messages.join(" ") : messages}`;
    if (input) {
      const message = el("p", { class: "field-error", id: `${id}-error` }, text);
      const holder = input.closest(".field, fieldset") || input.parentElement;
      holder.append(message);
      input.setAttribute("aria-invalid", "true");
      const described = (input.getAttribute("aria-describedby") || "").split(" ").filter(Boolean);
      input.setAttribute("aria-describedby", [...described, message.id].join(" "));
      items.push(el("li", {}, el("a", { href: `#${id}` }, `${labelOf(input) || field}: ${text}`)));
    } else {
      items.push(el("li", {}, `${field}: ${text}`));
    }
  }
  if (summary) {
    const title = items.length
      ? "Not saved: please correct the fields below."
      : problem.detail || "The change was not saved.";
    summary.replaceChildren(
      el("p", { class: "error-title" }, title),
      items.length ? el("ul", {}, items) : "",
    );
    summary.hidden = false;
    summary.focus();
  }
}

export function clearProblem(form) {
  form.querySelectorAll(".field-error").forEach((node) => {
    const input = form.querySelector(`[aria-describedby~="${node.id}"]`);
    if (input) {
      input.removeAttribute("aria-invalid");
      const rest = input.getAttribute("aria-describedby").split(" ").filter((id) => id !== node.id);
      if (rest.length) input.setAttribute("aria-describedby", rest.join(" "));
      else input.removeAttribute("aria-describedby");
    }
    node.remove();
  });
  const summary = form.querySelector(".error-summary");
  if (summary) {
    summary.hidden = true;
    summary.replaceChildren();
  }
}

function labelOf(input) {
  const label = input.id && document.querySelector(`label[for="${CSS.escape(input.id)}"]`);
  if (label) return label.textContent.trim();
  const legend = input.closest("fieldset")?.querySelector("legend");
  return legend ? legend.textContent.trim() : "";
}

/** Announce a short message in a live region (`#status` by default). */
export function announce(message, { kind = "info", region = "#status" } = {}) {
  const node = typeof region === "string" ? document.querySelector(region) : region;
  if (!node) return;
  node.className = `status status-${kind}`;
  node.textContent = message;
}

export const fmt = {
  number: (n, digits = 0) =>
    n === null || n === undefined ? "–" : Number(n).toLocaleString("en-GB", { maximumFractionDigits: digits, minimumFractionDigits: digits }),
  percent: (r, digits = 1) => (r === null || r === undefined ? "–" : `${(r * 100).toFixed(digits)}%`),
  dateTime: (iso, timeZone) =>
    iso
      ? new Date(iso).toLocaleString("en-GB", { timeZone, dateStyle: "medium", timeStyle: "short" })
      : "–",
  time: (iso, timeZone) => new Date(iso).toLocaleTimeString("en-GB", { timeZone, hour: "2-digit", minute: "2-digit" }),
  /** "in 3 h 5 min", "12 min ago" */
  relative(iso, now = Date.now()) {
    const seconds = Math.round((new Date(iso).getTime() - now) / 1000);
    const abs = Math.abs(seconds);
    let text;
    if (abs < 60) text = `${abs} s`;
    else if (abs < 3600) text = `${Math.round(abs / 60)} min`;
    else if (abs < 172800) {
      const minutes = Math.round(abs / 60);
      text = `${Math.floor(minutes / 60)} h${minutes % 60 ? ` ${minutes % 60} min` : ""}`;
    }
    else text = `${Math.round(abs / 86400)} days`;
    return seconds >= 0 ? `in ${text}` : `${text} ago`;
  },
};

/** Parse a JSON block embedded in the page (`<script type="application/json" id=...>`). */
export function pageData(id) {
  const node = document.getElementById(id);
  return node ? JSON.parse(node.textContent) : null;
}

/** A CSV file from rows (arrays), downloaded by the browser. */
export function downloadCsv(filename, header, rows) {
  const csv = csvText(header, rows);
  const url = URL.createObjectURL(new Blob([csv], { type: "text/csv" }));
  const link = el("a", { href: url, download: filename });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}

/** The page has loaded its data: a performance mark for the load-time test, and a flag. */
export function markReady() {
  performance.mark("dashboard-ready");
  document.body.dataset.ready = "true";
}

/**
 * A wide table in a `.table-scroll` box says that it scrolls: a hint above it and a shadow at
 * the edge that hides columns, shown only while the table is wider than its box (a phone).
 */
export function showWhenScrolls(box) {
  if (box.dataset.watched) return;
  box.dataset.watched = "true";
  const hint = el("p", { class: "scroll-hint", hidden: true }, "Scroll sideways to see every column →");
  box.before(hint);
  const update = () => {
    const scrolls = box.scrollWidth > box.clientWidth + 1;
    box.dataset.scrolls = String(scrolls);
    hint.hidden = !scrolls;
    const end = box.scrollLeft + box.clientWidth >= box.scrollWidth - 1;
    box.classList.toggle("at-end", end);
    box.classList.toggle("at-start", box.scrollLeft <= 0);
  };
  const watcher = new ResizeObserver(update);
  watcher.observe(box);
  for (const child of box.children) watcher.observe(child); // the table filled in later
  box.addEventListener("scroll", update, { passive: true });
  update();
}
