// Live progress for background jobs: polls the element's data-progress-url every second
// while the job is queued or running, then reloads the page once to show the results.
(function () {
  "use strict";
  var box = document.getElementById("backtest-progress");
  if (!box) { return; }
  var url = box.getAttribute("data-progress-url");
  var status = box.getAttribute("data-status");
  if (status !== "queued" && status !== "running") { return; }
  function set(name, value) {
    var el = box.querySelector('[data-field="' + name + '"]');
    if (el) { el.textContent = value; }
  }
  function poll() {
    fetch(url, { credentials: "same-origin", headers: { "Accept": "application/json" } })
      .then(function (r) { return r.json(); })
      .then(function (p) {
        set("status", p.status); set("processed", p.processed); set("total", p.total);
        var pct = Math.round(p.percent || 0);
        var bar = box.querySelector('[data-field="bar"]');
        if (bar) { bar.value = pct; bar.textContent = pct + " %"; }
        if (p.status === "done" || p.status === "failed") { window.location.reload(); return; }
        window.setTimeout(poll, 1000);
      })
      .catch(function () { window.setTimeout(poll, 3000); });
  }
  window.setTimeout(poll, 1000);
}());

// Keyboard shortcuts (the pages work without them): j/k move through the queue, c claims next,
// a/m/r pick approve / request mitigations / reject on a claimed application, ? shows help.
(function () {
  "use strict";
  var dialog = document.getElementById("shortcuts");
  function showHelp() { if (dialog && !dialog.open) { dialog.showModal(); } }
  document.querySelectorAll("[data-show-shortcuts]").forEach(function (b) { b.addEventListener("click", showHelp); });
  var list = document.querySelector("[data-keyboard-list]");
  var rows = list ? Array.prototype.slice.call(list.querySelectorAll("tbody tr")) : [];
  var current = -1;
  function select(index) {
    if (!rows.length) { return; }
    current = Math.max(0, Math.min(rows.length - 1, index));
    rows.forEach(function (r, i) { r.classList.toggle("table-active", i === current); });
    var link = rows[current].querySelector("a");
    if (link) { link.focus(); }
  }
  function pickOutcome(value) {
    var radio = document.querySelector('input[name="outcome"][value="' + value + '"]');
    if (radio) { radio.checked = true; radio.focus(); }
  }
  document.addEventListener("keydown", function (event) {
    var target = event.target;
    var typing = target && (target.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(target.tagName) && target.type !== "radio" && target.type !== "checkbox");
    if (typing || event.ctrlKey || event.metaKey || event.altKey) { return; }
    if (dialog && dialog.open) { return; }
    var claim = document.getElementById("claim-next-form");
    switch (event.key) {
      case "?": showHelp(); break;
      case "j": select(current + 1); break;
      case "k": select(current - 1); break;
      case "c": if (claim) { claim.submit(); } else { return; } break;
      case "a": pickOutcome("approve"); break;
      case "m": pickOutcome("request_mitigations"); break;
      case "r": pickOutcome("reject"); break;
      default: return;
    }
    event.preventDefault();
  });
}());

// The navbar's Account menu (a <details> that works without this): Escape closes it and returns
// focus to "Account"; a click elsewhere closes it.
(function () {
  "use strict";
  var menu = document.querySelector("[data-account-menu]");
  if (!menu) { return; }
  menu.addEventListener("keydown", function (event) {
    if (event.key === "Escape" && menu.open) {
      menu.open = false;
      menu.querySelector("summary").focus();
      event.preventDefault();
    }
  });
  document.addEventListener("click", function (event) {
    if (menu.open && !menu.contains(event.target)) { menu.open = false; }
  });
}());
