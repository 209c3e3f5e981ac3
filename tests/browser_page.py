"""The page's own features in headless Chromium, run by tests/browser.py
with its driver: a folder and a selection downloaded as zip (opened with
Python's zipfile, bytes compared; zip is the default for a Windows
browser), a search that finds a file three levels down, thumbnails of a
PNG and a JPEG, a Markdown file shown without its raw HTML, text, a video
that plays from ranged requests, keyboard previous and next, copy-link,
the QR code, the hidden-files toggle, sizes of a selection, a folder of
10,000 entries, hostile files (an SVG with script, a decompression bomb,
HTML in names), labels for every control, and the phone layout at
390x844 with its menus.
"""
import hashlib
import io
import os
import struct
import time
import zipfile
import zlib

from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import WebDriverWait

WAIT = 30


def png(path, w, h, full=True):
    def chunk(t, d):
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xFFFFFFFF)
    z = zlib.compressobj(9)
    data = []
    for y in range(h if full else 1):
        data.append(z.compress(b"\0" + bytes((x * 7 + y) % 256 for x in range(3 * w)) if w <= 4096 else b"\0" * (3 * w + 1)))
    data.append(z.flush())
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
                + chunk(b"IDAT", b"".join(data)) + chunk(b"IEND", b""))


def sha(data):
    return hashlib.sha256(data).hexdigest()


def make_root(root):
    os.makedirs(os.path.join(root, "a", "b", "c"))
    with open(os.path.join(root, "a", "b", "c", "needle-deep.txt"), "w") as f:
        f.write("found me\n")
    png(os.path.join(root, "picture.png"), 120, 80)
    png(os.path.join(root, "bomb.png"), 11000, 11000)
    with open(os.path.join(root, "notes.md"), "w") as f:
        f.write("# Notes title\n\n<script>window.pwned = 1</script>\n\n<b id=raw>raw</b> *soft*\n")
    with open(os.path.join(root, "plain.txt"), "w") as f:
        f.write("plain text <i>not html</i>\n")
    with open(os.path.join(root, "evil.svg"), "w") as f:
        f.write('<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10">'
                '<script>window.top.pwned = 2</script><rect width="10" height="10"/></svg>')
    with open(os.path.join(root, '"><img src=x onerror=alert(2)>.md'), "w") as f:
        f.write("name with html\n")
    with open(os.path.join(root, ".dotfile"), "w") as f:
        f.write("hidden\n")
    many = os.path.join(root, "many")
    os.makedirs(many)
    for i in range(10000):
        open(os.path.join(many, "f%05d.txt" % i), "w").close()


def put_from_browser(driver, path, script_body):
    """Runs `script_body` (which makes `blob`) in the page and PUTs the blob
    at `path`; returns the status."""
    return driver.execute_async_script("""
      const done = arguments[arguments.length - 1];
      (async () => {
        """ + script_body + """
        const res = await fetch(arguments[0], { method: "PUT", body: blob, headers: { "X-Ferry": "1" } });
        done(res.status);
      })().catch((e) => done("error: " + e));
    """, path)


JPEG = """
  const c = document.createElement("canvas");
  c.width = 300; c.height = 200;
  const g = c.getContext("2d");
  g.fillStyle = "#2a6"; g.fillRect(0, 0, 300, 200);
  g.fillStyle = "#fd3"; g.fillRect(50, 50, 100, 60);
  const blob = await new Promise((r) => c.toBlob(r, "image/jpeg", 0.9));
"""

WEBM = """
  const c = document.createElement("canvas");
  c.width = 160; c.height = 120;
  const g = c.getContext("2d");
  const rec = new MediaRecorder(c.captureStream(25), { mimeType: "video/webm" });
  const parts = [];
  rec.ondataavailable = (e) => parts.push(e.data);
  const stopped = new Promise((r) => rec.onstop = r);
  rec.start(100);
  const t0 = performance.now();
  while (performance.now() - t0 < 1500) {
    g.fillStyle = "hsl(" + ((performance.now() - t0) / 5 % 360) + ",70%,50%)";
    g.fillRect(0, 0, 160, 120);
    await new Promise((r) => setTimeout(r, 40));
  }
  rec.stop();
  await stopped;
  const blob = new Blob(parts, { type: "video/webm" });
"""


def labelled(driver):
    """Controls without a name a screen reader could say."""
    return driver.execute_script("""
      const bad = [];
      for (const e of document.querySelectorAll('button, a[href], input, select, textarea')) {
        if (e.type === 'file' || e.closest('[hidden]') || e.getAttribute('aria-hidden') === 'true') continue;
        const id = e.id && document.querySelector('label[for="' + CSS.escape(e.id) + '"]');
        const name = (e.getAttribute('aria-label') || e.textContent || e.value || e.title || '').trim();
        if (!name && !id && !e.closest('label')) bad.push(e.outerHTML.slice(0, 120));
      }
      return bad;""")


def run(driver, wait, work, serve, free_port, downloads):
    root = os.path.join(work, "root3")
    os.makedirs(root)
    make_root(root)
    port = free_port()
    server = serve(work, root, os.path.join(work, "state3"), port, ["--allow-all", "--hidden"])
    try:
        base = f"http://127.0.0.1:{port}"
        driver.get(base + "/")
        wait.until(EC.presence_of_element_located((By.CSS_SELECTOR, 'tr[data-name="picture.png"]')))
        # Made by the browser itself: a JPEG and a short video.
        assert put_from_browser(driver, "/photo.jpg", JPEG) == 201
        assert put_from_browser(driver, "/clip.webm", WEBM) == 201
        driver.get(base + "/")

        # Thumbnails for the PNG and the JPEG; the bomb gets its icon.
        for name in ("picture.png", "photo.jpg"):
            wait.until(lambda d: d.execute_script(
                "const i = document.querySelector(arguments[0]); return i && i.complete && i.naturalWidth > 0",
                f'tr[data-name="{name}"] img.thumb'))
        wait.until(EC.presence_of_element_located((By.CSS_SELECTOR, 'tr[data-name="bomb.png"] .icon')))
        assert not driver.find_elements(By.CSS_SELECTOR, 'tr[data-name="bomb.png"] img')
        # The name with HTML is text.
        row = driver.find_element(By.CSS_SELECTOR, 'tr[data-name="\\"><img src=x onerror=alert(2)>.md"]')
        assert '"><img src=x onerror=alert(2)>.md' in row.text
        assert not labelled(driver), labelled(driver)

        # Markdown shows rendered, its raw HTML as text and never run.
        driver.find_element(By.CSS_SELECTOR, 'tr[data-name="notes.md"] td.name a').click()
        md = wait.until(EC.presence_of_element_located((By.CSS_SELECTOR, "#viewer-markdown h1")))
        assert md.text == "Notes title"
        body = driver.find_element(By.ID, "viewer-markdown")
        assert "<script>" in body.text and not body.find_elements(By.CSS_SELECTOR, "script, b#raw")
        assert driver.execute_script("return window.pwned === undefined")
        # Next, by keyboard: the files that have a preview, in order.
        order = driver.execute_script("""
          return [...document.querySelectorAll('#list tbody tr')].map(r => r.dataset.name);""")
        assert order.index("notes.md") < order.index("photo.jpg") < order.index("picture.png"), order
        driver.switch_to.active_element.send_keys(Keys.ARROW_RIGHT)
        wait.until(lambda d: d.find_element(By.ID, "viewer-title").text not in ("notes.md", ""))
        after = driver.find_element(By.ID, "viewer-title").text
        driver.switch_to.active_element.send_keys(Keys.ARROW_LEFT)
        wait.until(lambda d: d.find_element(By.ID, "viewer-title").text == "notes.md")
        assert after != "notes.md"
        driver.switch_to.active_element.send_keys(Keys.ESCAPE)
        wait.until(lambda d: not d.execute_script("return document.getElementById('viewer').open"))

        # Text is text.
        driver.find_element(By.CSS_SELECTOR, 'tr[data-name="plain.txt"] td.name a').click()
        pre = wait.until(EC.presence_of_element_located((By.ID, "viewer-text")))
        assert pre.text.strip() == "plain text <i>not html</i>"
        driver.find_element(By.ID, "viewer-close").click()

        # The SVG is shown as an image, its script never run.
        driver.find_element(By.CSS_SELECTOR, 'tr[data-name="evil.svg"] td.name a').click()
        wait.until(EC.presence_of_element_located((By.ID, "viewer-image")))
        time.sleep(0.5)
        assert driver.execute_script("return window.pwned === undefined")
        driver.find_element(By.ID, "viewer-close").click()

        # The video plays, fetched with ranges.
        driver.find_element(By.CSS_SELECTOR, 'tr[data-name="clip.webm"] td.name a').click()
        wait.until(EC.presence_of_element_located((By.ID, "viewer-video")))
        played = driver.execute_async_script("""
          const done = arguments[arguments.length - 1];
          const v = document.getElementById('viewer-video');
          v.muted = true;
          v.play().then(() => setTimeout(() => done(v.currentTime), 600)).catch((e) => done('error: ' + e));""")
        assert isinstance(played, (int, float)) and played > 0, played
        driver.find_element(By.ID, "viewer-close").click()
        log = open(os.path.join(work, "server.log")).read()
        assert '"GET /clip.webm HTTP/1.1" 206' in log, log[-3000:]

        # Search: three levels down, streamed into a list.
        box = driver.find_element(By.ID, "search")
        box.send_keys("needle")
        box.send_keys(Keys.ENTER)
        hit = wait.until(EC.presence_of_element_located(
            (By.CSS_SELECTOR, '#results-list li[data-path="a/b/c/needle-deep.txt"] a')))
        assert hit.get_attribute("href") == base + "/a/b/c/needle-deep.txt"
        wait.until(lambda d: "1 found" in d.find_element(By.ID, "results-state").text)
        driver.find_element(By.ID, "results-back").click()
        assert driver.find_element(By.ID, "list").is_displayed()

        # Copy link and the QR code.
        driver.find_element(By.CSS_SELECTOR, 'tr[data-name="plain.txt"] button.copy-link').click()
        copied = wait.until(EC.presence_of_element_located((By.ID, "copied")))
        assert copied.get_attribute("value") == base + "/plain.txt"
        driver.find_element(By.ID, "qr-toggle").click()
        wait.until(lambda d: d.execute_script(
            "const i = document.querySelector('#qr img'); return i && i.complete && i.naturalWidth > 0"))
        driver.find_element(By.ID, "qr-close").click()

        # The hidden-files toggle (this server shows them).
        wait.until(EC.presence_of_element_located((By.CSS_SELECTOR, 'tr[data-name=".dotfile"]')))
        driver.find_element(By.ID, "show-hidden").click()
        wait.until(EC.invisibility_of_element_located((By.CSS_SELECTOR, 'tr[data-name=".dotfile"]')))
        driver.find_element(By.ID, "show-hidden").click()
        wait.until(EC.presence_of_element_located((By.CSS_SELECTOR, 'tr[data-name=".dotfile"]')))

        # Select two, see their sizes, download them as one zip.
        for name in ("plain.txt", "picture.png"):
            driver.find_element(By.CSS_SELECTOR, f'tr[data-name="{name}"] input.pick').click()
        want_size = os.path.getsize(os.path.join(root, "plain.txt")) + os.path.getsize(os.path.join(root, "picture.png"))
        summary = driver.find_element(By.ID, "selection-sum").text
        assert summary.startswith("2 selected"), summary
        assert str(want_size) in summary or "KiB" in summary, summary
        for f in os.listdir(downloads):
            os.remove(os.path.join(downloads, f))
        driver.find_element(By.ID, "download-selection").click()
        got = wait_download(downloads, ".zip")
        with zipfile.ZipFile(got) as z:
            names = sorted(z.namelist())
            assert names == ["picture.png", "plain.txt"], names
            for n in names:
                assert sha(z.read(n)) == sha(open(os.path.join(root, n), "rb").read()), n
        driver.find_element(By.ID, "clear-selection").click()
        assert not driver.find_element(By.ID, "selection").is_displayed()

        # A Windows browser gets zip by default for folders.
        driver.execute_cdp_cmd("Network.setUserAgentOverride", {
            "userAgent": "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/120 Safari/537.36"})
        driver.get(base + "/")
        link = wait.until(EC.presence_of_element_located((By.CSS_SELECTOR, 'tr[data-name="a"] a.download')))
        assert link.get_attribute("href") == base + "/a/?zip", link.get_attribute("href")
        for f in os.listdir(downloads):
            os.remove(os.path.join(downloads, f))
        link.click()
        got = wait_download(downloads, ".zip")
        with zipfile.ZipFile(got) as z:
            assert z.read("a/b/c/needle-deep.txt") == b"found me\n"
        driver.execute_cdp_cmd("Network.setUserAgentOverride", {"userAgent": driver.execute_script("return navigator.userAgent").replace("Windows NT 10.0; Win64; x64", "X11; Linux x86_64")})

        many_phase(driver, wait, base)
        phone_phase(driver, wait, base)
    finally:
        driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
        server.terminate()
        try:
            server.wait(timeout=15)
        except Exception:
            server.kill()


def wait_download(folder, suffix):
    deadline = time.time() + WAIT
    while time.time() < deadline:
        done = [f for f in os.listdir(folder) if f.endswith(suffix)]
        if done:
            time.sleep(0.5)
            return os.path.join(folder, done[0])
        time.sleep(0.2)
    raise AssertionError(f"no {suffix} download: {os.listdir(folder)}")


def many_phase(driver, wait, base):
    """10,000 entries: a window of rows, more on scrolling, and sorting and
    filtering over all of them."""
    t0 = time.time()
    driver.get(base + "/many/")
    wait.until(EC.presence_of_element_located((By.CSS_SELECTOR, 'tr[data-name="f00000.txt"]')))
    loaded = time.time() - t0
    rows = len(driver.find_elements(By.CSS_SELECTOR, "#list tbody tr"))
    assert 0 < rows < 1000, rows
    assert driver.find_element(By.ID, "count").text == "10000 entries"
    driver.execute_script("window.scrollTo(0, document.body.scrollHeight)")
    wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#list tbody tr")) > rows)
    f = driver.find_element(By.ID, "filter")
    t1 = time.time()
    f.send_keys("f09999")
    wait.until(lambda d: [r.get_attribute("data-name") for r in d.find_elements(By.CSS_SELECTOR, "#list tbody tr")] == ["f09999.txt"])
    filtered = time.time() - t1
    f.clear()
    f.send_keys(Keys.BACKSPACE)
    driver.find_element(By.CSS_SELECTOR, 'button.sort[data-sort="name"]').click()
    wait.until(lambda d: d.find_element(By.CSS_SELECTOR, "#list tbody tr").get_attribute("data-name") == "f09999.txt")
    print(f"10,000 entries: first rows in {loaded:.2f} s, filtered in {filtered:.2f} s")


def phone_phase(driver, wait, base):
    """At 390x844 the actions fold into menus, nothing is wider than the
    screen, and the keyboard reaches every action."""
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
        "width": 390, "height": 844, "deviceScaleFactor": 1, "mobile": True})
    driver.get(base + "/")
    wait.until(EC.presence_of_element_located((By.CSS_SELECTOR, 'tr[data-name="plain.txt"]')))
    assert driver.execute_script("return document.documentElement.scrollWidth") <= 390
    menu = driver.find_element(By.ID, "menu")
    assert menu.is_displayed()
    assert not driver.find_element(By.ID, "upload-files").is_displayed()
    menu.click()
    assert menu.get_attribute("aria-expanded") == "true"
    assert driver.find_element(By.ID, "upload-files").is_displayed()
    # The menu opened with the keyboard's focus on its first action.
    assert driver.switch_to.active_element.get_attribute("id") == "upload-files"
    driver.switch_to.active_element.send_keys(Keys.ESCAPE)
    assert not driver.find_element(By.ID, "upload-files").is_displayed()
    more = driver.find_element(By.CSS_SELECTOR, 'tr[data-name="plain.txt"] button.more')
    delete = driver.find_element(By.CSS_SELECTOR, 'tr[data-name="plain.txt"] button.delete')
    assert more.is_displayed() and not delete.is_displayed()
    more.send_keys(Keys.ENTER)
    assert delete.is_displayed()
    assert driver.switch_to.active_element.get_attribute("class") == "download"
    assert driver.execute_script("return document.documentElement.scrollWidth") <= 390
    assert not labelled(driver), labelled(driver)
