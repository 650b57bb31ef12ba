// Copy the dashboard's front-end packages (pinned by package-lock.json) into the Flask app's
// static files, and build the offline basemap. Run by scripts/dashboard.sh after `npm ci`.
//
//   node build.mjs           write api/dashboard/static/{vendor,basemap} (only files that differ)
//   node build.mjs --check   write nothing; exit 1 if any output is missing or differs
//
// The outputs are committed, so the app serves its dashboard on machines without Node.js (the
// Docker image); `--check` keeps them equal to what the lock file pins. The output is
// deterministic: the same inputs give byte-identical files.

import { mkdirSync, readFileSync, writeFileSync, existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { createRequire } from "node:module";

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, "..");
const staticDir = join(root, "api", "dashboard", "static");
const modules = join(here, "node_modules");
const require = createRequire(import.meta.url);
const check = process.argv.includes("--check");

const outputs = new Map(); // path relative to static/ -> Buffer

function copy(from, to) {
  outputs.set(to, readFileSync(join(modules, from)));
}

function version(pkg) {
  return JSON.parse(readFileSync(join(modules, pkg, "package.json"), "utf8")).version;
}

// ---- vendored packages: their distribution files, unchanged, with their licences -----------

copy("leaflet/dist/leaflet.js", "vendor/leaflet/leaflet.js");
copy("leaflet/dist/leaflet.css", "vendor/leaflet/leaflet.css");
for (const image of ["layers.png", "layers-2x.png", "marker-icon.png", "marker-icon-2x.png", "marker-shadow.png"]) {
  copy(`leaflet/dist/images/${image}`, `vendor/leaflet/images/${image}`);
}
copy("leaflet/LICENSE", "vendor/leaflet/LICENSE");
copy("@geoman-io/leaflet-geoman-free/dist/leaflet-geoman.min.js", "vendor/geoman/leaflet-geoman.min.js");
copy("@geoman-io/leaflet-geoman-free/dist/leaflet-geoman.css", "vendor/geoman/leaflet-geoman.css");
copy("@geoman-io/leaflet-geoman-free/LICENSE", "vendor/geoman/LICENSE");
copy("qrcode-generator/dist/qrcode.js", "vendor/qrcode-generator/qrcode.js");
// qrcode-generator carries its MIT licence in the header of qrcode.js.
// The till's camera scanner: @zxing/browser's UMD build, which bundles @zxing/library (the
// decoder, Apache-2.0) and defines the global `ZXingBrowser`. Loaded only when staff turn the
// camera on (static/js/scanner.js).
copy("@zxing/browser/umd/zxing-browser.min.js", "vendor/zxing/zxing-browser.min.js");
copy("@zxing/browser/LICENSE", "vendor/zxing/LICENSE-browser");
copy("@zxing/library/LICENSE", "vendor/zxing/LICENSE-library");

const versions = {
  leaflet: version("leaflet"),
  "@geoman-io/leaflet-geoman-free": version("@geoman-io/leaflet-geoman-free"),
  "qrcode-generator": version("qrcode-generator"),
  "@zxing/browser": version("@zxing/browser"),
  "@zxing/library": version("@zxing/library"),
  "world-atlas": version("world-atlas"),
  "topojson-client": version("topojson-client"),
};
outputs.set("vendor/VERSIONS.json", Buffer.from(JSON.stringify(versions, null, 2) + "\n"));

// ---- basemap: country outlines (Natural Earth 1:110m, public domain, via world-atlas) --------

const { feature } = require("topojson-client");
const round = (digits) => {
  const f = 10 ** digits;
  const walk = (c) => (typeof c[0] === "number" ? [Math.round(c[0] * f) / f, Math.round(c[1] * f) / f] : c.map(walk));
  return walk;
};
const atlas = JSON.parse(readFileSync(join(modules, "world-atlas", "countries-110m.json"), "utf8"));
const countries = feature(atlas, atlas.objects.countries);
const round2 = round(2);
const countriesOut = {
  type: "FeatureCollection",
  attribution: "Country outlines: Natural Earth 1:110m (public domain), via world-atlas " + versions["world-atlas"],
  features: countries.features.map((f) => ({
    type: "Feature",
    properties: { name: f.properties.name },
    geometry: { type: f.geometry.type, coordinates: round2(f.geometry.coordinates) },
  })),
};
copy("world-atlas/LICENSE", "basemap/world-atlas-LICENSE");
outputs.set("basemap/countries.geojson", Buffer.from(JSON.stringify(countriesOut) + "\n"));

// ---- basemap: the demo city's walking network (OpenStreetMap, ODbL) --------------------------
// helsinki.json has nodes ([lon, lat]) and edges ([a, b, street name index]). Edges of the same
// street are chained into lines through nodes where that street does not branch, which keeps the
// file small; unnamed ways (footpaths) are marked so the map can draw them thinner.

const city = JSON.parse(readFileSync(join(root, "mobile_stub", "data", "helsinki.json"), "utf8"));
const { nodes, edges, names } = city.streets;
const byName = new Map();
for (const [a, b, n] of edges) {
  if (!byName.has(n)) byName.set(n, []);
  byName.get(n).push([a, b]);
}
const features = [];
for (const n of [...byName.keys()].sort((x, y) => x - y)) {
  const group = byName.get(n);
  const adjacent = new Map(); // node -> [edge index]
  group.forEach(([a, b], i) => {
    for (const v of [a, b]) {
      if (!adjacent.has(v)) adjacent.set(v, []);
      adjacent.get(v).push(i);
    }
  });
  const used = new Array(group.length).fill(false);
  const lines = [];
  const walkFrom = (start, firstEdge) => {
    const line = [start];
    let at = start;
    let e = firstEdge;
    while (e !== undefined && !used[e]) {
      used[e] = true;
      const [a, b] = group[e];
      at = a === at ? b : a;
      line.push(at);
      const next = adjacent.get(at);
      e = next.length === 2 ? next.find((x) => !used[x]) : undefined;
    }
    return line;
  };
  // Start at ends and branch points first, then whatever is left (closed loops).
  const starts = [...adjacent.keys()].sort((x, y) => x - y);
  for (const pass of [(v) => adjacent.get(v).length !== 2, () => true]) {
    for (const v of starts) {
      if (!pass(v)) continue;
      for (const e of adjacent.get(v)) if (!used[e]) lines.push(walkFrom(v, e));
    }
  }
  features.push({
    type: "Feature",
    properties: { name: names[n] || null },
    geometry: { type: "MultiLineString", coordinates: lines.map((line) => line.map((v) => nodes[v])) },
  });
}
const streetsOut = {
  type: "FeatureCollection",
  attribution: city.attribution,
  bbox: city.bbox,
  features,
};
outputs.set("basemap/helsinki-streets.geojson", Buffer.from(JSON.stringify(streetsOut) + "\n"));

// ---- basemap: the demo city's buildings, place labels and addresses (OpenStreetMap, ODbL) -------
// helsinki-map.json is extracted once by mobile_stub/data/extract_map.py from the same OSM
// extract as helsinki.json. Buildings are drawn close in (with their name and address for the
// map's search); places label districts, squares and parks; addresses feed the offline search.

const cityMap = JSON.parse(readFileSync(join(root, "mobile_stub", "data", "helsinki-map.json"), "utf8"));
const buildingsOut = {
  type: "FeatureCollection",
  attribution: cityMap.attribution,
  bbox: cityMap.bbox,
  features: cityMap.buildings.map((b) => ({
    type: "Feature",
    properties: { name: b.name, address: b.address },
    geometry: b.geometry,
  })),
};
outputs.set("basemap/helsinki-buildings.geojson", Buffer.from(JSON.stringify(buildingsOut) + "\n"));
const placesOut = {
  attribution: cityMap.attribution,
  places: cityMap.places,
  // [label, lon, lat]: one point per address, for the search box.
  addresses: cityMap.addresses,
};
outputs.set("basemap/helsinki-places.json", Buffer.from(JSON.stringify(placesOut) + "\n"));

// ---- write or check ----------------------------------------------------------------------

let differ = 0;
for (const [relative, content] of [...outputs].sort(([a], [b]) => a.localeCompare(b))) {
  const target = join(staticDir, relative);
  const same = existsSync(target) && readFileSync(target).equals(content);
  if (same) continue;
  differ += 1;
  if (check) {
    console.error(`dashboard assets: ${relative} is ${existsSync(target) ? "out of date" : "missing"}`);
  } else {
    mkdirSync(dirname(target), { recursive: true });
    writeFileSync(target, content);
    console.error(`dashboard assets: wrote ${relative} (${content.length} bytes)`);
  }
}
if (check && differ) {
  console.error("dashboard assets differ from package-lock.json's packages: run scripts/dashboard.sh");
  process.exit(1);
}
