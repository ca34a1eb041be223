// The run page, live: follows /ui/flows/{id}/runs/{run}/live (server-sent
// events, gateway/console/run_live.py) and puts the run's changing parts in
// place. A change of the run's state loads the page again: what it offers
// (an answer form, cancel, resume, fork) depends on it.
(function () {
  "use strict";
  var head = document.getElementById("run-head");
  var live = document.getElementById("run-live");
  if (!head || !live || !window.EventSource) {
    return;
  }
  var ended = ["completed", "failed", "canceled", "rejected"];
  var source = new EventSource(head.getAttribute("data-events"));
  source.addEventListener("run", function (event) {
    var run = JSON.parse(event.data);
    if (run.state !== head.getAttribute("data-state")) {
      source.close();
      window.location.reload();
      return;
    }
    head.innerHTML = run.head;
    live.innerHTML = run.live;
    if (ended.indexOf(run.state) >= 0) {
      source.close();
    }
  });
})();
