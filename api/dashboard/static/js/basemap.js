// The offline basemap: no tile server, only vector data that ships with the project.
// Far out, the world's country outlines (Natural Earth 1:110m, public domain); close in, the
// demo city's streets and footways from OpenStreetMap (ODbL). Leaflet draws both as SVG paths.

/* global L */

const BASE = "/dashboard/static/basemap/";
const STREETS_FROM_ZOOM = 13;
const COUNTRIES_UNTIL_ZOOM = 12;

let countriesData;
let streetsData;

async function load(name) {
  const response = await fetch(BASE + name);
  if (!response.ok) throw new Error(`basemap ${name}: HTTP ${response.status}`);
  return response.json();
}

/** A Leaflet map in `container` with the offline basemap; resolves when the basemap is drawn. */
export async function createMap(container, { center = [60.1699, 24.9384], zoom = 15 } = {}) {
  const map = L.map(container, {
    center,
    zoom,
    minZoom: 2,
    maxZoom: 19,
    zoomSnap: 0.5,
    worldCopyJump: true,
    preferCanvas: false,
    keyboard: true,
    attributionControl: true,
  });
  map.attributionControl.setPrefix("Leaflet");
  map.createPane("basemap");
  map.getPane("basemap").style.zIndex = 250;
  map.getPane("basemap").style.pointerEvents = "none";

  streetsData = streetsData || (await load("helsinki-streets.geojson"));
  // The world's outlines are fetched the first time the map is zoomed out far enough to show them.
  const countries = L.geoJSON(null, {
    pane: "basemap",
    interactive: false,
    style: { color: "#8c8374", weight: 0.8, fillColor: "#f4f1ea", fillOpacity: 1 },
  });
  let countriesLoading = null;
  const loadCountries = () => {
    countriesLoading =
      countriesLoading ||
      (async () => {
        countriesData = countriesData || (await load("countries.geojson"));
        countries.addData(countriesData);
      })().catch(() => {
        countriesLoading = null; // try again on the next zoom
      });
    return countriesLoading;
  };
  const footways = L.geoJSON(
    { type: "FeatureCollection", features: streetsData.features.filter((f) => !f.properties.name) },
    { pane: "basemap", interactive: false, style: { color: "#b9b2a5", weight: 1.2, opacity: 0.9 } },
  );
  const streets = L.geoJSON(
    { type: "FeatureCollection", features: streetsData.features.filter((f) => f.properties.name) },
    {
      pane: "basemap",
      interactive: false,
      style: { color: "#9a9081", weight: 3, opacity: 1 },
    },
  );
  const streetCores = L.geoJSON(
    { type: "FeatureCollection", features: streetsData.features.filter((f) => f.properties.name) },
    { pane: "basemap", interactive: false, style: { color: "#ffffff", weight: 1.6, opacity: 1 } },
  );

  const update = () => {
    const z = map.getZoom();
    if (z <= COUNTRIES_UNTIL_ZOOM) loadCountries();
    container.classList.toggle("map-far", z <= COUNTRIES_UNTIL_ZOOM);
    for (const [layer, show] of [
      [countries, z <= COUNTRIES_UNTIL_ZOOM],
      [footways, z >= STREETS_FROM_ZOOM],
      [streets, z >= STREETS_FROM_ZOOM],
      [streetCores, z >= STREETS_FROM_ZOOM],
    ]) {
      if (show && !map.hasLayer(layer)) layer.addTo(map);
      if (!show && map.hasLayer(layer)) map.removeLayer(layer);
    }
  };
  map.on("zoomend", update);
  update();
  // The attribution must be there whatever the zoom: OSM's licence asks for it on the map.
  map.attributionControl.addAttribution(
    'Streets © <a href="https://www.openstreetmap.org/copyright">OpenStreetMap contributors</a>, ODbL · Countries: Natural Earth',
  );
  return map;
}
