// stepgate: passkey registration and passkey step-up on the gateway's own pages.
// No third-party code and no inline script (the pages' CSP allows only this file). The server
// sends options with binary fields as base64url; the browser API wants ArrayBuffers, and the
// server wants base64url back.
(function () {
  "use strict";

  function b64uToBuf(s) {
    s = s.replace(/-/g, "+").replace(/_/g, "/");
    while (s.length % 4) s += "=";
    var bin = atob(s);
    var out = new Uint8Array(bin.length);
    for (var i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
    return out.buffer;
  }

  function bufToB64u(buf) {
    var bytes = new Uint8Array(buf);
    var s = "";
    for (var i = 0; i < bytes.length; i++) s += String.fromCharCode(bytes[i]);
    return btoa(s).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  function withIds(list) {
    return (list || []).map(function (c) {
      return Object.assign({}, c, { id: b64uToBuf(c.id) });
    });
  }

  async function post(url, csrf, body) {
    var r = await fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
      body: JSON.stringify(body),
    });
    var data = {};
    try {
      data = await r.json();
    } catch (e) {
      data = {};
    }
    if (!r.ok) {
      if (data.redirect) {
        window.location.assign(data.redirect);
      }
      throw new Error(data.error || "the gateway answered " + r.status);
    }
    return data;
  }

  function say(text, isError) {
    var el = document.getElementById("passkey-status");
    if (!el) return;
    el.textContent = text;
    el.className = isError ? "error" : "";
  }

  async function register(button) {
    var csrf = button.dataset.csrf;
    var input = document.getElementById("passkey-name");
    var name = ((input && input.value) || "").trim() || "Passkey";
    say("Follow your browser's prompt to create the passkey…", false);
    var start = await post("/.stepgate/webauthn/register/start", csrf, {});
    var pk = start.options.publicKey;
    pk.challenge = b64uToBuf(pk.challenge);
    pk.user.id = b64uToBuf(pk.user.id);
    pk.excludeCredentials = withIds(pk.excludeCredentials);
    var cred = await navigator.credentials.create({ publicKey: pk });
    var response = {
      attestationObject: bufToB64u(cred.response.attestationObject),
      clientDataJSON: bufToB64u(cred.response.clientDataJSON),
    };
    if (cred.response.getTransports) response.transports = cred.response.getTransports();
    var done = await post("/.stepgate/webauthn/register/finish", csrf, {
      ceremony: start.ceremony,
      name: name,
      credential: { id: cred.id, rawId: bufToB64u(cred.rawId), type: cred.type, extensions: {}, response: response },
    });
    say("Passkey added.", false);
    window.location.assign(done.redirect);
  }

  async function authenticate(button) {
    var csrf = button.dataset.csrf;
    var ret = button.dataset.return || "/";
    var method = button.dataset.method || "GET";
    var kept = button.dataset.kept || "";
    say("Follow your browser's prompt to use your passkey…", false);
    var start = await post("/.stepgate/webauthn/auth/start", csrf, { return: ret, kept: kept });
    var pk = start.options.publicKey;
    pk.challenge = b64uToBuf(pk.challenge);
    pk.allowCredentials = withIds(pk.allowCredentials);
    var a = await navigator.credentials.get({ publicKey: pk });
    var done = await post("/.stepgate/webauthn/auth/finish", csrf, {
      ceremony: start.ceremony,
      return: ret,
      method: method,
      kept: kept,
      credential: {
        id: a.id,
        rawId: bufToB64u(a.rawId),
        type: a.type,
        extensions: {},
        response: {
          authenticatorData: bufToB64u(a.response.authenticatorData),
          clientDataJSON: bufToB64u(a.response.clientDataJSON),
          signature: bufToB64u(a.response.signature),
          userHandle: a.response.userHandle ? bufToB64u(a.response.userHandle) : null,
        },
      },
    });
    window.location.assign(done.redirect);
  }

  function wire(id, action) {
    var button = document.getElementById(id);
    if (!button) return;
    if (!window.PublicKeyCredential) {
      button.disabled = true;
      say("This browser cannot use passkeys here.", true);
      return;
    }
    button.addEventListener("click", function (event) {
      event.preventDefault();
      button.disabled = true;
      action(button)
        .catch(function (e) {
          say("That did not work: " + e.message, true);
        })
        .finally(function () {
          button.disabled = false;
        });
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    wire("passkey-register", register);
    wire("passkey-authenticate", authenticate);
  });
})();
