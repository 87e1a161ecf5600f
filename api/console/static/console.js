// Progressive help only: every form works without this file.
"use strict";
document.addEventListener("DOMContentLoaded", function () {
  // Ask before irreversible actions (publish, expire, revoke).
  document.querySelectorAll("button[data-confirm]").forEach(function (button) {
    button.form.addEventListener("submit", function (event) {
      if (event.submitter === button && !window.confirm(button.dataset.confirm)) {
        event.preventDefault();
      }
    });
  });
  // Show that a CSV upload is in progress (large files take a while).
  var importForm = document.getElementById("import-form");
  if (importForm) {
    importForm.addEventListener("submit", function () {
      var bar = document.getElementById("upload-progress");
      if (bar) { bar.hidden = false; }
    });
  }
  // Select the whole shown-once secret or token on focus, ready to copy.
  document.querySelectorAll("input[data-copy]").forEach(function (input) {
    input.addEventListener("focus", function () { input.select(); });
  });
});
