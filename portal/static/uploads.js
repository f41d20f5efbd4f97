// Enhances the attachments part of a form (compose_attachments.html): every file
// chosen or dropped is uploaded at once over tus (/uploads, the vendored
// tus-js-client), with a progress bar per file; a cut connection resumes from
// the last byte the server sealed (at once, or when the browser is back
// online); each sealed file becomes a hidden `upload` field; and the form can't
// be sent while a file is still on its way. Without this script the `file`
// input posts the files with the form.
(function () {
  "use strict";
  if (!window.tus || !window.tus.isSupported) return;

  function setup(box) {
    var form = box.closest("form");
    if (!form) return;
    var csrfField = form.querySelector('input[name="csrf"]');
    var csrf = csrfField ? csrfField.value : "";
    var input = box.querySelector('input[type="file"]');
    var list = box.querySelector("[data-upload-list]");
    var status = box.querySelector("[data-upload-status]");
    var zone = box.querySelector("[data-dropzone]");
    var pending = 0;
    var count = 0;

    function say(text) {
      if (status) status.textContent = text;
    }

    function refresh() {
      var buttons = form.querySelectorAll('button[type="submit"], input[type="submit"]');
      for (var i = 0; i < buttons.length; i++) {
        buttons[i].disabled = pending > 0;
      }
      if (pending > 0) say(pending === 1 ? "Waiting for 1 file to finish uploading." : "Waiting for " + pending + " files to finish uploading.");
    }

    function uploadId(url) {
      var parts = (url || "").split("/");
      return parts[parts.length - 1];
    }

    function start(file) {
      count += 1;
      var n = count;
      var item = document.createElement("li");
      var name = document.createElement("span");
      name.className = "name";
      name.id = "upload-name-" + n;
      name.textContent = file.name;
      var remove = document.createElement("button");
      remove.type = "button";
      remove.textContent = "Remove";
      remove.setAttribute("aria-label", "Remove " + file.name);
      var bar = document.createElement("progress");
      bar.max = 100;
      bar.value = 0;
      bar.setAttribute("aria-labelledby", name.id);
      var state = document.createElement("span");
      state.className = "state";
      state.textContent = "Uploading…";
      item.appendChild(name);
      item.appendChild(remove);
      item.appendChild(bar);
      item.appendChild(state);
      list.appendChild(item);

      var hidden = null;
      var done = false;
      var waitingOnline = false;
      pending += 1;
      refresh();

      function finish() {
        if (!done) {
          done = true;
          pending -= 1;
          refresh();
          if (pending === 0) say("All files are uploaded and sealed.");
        }
      }

      var upload = new window.tus.Upload(file, {
        endpoint: "/uploads",
        headers: { "X-CSRF-Token": csrf },
        metadata: { filename: file.name },
        chunkSize: 4 * 1024 * 1024,
        retryDelays: [0, 1000, 3000, 5000, 10000, 20000],
        storeFingerprintForResuming: true,
        removeFingerprintOnSuccess: true,
        onShouldRetry: function (err) {
          var code = err.originalResponse ? err.originalResponse.getStatus() : 0;
          if (code >= 400 && code < 500 && code !== 408 && code !== 409 && code !== 423) return false;
          return navigator.onLine !== false;
        },
        onProgress: function (sent, total) {
          var percent = total ? Math.floor((sent / total) * 100) : 100;
          bar.value = percent;
          state.textContent = "Uploading… " + percent + "%";
        },
        onSuccess: function () {
          bar.value = 100;
          state.textContent = "Uploaded and sealed.";
          hidden = document.createElement("input");
          hidden.type = "hidden";
          hidden.name = "upload";
          hidden.value = uploadId(upload.url);
          form.appendChild(hidden);
          item.setAttribute("data-sealed", hidden.value);
          finish();
        },
        onError: function (err) {
          var response = err.originalResponse;
          var code = response ? response.getStatus() : 0;
          if (code >= 400 && code < 500 && code !== 408 && code !== 409) {
            // Refused (a type not accepted, too large): the server says why.
            state.className = "state error";
            state.textContent = (response.getBody() || "This file was refused.").trim();
            bar.hidden = true;
            finish();
            return;
          }
          state.textContent = "Connection lost: the upload will go on from where it stopped.";
          if (!waitingOnline) {
            waitingOnline = true;
            var resume = function () {
              waitingOnline = false;
              state.textContent = "Resuming…";
              upload.start();
            };
            if (navigator.onLine === false) {
              window.addEventListener("online", resume, { once: true });
            } else {
              setTimeout(resume, 3000);
            }
          }
        },
      });

      remove.addEventListener("click", function () {
        upload.abort(true).catch(function () {});
        if (hidden) hidden.remove();
        item.remove();
        finish();
        say(file.name + " removed.");
        input.focus();
      });

      upload.findPreviousUploads().then(function (previous) {
        if (previous.length) upload.resumeFromPreviousUpload(previous[0]);
        upload.start();
      });
    }

    function take(files) {
      for (var i = 0; i < files.length; i++) start(files[i]);
    }

    input.addEventListener("change", function () {
      take(input.files);
      // The files now travel on their own: the form must not post them again.
      input.value = "";
    });

    if (zone) {
      zone.hidden = false;
      ["dragenter", "dragover"].forEach(function (kind) {
        box.addEventListener(kind, function (event) {
          event.preventDefault();
          zone.classList.add("over");
        });
      });
      box.addEventListener("dragleave", function () {
        zone.classList.remove("over");
      });
      box.addEventListener("drop", function (event) {
        event.preventDefault();
        zone.classList.remove("over");
        if (event.dataTransfer && event.dataTransfer.files) take(event.dataTransfer.files);
      });
    }

    form.addEventListener("submit", function (event) {
      if (pending > 0) {
        event.preventDefault();
        refresh();
      }
    });
  }

  var boxes = document.querySelectorAll("[data-uploads]");
  for (var i = 0; i < boxes.length; i++) setup(boxes[i]);
})();
