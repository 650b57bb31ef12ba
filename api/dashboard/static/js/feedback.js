// The feedback inbox: unanswered feedback from verified visits, oldest first, with the visit it
// came from and how long it has waited, and a reply form in place. Comments and replies are
// plain text: they are only ever set as text nodes (el() never parses HTML).

import { announce, api, el, fmt, markReady } from "./common.js";
import { venueLabels } from "./venue-words.js";

const container = document.getElementById("feedback");
const filters = document.getElementById("filters");
const labelOf = venueLabels(document.getElementById("filter-venue"));
const REPLY_MAX = Number(container.dataset.replyMax) || 2000;
const PROOF_WORDS = { gps: "GPS", presence_code: "presence code", nfc_tap: "NFC tag tap", staff: "recorded by staff" };
const UNLOCK_WORDS = { active: "unlocked", redeemed: "unlocked and redeemed", expired: "unlocked, expired unused" };

function stars(n) {
  return el("span", { class: `stars stars-${n}`, "aria-label": `${n} of 5 stars` }, "★".repeat(n) + "☆".repeat(5 - n));
}

function waited(seconds) {
  return fmt.relative(new Date(Date.now() - seconds * 1000).toISOString()).replace(" ago", "");
}

function card(item) {
  const titleId = `feedback-${item.id}-title`;
  const replyId = `reply-${item.id}`;
  const unlocks = item.visit.unlocks.length
    ? item.visit.unlocks.map((u) => `${u.title} (${UNLOCK_WORDS[u.status] || u.status})`).join(", ")
    : "nothing unlocked";
  return el(
    "article",
    { class: `feedback-card ${item.status} rating-${item.rating}`, "aria-labelledby": titleId, "data-feedback": item.id },
    el(
      "header",
      {},
      el("h2", { id: titleId, tabindex: "-1" }, stars(item.rating), " ", labelOf(item.venue_id, item.venue_name)),
      item.status === "unanswered"
        ? el("span", { class: `badge ${item.waiting_s > 86400 ? "badge-overdue" : "badge-waiting"}` }, `waiting ${waited(item.waiting_s)}`)
        : el("span", { class: "badge badge-active" }, `answered in ${waited(item.first_response_s)}`),
    ),
    item.comment ? el("p", { class: "comment" }, item.comment) : el("p", { class: "comment empty" }, "No comment, just the stars."),
    el(
      "dl",
      { class: "facts" },
      el("div", {}, el("dt", {}, "Visit"), el("dd", {}, fmt.dateTime(item.visit.checked_in_at))),
      el("div", {}, el("dt", {}, "Proof"), el("dd", {}, PROOF_WORDS[item.visit.proof] || item.visit.proof)),
      el("div", {}, el("dt", {}, "Offers"), el("dd", {}, unlocks)),
      el("div", {}, el("dt", {}, "Given"), el("dd", {}, fmt.dateTime(item.created_at))),
    ),
    item.replies.length
      ? el(
          "ol",
          { class: "replies", "aria-label": "Replies" },
          item.replies.map((r) => el("li", {}, el("p", { class: "reply-body" }, r.body), el("p", { class: "reply-meta" }, `${r.author_role || "merchant"}, ${fmt.dateTime(r.created_at)}`))),
        )
      : null,
    el(
      "form",
      { class: "reply-form", onsubmit: (event) => send(event, item) },
      el("label", { for: replyId }, item.replies.length ? "Add a reply" : "Reply"),
      el("textarea", { id: replyId, name: "body", rows: "2", maxlength: String(REPLY_MAX), required: true, onkeydown: ctrlEnter }),
      el("p", { class: "field-error", id: `${replyId}-error`, hidden: true }),
      el("div", { class: "actions" }, el("button", { type: "submit", class: "primary" }, "Send reply")),
    ),
  );
}

function ctrlEnter(event) {
  if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
    event.preventDefault();
    event.currentTarget.form.requestSubmit();
  }
}

async function send(event, item) {
  event.preventDefault();
  const form = event.currentTarget;
  const textarea = form.querySelector("textarea");
  const error = form.querySelector(".field-error");
  const button = form.querySelector("button");
  error.hidden = true;
  textarea.removeAttribute("aria-invalid");
  button.disabled = true;
  try {
    await api("POST", `/feedback/${item.id}/replies`, { body: textarea.value });
    announce(`Reply sent to the ${item.rating}-star feedback at ${item.venue_name}.`, { kind: "success" });
    const cards = [...container.querySelectorAll("[data-feedback]")];
    const next = cards[cards.findIndex((c) => c.dataset.feedback === item.id) + 1]?.dataset.feedback;
    await load();
    // Keep the keyboard where the work is: the next feedback, or this one if it stayed listed.
    const target = container.querySelector(`[data-feedback="${item.id}"] textarea`) || container.querySelector(`[data-feedback="${next}"] textarea`) || container.querySelector("textarea");
    target?.focus();
  } catch (problem) {
    button.disabled = false;
    const messages = problem.errors?.body;
    error.textContent = messages ? (Array.isArray(messages) ? messages.join(" ") : messages) : problem.detail;
    error.hidden = false;
    textarea.setAttribute("aria-invalid", "true");
    textarea.setAttribute("aria-describedby", error.id);
    textarea.focus();
  }
}

async function load() {
  const params = new URLSearchParams();
  for (const [name, value] of new FormData(filters)) if (value) params.set(name, value);
  container.setAttribute("aria-busy", "true");
  const { feedback } = await api("GET", `/feedback?${params}`);
  container.replaceChildren(...feedback.map(card));
  if (!feedback.length) {
    container.append(el("p", { class: "empty" }, params.get("status") === "unanswered" ? "Nothing waiting for an answer." : "No feedback here."));
  }
  container.setAttribute("aria-busy", "false");
}

filters.addEventListener("change", () => load().catch((problem) => announce(problem.detail, { kind: "error" })));
filters.addEventListener("submit", (event) => event.preventDefault());
load()
  .then(markReady)
  .catch((problem) => {
    container.replaceChildren(el("p", { class: "status status-error" }, `The feedback could not be loaded: ${problem.detail || problem.message}`));
  });
