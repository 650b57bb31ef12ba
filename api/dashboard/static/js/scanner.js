// The till's camera: reads QR codes with ZXing (@zxing/browser, vendored by dashboard/build.mjs).
// Chromium on Linux has no BarcodeDetector, so the decoding is ZXing's, in plain JavaScript (no
// WebAssembly, no change to the page's Content-Security-Policy). Its 440 kB load only when staff
// turn the camera on. The camera needs a secure context (HTTPS, or localhost) and the page's
// Permissions-Policy allows it for the dashboard's own origin only.

let loading = null;

function loadZxing(src) {
  if (window.ZXingBrowser) return Promise.resolve(window.ZXingBrowser);
  if (!loading) {
    loading = new Promise((resolve, reject) => {
      const script = document.createElement("script");
      script.src = src;
      script.addEventListener("load", () => resolve(window.ZXingBrowser));
      script.addEventListener("error", () => {
        loading = null;
        script.remove();
        reject(new ScannerError("The scanner could not be loaded. Check the connection and try again."));
      });
      document.head.append(script);
    });
  }
  return loading;
}

/** Why the camera could not start, in words for the person at the till. */
export class ScannerError extends Error {}

function explain(error) {
  switch (error?.name) {
    case "NotAllowedError":
    case "SecurityError":
      return "The browser was not allowed to use the camera. Allow the camera for this site in the browser's settings, or type the code.";
    case "NotFoundError":
    case "OverconstrainedError":
      return "This device has no camera the browser can use. Type the code or use the till's scanner.";
    case "NotReadableError":
    case "AbortError":
      return "The camera is busy (another app may be using it). Close that app, or type the code.";
    default:
      return `The camera could not start (${error?.message || error}). Type the code instead.`;
  }
}

/**
 * Start the camera in `video` and call `onText(text)` for each QR code read (the caller stops it).
 * Answers the scanner's controls (`stop()`). Throws ScannerError with a message for people.
 */
export async function startScanner(video, onText, { src }) {
  if (!window.isSecureContext || !navigator.mediaDevices?.getUserMedia) {
    throw new ScannerError("The camera needs a secure connection (https://). Type the code or use the till's scanner.");
  }
  const ZXingBrowser = await loadZxing(src);
  const reader = new ZXingBrowser.BrowserQRCodeReader(undefined, { delayBetweenScanAttempts: 100 });
  try {
    return await reader.decodeFromConstraints(
      { audio: false, video: { facingMode: { ideal: "environment" } } },
      video,
      (result) => {
        if (result) onText(result.getText());
      },
    );
  } catch (error) {
    throw new ScannerError(explain(error));
  }
}
