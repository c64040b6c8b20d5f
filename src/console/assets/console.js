// c7sync console: the little script the pages need beyond htmx. Pages work without it.
(function () {
  "use strict";
  // Upload progress of the import form: htmx sends it with XMLHttpRequest, whose upload
  // events say how much of the file has gone; then the server checks and plans.
  function kib(bytes) { return Math.round(bytes / 1024).toLocaleString() + " KiB"; }
  document.addEventListener("htmx:beforeSend", function (event) {
    var bar = document.getElementById("upload-progress");
    var label = document.getElementById("upload-status");
    if (!bar || !label || event.detail.elt.id !== "import-form") return;
    bar.hidden = false;
    bar.value = 0;
    label.textContent = "Uploading…";
    event.detail.xhr.upload.addEventListener("progress", function (progress) {
      if (!progress.lengthComputable) return;
      bar.max = progress.total;
      bar.value = progress.loaded;
      label.textContent = progress.loaded < progress.total
        ? "Uploading: " + kib(progress.loaded) + " of " + kib(progress.total)
        : "Uploaded " + kib(progress.total) + "; checking every row and planning…";
    });
  });
  document.addEventListener("htmx:afterRequest", function (event) {
    var label = document.getElementById("upload-status");
    if (!label || event.detail.elt.id !== "import-form") return;
    label.textContent = event.detail.successful || event.detail.xhr.status === 422
      ? "Uploaded and checked (" + kib(document.getElementById("upload-progress").max) + ")."
      : "The upload failed (HTTP " + event.detail.xhr.status + "); see the message below.";
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
