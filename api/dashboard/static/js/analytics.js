// Analytics: the funnel, lift with its interval, redemptions over time and by venue, offer
// health flags and the leak report, as charts and tables, with CSV downloads. Every number comes
// from the API's /v1/analytics calls (computed in SQL from the recorded events).

import { announce, api, downloadCsv, el, fmt, markReady, showWhenScrolls } from "./common.js";
import { barChart, columnChart, intervalChart } from "./charts.js";

const $ = (id) => document.getElementById(id);
const periodSelect = $("period");
const offerSelect = $("offer");
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

function period() {
  const days = periodSelect.value;
  if (!days) return { from: null, label: "all time" };
  const from = new Date(Date.now() - Number(days) * 86400000);
  return { from: from.toISOString(), days: Number(days), label: `the last ${days} days` };
}

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
  const f = await api("GET", `/analytics/offers/${offerId}/funnel${query({ from: period().from })}`);
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

function days(fromIso, rows) {
  // Fill days without redemptions with zeros, so the time axis is even.
  const counts = new Map(rows.map((r) => [r.day, r.redemptions]));
  const first = fromIso ? fromIso.slice(0, 10) : rows[0]?.day;
  if (!first) return [];
  const out = [];
  const end = new Date().toISOString().slice(0, 10);
  const last = rows.length && rows.at(-1).day > end ? rows.at(-1).day : end;
  for (let d = new Date(`${first}T00:00:00Z`); d.toISOString().slice(0, 10) <= last; d.setUTCDate(d.getUTCDate() + 1)) {
    const day = d.toISOString().slice(0, 10);
    out.push({ label: day, short: new Date(`${day}T00:00:00Z`).toLocaleDateString("en-GB", { day: "numeric", month: "short", timeZone: "UTC" }), value: counts.get(day) || 0 });
  }
  return out;
}

async function loadRedemptions() {
  const { from, label } = period();
  const [byDay, byVenue] = await Promise.all([
    api("GET", `/analytics/redemptions${query({ group_by: "day", from })}`),
    api("GET", `/analytics/redemptions${query({ group_by: "venue", from })}`),
  ]);
  const series = days(from, byDay.rows);
  paint("time", () =>
    $("time-chart").replaceChildren(
      columnChart(series, { title: `Redemptions per day, ${label}`, width: widthOf($("time-chart")) }),
      el("figcaption", {}, `Redemptions per day (local date at the venue), ${label}`),
    ),
  );
  table($("time-table"), ["Day", "Redemptions"], series.map((r) => [r.label, fmt.number(r.value)]), { numeric: [1] });
  $("time-csv").href = `/dashboard/api/analytics/redemptions${query({ group_by: "day", from, format: "csv" })}`;

  const venues = byVenue.rows.slice().sort((a, b) => b.redemptions - a.redemptions);
  paint("venues", () =>
    $("venue-chart").replaceChildren(
      barChart(venues.slice(0, 12).map((r) => ({ label: r.venue_name, value: r.redemptions })), { title: `Redemptions by venue, ${label}`, width: widthOf($("venue-chart")) }),
      el("figcaption", {}, venues.length > 12 ? `The 12 busiest of ${venues.length} venues, ${label}` : `By venue, ${label}`),
    ),
  );
  table($("venue-table"), ["Venue", "Redemptions"], venues.map((r) => [r.venue_name, fmt.number(r.redemptions)]), { numeric: [1] });
  $("venue-csv").href = `/dashboard/api/analytics/redemptions${query({ group_by: "venue", from, format: "csv" })}`;
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
  const { from, label } = period();
  const r = await api("GET", `/analytics/leaks${query({ from })}`);
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

// ---- start ---------------------------------------------------------------------------------

async function loadOfferParts() {
  await Promise.all([loadFunnel(), loadLift()]);
}

async function loadAll() {
  announce("Loading…");
  try {
    await Promise.all([loadOfferParts(), loadRedemptions(), loadLeaks()]);
    announce(`Showing ${period().label}.`);
  } catch (problem) {
    announce(`Some figures could not be loaded: ${problem.detail || problem.message}`, { kind: "error" });
  }
}

async function start() {
  document.querySelectorAll(".table-scroll").forEach(showWhenScrolls);
  // The merchant-wide figures load while the offer list (from the health report) arrives.
  announce("Loading…");
  const merchantWide = Promise.all([loadRedemptions(), loadLeaks()]);
  // Awaited below; if the health report fails first (the session ended), its failure must not
  // surface as an unhandled rejection.
  merchantWide.catch(() => {});
  health = (await api("GET", "/analytics/offers/health")).offers;
  const order = { active: 0, paused: 1, ended: 2, draft: 3 };
  const offers = health.slice().sort((a, b) => order[a.status] - order[b.status] || b.unlocks - a.unlocks || a.title.localeCompare(b.title));
  offerSelect.replaceChildren(...offers.map((o) => el("option", { value: o.offer_id }, `${o.title} (${o.status})`)));
  renderHealth();
  try {
    await Promise.all([loadOfferParts(), merchantWide]);
    announce(`Showing ${period().label}.`);
  } catch (problem) {
    announce(`Some figures could not be loaded: ${problem.detail || problem.message}`, { kind: "error" });
  }
  markReady();
}

periodSelect.addEventListener("change", loadAll);
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
