/* Headshot kiosk guest UI: one page, one section per screen, driven by the JSON API.
   The server's phase is the truth; this script polls it and follows. No storage, no cookies, no CDN. */
"use strict";
(() => {
  const page = JSON.parse(document.getElementById("page-data").textContent);
  const S = page.strings;
  const $ = (id) => document.getElementById(id);
  const VISIT_SCREENS = ["consent", "preview", "processing", "review", "delivery"];
  const TOPBAR_SCREENS = ["preview", "processing", "review", "delivery"];

  let state = null;
  let screen = "attract";
  let busy = false; // a request that changes the phase is in flight: don't let polling switch screens
  let previewBg = null;
  let retakeMode = false;
  let countdownTimer = null;
  let guidanceTimer = null;
  let lastTouch = 0;
  let doneTimer = null;
  const view = { take: null, render: null, background: page.backgrounds[0], preset: page.presets[0] };

  const fmt = (text, n) => text.replace("{n}", String(n));

  async function api(method, path, body) {
    const opts = { method, cache: "no-store", headers: { Accept: "application/json" } };
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

  function errorText(err) {
    return S["error_" + err.code] || S.error_generic;
  }

  function show(name) {
    screen = name;
    for (const el of document.querySelectorAll(".screen")) el.hidden = el.id !== "screen-" + name;
    $("topbar").hidden = !TOPBAR_SCREENS.includes(name);
    if (name === "preview") startPreview(); else stopPreview();
    if (name !== "done" && doneTimer) { clearTimeout(doneTimer); doneTimer = null; }
    const heading = document.querySelector("#screen-" + name + " h1");
    if (heading && !heading.classList.contains("visually-hidden")) {
      heading.tabIndex = -1;
      heading.focus({ preventScroll: true });
    }
    document.body.dataset.screen = name;
  }

  // -- live preview ---------------------------------------------------------------------------------------

  function streamUrl() {
    return "/api/session/preview.mjpg" + (previewBg ? "?background=" + encodeURIComponent(previewBg) : "");
  }

  function startPreview() {
    stopPreview();
    const img = document.createElement("img");
    img.id = "preview";
    img.alt = $("preview").alt;
    $("preview").replaceWith(img);
    if (!retakeMode) img.src = streamUrl();
    $("bg-toggle").hidden = retakeMode;
    updateBgToggle();
    guidanceTimer = setInterval(updateGuidance, 700);
    updateGuidance();
  }

  function stopPreview() {
    // Replacing the element aborts the multipart download, which frees the server's stream thread.
    const old = $("preview");
    if (old && old.getAttribute("src")) {
      const img = document.createElement("img");
      img.id = "preview";
      img.alt = old.alt;
      old.replaceWith(img);
    }
    if (guidanceTimer) { clearInterval(guidanceTimer); guidanceTimer = null; }
  }

  function updateBgToggle() {
    const name = previewBg ? (S["bg_" + previewBg] || S.bg_colour) : S.bg_off;
    $("bg-toggle").textContent = name;
    $("bg-toggle").setAttribute("aria-label", name);
  }

  async function updateGuidance() {
    if (retakeMode) { $("guidance").textContent = S.hint_ready; return; }
    try {
      const g = await api("GET", "/api/session/guidance");
      const hint = g.hints && g.hints.length ? g.hints[0] : null;
      $("guidance").textContent = g.fresh ? (hint ? (S["hint_" + hint] || "") : S.hint_ready) : "";
      $("outline").classList.toggle("ok", g.fresh && !hint);
    } catch (_) { /* the next poll tries again */ }
  }

  function cycleBackground() {
    const options = [null, ...page.backgrounds];
    previewBg = options[(options.indexOf(previewBg) + 1) % options.length];
    if (screen === "preview") startPreview();
  }

  // -- countdown and capture ------------------------------------------------------------------------------

  function cancelCountdown() {
    if (countdownTimer) { clearTimeout(countdownTimer); countdownTimer = null; }
    $("countdown").hidden = true;
    $("cancel-countdown").hidden = true;
    $("shoot").hidden = false;
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
      n -= 1;
      countdownTimer = setTimeout(step, 1000);
    };
    step();
  }

  async function capture() {
    countdownTimer = null;
    show("processing");
    try {
      const r = await api("POST", "/api/session/capture");
      retakeMode = false;
      view.take = r.take;
      view.render = r.render;
      view.background = r.background || page.backgrounds[0];
      view.preset = r.preset || page.presets[0];
      state = r;
      enterReview(r.image);
    } catch (err) {
      await handleError(err, err.code === "no_face" ? "preview" : null);
    } finally {
      busy = false;
      $("shoot").hidden = false;
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

  function renderChoices() {
    const takes = (state && state.takes) || [];
    $("take-choices").replaceChildren(...takes.map((t) =>
      chip(fmt(S.photo_n, t.number), t.take === view.take, () => choose({ take: t.take }))));
    $("bg-choices").replaceChildren(...page.backgrounds.map((b) =>
      chip(S["bg_" + b] || b, b === view.background, () => choose({ background: b }))));
    $("preset-choices").replaceChildren(...page.presets.map((p) =>
      chip(S["preset_" + p] || p, p === view.preset, () => choose({ preset: p }))));
    const left = state && typeof state.takes_left === "number" ? state.takes_left : 0;
    $("retake").textContent = left > 0 ? fmt(S.takes_left, left) : S.no_takes_left;
    $("retake").disabled = left <= 0;
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
    if (busy) return;
    busy = true;
    Object.assign(view, change);
    renderChoices();
    $("review-busy").hidden = false;
    try {
      const r = await api("POST", "/api/session/render",
        { take: view.take, background: view.background, preset: view.preset });
      view.render = r.render;
      $("result").src = r.image;
    } catch (err) {
      await handleError(err);
    } finally {
      $("review-busy").hidden = true;
      busy = false;
    }
  }

  // -- delivery, end, delete ------------------------------------------------------------------------------

  async function deliver() {
    if (busy) return;
    busy = true;
    try {
      const r = await api("POST", "/api/session/deliver", { render: view.render });
      $("qr").src = r.qr;
      showExpiry(r.expires_in);
      show("delivery");
    } catch (err) {
      await handleError(err);
    } finally {
      busy = false;
    }
  }

  function showExpiry(seconds) {
    const minutes = Math.floor(seconds / 60);
    $("expires").textContent = minutes >= 1 ? fmt(S.expires_in, minutes) : S.expires_soon;
  }

  function showDone(result, linkPending) {
    state = result;
    $("receipt").textContent = result.receipt || (result.last_receipt && result.last_receipt.receipt) || "";
    $("done-link-note").hidden = !linkPending;
    if ($("held-dialog").open) $("held-dialog").close();
    show("done");
    doneTimer = setTimeout(() => { if (screen === "done") show("attract"); }, 30000);
  }

  async function finish(path, linkPending) {
    if (busy) return;
    busy = true;
    cancelCountdown();
    busy = true;
    try {
      showDone(await api("POST", path), linkPending);
    } catch (err) {
      await handleError(err);
    } finally {
      busy = false;
    }
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
      what.textContent = (S["kind_" + item.kind] || item.kind) + " · " + humanBytes(item.bytes);
      const when = document.createElement("span");
      when.textContent = fmt(S.held_expires, Math.max(1, Math.ceil((item.expires - now) / 60)));
      li.append(what, when);
      return li;
    }));
  }

  // -- errors and syncing with the server -----------------------------------------------------------------

  async function handleError(err, stayOn) {
    if (err.code === "worker_failed") { show("error"); return; }
    await poll();
    if (stayOn === "preview" && state && state.phase === "preview") {
      show("preview");
      $("guidance").textContent = errorText(err);
      return;
    }
    const target = screen === "review" ? "review-message" : "attract-message";
    $(target).textContent = errorText(err);
  }

  async function poll() {
    try {
      state = await api("GET", "/api/session");
    } catch (_) {
      return;
    }
    follow();
  }

  function follow() {
    const p = state.phase;
    const warn = !!state.idle_warning && state.idle_seconds_left !== null && p !== "idle";
    $("idle-warning").hidden = !warn;
    if (warn) $("idle-text").textContent = fmt(S.idle_warning, Math.ceil(state.idle_seconds_left));
    renderHeld();
    if (state.delivery) showExpiry(state.delivery.expires_in);
    if (busy) return;
    if (p === "idle") {
      if (VISIT_SCREENS.includes(screen)) {
        if ($("held-dialog").open) $("held-dialog").close();
        show(state.error ? "error" : "attract");
      }
    } else if (p === "consent" && screen !== "consent") {
      show("consent");
    } else if (p === "preview" && screen !== "preview") {
      retakeMode = false;
      show("preview");
    } else if (p === "review" && screen !== "review") {
      enterReview(null);
    } else if (p === "review") {
      renderChoices();
    } else if (p === "delivery" && screen !== "delivery") {
      $("qr").src = "/api/session/qr.png";
      show("delivery");
    }
  }

  function touch() {
    const now = Date.now();
    if (!state || state.phase === "idle" || now - lastTouch < 2000) return;
    lastTouch = now;
    api("POST", "/api/session/touch").catch(() => {});
  }

  // -- wiring ---------------------------------------------------------------------------------------------

  $("start").addEventListener("click", async () => {
    if (busy) return;
    busy = true;
    $("attract-message").textContent = "";
    try {
      state = await api("POST", "/api/session");
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
  $("accept").addEventListener("click", async () => {
    if (busy || !$("agree").checked) return;
    busy = true;
    try {
      state = await api("POST", "/api/session/consent", { accept: true, choices: {} });
      retakeMode = false;
      previewBg = null;
      show("preview");
    } catch (err) {
      await handleError(err);
    } finally {
      busy = false;
    }
  });
  $("decline").addEventListener("click", async () => {
    if (busy) return;
    busy = true;
    try {
      state = await api("POST", "/api/session/consent", { accept: false, choices: {} });
    } catch (_) { /* nothing was captured either way */ }
    busy = false;
    show("attract");
  });
  $("bg-toggle").addEventListener("click", cycleBackground);
  $("shoot").addEventListener("click", () => { if (!busy) startCountdown(); });
  $("cancel-countdown").addEventListener("click", cancelCountdown);
  $("retake").addEventListener("click", async () => {
    if (busy) return;
    busy = true;
    try {
      state = await api("POST", "/api/session/retake", {});
    } catch (err) {
      busy = false;
      await handleError(err, "review");
      return;
    }
    busy = false;
    // Back to the live camera: the guest poses again and presses the shutter when ready.
    retakeMode = false;
    show("preview");
  });
  $("deliver").addEventListener("click", deliver);
  $("finish").addEventListener("click", () => finish("/api/session/end", true));
  $("delete-btn").addEventListener("click", () => finish("/api/session/delete", false));
  $("held-delete").addEventListener("click", () => finish("/api/session/delete", false));
  $("held-revoke").addEventListener("click", () => finish("/api/session/revoke", false));
  $("held-btn").addEventListener("click", async () => { await poll(); $("held-dialog").showModal(); });
  $("held-close").addEventListener("click", () => $("held-dialog").close());
  $("again").addEventListener("click", () => show("attract"));
  $("recover").addEventListener("click", () => show("attract"));
  $("still-here").addEventListener("click", async () => { lastTouch = 0; touch(); await poll(); });
  document.addEventListener("pointerdown", touch, { passive: true });
  document.addEventListener("keydown", touch, { passive: true });

  show("attract");
  poll();
  setInterval(poll, 1000);
})();
