// The console's own script (the CSP allows no inline script): the copy button of the one-time
// secret panel. Every page works without it; the secret can be selected and copied by hand.
"use strict";

document.addEventListener("click", function (event) {
  var button = event.target.closest("[data-copy-target]");
  if (!button) {
    return;
  }
  var source = document.getElementById(button.getAttribute("data-copy-target"));
  if (!source || !navigator.clipboard) {
    return;
  }
  navigator.clipboard.writeText(source.textContent.trim()).then(function () {
    var status = document.getElementById(button.getAttribute("data-copy-status"));
    if (status) {
      status.textContent = "Copied to the clipboard.";
    }
  });
});
