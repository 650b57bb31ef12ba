// Webhooks, for owners: the merchant's endpoints (add one: its signing secret is shown once, with
// a copy button; delete one, asked first), and each endpoint's recent deliveries with their last
// attempts and a Replay button (same webhook-id, a fresh retry window). Only the owner's session
// is needed: the owner key typed again is for changing API keys (settings.js), and a webhook's
// secret opens nothing of the API.

import { announce, api, clearProblem, el, fmt, markReady, showProblem, showWhenScrolls } from "./common.js";

const $ = (id) => document.getElementById(id);
const form = $("webhook-form");
const list = $("endpoints");
const open = new Set(); // endpoints whose deliveries are shown
const ATTEMPTS_SHOWN = 3;
const STATUS_WORDS = { pending: "Pending", delivered: "Delivered", failed: "Failed" };

// The event types in words, from the form's checkboxes (the server's list).
const EVENT_WORDS = Object.fromEntries(
  [...form.querySelectorAll("input[name=events]")].map((box) => [box.value, box.parentElement.querySelector(".event-words").textContent.trim()]),
);
const eventWords = (type) => EVENT_WORDS[type] || type;

// ---- endpoints -----------------------------------------------------------------------------

function stateBadge(hook) {
  return hook.status === "failing"
    ? el("span", { class: "badge badge-failing" }, "Failing")
    : el("span", { class: "badge badge-active" }, "Active");
}

function endpointItem(hook) {
  const panelId = `deliveries-${hook.id}`;
  const shown = open.has(hook.id);
  const panel = el("div", { class: "deliveries", id: panelId, hidden: !shown });
  const toggle = el(
    "button",
    {
      type: "button",
      class: "small",
      "aria-expanded": String(shown),
      "aria-controls": panelId,
      "aria-label": `Deliveries to ${hook.url}`,
      onclick: () => toggleDeliveries(hook, toggle, panel),
    },
    "Deliveries",
  );
  if (shown) loadDeliveries(hook, panel);
  return el(
    "li",
    { "data-webhook": hook.id },
    el(
      "div",
      { class: "item-main" },
      el("span", { class: "item-title mono break" }, hook.url),
      el("span", { class: "item-meta" }, stateBadge(hook), " ",
        hook.status === "failing" ? `since ${fmt.dateTime(hook.failing_since)}; ` : "",
        `added ${fmt.dateTime(hook.created_at)}`),
      el("span", { class: "item-meta" }, hook.events.map(eventWords).join(", ")),
    ),
    el(
      "div",
      { class: "row-actions endpoint-actions" },
      toggle,
      el("button", { type: "button", class: "small danger", "aria-label": `Delete the endpoint ${hook.url}`, onclick: () => remove(hook) }, "Delete"),
    ),
    panel,
  );
}

async function load() {
  const hooks = (await api("GET", "/merchants/me/webhooks")).webhooks;
  for (const id of [...open]) if (!hooks.some((h) => h.id === id)) open.delete(id);
  list.replaceChildren(
    ...(hooks.length ? hooks.map(endpointItem) : [el("li", { class: "empty" }, "No endpoint yet: add one below.")]),
  );
}

async function remove(hook) {
  if (!window.confirm(`Delete the endpoint ${hook.url}? Nothing more is sent to it, and its deliveries still waiting are dropped.`)) return;
  try {
    await api("DELETE", `/merchants/me/webhooks/${hook.id}`);
  } catch (problem) {
    announce(`Could not delete ${hook.url}: ${problem.detail}`, { kind: "error" });
    return;
  }
  open.delete(hook.id);
  await load();
  $("endpoints-title").focus();
  announce(`Deleted the endpoint ${hook.url}.`, { kind: "success" }); // once the list shows it
}

// ---- deliveries ----------------------------------------------------------------------------

function toggleDeliveries(hook, button, panel) {
  const show = panel.hidden;
  panel.hidden = !show;
  button.setAttribute("aria-expanded", String(show));
  if (show) {
    open.add(hook.id);
    loadDeliveries(hook, panel);
  } else {
    open.delete(hook.id);
  }
}

function attemptText(attempt) {
  const outcome = attempt.status_code !== null ? `HTTP ${attempt.status_code}` : attempt.error || "no answer";
  const extra = attempt.status_code !== null && attempt.error && !attempt.error.startsWith("answered") ? ` (${attempt.error})` : "";
  return `${fmt.dateTime(attempt.attempted_at)}: ${outcome}${extra}, ${fmt.number(attempt.duration_ms)} ms`;
}

function statusCell(delivery) {
  const badge = el("span", { class: `badge badge-${delivery.status}` }, STATUS_WORDS[delivery.status] || delivery.status);
  let note;
  if (delivery.status === "delivered") note = `at ${fmt.dateTime(delivery.delivered_at)}`;
  else if (delivery.status === "pending") note = delivery.next_attempt_at ? `next try ${fmt.relative(delivery.next_attempt_at)}` : "";
  else note = delivery.last_error === "endpoint deleted" ? "endpoint deleted" : "gave up";
  const tries = `${delivery.attempts} ${delivery.attempts === 1 ? "attempt" : "attempts"}`;
  return el("td", { class: "cell-status", role: "cell" }, badge, el("span", { class: "cell-note" }, note), el("span", { class: "cell-note" }, tries));
}

function deliveryRow(hook, panel, delivery) {
  const attempts = delivery.recent_attempts.slice(0, ATTEMPTS_SHOWN);
  return el(
    "tr",
    { "data-delivery": delivery.id, role: "row" },
    el("th", { scope: "row", class: "cell-event", role: "rowheader" }, eventWords(delivery.type),
      el("span", { class: "cell-note" }, fmt.dateTime(delivery.created_at)),
      el("span", { class: "cell-note mono break" }, delivery.webhook_id)),
    statusCell(delivery),
    el("td", { class: "cell-attempts", role: "cell" }, attempts.length
      ? el("ul", { class: "attempts" }, attempts.map((a) => el("li", {}, attemptText(a))))
      : el("span", { class: "muted" }, "Not sent yet")),
    el("td", { class: "row-actions cell-action", role: "cell" },
      el("button", {
        type: "button",
        class: "small",
        "aria-label": `Replay ${eventWords(delivery.type)} of ${fmt.dateTime(delivery.created_at)}`,
        onclick: () => replay(hook, panel, delivery),
      }, "Replay")),
  );
}

async function loadDeliveries(hook, panel) {
  let deliveries;
  try {
    deliveries = (await api("GET", `/merchants/me/webhooks/${hook.id}/deliveries?limit=20`)).deliveries;
  } catch (problem) {
    panel.replaceChildren(el("p", { class: "warning" }, `Could not load the deliveries: ${problem.detail}`));
    return;
  }
  const refresh = el("button", { type: "button", class: "small", onclick: () => loadDeliveries(hook, panel) }, "Refresh");
  const head = el("div", { class: "section-head" }, el("h3", {}, "Recent deliveries"), refresh);
  if (!deliveries.length) {
    panel.replaceChildren(head, el("p", { class: "empty" }, "Nothing sent yet: events appear here as they happen."));
    return;
  }
  const box = el(
    "div",
    { class: "table-scroll", role: "region", "aria-label": `Deliveries to ${hook.url}`, tabindex: "0" },
    // Explicit roles: a phone shows each row as a block (dashboard.css), and CSS display must
    // not take the table's semantics with it.
    el("table", { class: "data deliveries-table", role: "table" },
      el("caption", { class: "visually-hidden" }, `Recent deliveries to ${hook.url}, newest first`),
      el("thead", { role: "rowgroup" }, el("tr", { role: "row" }, ["Event", "Status", "Last attempts", "Action"].map((h) => el("th", { scope: "col", role: "columnheader" }, h)))),
      el("tbody", { role: "rowgroup" }, deliveries.map((d) => deliveryRow(hook, panel, d)))),
  );
  panel.replaceChildren(head, box);
  showWhenScrolls(box);
}

async function replay(hook, panel, delivery) {
  try {
    await api("POST", `/merchants/me/webhooks/${hook.id}/deliveries/${delivery.id}/replay`);
  } catch (problem) {
    announce(`Could not replay: ${problem.detail}`, { kind: "error" });
    return;
  }
  announce(`${eventWords(delivery.type)} of ${fmt.dateTime(delivery.created_at)} will be sent again in a moment, with the same webhook-id.`, { kind: "success" });
  await loadDeliveries(hook, panel);
}

// ---- adding one, and its secret shown once ------------------------------------------------

function showSecret(hook) {
  $("secret-url").textContent = hook.url;
  $("secret-value").value = hook.secret;
  $("copy-secret").textContent = "Copy";
  $("new-secret").hidden = false;
  $("new-secret").focus();
}

function hideSecret() {
  $("secret-value").value = "";
  $("secret-url").textContent = "";
  $("new-secret").hidden = true;
}

async function copySecret() {
  const input = $("secret-value");
  try {
    await navigator.clipboard.writeText(input.value);
    $("copy-secret").textContent = "Copied";
    announce("Copied the signing secret.", { kind: "success" });
  } catch {
    input.focus();
    input.select();
    announce("The browser did not let the page copy: the secret is selected, press Ctrl+C (⌘C) to copy it.", { kind: "info" });
  }
}

async function add(event) {
  event.preventDefault();
  clearProblem(form);
  const url = form.url.value.trim();
  const events = [...form.querySelectorAll("input[name=events]:checked")].map((box) => box.value);
  const errors = {};
  if (!url) errors.url = ["Type the URL your receiver listens on."];
  if (!events.length) errors.events = ["Choose at least one event."];
  if (Object.keys(errors).length) {
    showProblem(form, { detail: "Not added.", errors });
    return;
  }
  let made;
  try {
    made = await api("POST", "/merchants/me/webhooks", { url, events });
  } catch (problem) {
    // A refused URL (a private address, plain http...) is said on the URL's field.
    showProblem(form, problem.code === "webhook_url_refused" ? { ...problem, errors: { url: [problem.detail] } } : problem);
    return;
  }
  form.reset();
  announce(`Added the endpoint ${made.url}. Copy its signing secret now.`, { kind: "success" });
  await load();
  showSecret(made);
}

form.addEventListener("submit", add);
$("copy-secret").addEventListener("click", copySecret);
$("secret-done").addEventListener("click", () => {
  hideSecret();
  $("endpoints-title").focus();
});

load().then(markReady, (problem) => {
  announce(problem.detail, { kind: "error" });
  markReady();
});
