// c7sync console: the little script the pages need beyond htmx. Pages work without it.
(function () {
  "use strict";
  // Upload progress of the import form (htmx sends it, with XMLHttpRequest progress events).
  document.addEventListener("htmx:xhr:progress", function (event) {
    var bar = document.getElementById("upload-progress");
    if (!bar || !event.detail.lengthComputable) return;
    bar.hidden = false;
    bar.max = event.detail.total;
    bar.value = event.detail.loaded;
    var label = document.getElementById("upload-status");
    if (label) {
      label.textContent = event.detail.loaded < event.detail.total
        ? "Uploading: " + Math.round(100 * event.detail.loaded / event.detail.total) + "%"
        : "Uploaded; checking every row and planning…";
    }
  });
  // "Copy" next to a value shown once.
  document.addEventListener("click", function (event) {
    var button = event.target.closest("[data-copy]");
    if (!button) return;
    var field = document.getElementById(button.getAttribute("data-copy"));
    if (!field) return;
    field.select();
    var done = function () { button.textContent = "Copied"; };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(field.value).then(done, function () { document.execCommand("copy"); done(); });
    } else {
      document.execCommand("copy");
      done();
    }
  });
})();
