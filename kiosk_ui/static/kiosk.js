/* Headshot kiosk guest UI: one section per screen, driven by the JSON API (guest.js has the shared parts).
   The server's phase is the truth; this script polls it and follows.

   One visit per document: when the visit ends, this page empties what it showed and then replaces itself
   with a fresh start page (Guest.fresh), so the next guest's document never held anything of this one.
   Delete now and Withdraw are never swallowed: they cancel the countdown, abandon whatever request is in
   flight (the server cancels the capture or render in the worker) and show the "deleted" screen at once.

   Keyboard and physical shutter (issue 14.3): every control is a native button, link or input (Tab,
   Enter, Space). A USB shutter button that types F13, the "Camera" key or Volume Up (Bluetooth selfie
   remotes) does the screen's main step
   wherever the focus is; one that types Enter or Space does it when the focus is on no control (after a
   screen change the focus is on the screen's heading, or on the shutter button in the preview). The main
   step is: start, then (consent needs a tick by the guest) focus the agreement box or accept, take the
   photo, get it on the phone, "I'm connected", "I'm done", back to start. */
"use strict";
(() => {
  const G = window.Guest;
  const { page, $, fmt, api } = G;
  const S = page.strings;
  const P = page.print; // null where the event offers no printing (no Print button on the page)
  // The event's brand (kiosk_ui/brand.py): background names and swatches, the attract screen's samples.
  const B = JSON.parse(($("brand-data") && $("brand-data").textContent) || "{}");
  const BG = B.backgrounds || {};
  const VISIT_SCREENS = ["consent", "preview", "processing", "review", "delivery"];
  const TOPBAR_SCREENS = ["preview", "processing", "review", "delivery"];
  const DONE_SECONDS = 30;
  // A capture that kept nothing, with what the guest can change (appliance.errors.CAPTURE_REFUSED).
  const CAPTURE_REFUSED = ["no_face", "step_apart", "face_cut_off", "face_too_small"];

  let state = null;
  let screen = "attract";
  let busy = false; // a request that changes the phase is in flight: don't let polling switch screens
  let over = false; // this document's visit has ended: late answers of its requests are ignored
  const inFlight = new AbortController(); // aborted when the visit ends
  let previewBg = null;
  let countdownTimer = null;
  let guidanceTimer = null;
  let printSending = false; // a print request is in flight (it never blocks the rest of the visit)
  const view = { take: null, render: null, background: page.backgrounds[0], preset: page.presets[0] };
  const alsoPresets = new Set(); // other crops the guest wants on the phone too, through the same link

  // Bumped when an action (a POST) starts and when it ends: a poll's answer asked for before then
  // describes a visit that has moved on since (a capture finished while the poll was on its way sent the
  // page back to the preview), so it is dropped and the next poll reads the visit afresh. Reads (the
  // guidance, several a second) do not count: they change nothing, and polls must keep following.
  let epoch = 0;
  const call = async (method, path, body) => {
    const acts = method !== "GET";
    if (acts) epoch += 1;
    try {
      return await api(method, path, body, inFlight.signal);
    } finally {
      if (acts) epoch += 1;
    }
  };

  function errorText(err) {
    return S["error_" + err.code] || S.error_generic;
  }

  function show(name) {
    screen = name;
    for (const el of document.querySelectorAll(".screen")) el.hidden = el.id !== "screen-" + name;
    $("topbar").hidden = !TOPBAR_SCREENS.includes(name);
    if (name === "preview") startPreview(); else stopPreview();
    const heading = document.querySelector("#screen-" + name + " h1");
    if (name === "preview") {
      $("shoot").focus({ preventScroll: true }); // the heading is for screen readers only
    } else if (heading && !heading.classList.contains("visually-hidden")) {
      heading.tabIndex = -1;
      heading.focus({ preventScroll: true });
    }
    document.body.dataset.screen = name;
    scrollHint();
    speakScreen();
  }

  /** "Scroll down for more" while the end of the consent summary (the notice link) is hidden under the
      agreement at the bottom of the screen. */
  function scrollHint() {
    const link = $("notice-link").getBoundingClientRect();
    const footer = document.querySelector(".consent-footer").getBoundingClientRect();
    $("consent-more").hidden = screen !== "consent" || link.bottom <= footer.top;
  }

  /** Speech (when on): the visible heading of the screen and its lead text. */
  function speakScreen() {
    const section = $("screen-" + screen);
    const visible = (el) => el && (el.classList.contains("visually-hidden") || el.getClientRects().length > 0);
    const heading = [...section.querySelectorAll("h1")].find(visible);
    const lead = [...section.querySelectorAll(".lead")].find(visible);
    G.say([heading && heading.textContent, lead && lead.textContent]);
  }

  /** Replace an <img> by an empty one: the old element (and with it its decoded picture) is dropped. */
  function blankImage(id) {
    const old = $(id);
    if (!old) return;
    const img = document.createElement("img");
    for (const attr of ["id", "alt", "class"]) if (old.hasAttribute(attr)) img.setAttribute(attr, old.getAttribute(attr));
    old.replaceWith(img);
  }

  // -- live preview ---------------------------------------------------------------------------------------

  /** The stream's URL: seated guests get guidance towards the lower face outline (engine.preview). */
  function streamUrl() {
    const query = new URLSearchParams();
    if (G.modes.has("seated")) query.set("seated", "1");
    if (previewBg) query.set("background", previewBg);
    const q = query.toString();
    return "/api/session/preview.mjpg" + (q ? "?" + q : "");
  }

  function startPreview() {
    stopPreview();
    blankImage("preview");
    $("preview").src = streamUrl();
    updateBgToggle();
    guidanceTimer = setInterval(updateGuidance, 700);
    updateGuidance();
  }

  function stopPreview() {
    // Replacing the element aborts the multipart download, which frees the server's stream thread.
    if ($("preview").getAttribute("src")) blankImage("preview");
    if (guidanceTimer) { clearInterval(guidanceTimer); guidanceTimer = null; }
  }

  /** A background's name for guests: the translated or configured name, never a colour code. */
  function bgName(b) {
    return (BG[b] && BG[b].name) || S["bg_" + b] || S.bg_colour;
  }

  function updateBgToggle() {
    const name = previewBg ? bgName(previewBg) : S.bg_off;
    $("bg-toggle").textContent = name;
    $("bg-toggle").setAttribute("aria-label", name);
  }

  async function updateGuidance() {
    try {
      const g = await call("GET", "/api/session/guidance");
      if (over) return;
      const hint = g.hints && g.hints.length ? g.hints[0] : null;
      const text = g.fresh ? (hint ? (S["hint_" + hint] || "") : S.hint_ready) : "";
      if (text !== $("guidance").textContent && !countdownTimer) G.sayAfter(text);
      $("guidance").textContent = text;
      $("outline").classList.toggle("ok", g.fresh && !hint);
    } catch (_) { /* the next poll tries again */ }
  }

  // Seated on or off during the preview: the guidance's framing target moves with the outline.
  document.addEventListener("kiosk:mode", (event) => {
    if (event.detail === "seated" && screen === "preview" && !over) startPreview();
  });

  function cycleBackground() {
    const options = [null, ...page.backgrounds];
    previewBg = options[(options.indexOf(previewBg) + 1) % options.length];
    if (screen === "preview") startPreview();
  }

  // -- countdown and capture ------------------------------------------------------------------------------

  function stopCountdown() {
    if (countdownTimer) { clearTimeout(countdownTimer); countdownTimer = null; }
    $("countdown").hidden = true;
    $("cancel-countdown").hidden = true;
    $("shoot").hidden = false;
  }

  function cancelCountdown() {
    stopCountdown();
    busy = false;
  }

  function startCountdown() {
    busy = true;
    let n = page.countdown;
    $("shoot").hidden = true;
    $("cancel-countdown").hidden = false;
    const step = () => {
      if (n <= 0) { $("countdown").hidden = true; $("cancel-countdown").hidden = true; capture(); return; }
      $("countdown").hidden = false;
      $("countdown").textContent = String(n);
      G.say([String(n)]); // once a second: never more than three changes a second (WCAG 2.3.1)
      n -= 1;
      countdownTimer = setTimeout(step, 1000);
    };
    step();
  }

  async function capture() {
    countdownTimer = null;
    show("processing");
    try {
      const r = await call("POST", "/api/session/capture");
      if (over) return;
      view.take = r.take;
      view.render = r.render;
      view.background = r.background || page.backgrounds[0];
      view.preset = r.preset || page.presets[0];
      state = r;
      enterReview(r.image);
    } catch (err) {
      // Nothing was kept (no face, someone else in the picture, too far, at the edge): back to the preview.
      await handleError(err, CAPTURE_REFUSED.includes(err.code) ? "preview" : null);
    } finally {
      busy = false;
      if (!over) $("shoot").hidden = false;
    }
  }

  // -- review ---------------------------------------------------------------------------------------------

  function chip(label, pressed, onClick) {
    const b = document.createElement("button");
    b.type = "button";
    b.textContent = label;
    b.setAttribute("aria-pressed", pressed ? "true" : "false");
    b.addEventListener("click", onClick);
    return b;
  }

  /** A background choice: a small sample of it (decorative) and its name, which is the button's name. */
  function swatchChip(b, pressed, onClick) {
    const button = chip("", pressed, onClick);
    button.classList.add("swatch-choice");
    const sample = document.createElement("span");
    sample.className = "swatch";
    sample.setAttribute("aria-hidden", "true");
    sample.style.background = (BG[b] && BG[b].swatch) || "#808080"; // CSSOM: allowed by the page's CSP
    const label = document.createElement("span");
    label.textContent = bgName(b);
    button.replaceChildren(sample, label);
    return button;
  }

  function renderChoices() {
    const takes = (state && state.takes) || [];
    $("take-choices").replaceChildren(...takes.map((t) =>
      chip(fmt(S.photo_n, t.number), t.take === view.take, () => choose({ take: t.take }))));
    $("bg-choices").replaceChildren(...page.backgrounds.map((b) =>
      swatchChip(b, b === view.background, () => choose({ background: b }))));
    $("preset-choices").replaceChildren(...page.presets.map((p) =>
      chip(S["preset_" + p] || p, p === view.preset, () => choose({ preset: p }))));
    // "Also on my phone": the other crops, toggled here and rendered when the link is made.
    $("also-choices").replaceChildren(...page.presets.filter((p) => p !== view.preset).map((p) =>
      chip(S["preset_" + p] || p, alsoPresets.has(p), () => {
        if (alsoPresets.has(p)) alsoPresets.delete(p); else alsoPresets.add(p);
        renderChoices();
      })));
    const left = state && typeof state.takes_left === "number" ? state.takes_left : 0;
    $("retake").textContent = left > 0 ? fmt(S.takes_left, left) : S.no_takes_left;
    $("retake").disabled = left <= 0;
    renderPrint();
  }

  // -- printing (only where the event offers it) ----------------------------------------------------------

  /** The Print button and the status line, from the server's state of the visit's latest print. */
  function renderPrint() {
    if (!P) return;
    const job = (state && state.print) || { job: null, status: null, prints_left: 0 };
    const active = job.status === "queued" || job.status === "printing";
    const button = $("print-btn");
    button.hidden = job.prints_left <= 0; // all prints used (by this guest, or the event's are gone)
    button.disabled = printSending || active || job.prints_left <= 0;
    button.textContent = job.job && job.prints_left > 0 ? fmt(P.strings.print_again, job.prints_left) : P.strings.print;
    const status = $("print-status");
    status.textContent = job.status ? (P.strings[job.status] || "") : "";
    status.hidden = !job.status;
    status.dataset.status = job.status || "";
    // "I'm done" ends the visit, and a wipe cancels an unfinished print: wait for the print (Delete now
    // still cancels it, as it should). The shutter button skips a disabled button too.
    $("finish").disabled = active;
  }

  async function printHeadshot() {
    if (!P || printSending || over || !view.render) return;
    printSending = true;
    renderPrint();
    try {
      const r = await call("POST", "/api/session/print", { render: view.render });
      if (over) return;
      state = Object.assign({}, state, { print: r });
    } catch (err) {
      if (over) return;
      // The visit goes on whatever the printer does: say why, keep the phone delivery.
      $("review-message").textContent = P.strings["error_" + err.code] || P.strings.failed;
    } finally {
      printSending = false;
      if (!over) renderPrint();
    }
  }

  function enterReview(imageUrl) {
    if (!view.render && state && state.renders && state.renders.length) {
      const last = state.renders[state.renders.length - 1];
      Object.assign(view, { take: last.take, render: last.render, background: last.background, preset: last.preset });
    }
    if (imageUrl || view.render) $("result").src = imageUrl || "/api/session/render/" + view.render + ".jpg";
    $("review-message").textContent = "";
    show("review");
    renderChoices();
  }

  async function choose(change) {
    if (busy || over) return;
    busy = true;
    Object.assign(view, change);
    renderChoices();
    $("review-busy").hidden = false;
    try {
      const r = await call("POST", "/api/session/render",
        { take: view.take, background: view.background, preset: view.preset });
      if (over) return;
      view.render = r.render;
      $("result").src = r.image;
    } catch (err) {
      await handleError(err);
    } finally {
      if (!over) $("review-busy").hidden = true;
      busy = false;
    }
  }

  // -- delivery, end, delete ------------------------------------------------------------------------------

  async function deliver() {
    if (busy || over) return;
    busy = true;
    try {
      $("review-busy").hidden = false; // the other crops are rendered now
      const also = [...alsoPresets].filter((p) => p !== view.preset);
      const r = await call("POST", "/api/session/deliver", { render: view.render, also_presets: also });
      if (over) return;
      $("qr").src = r.qr;
      showExpiry(r.expires_in);
      showDelivery();
    } catch (err) {
      await handleError(err);
    } finally {
      if (!over) $("review-busy").hidden = true;
      busy = false;
    }
  }

  /** The delivery screen: with the kiosk's hotspot, "join the Wi-Fi" first (the link works only there). */
  function showDelivery() {
    wifiStep(Boolean(page.wifi));
    show("delivery");
  }

  function wifiStep(on) {
    $("wifi-step").hidden = !on;
    $("link-step").hidden = on;
    $("wifi-again").hidden = on || !page.wifi;
    (on ? $("wifi-next") : $("finish")).focus();
    if (screen === "delivery") speakScreen();
  }

  function showExpiry(seconds) {
    const minutes = Math.floor(seconds / 60);
    $("expires").textContent = minutes >= 1 ? fmt(S.expires_in, minutes) : S.expires_soon;
  }

  /** The visit is over in this document: stop everything, drop every picture and text of it. */
  function endVisit() {
    over = true;
    busy = true;
    inFlight.abort();
    stopCountdown();
    stopPreview();
    for (const id of ["result", "qr", "preview"]) blankImage(id);
    for (const id of ["take-choices", "bg-choices", "preset-choices", "also-choices", "held-list"]) $(id).replaceChildren();
    for (const id of ["expires", "guidance", "review-message", "attract-message"]) $(id).textContent = "";
    if (P) { $("print-status").textContent = ""; $("print-status").hidden = true; }
    if ($("held-dialog").open) $("held-dialog").close();
    $("idle-warning").hidden = true;
    performance.clearResourceTimings(); // the document's list of the URLs it fetched (render ids, the QR's)
  }

  /** ``result``: the server's answer, or null if the visit was already gone (nothing to show a code for). */
  function showDone(result, linkPending) {
    $("deleting").hidden = true;
    $("deleted").hidden = false; // only now: the server has wiped (or had nothing left to wipe)
    const receipt = result && result.receipt;
    $("receipt").textContent = receipt || "";
    $("receipt-line").hidden = !receipt;
    $("receipt-unrecorded").hidden = !(result && !receipt); // never a code that proves nothing
    $("done-link-note").hidden = !(linkPending && result);
  }

  /** Delete now, Withdraw and "I'm done": end the visit on this page at once (nothing of it stays on the
      screen, "Deleting your photos..." shows), then tell the server; "deleted" and the receipt code show
      when it confirms. */
  async function finish(path, linkPending) {
    if (over) return;
    endVisit();
    $("receipt-line").hidden = true;
    $("receipt-unrecorded").hidden = true;
    $("done-link-note").hidden = true;
    $("deleting").hidden = false;
    $("deleted").hidden = true;
    show("done");
    let result = null;
    for (;;) {
      try {
        result = await api("POST", path);
        break;
      } catch (err) {
        if (err.status === 404) break; // nothing left to delete: the visit was wiped already
        if (err.status === 409 && path !== "/api/session/delete") { path = "/api/session/delete"; linkPending = false; continue; }
        await new Promise((resolve) => setTimeout(resolve, 500)); // the server is busy: ask again
      }
    }
    showDone(result, linkPending);
    setTimeout(G.fresh, DONE_SECONDS * 1000);
  }

  function showError() {
    endVisit();
    show("error");
    setTimeout(G.fresh, DONE_SECONDS * 1000);
  }

  // -- what we hold ---------------------------------------------------------------------------------------

  function humanBytes(n) {
    if (n >= 1048576) return (n / 1048576).toFixed(1) + " MB";
    return Math.max(1, Math.round(n / 1024)) + " KB";
  }

  function renderHeld() {
    const held = (state && state.held) || [];
    const now = Date.now() / 1000;
    if (!held.length) {
      const li = document.createElement("li");
      li.textContent = S.held_empty;
      $("held-list").replaceChildren(li);
      return;
    }
    $("held-list").replaceChildren(...held.map((item) => {
      const li = document.createElement("li");
      const what = document.createElement("span");
      const kind = S["kind_" + item.kind] || (P && P.strings["kind_" + item.kind]) || item.kind;
      what.textContent = kind + " · " + humanBytes(item.bytes);
      const when = document.createElement("span");
      when.textContent = fmt(S.held_expires, Math.max(1, Math.ceil((item.expires - now) / 60)));
      li.append(what, when);
      return li;
    }));
  }

  // -- errors and syncing with the server -----------------------------------------------------------------

  async function handleError(err, stayOn) {
    if (over) return;
    if (err.code === "worker_failed") { showError(); return; }
    await poll();
    if (over) return;
    if (stayOn === "preview" && state && state.phase === "preview") {
      show("preview");
      $("guidance").textContent = errorText(err);
      G.sayAfter(errorText(err));
      return;
    }
    const target = screen === "review" ? "review-message" : "attract-message";
    $(target).textContent = errorText(err);
    G.sayAfter(errorText(err));
  }

  async function poll() {
    if (over) return;
    const asked = epoch;
    let fresh;
    try {
      fresh = await api("GET", "/api/session");
    } catch (_) {
      return;
    }
    if (over || asked !== epoch) return; // an action ran meanwhile: this answer is older than the page
    state = fresh;
    follow();
  }

  function follow() {
    const p = state.phase;
    G.follow(state);
    renderHeld();
    renderPrint();
    if (state.delivery) showExpiry(state.delivery.expires_in);
    if (busy) return;
    if (p === "idle") {
      if (VISIT_SCREENS.includes(screen)) {
        // Wiped without this page asking (left alone, staff, a failure): a fresh page for the next guest.
        if (state.error) showError(); else { endVisit(); G.fresh(); }
      }
    } else if (p === "consent" && screen !== "consent") {
      show("consent");
    } else if (p === "preview" && screen !== "preview") {
      show("preview");
    } else if (p === "review" && screen !== "review") {
      enterReview(null);
    } else if (p === "review") {
      renderChoices();
    } else if (p === "delivery" && screen !== "delivery") {
      if (state.delivery && state.delivery.qr) $("qr").src = "/api/session/qr.png?v=" + encodeURIComponent(state.delivery.qr);
      showDelivery();
    }
  }

  // -- wiring ---------------------------------------------------------------------------------------------

  function consentChoices() {
    const choices = {};
    for (const box of document.querySelectorAll("input[data-choice]")) choices[box.dataset.choice] = box.checked;
    return choices;
  }

  $("start").addEventListener("click", async () => {
    if (busy) return;
    busy = true;
    $("attract-message").textContent = "";
    try {
      state = await call("POST", "/api/session");
      $("agree").checked = false;
      $("accept").disabled = true;
      show("consent");
    } catch (err) {
      if (err.code === "session_active") { busy = false; await poll(); return; }
      $("attract-message").textContent = errorText(err);
    } finally {
      busy = false;
    }
  });
  $("agree").addEventListener("change", () => { $("accept").disabled = !$("agree").checked; });
  window.addEventListener("scroll", scrollHint, { passive: true });
  window.addEventListener("resize", scrollHint, { passive: true });
  $("accept").addEventListener("click", async () => {
    if (busy || over || !$("agree").checked) return;
    busy = true;
    try {
      state = await call("POST", "/api/session/consent", { accept: true, choices: consentChoices() });
      if (over) return;
      previewBg = null;
      show("preview");
    } catch (err) {
      await handleError(err);
    } finally {
      busy = false;
    }
  });
  $("decline").addEventListener("click", async () => {
    if (over) return;
    endVisit();
    try {
      await api("POST", "/api/session/consent", { accept: false, choices: consentChoices() });
    } catch (_) { /* nothing was captured either way */ }
    G.fresh();
  });
  $("bg-toggle").addEventListener("click", cycleBackground);
  $("shoot").addEventListener("click", () => { if (!busy && !over) startCountdown(); });
  $("cancel-countdown").addEventListener("click", cancelCountdown);
  $("retake").addEventListener("click", async () => {
    if (busy || over) return;
    busy = true;
    try {
      state = await call("POST", "/api/session/retake", {});
    } catch (err) {
      busy = false;
      await handleError(err, "review");
      return;
    }
    busy = false;
    if (over) return;
    show("preview"); // back to the live camera: the guest poses again and presses the shutter when ready
  });
  $("deliver").addEventListener("click", deliver);
  if (P) $("print-btn").addEventListener("click", printHeadshot);
  $("finish").addEventListener("click", () => finish("/api/session/end", true));
  $("delete-btn").addEventListener("click", () => finish("/api/session/delete", false));
  $("held-delete").addEventListener("click", () => finish("/api/session/delete", false));
  $("held-revoke").addEventListener("click", () => finish("/api/session/revoke", false));
  $("held-btn").addEventListener("click", async () => { await poll(); if (!over) $("held-dialog").showModal(); });
  $("held-close").addEventListener("click", () => $("held-dialog").close());
  $("again").addEventListener("click", G.fresh);
  $("wifi-next").addEventListener("click", () => wifiStep(false));
  $("wifi-again").addEventListener("click", () => wifiStep(true));
  if (page.wifi) {
    // The same network for every guest: the code and the words are part of the page, not of a visit.
    $("wifi-qr").src = page.wifi.qr;
    $("wifi-ssid").textContent = page.wifi.ssid;
    $("wifi-password").textContent = page.wifi.password;
  }
  $("recover").addEventListener("click", G.fresh);

  // -- attract screen: sample headshots -------------------------------------------------------------------

  // Made by this kiosk from its bundled demo portraits (kiosk_ui/brand.py), never from a guest. Shown
  // once the server has them; until then the attract screen is text. One at a time: the next fades in
  // over 2 s (CSS) every SAMPLE_SECONDS (WCAG 2.3.1: nothing flashes). "Pause the examples" stops the
  // change (2.2.2); with reduced motion they start paused, and change without fading once un-paused.
  const SAMPLE_SECONDS = 9;
  const reducedMotion = window.matchMedia("(prefers-reduced-motion: reduce)").matches;
  const reel = { timer: null, index: 0, paused: reducedMotion, polls: 0 };

  function stepSamples() {
    if (screen !== "attract" || reel.paused) return;
    const images = $("reel").querySelectorAll("img");
    if (images.length < 2) return;
    images[reel.index].classList.remove("current");
    reel.index = (reel.index + 1) % images.length;
    images[reel.index].classList.add("current");
  }

  function showSamples(urls) {
    if (!urls.length || over) return;
    const images = urls.map((url, i) => {
      const img = document.createElement("img");
      img.src = url;
      img.alt = (B.strings && B.strings.sample_alt) || "";
      if (i === 0) img.classList.add("current");
      else img.setAttribute("aria-hidden", "true"); // one example is enough for a screen reader
      img.decoding = "async";
      return img;
    });
    $("reel").replaceChildren(...images);
    $("samples").hidden = false;
    $("samples-pause").hidden = urls.length < 2;
    $("samples-pause").setAttribute("aria-pressed", reel.paused ? "true" : "false");
    $("screen-attract").classList.add("with-samples");
    reel.timer = setInterval(stepSamples, SAMPLE_SECONDS * 1000);
  }

  async function loadSamples() {
    if (!B.samples || over) return;
    try {
      const status = await api("GET", B.samples, undefined, inFlight.signal);
      if (status.ready) { showSamples(status.urls || []); return; }
      if (!status.pending) return; // not made on this kiosk (no models?): the text is the screen
    } catch (_) { /* text only: the attract screen works without them */ }
    reel.polls += 1;
    if (reel.polls < 60 && !over) setTimeout(loadSamples, 5000); // rendered once, in the background
  }

  $("samples-pause").addEventListener("click", () => {
    reel.paused = !reel.paused;
    $("samples-pause").setAttribute("aria-pressed", reel.paused ? "true" : "false");
  });

  // -- keyboard and physical shutter ----------------------------------------------------------------------

  // F13: what programmable USB buttons are usually set to (no keyboard has it, so no clash); "Camera": the
  // camera key of some keypads; "AudioVolumeUp": what Bluetooth selfie remotes send.
  const SHUTTER_KEYS = ["F13", "Camera", "AudioVolumeUp"];
  const CONTROLS = "button, a, input, select, textarea, summary, [contenteditable]";

  /** The screen's main step, for the shutter button. */
  function mainStep() {
    if ($("held-dialog").open) return; // the dialog's own buttons, by keyboard
    if (!$("idle-warning").hidden) { $("still-here").click(); return; }
    const click = (id) => { const b = $(id); if (b && !b.hidden && !b.disabled) b.click(); };
    switch (screen) {
      case "attract": click("start"); break;
      case "consent":
        // Consent is the guest's own act: the shutter brings them to the box, it never ticks it.
        if ($("agree").checked) click("accept"); else $("agree").focus();
        break;
      case "preview": if (!countdownTimer && !busy) click("shoot"); break;
      case "review": click("deliver"); break;
      case "delivery": click($("wifi-step").hidden ? "finish" : "wifi-next"); break;
      case "done": click("again"); break;
      case "error": click("recover"); break;
      default: break;
    }
  }

  document.addEventListener("keydown", (event) => {
    if (event.repeat || event.altKey || event.ctrlKey || event.metaKey) return;
    const shutter = SHUTTER_KEYS.includes(event.key);
    const onControl = event.target.closest && event.target.closest(CONTROLS);
    if (!shutter && !((event.key === "Enter" || event.key === " ") && !onControl)) return;
    event.preventDefault();
    mainStep();
  });

  show("attract");
  loadSamples();
  poll();
  setInterval(poll, 1000);
})();
