// The phone page of a delivery link (kiosk_ui/delivery.py inlines this file and allows it by its hash).
// "Save photo" fetches the photo with the page's own POST instead of navigating, shows it, and then offers
// the system share sheet with the file where the browser can share files ("Save Image" to Photos on iOS,
// "Save image" or Files on Android), else downloads it. The photo stays in this page only (a blob: URL),
// until the page is closed. Without this script the form's POST downloads the photo as an attachment.
// A link with several crops (data-count > 1) asks for them all ("want=all") and gets one reply in the
// bundle layout of appliance/delivery.py (pack_photos): "HKB1", a 4-byte big-endian length, a JSON list
// of [file name, size], then the JPEGs; all of them go to the share sheet at once.
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
  var count = parseInt(text.count || "1", 10);
  var more = document.getElementById("more-photos");
  var files = [];

  function say(message) {
    status.textContent = message || "";
  }

  function canShare(candidates) {
    // canShare({files}) is the only reliable test: iOS and Android have share() for links without files.
    try {
      return Boolean(navigator.share && navigator.canShare && navigator.canShare({ files: candidates }));
    } catch (err) {
      return false;
    }
  }

  function unbundle(buffer) {
    var view = new DataView(buffer);
    var magic = String.fromCharCode(view.getUint8(0), view.getUint8(1), view.getUint8(2), view.getUint8(3));
    if (magic !== "HKB1") {
      throw new Error("failed");
    }
    var length = view.getUint32(4, false);
    var index = JSON.parse(new TextDecoder().decode(new Uint8Array(buffer, 8, length)));
    var offset = 8 + length;
    return index.map(function (entry) {
      var part = new File([buffer.slice(offset, offset + entry[1])], entry[0], { type: "image/jpeg" });
      offset += entry[1];
      return part;
    });
  }

  function share() {
    if (!files.length) {
      return;
    }
    navigator.share({ files: files }).then(
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
    if (count > 1) {
      body.append("want", "all");
    }
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
        if ((response.headers.get("Content-Type") || "").indexOf("image/jpeg") === 0) {
          return response.blob().then(function (blob) {
            return [new File([blob], "headshot.jpg", { type: "image/jpeg" })];
          });
        }
        return response.arrayBuffer().then(unbundle);
      })
      .then(function (received) {
        files = received;
        var anchors = [download];
        files.forEach(function (file, i) {
          var url = URL.createObjectURL(file);
          if (i === 0) {
            photo.src = url;
            download.href = url;
            download.setAttribute("download", file.name);
            return;
          }
          var img = document.createElement("img");
          img.className = "photo";
          img.alt = photo.alt;
          img.src = url;
          var link = download.cloneNode(true);
          link.removeAttribute("id");
          link.href = url;
          link.setAttribute("download", file.name);
          more.appendChild(img);
          more.appendChild(link);
          anchors.push(link);
        });
        form.hidden = true;
        result.hidden = false;
        if (canShare(files)) {
          shareButton.hidden = false;
          say(text.ready);
          share(); // Chrome on Android still counts the tap and opens the sheet at once
        } else {
          say(text.downloaded);
          anchors.forEach(function (anchor) {
            anchor.click();
          });
        }
      })
      .catch(function (err) {
        button.disabled = false;
        say(err && err.message === "gone" ? text.gone : text.retry);
      });
  });
  shareButton.addEventListener("click", share);
})();
