// perface annotate: the judging page. Vanilla JS, no network access beyond this server.
//
// The server keeps each annotator's open assignments (the one shown and the next, preloaded). An answer is
// put in an outbox (kept in localStorage, so a reload re-sends it), shown as done at once, and posted with a
// client submission id: a retry of the same id is stored once. After the outbox is flushed the page asks
// for the next assignment and preloads its images while the annotator judges the current one.
(function () {
  "use strict";
  var body = document.body;
  var annotator = body.dataset.annotator;
  if (!annotator) { return; }  // the sign-in form: nothing to drive
  var token = body.dataset.token || "";
  var completionUrl = body.dataset.completionUrl || "";
  var preview = body.dataset.preview === "true";
  var $ = function (id) { return document.getElementById(id); };
  var outboxKey = "perface-outbox:" + location.host + ":" + annotator;

  var state = {
    started: false, busy: true, current: null, shownAt: 0, queue: [], answered: new Set(),
    serverDone: 0, total: Number($("progress").getAttribute("aria-valuemax")) || 1, complete: false,
    available: true, code: null, link: null, outbox: loadOutbox(), flushing: false, backoff: 0, finished: false
  };
  var images = new Map();  // url -> preloaded Image

  function withToken(url) {
    return token ? url + (url.indexOf("?") >= 0 ? "&" : "?") + "token=" + encodeURIComponent(token) : url;
  }
  function newId() {
    var bytes = new Uint8Array(16);
    window.crypto.getRandomValues(bytes);
    return Array.prototype.map.call(bytes, function (b) { return ("0" + b.toString(16)).slice(-2); }).join("");
  }
  function loadOutbox() {
    try { return JSON.parse(window.localStorage.getItem(outboxKey) || "[]"); } catch (e) { return []; }
  }
  function saveOutbox() {
    try { window.localStorage.setItem(outboxKey, JSON.stringify(state.outbox)); } catch (e) { /* private mode */ }
  }
  function sleep(ms) { return new Promise(function (r) { setTimeout(r, ms); }); }
  function showProblem(text) { var p = $("problem"); p.textContent = text; p.hidden = !text; }

  function api(method, path, payload) {
    var opts = { method: method, cache: "no-store", headers: { "Accept": "application/json" } };
    if (token) { opts.headers["X-PerFace-Token"] = token; }
    if (payload !== undefined) {
      opts.headers["Content-Type"] = "application/json";
      opts.body = JSON.stringify(payload);
    }
    return fetch(path, opts).then(function (res) {
      return res.json().catch(function () { return {}; }).then(function (data) {
        return { status: res.status, data: data };
      });
    });
  }

  function preload(url) {
    var img = images.get(url);
    if (!img) {
      img = new Image();
      img.decoding = "async";
      img.src = withToken(url);
      images.set(url, img);
    }
    return img;
  }
  function decoded(url) {
    var img = preload(url);
    return img.decode ? img.decode().catch(function () {}) : Promise.resolve();
  }

  function updateProgress() {
    var done = Math.min(state.serverDone + state.outbox.length, state.total);
    if (state.complete && !state.outbox.length) { done = state.total; }
    $("bar").style.width = (100 * done / state.total).toFixed(1) + "%";
    $("progress").setAttribute("aria-valuenow", String(done));
    $("count").textContent = done + " / " + state.total;
  }

  function refill() {
    return api("GET", "/api/next?annotator=" + encodeURIComponent(annotator)).then(function (r) {
      if (r.status !== 200) { throw new Error(r.data && r.data.error ? r.data.error : "HTTP " + r.status); }
      var d = r.data;
      state.total = d.total; state.serverDone = d.done; state.complete = d.complete;
      state.available = d.available; state.code = d.completion_code; state.link = d.completion_url || null;
      d.assignments.forEach(function (a) {
        var known = state.answered.has(a.id) || (state.current && state.current.id === a.id) ||
          state.queue.some(function (q) { return q.id === a.id; });
        if (known) { return; }
        state.queue.push(a);
        [a.anchor, a.left, a.right].forEach(preload);
      });
      updateProgress();
    });
  }

  function show(a) {
    state.busy = true;
    state.current = a;
    return Promise.all([decoded(a.anchor), decoded(a.left), decoded(a.right)]).then(function () {
      if (state.current !== a) { return; }
      $("anchor-img").src = withToken(a.anchor);
      $("left-img").src = withToken(a.left);
      $("right-img").src = withToken(a.right);
      $("trial").dataset.assignment = String(a.id);
      $("trial").hidden = false;
      body.dataset.view = "trial";
      window.requestAnimationFrame(function () {
        state.shownAt = performance.now();
        state.busy = false;
      });
    });
  }

  function finish() {
    state.finished = true;
    $("trial").hidden = true;
    $("instructions").hidden = true;
    if (state.complete) {
      $("code").textContent = state.code || "";
      var link = state.link || "";
      if (link) { $("completion-link").href = link; $("completion-link").hidden = false; }
      $("done").hidden = false;
      body.dataset.view = "done";
    } else {
      $("empty").hidden = false;
      body.dataset.view = "empty";
    }
    updateProgress();
  }

  function advance() {
    if (!state.started || state.finished || state.current) { return; }
    if (state.queue.length) { show(state.queue.shift()); return; }
    if (state.outbox.length || state.flushing) { return; }  // flush() calls advance() when it is done
    if (state.complete || !state.available) { finish(); return; }
    refill().then(function () {
      if (state.queue.length) { advance(); } else if (state.complete || !state.available) { finish(); }
    }, function (e) { showProblem("Could not load the next faces (" + e.message + "); retrying."); setTimeout(advance, 2000); });
  }

  function answer(side) {
    if (!state.started || state.busy || !state.current) { return; }
    state.busy = true;
    var a = state.current;
    var ms = Math.max(0, Math.round(performance.now() - state.shownAt));
    state.answered.add(a.id);
    state.outbox.push({ annotator: annotator, assignment: a.id, submission: newId(), side: side, response_ms: ms });
    saveOutbox();
    state.current = null;
    updateProgress();
    advance();
    flush();
  }

  function flush() {
    if (state.flushing) { return; }
    state.flushing = true;
    var step = function () {
      if (!state.outbox.length) {
        return refill().then(function () { showProblem(""); }, function (e) {
          showProblem("Could not load the next faces (" + e.message + "); retrying.");
          return sleep(2000).then(step);
        });
      }
      var item = state.outbox[0];
      return api("POST", "/api/judgments", item).then(function (r) {
        if (r.status === 200 || r.status === 201) {
          state.outbox.shift(); saveOutbox(); state.backoff = 0;
          state.serverDone = r.data.done; updateProgress();
        } else if (r.status >= 400 && r.status < 500 && r.status !== 408 && r.status !== 429) {
          state.outbox.shift(); saveOutbox();  // refused (e.g. expired): nothing to retry
          if (window.console) { console.warn("answer not stored:", r.data && r.data.error); }
        } else {
          throw new Error("HTTP " + r.status);
        }
      }).catch(function () {
        state.backoff = Math.min(8000, state.backoff ? state.backoff * 2 : 500);
        showProblem("Connection problem: your answers are kept and will be sent again.");
        return sleep(state.backoff);
      }).then(step);
    };
    step().then(function () {
      state.flushing = false;
      if (state.outbox.length) { flush(); return; }
      advance();
    });
  }

  function start() {
    if (state.started || preview) { return; }
    state.started = true;
    $("instructions").hidden = true;
    advance();
  }

  document.addEventListener("keydown", function (e) {
    if (e.altKey || e.ctrlKey || e.metaKey || e.repeat) { return; }
    if (!state.started) {
      var button = $("start");
      if ((e.key === "Enter" || e.key === " ") && button && !button.disabled) { e.preventDefault(); start(); }
      return;
    }
    if (e.key === "ArrowLeft" || e.key === "1") { e.preventDefault(); answer("left"); }
    else if (e.key === "ArrowRight" || e.key === "2") { e.preventDefault(); answer("right"); }
  });
  ["left", "right"].forEach(function (side) {
    $(side).addEventListener("click", function (e) { e.currentTarget.blur(); answer(side); });
  });
  if ($("start")) { $("start").addEventListener("click", start); }

  body.dataset.view = "instructions";
  state.outbox.forEach(function (item) { state.answered.add(item.assignment); });
  updateProgress();
  var first = state.outbox.length ? new Promise(function (resolve) {
    flush();
    var wait = function () { if (state.flushing) { setTimeout(wait, 50); } else { resolve(); } };
    wait();
  }) : refill();
  first.then(function () {
    var button = $("start");
    if (state.complete && !state.queue.length) { state.started = true; finish(); return; }
    if (!state.available && !state.queue.length) { state.started = true; finish(); return; }
    if (button) { button.disabled = false; button.textContent = state.serverDone ? "Continue" : "Start"; }
  }, function (e) { showProblem("Could not reach the server (" + e.message + "). Reload the page to try again."); });
})();
