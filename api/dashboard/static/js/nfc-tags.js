// NFC tags: a venue's NTAG 424 DNA tags, registering one (its keys and URL are shown once, on a
// printable programming sheet) and removing one (its taps stop working at once).

import { announce, api, clearProblem, el, fmt, markReady, showProblem } from "./common.js";

const venue = document.getElementById("venue");
const list = document.getElementById("tags");
const none = document.getElementById("no-tags");
const form = document.getElementById("tag-form");
const sheet = document.getElementById("sheet");
const STORE = "checkin-offers.nfc.venue";

const text = (id, value) => {
  document.getElementById(id).textContent = value;
};

async function load() {
  const tags = (await api("GET", `/venues/${venue.value}/nfc-tags`)).nfc_tags;
  none.hidden = tags.length > 0;
  list.replaceChildren(
    ...tags.map((tag) =>
      el(
        "li",
        { "data-tag": tag.id },
        el(
          "div",
          { class: "item-main" },
          el("span", { class: "item-title" }, tag.label || "Tag", " ", el("span", { class: "mono" }, tag.uid)),
          el(
            "span",
            { class: "item-meta" },
            tag.last_tap_at
              ? `last tap ${fmt.relative(tag.last_tap_at)} (read counter ${tag.last_counter})`
              : "no tap yet",
            `; registered ${fmt.dateTime(tag.created_at)}`,
          ),
        ),
        el(
          "button",
          { type: "button", class: "danger", "aria-label": `Remove tag ${tag.uid}`, onclick: () => remove(tag) },
          "Remove",
        ),
      ),
    ),
  );
}

async function remove(tag) {
  if (!window.confirm(`Remove tag ${tag.uid}? Its taps stop working at once; to use it again, register it again and reprogram it.`)) return;
  try {
    await api("DELETE", `/nfc-tags/${tag.id}`);
  } catch (problem) {
    announce(problem.detail, { kind: "error" });
    return;
  }
  announce(`Removed tag ${tag.uid}.`, { kind: "success" });
  await load();
}

function showSheet(tag) {
  text("sheet-venue", venue.selectedOptions[0]?.textContent || "");
  text("sheet-tag", tag.label || "Tag");
  text("sheet-uid", tag.uid);
  text("sheet-meta", tag.sdm_meta_read_key);
  text("sheet-file", tag.sdm_file_read_key);
  text("sheet-url", tag.url_template);
  text("sheet-picc-offset", String(tag.picc_data_offset));
  text("sheet-cmac-offset", String(tag.cmac_offset));
  sheet.hidden = false;
  sheet.focus();
}

function hideSheet() {
  for (const id of ["sheet-meta", "sheet-file"]) text(id, "");
  sheet.hidden = true;
}

form?.addEventListener("submit", async (event) => {
  event.preventDefault();
  clearProblem(form);
  const body = { uid: form.uid.value.trim(), label: form.label.value.trim() || null };
  let tag;
  try {
    tag = await api("POST", `/venues/${venue.value}/nfc-tags`, body);
  } catch (problem) {
    showProblem(form, problem);
    return;
  }
  form.reset();
  announce(`Registered tag ${tag.uid}. Its keys are below, once.`, { kind: "success" });
  showSheet(tag);
  await load();
});

document.getElementById("print-sheet").addEventListener("click", () => window.print());
document.getElementById("close-sheet").addEventListener("click", hideSheet);

if (venue) {
  const remembered = localStorage.getItem(STORE);
  if (remembered && [...venue.options].some((o) => o.value === remembered)) venue.value = remembered;
  venue.addEventListener("change", async () => {
    localStorage.setItem(STORE, venue.value);
    hideSheet();
    await load();
  });
  load().then(markReady, (problem) => {
    announce(problem.detail, { kind: "error" });
    markReady();
  });
} else {
  markReady();
}
