// The analytics page's "Answering feedback" section: the responsiveness report
// (GET /v1/analytics/responsiveness) for each of the last 8 weeks, by the week the feedback was
// given, and the public benchmarks of the last 7 and 30 days.

import { api, el, fmt } from "./common.js";

const WEEKS = 8;
const DAY_MS = 86400 * 1000;
const table = document.getElementById("responsiveness-table");
const summary = document.getElementById("responsiveness-summary");

function duration(seconds) {
  if (seconds === null || seconds === undefined) return "–";
  return fmt.relative(new Date(Date.now() + seconds * 1000).toISOString()).replace("in ", "");
}

async function start() {
  const now = Date.now();
  const weeks = Array.from({ length: WEEKS }, (_, i) => {
    const to = new Date(now - i * 7 * DAY_MS);
    const from = new Date(now - (i + 1) * 7 * DAY_MS);
    return { from, to };
  }).reverse();
  const reports = await Promise.all(
    weeks.map(({ from, to }) => api("GET", `/analytics/responsiveness?from=${encodeURIComponent(from.toISOString())}&to=${encodeURIComponent(to.toISOString())}`)),
  );
  const header = ["Week from", "Feedback", "Answered", "Pending", "Overdue", "Response rate", "Within 24 h", "First reply (median)", "Mean rating"];
  table.append(
    el("thead", {}, el("tr", {}, header.map((h) => el("th", { scope: "col" }, h)))),
    el(
      "tbody",
      {},
      reports.map((r, i) =>
        el(
          "tr",
          {},
          el("th", { scope: "row" }, weeks[i].from.toLocaleDateString("en-GB", { day: "numeric", month: "short" })),
          el("td", {}, fmt.number(r.feedback)),
          el("td", {}, fmt.number(r.answered)),
          el("td", {}, fmt.number(r.pending)),
          el("td", {}, fmt.number(r.overdue)),
          el("td", {}, fmt.percent(r.response_rate)),
          el("td", {}, fmt.percent(r.within_target_rate)),
          el("td", {}, duration(r.first_response_s.median)),
          el("td", {}, r.rating.mean === null ? "–" : `${fmt.number(r.rating.mean, 1)} ★`),
        ),
      ),
    ),
  );
  const { facebook_very_responsive: fb, yelp_response_time: yelp } = reports[reports.length - 1].benchmarks;
  summary.replaceChildren(
    el(
      "span",
      { id: "facebook-benchmark" },
      fb.meets
        ? "Meets Facebook's “very responsive” mark over the last 7 days (90% answered, within 15 minutes on average). "
        : `Below Facebook's “very responsive” mark over the last 7 days: ${fmt.percent(fb.response_rate)} answered (90% needed), ${duration(fb.mean_first_response_s)} on average (15 min needed). `,
    ),
    el("span", { id: "yelp-benchmark" }, `Median first reply over 30 days, as Yelp shows it: ${duration(yelp.median_first_response_s)}.`),
  );
}

start().catch((problem) => {
  summary.replaceChildren(el("span", { class: "status status-error" }, `The feedback figures could not be loaded: ${problem.detail || problem.message}`));
});
