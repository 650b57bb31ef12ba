// Draw a QR code into an <svg> (qrcode-generator, loaded by the page as the global `qrcode`),
// one path of dark modules on white with the quiet zone the standard asks for.

/* global qrcode */
const SVG_NS = "http://www.w3.org/2000/svg";

export function drawQr(svg, text, { level = "M", mode } = {}) {
  const qr = qrcode(0, level);
  qr.addData(text, mode);
  qr.make();
  const n = qr.getModuleCount();
  const margin = 4;
  let d = "";
  for (let r = 0; r < n; r += 1) {
    for (let c = 0; c < n; c += 1) if (qr.isDark(r, c)) d += `M${c + margin} ${r + margin}h1v1h-1z`;
  }
  const size = n + margin * 2;
  svg.setAttribute("viewBox", `0 0 ${size} ${size}`);
  const title = svg.querySelector("title");
  const background = document.createElementNS(SVG_NS, "rect");
  background.setAttribute("width", size);
  background.setAttribute("height", size);
  background.setAttribute("fill", "#fff");
  const path = document.createElementNS(SVG_NS, "path");
  path.setAttribute("d", d);
  path.setAttribute("fill", "#000");
  path.setAttribute("shape-rendering", "crispEdges");
  svg.replaceChildren(...[title, background, path].filter(Boolean));
}
