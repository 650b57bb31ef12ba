// Analytics: first the owner's summary (is it working? the period beside the one before) and the
// offers side by side, filtered by venue and any dates; then the funnel, lift with its interval, redemptions over time and by venue, offer
// health flags and the leak report, as charts and tables, with CSV downloads. Every number comes
// from the API's /v1/analytics calls (computed in SQL from the recorded events).

import { announce, api, downloadCsv, el, fmt, markReady, showWhenScrolls } from "./common.js";
import { barChart, columnChart, intervalChart } from "./charts.js";
import { venueLabels } from "./venue-words.js";

const $ = (id) => document.getElementById(id);
const periodSelect = $("period");
const offerSelect = $("offer");
const venueSelect = $("venue");
const labelOf = venueLabels(venueSelect);
let summary = null;
let chosen = null; // the offers chosen to compare (ids), once the first summary has arrived
let health = [];
let funnelRows = [];
let leakRows = [];

/** Draw charts at the width they are shown at, so their text stays legible on a phone. */
const widthOf = (node) => Math.max(300, Math.round(node.clientWidth || 560));

// Each chart's drawing, kept to draw it again at its new width when the window's width changes
// (a phone turned, a window resized): a chart drawn once kept its first width's text sizes.
const painters = new Map();
function paint(key, draw) {
  if (draw) painters.set(key, draw);
  else painters.delete(key);
  draw?.();
}
let paintedWidth = window.innerWidth;
let resizeTimer = 0;
window.addEventListener("resize", () => {
  clearTimeout(resizeTimer);
  resizeTimer = setTimeout(() => {
    if (window.innerWidth === paintedWidth) return;
    paintedWidth = window.innerWidth;
    for (const draw of painters.values()) draw();
    document.body.dataset.chartsWidth = String(paintedWidth); // for the tests: redrawn
  }, 120);
});

// The period: the last N days up to now, or whole days of the person's choice (local midnight
// to the midnight after the last day). `null` while chosen dates are missing or backwards.
function period() {
  const value = periodSelect.value;
  if (value === "custom") {
    const first = $("from-date").value;
    const last = $("to-date").value;
    if (!first || !last || last < first) return null;
    const from = new Date(`${first}T00:00`);
    const to = new Date(`${last}T00:00`);
    to.setDate(to.getDate() + 1);
    const days = Math.round((to - from) / 86400000);
    return { from: from.toISOString(), to: to.toISOString(), days, label: first === last ? `on ${first}` : `from ${first} to ${last}` };
  }
  const days = Number(value);
  const from = new Date(Date.now() - days * 86400000);
  return { from: from.toISOString(), to: null, days, label: days === 365 ? "the last 12 months" : `the last ${days} days` };
}

const venueId = () => venueSelect.value || null;
const venueLabel = () => (venueSelect.value ? `at ${venueSelect.selectedOptions[0].textContent}` : "at all venues");

function query(params) {
  const search = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) if (value !== null && value !== undefined) search.set(key, value);
  const text = search.toString();
  return text ? `?${text}` : "";
}

function table(node, header, rows, { numeric = [] } = {}) {
  const caption = node.querySelector("caption");
  node.replaceChildren(
    ...(caption ? [caption] : []),
    el("thead", {}, el("tr", {}, header.map((h, i) => el("th", { scope: "col", class: numeric.includes(i) ? "num" : null }, h)))),
    el(
      "tbody",
      {},
      rows.length
        ? rows.map((row) =>
            el(
              "tr",
              {},
              row.map((cell, i) =>
                i === 0 ? el("th", { scope: "row" }, cell) : el("td", { class: numeric.includes(i) ? "num" : null }, cell),
              ),
            ),
          )
        : el("tr", {}, el("td", { colspan: header.length }, "No data in this period.")),
    ),
  );
}

// ---- funnel --------------------------------------------------------------------------------

async function loadFunnel() {
  const offerId = offerSelect.value;
  if (!offerId) {
    paint("funnel", null);
    $("funnel-chart").replaceChildren(el("p", { class: "empty" }, "No offers yet."));
    table($("funnel-table"), ["Step", "Count", "Rate"], []);
    return;
  }
  const { from, to } = period();
  const f = await api("GET", `/analytics/offers/${offerId}/funnel${query({ from, to })}`);
  const title = offerSelect.selectedOptions[0].textContent;
  funnelRows = [
    ["Impressions", f.impressions, null],
    ["Check-ins", f.checkins, f.rates.checkin_per_impression],
    ["Verified check-ins", f.verified_checkins, f.rates.verified_per_checkin],
    ["Unlocks", f.unlocks, f.rates.unlock_per_verified],
    ["Redemptions", f.redemptions, f.rates.redemption_per_unlock],
  ];
  const chartRows = funnelRows.map(([label, value, rate]) => ({ label, value, note: rate === null ? null : fmt.percent(rate) }));
  chartRows.push({ label: "Held out", value: f.held_out, className: "chart-bar-alt" });
  const label = period().label;
  paint("funnel", () =>
    $("funnel-chart").replaceChildren(
      barChart(chartRows, { title: `Funnel of “${title}”, ${label}`, width: widthOf($("funnel-chart")) }),
      el("figcaption", {}, `“${title}”, ${label}`),
    ),
  );
  const rows = funnelRows.map(([label, value, rate]) => [label, fmt.number(value), rate === null ? "" : fmt.percent(rate)]);
  rows.push(["Held out (control group)", fmt.number(f.held_out), ""]);
  rows.push(["New / returning visitors", `${fmt.number(f.visitors.new)} / ${fmt.number(f.visitors.returning)}`, ""]);
  const ttr = f.time_to_redeem_s;
  rows.push(["Time to redeem (median, p90)", ttr.median === null ? "–" : `${minutes(ttr.median)}, ${minutes(ttr.p90)}`, ""]);
  funnelRows.push(["Held out", f.held_out, null], ["New visitors", f.visitors.new, null], ["Returning visitors", f.visitors.returning, null]);
  table($("funnel-table"), ["Step", "Count", "Rate"], rows, { numeric: [1, 2] });
}

function minutes(seconds) {
  if (seconds === null || seconds === undefined) return "–";
  return seconds < 90 ? `${Math.round(seconds)} s` : seconds < 5400 ? `${Math.round(seconds / 60)} min` : `${(seconds / 3600).toFixed(1)} h`;
}

// ---- lift ----------------------------------------------------------------------------------

async function loadLift() {
  const box = $("lift");
  const offerId = offerSelect.value;
  const offer = health.find((o) => o.offer_id === offerId);
  if (!offerId) {
    box.replaceChildren();
    return;
  }
  const lift = await api("GET", `/analytics/offers/${offerId}/lift`);
  const points = (v) => `${v > 0 ? "+" : ""}${(v * 100).toFixed(1)} pts`;
  const parts = [];
  let liftFigure = null;
  if (!lift.holdout_pct) {
    parts.push(el("p", {}, `“${offer?.title ?? "This offer"}” has no holdout, so its lift cannot be measured. Give an offer a holdout (in its form) to compare customers who get it with customers who do not.`));
  } else if (lift.lift === null) {
    parts.push(
      el("p", {}, `Not enough finished ${lift.window_days}-day windows yet: ${fmt.number(lift.treatment.users)} treated and ${fmt.number(lift.control.users)} held-out customers so far, of whom ${fmt.number(lift.treatment.pending + lift.control.pending)} are still inside their window.`),
    );
  } else {
    const [low, high] = lift.ci95;
    const verdict = low > 0 ? "The offer brings customers back: the whole interval is above zero." : high < 0 ? "Customers who got the offer came back less: the whole interval is below zero." : "The interval includes zero: no effect is shown yet.";
    liftFigure = el("figure", { class: "chart" });
    const figure = liftFigure;
    liftFigure.paint = () =>
      figure.replaceChildren(intervalChart({ estimate: lift.lift, low, high }, { title: "Lift with its 95% interval", format: points, width: Math.min(640, widthOf(box)) }));
    parts.push(
      el("p", { class: "lead" }, `Lift ${points(lift.lift)} in the ${lift.window_days}-day return rate (95% interval ${points(low)} to ${points(high)}). ${verdict}`),
      liftFigure,
    );
  }
  const t = el("table", { class: "data" }, el("caption", { class: "visually-hidden" }, "Treatment and control groups"));
  table(
    t,
    ["Group", "Customers", "Still in window", "Window ended", "Came back", "Return rate"],
    [lift.treatment, lift.control].map((g, i) => [
      i === 0 ? "Got the offer (treatment)" : `Held out (control, ${lift.holdout_pct}%)`,
      fmt.number(g.users),
      fmt.number(g.pending),
      fmt.number(g.measured),
      fmt.number(g.returned),
      fmt.percent(g.return_rate),
    ]),
    { numeric: [1, 2, 3, 4, 5] },
  );
  if (lift.holdout_pct) {
    parts.push(
      el("div", { class: "table-scroll", role: "region", "aria-label": "Treatment and control groups", tabindex: "0" }, t),
      el("p", { class: "hint" }, `Method: ${lift.method}. A customer's group is fixed at their first eligible visit; the return rate counts them once their ${lift.window_days}-day window has ended.`),
    );
  }
  box.replaceChildren(...parts);
  box.querySelectorAll(".table-scroll").forEach(showWhenScrolls);
  paint("lift", liftFigure?.paint);
}

// ---- redemptions over time and by venue ----------------------------------------------------

function days(fromIso, rows, toIso) {
  // Fill days without redemptions with zeros, so the time axis is even.
  const counts = new Map(rows.map((r) => [r.day, r.redemptions]));
  const first = fromIso ? fromIso.slice(0, 10) : rows[0]?.day;
  if (!first) return [];
  const out = [];
  const end = (toIso ? new Date(new Date(toIso).getTime() - 1) : new Date()).toISOString().slice(0, 10);
  const last = rows.length && rows.at(-1).day > end ? rows.at(-1).day : end;
  for (let d = new Date(`${first}T00:00:00Z`); d.toISOString().slice(0, 10) <= last; d.setUTCDate(d.getUTCDate() + 1)) {
    const day = d.toISOString().slice(0, 10);
    out.push({ label: day, short: new Date(`${day}T00:00:00Z`).toLocaleDateString("en-GB", { day: "numeric", month: "short", timeZone: "UTC" }), value: counts.get(day) || 0 });
  }
  return out;
}

async function loadRedemptions() {
  const { from, to } = period();
  const label = `${period().label}, ${venueLabel()}`;
  const venue_id = venueId();
  const [byDay, byVenue] = await Promise.all([
    api("GET", `/analytics/redemptions${query({ group_by: "day", from, to, venue_id })}`),
    api("GET", `/analytics/redemptions${query({ group_by: "venue", from, to, venue_id })}`),
  ]);
  const series = days(from, byDay.rows, to);
  paint("time", () =>
    $("time-chart").replaceChildren(
      columnChart(series, { title: `Redemptions per day, ${label}`, width: widthOf($("time-chart")) }),
      el("figcaption", {}, `Redemptions per day (local date at the venue), ${label}`),
    ),
  );
  table($("time-table"), ["Day", "Redemptions"], series.map((r) => [r.label, fmt.number(r.value)]), { numeric: [1] });
  $("time-csv").href = `/dashboard/api/analytics/redemptions${query({ group_by: "day", from, to, venue_id, format: "csv" })}`;

  const venues = byVenue.rows.slice().sort((a, b) => b.redemptions - a.redemptions);
  paint("venues", () =>
    $("venue-chart").replaceChildren(
      barChart(venues.slice(0, 12).map((r) => ({ label: labelOf(r.venue_id, r.venue_name), value: r.redemptions })), { title: `Redemptions by venue, ${label}`, width: widthOf($("venue-chart")) }),
      el("figcaption", {}, venues.length > 12 ? `The 12 busiest of ${venues.length} venues, ${label}` : `By venue, ${label}`),
    ),
  );
  table($("venue-table"), ["Venue", "Redemptions"], venues.map((r) => [labelOf(r.venue_id, r.venue_name), fmt.number(r.redemptions)]), { numeric: [1] });
  $("venue-csv").href = `/dashboard/api/analytics/redemptions${query({ group_by: "venue", from, to, venue_id, format: "csv" })}`;
}

// ---- health and leaks ------------------------------------------------------------------------

function renderHealth() {
  const rows = health.map((o) => [
    o.title,
    o.status,
    fmt.number(o.unlocks),
    fmt.number(o.redemptions),
    fmt.number(o.checkins),
    fmt.percent(o.turned_away_rate),
    o.flags.length ? el("ul", { class: "flags" }, o.flags.map((f) => el("li", {}, el("strong", {}, f.code.replaceAll("_", " ")), `: ${f.detail}`))) : el("span", { class: "ok" }, "Healthy"),
  ]);
  table($("health-table"), ["Offer", "Status", "Unlocks", "Redemptions", "Check-ins", "People turned away", "Flags"], rows, { numeric: [2, 3, 4, 5] });
}

const OUTCOMES = {
  already_redeemed: "Already redeemed",
  expired: "Expired",
  unknown: "Unknown code",
  wrong_venue: "Wrong venue",
};

async function loadLeaks() {
  const { from, to, label } = period();
  const r = await api("GET", `/analytics/leaks${query({ from, to })}`);
  leakRows = [
    ["Redemptions", r.redemptions],
    ["Backed by a verified check-in", r.backed_by_verified_checkin],
    ["Share backed", r.backed_share],
    ...Object.entries(r.refused_attempts).map(([k, v]) => [`Refused: ${OUTCOMES[k] || k}`, v]),
    ["This merchant's codes tried by other merchants", r.codes_tried_by_other_merchants],
    [`Redeemed within ${r.suspicious.fast_seconds} s of the unlock`, r.suspicious.fast],
    [`Redeemed over ${fmt.number(r.suspicious.far_m)} m from where it was unlocked`, r.suspicious.far],
    ...Object.entries(r.rejected_checkins).map(([k, v]) => [`Rejected check-ins: ${k}`, v]),
  ];
  const summary = el("table", { class: "data" }, el("caption", {}, `Exclusivity, ${label}`));
  table(
    summary,
    ["Measure", "Count"],
    [
      ["Redemptions", fmt.number(r.redemptions)],
      ["Backed by a verified check-in", `${fmt.number(r.backed_by_verified_checkin)} (${fmt.percent(r.backed_share)})`],
      ["Codes tried by other merchants", fmt.number(r.codes_tried_by_other_merchants)],
      [`Redeemed within ${r.suspicious.fast_seconds} s of the unlock`, fmt.number(r.suspicious.fast)],
      [`Redeemed over ${fmt.number(r.suspicious.far_m)} m from the unlock`, fmt.number(r.suspicious.far)],
      ...Object.entries(r.refused_attempts).map(([k, v]) => [`Refused at the till: ${OUTCOMES[k] || k}`, fmt.number(v)]),
    ],
    { numeric: [1] },
  );
  summary.querySelector("caption").className = "table-caption";
  const reasons = Object.entries(r.rejected_checkins).sort((a, b) => b[1] - a[1]);
  const figure = reasons.length
    ? el("figure", { class: "chart", id: "rejections-chart" })
    : el("p", { class: "empty" }, `No rejected check-ins at this merchant's venues in ${label}.`);
  $("leaks").replaceChildren(summary, figure);
  // Drawn once the figure is in its column: the chart takes the column's own width.
  paint("rejections", reasons.length ? () =>
    figure.replaceChildren(
      barChart(reasons.map(([code, count]) => ({ label: code.replaceAll("_", " "), value: count, className: "chart-bar-warn" })), {
        title: `Rejected check-ins by reason, ${label}`,
        width: widthOf(figure),
      }),
      el("figcaption", {}, `Rejected check-ins at this merchant's venues by reason, ${label}`),
    ) : null);
}

// ---- the owner's summary and offers side by side ---------------------------------------------

const MEASURES = [
  { key: "visitors", label: "Visitors", kind: "count" },
  { key: "verified_checkins", label: "Verified check-ins", kind: "count" },
  { key: "unlocks", label: "Unlocks", kind: "count" },
  { key: "redemptions", label: "Redemptions", kind: "count" },
  { key: "redemption_rate", label: "Redemption rate", kind: "rate" },
  { key: "lift", label: "Lift", kind: "points" },
  // Only when an offer states its value per redemption (the offer form's optional field).
  { key: "cost_per_verified_visit", label: "Cost per verified visit", kind: "money", optional: true },
];
const points = (v, sign = true) => (v === null || v === undefined ? "–" : `${sign && v > 0 ? "+" : ""}${(v * 100).toFixed(1)} pts`);

function valueText(kind, value) {
  if (kind === "rate") return fmt.percent(value);
  if (kind === "money") return fmt.number(value, 2);
  if (kind === "points") return points(value);
  return fmt.number(value);
}

/** The change from the previous period in words: "Up 3 (+20.0%) from 15". */
function changeWords(kind, current, previous, change) {
  if (current === null || previous === null) return { text: "Nothing to compare with before", trend: "" };
  if (!change.change) return { text: `Same as before (${valueText(kind, previous)})`, trend: "" };
  const trend = change.change > 0 ? "up" : "down";
  const amount = kind === "count" ? fmt.number(Math.abs(change.change)) : kind === "money" ? fmt.number(Math.abs(change.change), 2) : points(Math.abs(change.change), false);
  const relative = kind === "count" && change.change_rate !== null ? ` (${change.change_rate > 0 ? "+" : "−"}${fmt.percent(Math.abs(change.change_rate))})` : "";
  // A cost that goes up is not good news: no colour for money.
  return { text: `${trend === "up" ? "Up" : "Down"} ${amount}${relative} from ${valueText(kind, previous)}`, trend: kind === "money" ? "" : trend };
}

function renderSummary() {
  const { current, previous, changes } = summary;
  const p = period();
  const before = `${fmt.dateTime(summary.previous_from)} – ${fmt.dateTime(summary.previous_to)}`;
  $("summary-note").textContent = `${p.label[0].toUpperCase()}${p.label.slice(1)}, ${venueLabel()}, compared with the ${fmt.number(p.days)} days before (${before}).`;
  const shown = MEASURES.filter((m) => !m.optional || current.cost !== null || previous.cost !== null);
  const tiles = shown.map(({ key, label, kind }) => {
    const words = changeWords(kind, current[key], previous[key], changes[key]);
    const extra = [];
    if (key === "cost_per_verified_visit" && current.cost !== null) extra.push(`${fmt.number(current.cost, 2)} in all, over ${fmt.number(current.verified_checkins)} verified visits`);
    if (key === "redemption_rate" && current.unlocks) extra.push(`${fmt.number(current.unlocks_redeemed)} of ${fmt.number(current.unlocks)} unlocks redeemed`);
    if (key === "lift") {
      if (current.ci95) extra.push(`95% interval ${points(current.ci95[0])} to ${points(current.ci95[1])}`);
      else extra.push(current.treatment.users ? `${fmt.number(current.treatment.pending + current.control.pending)} customers still inside their ${summary.lift_window_days}-day window` : "Needs an offer with a holdout");
    }
    return el(
      "div",
      { class: "kpi", "data-measure": key },
      el("dt", {}, label),
      el("dd", { class: "kpi-value" }, valueText(kind, current[key])),
      el("dd", { class: `kpi-change ${words.trend}` }, words.text),
      extra.map((text) => el("dd", { class: "kpi-note" }, text)),
    );
  });
  $("kpis").replaceChildren(...tiles);
  $("kpis").setAttribute("aria-busy", "false");
}

const COMPARE_ROWS = [
  ["Status", (o) => STATUS_WORDS[o.status] || o.status],
  ["Visitors (unlocked it)", (o) => fmt.number(o.current.visitors)],
  ["Unlocks", (o) => fmt.number(o.current.unlocks)],
  ["Redemptions", (o) => fmt.number(o.current.redemptions)],
  ["Change in redemptions", (o) => changeWords("count", o.current.redemptions, o.previous.redemptions, o.changes.redemptions).text],
  ["Redemption rate", (o) => fmt.percent(o.current.redemption_rate)],
  ["Lift", (o) => (o.holdout_pct ? points(o.current.lift) : "No holdout")],
  ["Cost of its redemptions", (o) => (o.value_per_redemption === null ? "No value set" : fmt.number(o.current.cost, 2))],
];
const STATUS_WORDS = { draft: "Draft", active: "Active", paused: "Paused", ended: "Ended" };

function renderCompare() {
  const offers = summary.offers;
  if (chosen === null) {
    // First look: the three offers with the most redemptions in the period, live ones first.
    const order = { active: 0, paused: 1, ended: 2, draft: 3 };
    chosen = new Set(
      offers
        .slice()
        .sort((a, b) => b.current.redemptions - a.current.redemptions || order[a.status] - order[b.status] || a.title.localeCompare(b.title))
        .slice(0, 3)
        .map((o) => o.offer_id),
    );
  }
  $("compare-offers").replaceChildren(
    ...(offers.length
      ? offers.map((o) =>
          el(
            "label",
            { class: "check" },
            el("input", { type: "checkbox", value: o.offer_id, checked: chosen.has(o.offer_id), "data-compare": o.offer_id }),
            ` ${o.title}`,
          ),
        )
      : [el("p", { class: "empty" }, "No offers yet.")]),
  );
  drawCompareTable();
}

function drawCompareTable() {
  const shown = summary.offers.filter((o) => chosen.has(o.offer_id));
  const t = $("compare-table");
  const caption = t.querySelector("caption");
  caption.textContent = `Chosen offers side by side, ${period().label}, ${venueLabel()}`;
  if (!shown.length) {
    t.replaceChildren(caption, el("tbody", {}, el("tr", {}, el("td", {}, "Choose offers to compare."))));
    return;
  }
  t.replaceChildren(
    caption,
    el(
      "thead",
      {},
      el(
        "tr",
        {},
        el("th", { scope: "col" }, "Measure"),
        shown.map((o) =>
          el(
            "th",
            { scope: "col", class: "num", "data-offer": o.offer_id },
            o.title,
            el("br"),
            el("a", { href: `/dashboard/analytics?offer=${o.offer_id}#funnel-title`, "data-funnel": o.offer_id, "aria-label": `Funnel of ${o.title}` }, "Funnel"),
          ),
        ),
      ),
    ),
    el(
      "tbody",
      {},
      COMPARE_ROWS.map(([label, cell]) => el("tr", {}, el("th", { scope: "row" }, label), shown.map((o) => el("td", { class: "num" }, cell(o))))),
    ),
  );
}

async function loadSummary() {
  const { from, to } = period();
  $("kpis").setAttribute("aria-busy", "true");
  summary = await api("GET", `/analytics/summary${query({ from, to, venue_id: venueId() })}`);
  renderSummary();
  renderCompare();
}

async function showFunnelOf(offerId) {
  if (![...offerSelect.options].some((o) => o.value === offerId)) return;
  offerSelect.value = offerId;
  await loadOfferParts();
  $("funnel-title").scrollIntoView({ block: "start" });
  $("funnel-title").focus({ preventScroll: true });
}

// ---- start ---------------------------------------------------------------------------------

async function loadOfferParts() {
  await Promise.all([loadFunnel(), loadLift()]);
}

function datesProblem() {
  const error = $("dates-error");
  const bad = periodSelect.value === "custom" && period() === null;
  const first = $("from-date").value;
  const last = $("to-date").value;
  error.textContent = !bad ? "" : !first || !last ? "Choose the first and the last day." : "The last day must not be before the first.";
  error.hidden = !bad;
  $("from-date").setAttribute("aria-invalid", String(bad && (!first || last < first)));
  $("to-date").setAttribute("aria-invalid", String(bad && (!last || last < first)));
  return bad;
}

async function loadAll() {
  if (datesProblem()) {
    announce("Choose the dates to show.", { kind: "error" });
    return;
  }
  announce("Loading…");
  try {
    await Promise.all([loadSummary(), loadOfferParts(), loadRedemptions(), loadLeaks()]);
    announce(`Showing ${period().label}, ${venueLabel()}.`);
  } catch (problem) {
    announce(`Some figures could not be loaded: ${problem.detail || problem.message}`, { kind: "error" });
  }
}

async function start() {
  document.querySelectorAll(".table-scroll").forEach(showWhenScrolls);
  // The merchant-wide figures load while the offer list (from the health report) arrives.
  announce("Loading…");
  const merchantWide = Promise.all([loadSummary(), loadRedemptions(), loadLeaks()]);
  // Awaited below; if the health report fails first (the session ended), its failure must not
  // surface as an unhandled rejection.
  merchantWide.catch(() => {});
  health = (await api("GET", "/analytics/offers/health")).offers;
  const order = { active: 0, paused: 1, ended: 2, draft: 3 };
  const offers = health.slice().sort((a, b) => order[a.status] - order[b.status] || b.unlocks - a.unlocks || a.title.localeCompare(b.title));
  offerSelect.replaceChildren(...offers.map((o) => el("option", { value: o.offer_id }, `${o.title} (${o.status})`)));
  // An offer card's "Funnel" link names its offer.
  const asked = new URLSearchParams(location.search).get("offer");
  if (asked && offers.some((o) => o.offer_id === asked)) offerSelect.value = asked;
  renderHealth();
  try {
    await Promise.all([loadOfferParts(), merchantWide]);
    announce(`Showing ${period().label}, ${venueLabel()}.`);
  } catch (problem) {
    announce(`Some figures could not be loaded: ${problem.detail || problem.message}`, { kind: "error" });
  }
  if (asked && offerSelect.value === asked) {
    $("funnel-title").scrollIntoView({ block: "start" });
    $("funnel-title").focus({ preventScroll: true });
  }
  markReady();
}

periodSelect.addEventListener("change", () => {
  const custom = periodSelect.value === "custom";
  $("date-range").hidden = !custom;
  if (custom) {
    // Start from the period shown so far, as dates.
    const day = (d) => `${d.getFullYear()}-${String(d.getMonth() + 1).padStart(2, "0")}-${String(d.getDate()).padStart(2, "0")}`;
    if (!$("from-date").value) $("from-date").value = day(new Date(Date.now() - 29 * 86400000));
    if (!$("to-date").value) $("to-date").value = day(new Date());
    $("from-date").focus();
    return; // shown with the Show button
  }
  $("dates-error").hidden = true;
  loadAll();
});
$("filters").addEventListener("submit", (event) => {
  event.preventDefault();
  loadAll();
});
venueSelect.addEventListener("change", () => {
  if (periodSelect.value === "custom" && datesProblem()) return;
  loadAll();
});
$("compare-offers").addEventListener("change", (event) => {
  const id = event.target.dataset.compare;
  if (!id) return;
  if (event.target.checked) chosen.add(id);
  else chosen.delete(id);
  drawCompareTable();
});
$("compare-all").addEventListener("click", () => {
  chosen = new Set(summary.offers.map((o) => o.offer_id));
  renderCompare();
});
$("compare-none").addEventListener("click", () => {
  chosen = new Set();
  renderCompare();
});
$("compare-table").addEventListener("click", (event) => {
  const link = event.target.closest("a[data-funnel]");
  if (!link) return;
  event.preventDefault();
  showFunnelOf(link.dataset.funnel).catch((problem) => announce(`The offer's figures could not be loaded: ${problem.detail}`, { kind: "error" }));
});
$("compare-csv").addEventListener("click", () =>
  downloadCsv(
    "offers-compared.csv",
    ["offer_id", "title", "status", "visitors", "unlocks", "unlocks_redeemed", "redemptions", "previous_redemptions", "redemption_rate", "lift"],
    summary.offers.map((o) => [o.offer_id, o.title, o.status, o.current.visitors, o.current.unlocks, o.current.unlocks_redeemed, o.current.redemptions, o.previous.redemptions, o.current.redemption_rate ?? "", o.current.lift ?? ""]),
  ),
);
offerSelect.addEventListener("change", () =>
  loadOfferParts().catch((problem) => announce(`The offer's figures could not be loaded: ${problem.detail}`, { kind: "error" })),
);
$("funnel-csv").addEventListener("click", () =>
  downloadCsv(`funnel-${offerSelect.value}.csv`, ["step", "count", "rate_from_previous"], funnelRows.map(([s, c, r]) => [s, c, r ?? ""])),
);
$("health-csv").addEventListener("click", () =>
  downloadCsv(
    "offer-health.csv",
    ["offer_id", "title", "status", "unlocks", "redemptions", "checkins", "rejected_checkins", "rejection_rate", "checkin_users", "turned_away_users", "turned_away_rate", "flags"],
    health.map((o) => [o.offer_id, o.title, o.status, o.unlocks, o.redemptions, o.checkins, o.rejected_checkins, o.rejection_rate ?? "", o.checkin_users, o.turned_away_users, o.turned_away_rate ?? "", o.flags.map((f) => f.code).join(" ")]),
  ),
);
$("leaks-csv").addEventListener("click", () => downloadCsv("leaks.csv", ["measure", "value"], leakRows));
start().catch((problem) => announce(`Analytics could not be loaded: ${problem.detail || problem.message}`, { kind: "error" }));
