#!/usr/bin/env python3
"""Time until a folder page has rendered, in headless Chromium, for each
server given as NAME=URL: from the navigation's start until a link to the
folder's first entry is in the page and a frame with it has been painted
(the first task after the animation frame that found it), read from the
page's own performance clock. Rounds alternate the servers' order; the cache is off.
Prints one line per round and server, then each server's median, spread,
and the ratio of medians to the first server.

Usage: bench/page_render.py ROUNDS MARKER NAME=URL...
"""
import statistics
import sys
import time

from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service

PROBE = """
(() => {
  window.__errors = [];
  window.addEventListener('error', (e) => window.__errors.push(String(e.message)));
  const marker = %r;
  const look = () => {
    if (window.__rendered) return;
    if (document.querySelector('a[href*="' + marker + '"]')) {
      // The frame this callback belongs to paints the link; a task queued
      // now runs once that paint is done (a second animation frame would
      // also wait for whatever long task the page runs next).
      setTimeout(() => { window.__rendered = performance.now(); }, 0);
      return;
    }
    requestAnimationFrame(look);
  };
  requestAnimationFrame(look);
})();
"""


def main():
    rounds = int(sys.argv[1])
    marker = sys.argv[2]
    servers = [a.split("=", 1) for a in sys.argv[3:]]
    opts = Options()
    opts.binary_location = "/usr/bin/chromium"
    for a in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
              "--window-size=1280,800"):
        opts.add_argument(a)
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=opts)
    driver.execute_cdp_cmd("Network.enable", {})
    driver.execute_cdp_cmd("Network.setCacheDisabled", {"cacheDisabled": True})
    driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": PROBE % marker})
    times = {name: [] for name, _ in servers}
    try:
        # One warm-up load each (the browser's own first start).
        for name, url in servers:
            driver.get(url)
        for r in range(rounds):
            order = servers if r % 2 == 0 else list(reversed(servers))
            for name, url in order:
                driver.get("about:blank")
                driver.get(url)
                deadline = time.time() + 60
                ms = None
                while time.time() < deadline:
                    ms = driver.execute_script("return window.__rendered || null")
                    if ms:
                        break
                    time.sleep(0.02)
                if not ms:
                    state = driver.execute_script(
                        "return [document.readyState, document.querySelectorAll('a').length,"
                        " document.visibilityState, window.__errors || []]")
                    raise SystemExit(f"{name}: the page never showed {marker}: {state}")
                times[name].append(ms)
                print(f"round {r + 1} {name:10s} {ms:8.1f} ms", flush=True)
    finally:
        driver.quit()
    first = statistics.median(times[servers[0][0]])
    print()
    for name, _ in servers:
        t = times[name]
        m = statistics.median(t)
        print(f"{name:10s} median {m:8.1f} ms  spread {min(t):.1f}-{max(t):.1f} ms  "
              f"{servers[0][0]}/{name} = {first / m:.2f}x")


if __name__ == "__main__":
    main()
