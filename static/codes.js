// The recovery codes page: copy the codes to the clipboard (one a line).
(function () {
  "use strict";
  var button = document.getElementById("copy-codes");
  if (!button) return;
  button.addEventListener("click", async function () {
    var codes = Array.prototype.map.call(document.querySelectorAll(".recovery-code"), function (c) { return c.textContent; });
    var status = document.getElementById("copy-status");
    try {
      await navigator.clipboard.writeText(codes.join("\n") + "\n");
      status.textContent = "Copied.";
    } catch (e) {
      status.textContent = "Copying is not allowed here; select the codes or download them.";
    }
  });
})();
