// The phone page of a delivery link (kiosk_ui/delivery.py inlines this file and allows it by its hash).
// "Save photo" fetches the photo with the page's own POST instead of navigating, shows it, and then offers
// the system share sheet with the file where the browser can share files ("Save Image" to Photos on iOS,
// "Save image" or Files on Android), else downloads it. The photo stays in this page only (a blob: URL),
// until the page is closed. Without this script the form's POST downloads the photo as an attachment.
(function () {
  "use strict";
  var form = document.getElementById("collect");
  var button = document.getElementById("save");
  var status = document.getElementById("status");
  var result = document.getElementById("result");
  var photo = document.getElementById("photo");
  var shareButton = document.getElementById("share");
  var download = document.getElementById("download");
  if (!form || !window.fetch || !window.URLSearchParams || !window.File || !window.URL || !URL.createObjectURL) {
    return; // an old browser: the plain form still works
  }
  var text = form.dataset;
  var file = null;

  function say(message) {
    status.textContent = message || "";
  }

  function canShare(candidate) {
    // canShare({files}) is the only reliable test: iOS and Android have share() for links without files.
    try {
      return Boolean(navigator.share && navigator.canShare && navigator.canShare({ files: [candidate] }));
    } catch (err) {
      return false;
    }
  }

  function share() {
    if (!file) {
      return;
    }
    navigator.share({ files: [file] }).then(
      function () {
        say("");
      },
      function (err) {
        // AbortError: the guest closed the sheet. NotAllowedError: the tap that fetched the photo no
        // longer counts as a tap (Safari) and the button asks for a fresh one. Either way the photo stays.
        say(err && err.name === "AbortError" ? "" : text.share);
      }
    );
  }

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    button.disabled = true;
    say(text.loading);
    var body = new URLSearchParams();
    body.append("attempt", form.elements.attempt.value);
    fetch(window.location.pathname, {
      method: "POST",
      body: body,
      cache: "no-store",
      credentials: "omit",
      redirect: "error",
      referrerPolicy: "no-referrer"
    })
      .then(function (response) {
        if (response.status === 404) {
          throw new Error("gone");
        }
        if (!response.ok) {
          throw new Error("failed");
        }
        return response.blob();
      })
      .then(function (blob) {
        file = new File([blob], "headshot.jpg", { type: "image/jpeg" });
        var url = URL.createObjectURL(file);
        photo.src = url;
        download.href = url;
        form.hidden = true;
        result.hidden = false;
        if (canShare(file)) {
          shareButton.hidden = false;
          say(text.ready);
          share(); // Chrome on Android still counts the tap and opens the sheet at once
        } else {
          say(text.downloaded);
          download.click();
        }
      })
      .catch(function (err) {
        button.disabled = false;
        say(err && err.message === "gone" ? text.gone : text.retry);
      });
  });
  shareButton.addEventListener("click", share);
})();
