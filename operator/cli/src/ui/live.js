// ciclo ui: follow the cluster. The server sends a `changed` event after each change (a
// burst counts once); the page's <main> is fetched again and put in place of the old one.
(() => {
  const dot = () => document.getElementById("live");
  const events = new EventSource("/events");
  events.onopen = () => dot()?.classList.add("on");
  events.onerror = () => dot()?.classList.remove("on");
  let busy = false, again = false;
  const refresh = async () => {
    if (busy) { again = true; return; }
    busy = true;
    try {
      const response = await fetch(location.href, { headers: { "Accept": "text/html" } });
      if (response.ok) {
        const next = new DOMParser().parseFromString(await response.text(), "text/html");
        const main = next.querySelector("main");
        if (main) document.querySelector("main").replaceWith(main);
        document.body.dataset.updates = String(Number(document.body.dataset.updates || 0) + 1);
      }
    } finally {
      busy = false;
      if (again) { again = false; refresh(); }
    }
  };
  events.addEventListener("changed", refresh);
  // A part that reads what no watch announces (a deployment's traffic) asks to be read again
  // every `data-refresh` seconds.
  setInterval(() => {
    const every = Number(document.querySelector("main [data-refresh]")?.dataset.refresh || 0);
    if (every > 0 && Date.now() - (window.cicloLastRefresh || 0) >= every * 1000) {
      window.cicloLastRefresh = Date.now();
      refresh();
    }
  }, 1000);
})();
