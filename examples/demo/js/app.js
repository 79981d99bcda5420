// Deferred script: runs after parsing; counts the assets the page loaded.
(function () {
  var out = document.getElementById("loaded");
  if (!out || !window.performance || !performance.getEntriesByType) return;
  var n = performance.getEntriesByType("resource").length;
  out.textContent = n + " assets loaded in " + (Date.now() - window.DEMO.started) + " ms";
})();
