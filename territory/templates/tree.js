// The tree page's own script (no libraries): find a territory by key or name and reveal it, expand or
// collapse everything, and reveal the territory a #t-KEY link names.
(function () {
  "use strict";
  var nodes = Array.prototype.slice.call(document.querySelectorAll("details.node"));
  var form = document.getElementById("find-form");
  var input = document.getElementById("find");
  var status = document.getElementById("find-status");
  var matches = [];
  var at = -1;
  var lastQuery = null;

  function summaryOf(node) {
    return node.querySelector(":scope > summary");
  }

  function reveal(node) {
    for (var p = node.parentElement; p; p = p.parentElement) {
      if (p.tagName === "DETAILS") p.open = true;
    }
    var old = document.querySelectorAll("details.node.hit");
    for (var i = 0; i < old.length; i++) old[i].classList.remove("hit");
    node.classList.add("hit");
    var summary = summaryOf(node);
    summary.scrollIntoView({ block: "center" });
    summary.focus({ preventScroll: true });
  }

  // Exact key or name first, then those starting with the text, then those containing it.
  function find(query) {
    var q = query.trim().toLowerCase();
    var exact = [], prefix = [], partial = [];
    if (!q) return [];
    nodes.forEach(function (n) {
      var key = n.dataset.key.toLowerCase();
      var name = (n.dataset.name || "").toLowerCase();
      if (key === q || name === q) exact.push(n);
      else if (key.indexOf(q) === 0 || name.indexOf(q) === 0) prefix.push(n);
      else if (key.indexOf(q) >= 0 || name.indexOf(q) >= 0) partial.push(n);
    });
    return exact.concat(prefix, partial);
  }

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    var query = input.value.trim();
    if (query !== lastQuery) {
      matches = find(query);
      at = -1;
      lastQuery = query;
    }
    if (!matches.length) {
      status.textContent = query ? "No territory matches \u201c" + query + "\u201d in this view" : "";
      return;
    }
    at = (at + 1) % matches.length;
    reveal(matches[at]);
    status.textContent = (at + 1) + " of " + matches.length + ": " + matches[at].dataset.key +
      (matches.length > 1 ? " (Find again for the next)" : "");
    if (window.history && history.replaceState) history.replaceState(null, "", "#" + matches[at].id);
  });

  document.getElementById("expand-all").addEventListener("click", function () {
    nodes.forEach(function (n) { n.open = true; });
  });
  document.getElementById("collapse-all").addEventListener("click", function () {
    nodes.forEach(function (n, i) { n.open = i === 0; });  // the top stays open: its children show
  });

  if (location.hash.indexOf("#t-") === 0) {
    var target = document.getElementById(decodeURIComponent(location.hash.slice(1)));
    if (target && target.classList.contains("node")) reveal(target);
  }
})();
