/* Shared by the kiosk page and the privacy notice: the JSON API, activity pings, the idle warning, and the
   fresh start when a visit ends. No storage, no cookies, no CDN.

   One document per visit (issue 11): when a visit ends — finished, deleted, declined, wiped for being left
   alone — the page replaces itself with a fresh copy of the start page (location.replace: no history entry,
   so nothing can go "back" to it). Whatever the old document held — decoded images, the QR, texts, the
   language a guest picked, scroll position — goes with it; the next guest starts from a document that
   never saw the previous one. Links between the kiosk's own pages replace the document too. */
"use strict";
window.Guest = (() => {
  const page = JSON.parse(document.getElementById("page-data").textContent);
  const $ = (id) => document.getElementById(id);
  const fmt = (text, n) => text.replace("{n}", String(n));
  let phase = null;
  let lastTouch = 0;

  async function api(method, path, body, signal) {
    const opts = { method, cache: "no-store", headers: { Accept: "application/json" }, signal };
    if (method === "POST") {
      opts.headers["Content-Type"] = "application/json";
      opts.body = JSON.stringify(body || {});
    }
    const response = await fetch(path, opts);
    let data = null;
    try { data = await response.json(); } catch (_) { data = null; }
    if (!response.ok) {
      const err = new Error((data && data.message) || response.statusText);
      err.code = data && data.error;
      err.status = response.status;
      throw err;
    }
    return data;
  }

  function fresh() {
    location.replace(page.home);
  }

  function touch() {
    const now = Date.now();
    if (!phase || phase === "idle" || now - lastTouch < 2000) return;
    lastTouch = now;
    api("POST", "/api/session/touch").catch(() => {});
  }

  /** Show or hide the "still there?" warning for the state the server reported. */
  function follow(state) {
    phase = state.phase;
    const warn = !!state.idle_warning && state.idle_seconds_left !== null && phase !== "idle";
    $("idle-warning").hidden = !warn;
    if (warn) $("idle-text").textContent = fmt(page.strings.idle_warning, Math.ceil(state.idle_seconds_left));
  }

  document.addEventListener("click", (event) => {
    const link = event.target.closest && event.target.closest("a[data-replace]");
    if (!link) return;
    event.preventDefault();
    location.replace(link.href);
  });
  document.addEventListener("pointerdown", touch, { passive: true });
  document.addEventListener("keydown", touch, { passive: true });
  $("still-here").addEventListener("click", async () => {
    lastTouch = 0;
    touch();
  });

  return { page, $, fmt, api, fresh, touch, follow };
})();
