// Create or edit an offer: every rule kind, the schedule in the venue's time zone, caps, the
// presence-code requirement and the holdout, with a preview in plain words as you type.

import { api, clearProblem, el, markReady, showProblem } from "./common.js";
import { DAYS, describeOffer } from "./offer-words.js";
import { utcToWall, wallToUtc } from "./zones.js";
import { venuePicker } from "./venue-picker.js";
import { categoryWords, venueDetail, venueLabel } from "./venue-words.js";

const form = document.getElementById("offer-form");
const offerId = form.dataset.offerId || null;
const $ = (id) => document.getElementById(id);
const windowsBox = $("windows");
const preview = $("preview");
const DAY_LABELS = { mon: "Mon", tue: "Tue", wed: "Wed", thu: "Thu", fri: "Fri", sat: "Sat", sun: "Sun" };

let venues = [];
let offer = null;
let windowSerial = 0;

// ---- venues and the time zone of the schedule -----------------------------------------------

function checkedVenues() {
  const ids = [...form.querySelectorAll('input[name="venue"]:checked')].map((input) => input.value);
  return ids.map((id) => venues.find((v) => v.id === id)).filter(Boolean);
}

function scheduleZone() {
  const chosen = checkedVenues();
  return (chosen[0] || venues[0])?.timezone || "UTC";
}

function updateZoneHint() {
  const chosen = checkedVenues();
  const zone = scheduleZone();
  const zones = new Set(chosen.map((v) => v.timezone));
  let text = `Start and end are in ${zone} time`;
  if (chosen.length) text += ` (${chosen[0].name}'s time zone)`;
  text += zones.size > 1 ? "; the time windows apply in each venue's own time zone." : "; so are the time windows.";
  $("zone-hint").textContent = text;
}

function renderVenueChoices(selected) {
  const box = $("venue-choices");
  if (!venues.length) {
    box.replaceChildren(el("p", {}, "No venues yet. ", el("a", { href: "/dashboard/venues" }, "Draw one on the map first.")));
    return;
  }
  box.replaceChildren(
    ...venues.map((venue) =>
      el(
        "label",
        { class: "check" },
        el("input", { type: "checkbox", name: "venue", value: venue.id, checked: selected.has(venue.id) }),
        ` ${venue.name} `,
        venueDetail(venue, venues) ? el("span", { class: "venue-address" }, `${venueDetail(venue, venues)} `) : null,
        el("span", { class: "muted" }, `(${[categoryWords(venue.category), venue.timezone].filter(Boolean).join(", ")})`),
      ),
    ),
  );
}

// ---- rule kinds ------------------------------------------------------------------------------

function showKind() {
  const kind = $("rule_kind").value;
  form.querySelectorAll("[data-kind]").forEach((node) => {
    node.hidden = node.dataset.kind !== kind;
  });
}

function intOrNull(id) {
  const value = $(id).value.trim();
  return value === "" ? null : Number(value);
}

function rule() {
  const kind = $("rule_kind").value;
  const out = { kind };
  if (kind === "nth_visit") {
    out.visits = intOrNull("rule_visits");
    const within = intOrNull("rule_within_days");
    if (within !== null) out.within_days = within;
    out.repeat = $("rule_repeat").checked;
  } else if (kind === "top_visitor") {
    out.window_days = intOrNull("rule_window_days") ?? 60;
    out.min_visits = intOrNull("rule_min_visits") ?? 2;
  } else if (kind === "group") {
    out.min_people = intOrNull("rule_min_people");
    out.within_minutes = intOrNull("rule_within_minutes");
  }
  return out;
}

// ---- time windows ----------------------------------------------------------------------------

function addWindow(w = { days: ["mon", "tue", "wed", "thu", "fri"], start: "17:00", end: "19:00" }, focus = false) {
  const n = windowSerial++;
  const row = $("window-row").content.firstElementChild.cloneNode(true);
  row.id = `w${n}-days`;
  row.tabIndex = -1;
  row.dataset.serial = n;
  const days = row.querySelector(".days");
  for (const day of DAYS) {
    days.append(
      el("label", { class: "day" }, el("input", { type: "checkbox", value: day, checked: w.days.includes(day) }), ` ${DAY_LABELS[day]}`),
    );
  }
  const [start, end] = [row.querySelector(".w-start"), row.querySelector(".w-end")];
  start.id = `w${n}-start`;
  end.id = `w${n}-end`;
  start.previousElementSibling.htmlFor = start.id;
  end.previousElementSibling.htmlFor = end.id;
  start.value = w.start;
  end.value = w.end;
  row.querySelector(".remove-window").addEventListener("click", () => {
    row.remove();
    renumberWindows();
    updatePreview();
    $("add-window").focus();
  });
  windowsBox.append(row);
  renumberWindows();
  if (focus) start.focus();
}

function renumberWindows() {
  windowsBox.querySelectorAll("fieldset.window").forEach((row, i) => {
    row.querySelector("legend").textContent = `Time window ${i + 1}`;
    row.querySelector(".remove-window").setAttribute("aria-label", `Remove time window ${i + 1}`);
  });
}

function windows() {
  return [...windowsBox.querySelectorAll("fieldset.window")].map((row) => ({
    days: [...row.querySelectorAll(".days input:checked")].map((input) => input.value),
    start: row.querySelector(".w-start").value,
    end: row.querySelector(".w-end").value,
  }));
}

// ---- the body the API gets -------------------------------------------------------------------

function body() {
  const zone = scheduleZone();
  const text = (id) => $(id).value.trim() || null;
  const data = {
    venue_ids: checkedVenues().map((v) => v.id),
    title: $("title").value.trim(),
    description: text("description"),
    terms: text("terms"),
    rule: rule(),
    starts_at: wallToUtc($("starts_at").value, zone),
    ends_at: wallToUtc($("ends_at").value, zone),
    windows: windows(),
    total_cap: intOrNull("total_cap"),
    min_proof: $("min_proof").value,
  };
  for (const id of ["per_user_cap", "code_ttl_minutes"]) {
    const value = intOrNull(id);
    if (value !== null) data[id] = value;
  }
  const holdout = $("holdout_pct").value.trim();
  data.holdout_pct = holdout === "" ? 0 : Number(holdout);
  const value = $("value_per_redemption").value.trim();
  data.value_per_redemption = value === "" ? null : Number(value);
  return data;
}

function updatePreview() {
  updateZoneHint();
  const data = body();
  const sentences = describeOffer(
    { ...data, status: offer?.status || "draft" },
    checkedVenues().map((v) => (venueDetail(v, venues) ? venueLabel(v) : v.name)),
    scheduleZone(),
  );
  preview.replaceChildren(...sentences.map((s) => el("p", {}, s)));
}

/** API field names ("rule.visits", "windows.0.end") -> the input that shows the message. */
function fieldFor(name) {
  const parts = name.split(".");
  if (parts[0] === "rule") return parts[1] && parts[1] !== "_schema" && parts[1] !== "kind" ? `rule_${parts[1]}` : "rule_kind";
  if (parts[0] === "windows") {
    const row = windowsBox.querySelectorAll("fieldset.window")[Number(parts[1])];
    if (!row) return "windows";
    const n = row.dataset.serial;
    return parts[2] === "start" ? `w${n}-start` : parts[2] === "end" ? `w${n}-end` : `w${n}-days`;
  }
  if (parts[0] === "venue_ids") return "venue_ids";
  return parts[0];
}

async function save(event) {
  event.preventDefault();
  clearProblem(form);
  const local = {};
  if (!$("title").value.trim()) local.title = ["Give the offer a title."];
  if (!checkedVenues().length) local.venue_ids = ["Choose at least one venue."];
  if (Object.keys(local).length) {
    showProblem(form, { detail: "Some fields need attention.", errors: local }, fieldFor);
    return;
  }
  const button = $("save-offer");
  button.disabled = true;
  try {
    const saved = offerId ? await api("PATCH", `/offers/${offerId}`, body()) : await api("POST", "/offers", body());
    window.location.assign(`/dashboard/offers?saved=${saved.id}`);
  } catch (problem) {
    showProblem(form, problem, fieldFor);
    button.disabled = false;
  }
}

function fill(o) {
  const zone = (venues.find((v) => v.id === o.venue_ids[0]) || venues[0])?.timezone || "UTC";
  $("title").value = o.title;
  $("description").value = o.description || "";
  $("terms").value = o.terms || "";
  $("rule_kind").value = o.rule.kind;
  if (o.rule.kind === "nth_visit") {
    $("rule_visits").value = o.rule.visits;
    $("rule_within_days").value = o.rule.within_days ?? "";
    $("rule_repeat").checked = !!o.rule.repeat;
  } else if (o.rule.kind === "top_visitor") {
    $("rule_window_days").value = o.rule.window_days ?? 60;
    $("rule_min_visits").value = o.rule.min_visits ?? 2;
  } else if (o.rule.kind === "group") {
    $("rule_min_people").value = o.rule.min_people;
    $("rule_within_minutes").value = o.rule.within_minutes;
  }
  $("starts_at").value = utcToWall(o.starts_at, zone);
  $("ends_at").value = utcToWall(o.ends_at, zone);
  for (const w of o.windows) addWindow(w);
  $("total_cap").value = o.total_cap ?? "";
  $("per_user_cap").value = o.per_user_cap;
  $("code_ttl_minutes").value = o.code_ttl_minutes;
  $("holdout_pct").value = o.holdout_pct;
  $("value_per_redemption").value = o.value_per_redemption ?? "";
  $("min_proof").value = o.min_proof ?? (o.requires_presence_code ? "presence_code" : "gps");
  if (o.status === "ended") {
    $("ended-note").hidden = false;
    form.querySelectorAll("input, select, textarea, button").forEach((node) => {
      node.disabled = true;
    });
  }
}

async function start() {
  const requests = [api("GET", "/venues")];
  if (offerId) requests.push(api("GET", `/offers/${offerId}`));
  const [venueList, loaded] = await Promise.all(requests);
  venues = venueList.venues.sort((a, b) => a.name.localeCompare(b.name) || (a.address || "").localeCompare(b.address || ""));
  offer = loaded || null;
  renderVenueChoices(new Set(offer ? offer.venue_ids : venues.length === 1 ? [venues[0].id] : []));
  if (venues.length) {
    $("venue-tools").hidden = false;
    venuePicker($("venue_ids"), venues, updatePreview);
  }
  if (offer) {
    fill(offer);
    $("form-title").textContent = `Edit “${offer.title}”`;
  }
  showKind();
  updatePreview();
  markReady();
}

$("rule_kind").addEventListener("change", showKind);
$("add-window").addEventListener("click", () => {
  addWindow(undefined, true);
  updatePreview();
});
form.addEventListener("input", updatePreview);
form.addEventListener("change", updatePreview);
form.addEventListener("submit", save);
start().catch((problem) => {
  showProblem(form, { detail: `The form could not load: ${problem.detail || problem.message}`, errors: {} });
});
