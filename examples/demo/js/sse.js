// SSE demo: appends each server-sent event as it arrives.
(function () {
  var box = document.getElementById("events");
  var es = new EventSource(window.DEMO.sse);
  es.addEventListener("tick", function (e) {
    box.textContent += e.lastEventId + ": " + e.data + "\n";
  });
  es.onerror = function () { es.close(); };
})();
