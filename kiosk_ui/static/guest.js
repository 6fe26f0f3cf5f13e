/* Shared by the kiosk page and the privacy notice: the JSON API, activity pings, the idle warning, and the
   fresh start when a visit ends. No storage, no cookies, no CDN.

   One document per visit (issue 11): when a visit ends — finished, deleted, declined, wiped for being left
   alone — the page replaces itself with a fresh copy of the start page (location.replace: no history entry,
   so nothing can go "back" to it). Whatever the old document held — decoded images, the QR, texts, the
   language a guest picked, scroll position — goes with it; the next guest starts from a document that
   never saw the previous one. Links between the kiosk's own pages replace the document too.

   Accessibility modes (issue 14.2: high contrast, large text, seated, speech) belong to the visit too: they
   travel from page to page of one visit in the `a11y` query parameter of those links (no storage), and the
   fresh start page, which has none, starts with every mode off. Speech plays the screen's texts through
   the page's <audio id="speech"> element, one catalog text at a time (GET /api/speech.wav). */
"use strict";
window.Guest = (() => {
  const page = JSON.parse(document.getElementById("page-data").textContent);
  const $ = (id) => document.getElementById(id);
  const fmt = (text, n) => text.replace("{n}", String(n));
  let phase = null;
  let lastTouch = 0;
  let lastInput = Date.now();
  let extendedAt = 0;
  let focusBefore = null; // where the focus was when the idle warning took it
  const MODES = ["contrast", "large", "seated", "speech"];
  // A guest who switched a mode on the start screen and walked away without starting: back to the
  // defaults for the next one after this long (ms).
  const MODES_IDLE_RESET_MS = 120000;
  const params = new URLSearchParams(location.search);
  const modes = new Set((params.get("a11y") || "").split(".").filter((m) => MODES.includes(m)));
  const volumeParam = Number(params.get("vol"));
  const speech = { queue: [], last: [], after: null };

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

  // -- accessibility modes --------------------------------------------------------------------------------

  function applyModes() {
    const root = document.documentElement;
    for (const m of MODES) {
      root.classList.toggle("mode-" + m, modes.has(m));
      const button = $("mode-" + m);
      if (button) button.setAttribute("aria-pressed", modes.has(m) ? "true" : "false");
    }
    $("speech-controls").hidden = !modes.has("speech");
  }

  function toggleMode(m) {
    if (modes.has(m)) modes.delete(m); else modes.add(m);
    applyModes();
    document.dispatchEvent(new CustomEvent("kiosk:mode", { detail: m })); // the page script follows it
    if (m === "speech") {
      if (modes.has("speech")) replay(); else stopSpeech();
    }
  }

  /** ``href`` with this visit's modes added (links between the kiosk's own pages). */
  function withModes(href) {
    if (!modes.size) return href;
    const url = new URL(href, location.href);
    url.searchParams.set("a11y", [...modes].join("."));
    url.searchParams.set("vol", String(Math.round($("speech").volume * 100)));
    return url.href;
  }

  // -- speech ---------------------------------------------------------------------------------------------

  const norm = (text) => (text || "").replace(/\s+/g, " ").trim();

  function playNext() {
    const audio = $("speech");
    const text = speech.queue.shift();
    if (!text) return;
    audio.dataset.text = text;
    audio.src = page.speech + "?lang=" + encodeURIComponent(page.lang) + "&text=" + encodeURIComponent(text);
    audio.play().catch(() => { /* refused or no sound device: the page goes on silently */ });
  }

  /** Speak ``texts`` (the screen's texts, in order) instead of whatever is being spoken. */
  function say(texts) {
    speech.last = texts.map(norm).filter(Boolean);
    speech.after = null;
    if (!modes.has("speech")) return;
    speech.queue = speech.last.slice();
    playNext();
  }

  /** Speak ``text`` after what is being spoken (a guidance line after the screen's heading). */
  function sayAfter(text) {
    text = norm(text);
    if (!text) return;
    // One pending "after" text at most: the guidance changes several times a second, so the newest
    // replaces the one not yet spoken, and Repeat keeps only the latest (no backlog of stale hints).
    if (speech.after) {
      const stale = speech.after;
      speech.last = speech.last.filter((t) => t !== stale);
      speech.queue = speech.queue.filter((t) => t !== stale);
    }
    speech.after = text;
    speech.last.push(text);
    if (!modes.has("speech")) return;
    const audio = $("speech");
    speech.queue.push(text);
    if (audio.paused || audio.ended) playNext();
  }

  function replay() {
    speech.queue = speech.last.slice();
    playNext();
  }

  function stopSpeech() {
    speech.queue = [];
    $("speech").pause();
  }

  function touch() {
    const now = Date.now();
    if (!phase || phase === "idle" || now - lastTouch < 2000) return Promise.resolve();
    lastTouch = now;
    return api("POST", "/api/session/touch").catch(() => {});
  }

  /** Show or hide the "still there?" warning for the state the server reported. */
  function follow(state) {
    phase = state.phase;
    // Just extended: a poll answered before the server saw the extension must not bring the warning back.
    const warn = !!state.idle_warning && state.idle_seconds_left !== null && phase !== "idle" &&
      Date.now() > extendedAt + 1500;
    const wasHidden = $("idle-warning").hidden;
    $("idle-warning").hidden = !warn;
    if (warn) {
      $("idle-text").textContent = fmt(page.strings.idle_warning, Math.ceil(state.idle_seconds_left));
      if (wasHidden) {
        // Keyboard and switch users land on "I need more time" at once; the warning is read out.
        focusBefore = document.activeElement;
        $("still-here").focus();
        say([$("idle-text").textContent]);
      }
    }
    if (phase === "idle" && modes.size && Date.now() - lastInput > MODES_IDLE_RESET_MS) fresh();
  }

  document.addEventListener("click", (event) => {
    const link = event.target.closest && event.target.closest("a[data-replace]");
    if (!link) return;
    event.preventDefault();
    location.replace(withModes(link.href));
  });
  const input = () => { lastInput = Date.now(); touch(); };
  document.addEventListener("pointerdown", input, { passive: true });
  document.addEventListener("keydown", input, { passive: true });
  $("still-here").addEventListener("click", async () => {
    // The server's idle timer starts again from its full length (the same ping every tap sends).
    lastTouch = 0;
    extendedAt = Date.now();
    $("idle-warning").hidden = true;
    if (focusBefore && focusBefore.isConnected && focusBefore.getClientRects().length) focusBefore.focus();
    focusBefore = null;
    await touch();
    extendedAt = Date.now();
  });
  for (const m of MODES) $("mode-" + m).addEventListener("click", () => toggleMode(m));
  $("speech-repeat").addEventListener("click", replay);
  $("speech-volume").addEventListener("input", () => { $("speech").volume = Number($("speech-volume").value) / 100; });
  $("speech").addEventListener("ended", playNext);
  $("speech").addEventListener("error", playNext); // a text the server cannot say: go on with the next
  if (volumeParam >= 10 && volumeParam <= 100) $("speech-volume").value = String(volumeParam);
  $("speech").volume = Number($("speech-volume").value) / 100;
  applyModes();

  return { page, $, fmt, api, fresh, touch, follow, say, sayAfter, modes };
})();
