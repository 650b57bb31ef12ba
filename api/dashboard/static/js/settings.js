// Settings, for owners: the merchant's API keys (create, rotate, revoke: each needs an owner key
// typed again, sent as X-Confirm-Key, which the dashboard's proxy checks), staff accounts (add,
// remove), and the audit log, newest first, a page at a time.

import { announce, api, clearProblem, el, fmt, markReady, showProblem, showWhenScrolls } from "./common.js";

const $ = (id) => document.getElementById(id);
const keyForm = $("key-form");
const staffForm = $("staff-form");
const ROLE_WORDS = { owner: "Owner", staff: "Staff", analyst: "Analyst" };
let nextBefore = null; // the audit log's next page

// ---- API keys ------------------------------------------------------------------------------

const keyName = (key) => key.label || `${ROLE_WORDS[key.role]} key`;

function confirmHeaders() {
  const typed = $("confirm_key").value.trim();
  if (!typed) {
    showProblem(keyForm, { detail: "Type your owner key first.", errors: { confirm_key: ["Type an owner key of this merchant: changing keys needs it."] } });
    return null;
  }
  return { "X-Confirm-Key": typed };
}

/** Show a problem of a key change on the form; a refused confirmation on its field. */
function keyProblem(problem) {
  if (problem.code === "confirm_key_required") {
    showProblem(keyForm, { detail: problem.detail, errors: { confirm_key: ["That is not an owner key of this merchant (or it was revoked)."] } });
  } else {
    showProblem(keyForm, problem);
  }
}

function showSecret(title, secret) {
  $("secret-title").textContent = title;
  $("secret-value").textContent = secret;
  $("new-secret").hidden = false;
  $("new-secret").focus();
}

async function loadKeys() {
  const keys = (await api("GET", "/merchants/me/keys")).keys.filter((k) => !k.venue_id);
  const rows = keys.map((key) => {
    const live = !key.revoked_at;
    return el("tr", { "data-key": key.id },
      el("th", { scope: "row" }, keyName(key)),
      el("td", {}, ROLE_WORDS[key.role]),
      el("td", {}, live ? `Live since ${fmt.dateTime(key.created_at)}` : `Revoked ${fmt.dateTime(key.revoked_at)}`),
      el("td", { class: "row-actions" }, live
        ? [
          el("button", { type: "button", class: "small", "aria-label": `Rotate ${keyName(key)}`, onclick: () => rotate(key) }, "Rotate"),
          el("button", { type: "button", class: "small danger", "aria-label": `Revoke ${keyName(key)}`, onclick: () => revoke(key) }, "Revoke"),
        ]
        : null));
  });
  const table = $("keys-table");
  table.replaceChildren(
    table.querySelector("caption"),
    el("thead", {}, el("tr", {}, ["Key", "Role", "State", "Actions"].map((h) => el("th", { scope: "col" }, h)))),
    el("tbody", {}, rows),
  );
}

async function createKey(event) {
  event.preventDefault();
  clearProblem(keyForm);
  const headers = confirmHeaders();
  if (!headers) return;
  const body = { role: $("role").value, label: $("key_label").value.trim() || null };
  try {
    const made = await api("POST", "/merchants/me/keys", body, { headers });
    $("key_label").value = "";
    await Promise.all([loadKeys(), loadAudit()]);
    announce(`Created ${keyName(made)}.`, { kind: "success" });
    showSecret(`New ${ROLE_WORDS[made.role].toLowerCase()} key: ${keyName(made)}`, made.api_key);
  } catch (problem) {
    keyProblem(problem);
  }
}

async function rotate(key) {
  clearProblem(keyForm);
  const headers = confirmHeaders();
  if (!headers) return;
  if (!window.confirm(`Rotate ${keyName(key)}? Its secret stops working at once; whoever uses it needs the new one.`)) return;
  try {
    const made = await api("POST", `/merchants/me/keys/${key.id}/rotate`, undefined, { headers });
    await Promise.all([loadKeys(), loadAudit()]);
    announce(`Rotated ${keyName(made)}.`, { kind: "success" });
    showSecret(`New secret of ${keyName(made)}`, made.api_key);
  } catch (problem) {
    keyProblem(problem);
  }
}

async function revoke(key) {
  clearProblem(keyForm);
  const headers = confirmHeaders();
  if (!headers) return;
  if (!window.confirm(`Revoke ${keyName(key)}? It stops working at once, for good.`)) return;
  try {
    await api("DELETE", `/merchants/me/keys/${key.id}`, undefined, { headers });
    await Promise.all([loadKeys(), loadAudit()]);
    announce(`Revoked ${keyName(key)}.`, { kind: "success" });
    $("keys-title").focus();
  } catch (problem) {
    keyProblem(problem);
  }
}

// ---- staff accounts ------------------------------------------------------------------------

async function loadStaff() {
  const staff = (await api("GET", "/merchants/me/staff-users")).staff_users;
  $("staff-list").replaceChildren(
    ...(staff.length
      ? staff.map((s) =>
        el("li", { "data-staff": s.id },
          el("span", { class: "item-main" },
            el("span", { class: "item-title" }, s.handle),
            el("span", { class: "item-meta" }, `added ${fmt.dateTime(s.created_at)}`)),
          el("button", { type: "button", class: "small danger item-action", "aria-label": `Remove ${s.handle}`, onclick: () => removeStaff(s) }, "Remove")))
      : [el("li", { class: "empty" }, "No staff accounts yet.")]),
  );
}

async function addStaff(event) {
  event.preventDefault();
  clearProblem(staffForm);
  const handle = $("handle").value.trim();
  if (!handle) {
    showProblem(staffForm, { detail: "Type a handle.", errors: { handle: ["Type the handle from the person's app."] } });
    return;
  }
  try {
    await api("POST", "/merchants/me/staff-users", { handle });
    $("handle").value = "";
    await Promise.all([loadStaff(), loadAudit()]);
    announce(`Added ${handle} as staff.`, { kind: "success" });
  } catch (problem) {
    showProblem(staffForm, problem);
  }
}

async function removeStaff(staff) {
  if (!window.confirm(`Remove ${staff.handle} from the staff accounts? Their check-ins can unlock offers again.`)) return;
  try {
    await api("DELETE", `/merchants/me/staff-users/${staff.id}`);
    await Promise.all([loadStaff(), loadAudit()]);
    announce(`Removed ${staff.handle}.`, { kind: "success" });
    $("handle").focus();
  } catch (problem) {
    announce(`Could not remove ${staff.handle}: ${problem.detail}`, { kind: "error" });
  }
}

// ---- the audit log -------------------------------------------------------------------------

function changesText(changes) {
  const parts = Object.entries(changes).map(([field, [before, after]]) => {
    const show = (v) =>
      v === null || v === undefined ? "–"
        : typeof v === "object" ? JSON.stringify(v)
          : typeof v === "string" && /^\d{4}-\d\d-\d\dT\d\d:\d\d/.test(v) ? fmt.dateTime(v)
            : String(v);
    return before === null ? `${field}: ${show(after)}` : after === null ? `${field} removed` : `${field}: ${show(before)} → ${show(after)}`;
  });
  const text = parts.join("; ");
  return text.length > 160 ? `${text.slice(0, 159)}…` : text;
}

function auditRow(event) {
  return el("tr", {},
    el("th", { scope: "row", class: "nowrap" }, fmt.dateTime(event.created_at)),
    el("td", {}, event.action.replace(".", " ").replaceAll("_", " ")),
    el("td", {}, event.actor_role ? ROLE_WORDS[event.actor_role] || event.actor_role : "sign-up"),
    el("td", { class: "changes" }, changesText(event.changes)));
}

async function loadAudit({ more = false } = {}) {
  const page = await api("GET", `/merchants/me/audit?limit=25${more && nextBefore ? `&before=${nextBefore}` : ""}`);
  const table = $("audit-table");
  let body = table.querySelector("tbody");
  if (!more || !body) {
    body = el("tbody");
    table.replaceChildren(
      table.querySelector("caption"),
      el("thead", {}, el("tr", {}, ["When", "Change", "By", "What changed"].map((h) => el("th", { scope: "col" }, h)))),
      body,
    );
  }
  body.append(...page.events.map(auditRow));
  if (!body.children.length) body.append(el("tr", {}, el("td", { colspan: 4 }, "No changes recorded yet.")));
  nextBefore = page.next_before;
  $("audit-more").hidden = !nextBefore;
}

// ---- start ---------------------------------------------------------------------------------

keyForm.addEventListener("submit", createKey);
staffForm.addEventListener("submit", addStaff);
$("secret-done").addEventListener("click", () => {
  $("new-secret").hidden = true;
  $("secret-value").textContent = "";
  $("create-key").focus();
});
$("audit-more").addEventListener("click", () =>
  loadAudit({ more: true }).catch((problem) => announce(`Could not load older changes: ${problem.detail}`, { kind: "error" })),
);
$("keys-title").setAttribute("tabindex", "-1");
document.querySelectorAll(".table-scroll").forEach(showWhenScrolls);
Promise.all([loadKeys(), loadStaff(), loadAudit()])
  .then(markReady)
  .catch((problem) => announce(`Settings could not be loaded: ${problem.detail || problem.message}`, { kind: "error" }));
