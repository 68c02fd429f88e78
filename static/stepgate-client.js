// stepgate-client.js: step-up for single-page apps behind stepgate. No dependencies, no
// inline script or eval (works under a strict Content-Security-Policy).
//
// Include it once: <script src="/.stepgate/static/stepgate-client.js"></script>
// From then on, a fetch() answered 401 `insufficient_user_authentication` by the gateway opens
// the challenge in a popup, waits until the user has confirmed (or closed it), and retries the
// request once with `X-Stepgate-Confirmation: <challenge_id>`. The retry's answer (the app's,
// or the gateway's second 401) is what the caller's fetch() resolves to.
//
// Add data-stepgate-wrap="off" on the script tag to leave window.fetch alone and call
// window.stepgate.fetch(...) yourself.
(function () {
  "use strict";
  var original = window.fetch.bind(window);
  var script = document.currentScript;

  function waitForPopup(popup) {
    return new Promise(function (resolve) {
      function done() {
        clearInterval(timer);
        window.removeEventListener("message", onMessage);
        resolve();
      }
      function onMessage(ev) {
        if (ev.origin === window.location.origin && ev.data && ev.data.stepgate === "confirmed") done();
      }
      var timer = setInterval(function () { if (popup.closed) done(); }, 300);
      window.addEventListener("message", onMessage);
    });
  }

  async function stepgateFetch(input, init) {
    // A Request's body can be read once: keep a copy for the retry.
    var again = input instanceof Request ? input.clone() : input;
    var resp = await original(input, init);
    if (resp.status !== 401) return resp;
    var body;
    try { body = await resp.clone().json(); } catch (e) { return resp; }
    if (!body || body.error !== "insufficient_user_authentication" || !body.challenge_url) return resp;
    var popup = window.open(body.challenge_url, "stepgate-challenge", "popup,width=480,height=640");
    if (!popup) return resp; // blocked: the caller sees the 401 (body.challenge_url says where to go)
    await waitForPopup(popup);
    var retryInit = Object.assign({}, init || {});
    var headers = new Headers(retryInit.headers || (again instanceof Request ? again.headers : undefined));
    if (body.challenge_id) headers.set("X-Stepgate-Confirmation", body.challenge_id);
    retryInit.headers = headers;
    return original(again, retryInit);
  }

  window.stepgate = { fetch: stepgateFetch };
  if (!script || script.dataset.stepgateWrap !== "off") window.fetch = stepgateFetch;
})();
