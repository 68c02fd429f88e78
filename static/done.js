// The page a stepgate-client.js popup lands on after the proof: tell the opener, then close.
(function () {
  "use strict";
  if (window.opener && !window.opener.closed) {
    try { window.opener.postMessage({ stepgate: "confirmed" }, window.location.origin); } catch (e) { /* cross-origin opener */ }
    window.close();
  }
})();
