// opsboard pages: auto-refresh of panel fragments, the dashboard picker, drag-to-zoom on
// charts. No inline scripts anywhere: everything hangs off data attributes.
(function () {
  "use strict";

  function stamp(panel) {
    var el = panel.querySelector(".updated");
    if (el) el.textContent = "updated " + new Date().toLocaleTimeString([], { hour12: false });
  }

  function refresh(panel) {
    var src = panel.getAttribute("data-fragment");
    if (!src) return;
    var url = src + (src.indexOf("?") < 0 ? location.search : "&" + location.search.slice(1));
    fetch(url, { credentials: "same-origin" })
      .then(function (r) { return r.text().then(function (t) { return { ok: r.ok, text: t }; }); })
      .then(function (r) {
        panel.querySelector(".body").innerHTML = r.text;
        stamp(panel);
        bindZoom(panel);
      })
      .catch(function () { /* keep the last content; the next tick retries */ });
  }

  function bindZoom(root) {
    root.querySelectorAll("svg.chart").forEach(function (svg) {
      var left = +svg.getAttribute("data-plot-left"), right = +svg.getAttribute("data-plot-right");
      var from = +svg.getAttribute("data-from"), to = +svg.getAttribute("data-to");
      var width = +svg.getAttribute("width");
      var start = null;
      function toTime(ev) {
        var box = svg.getBoundingClientRect();
        var x = (ev.clientX - box.left) * (width / box.width);
        var f = Math.min(1, Math.max(0, (x - left) / (right - left)));
        return from + f * (to - from);
      }
      svg.addEventListener("mousedown", function (ev) { start = toTime(ev); svg.classList.add("zooming"); ev.preventDefault(); });
      svg.addEventListener("mouseup", function (ev) {
        svg.classList.remove("zooming");
        if (start === null) return;
        var end = toTime(ev), a = Math.min(start, end), b = Math.max(start, end);
        start = null;
        if (b - a < 1000) return;
        var params = new URLSearchParams(location.search);
        params.set("from", new Date(a).toISOString());
        params.set("to", new Date(b).toISOString());
        location.search = params.toString();
      });
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    var select = document.getElementById("dashboard-select");
    if (select) select.addEventListener("change", function () { location.href = select.value + location.search; });
    // Dashboard variables: a single-value selector applies as soon as it changes.
    document.querySelectorAll("form.variables select:not([multiple])").forEach(function (s) {
      s.addEventListener("change", function () { s.form.submit(); });
    });
    document.querySelectorAll("[data-fragment]").forEach(function (panel) {
      stamp(panel);
      var button = panel.querySelector(".refresh");
      if (button) button.addEventListener("click", function () { refresh(panel); });
      var seconds = +panel.getAttribute("data-refresh");
      if (seconds > 0) {
        setInterval(function () { if (!document.hidden) refresh(panel); }, seconds * 1000);
      }
    });
    bindZoom(document);
    document.addEventListener("visibilitychange", function () {
      if (!document.hidden) document.querySelectorAll("[data-fragment]").forEach(refresh);
    });
  });

  // Alert changes pushed by the server (server-sent events) into #alert-feed, newest first.
  var feed = document.getElementById("alert-feed");
  if (feed && window.EventSource) {
    var source = new EventSource(feed.getAttribute("data-events"));
    source.addEventListener("alert", function (ev) {
      var a = JSON.parse(ev.data);
      var li = document.createElement("li");
      li.className = a.state;
      li.textContent = new Date(a.at).toLocaleTimeString([], { hour12: false }) + " [" + a.state + "] " + a.rule + " (" + a.severity + "): " + a.message;
      feed.insertBefore(li, feed.firstChild);
      while (feed.children.length > 20) feed.removeChild(feed.lastChild);
      document.querySelectorAll("[data-live=alerts]").forEach(refresh);
    });
  }
})();
