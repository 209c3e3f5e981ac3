#!/usr/bin/env python3
"""Screenshots of the page for the README: a demo folder served by the
ferry binary, shown by headless Chromium at 1280x800 and 390x844, light
and dark, saved as docs/screenshots/{wide,phone}-{light,dark}.png.

Usage: scripts/screenshots.py [FERRY_BINARY]   (default target/debug/ferry)
Needs what the browser tests need (chromium, chromedriver, selenium).
"""
import math
import os
import socket
import struct
import subprocess
import sys
import tempfile
import time
import zlib

from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import WebDriverWait

TOP = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
FERRY = sys.argv[1] if len(sys.argv) > 1 else os.path.join(TOP, "target", "debug", "ferry")
OUT = os.path.join(TOP, "docs", "screenshots")


def png(path, w, h, hue):
    """A gradient picture, written with zlib alone."""
    def chunk(t, d):
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xFFFFFFFF)
    rows = []
    for y in range(h):
        row = bytearray(b"\0")
        for x in range(w):
            a = (x / w + hue) * 2 * math.pi
            b = y / h
            row += bytes([int(127 + 120 * math.sin(a)), int(127 + 120 * math.sin(a + 2.1) * (1 - b / 2)),
                          int(127 + 120 * math.sin(a + 4.2) * b)])
        rows.append(bytes(row))
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
                + chunk(b"IDAT", zlib.compress(b"".join(rows))) + chunk(b"IEND", b""))


def demo(root):
    for d in ("Photos", "Documents", "Music", "Projects/ferry"):
        os.makedirs(os.path.join(root, d), exist_ok=True)
    for i, name in enumerate(["beach.png", "forest.png", "harbour.png"]):
        png(os.path.join(root, name), 160, 120, i / 3)
    with open(os.path.join(root, "README.md"), "w") as f:
        f.write("# Shared folder\n\nDrop files in **Inbox**; ask on the chat.\n")
    with open(os.path.join(root, "notes.txt"), "w") as f:
        f.write("meeting at 10\n" * 40)
    for name, size in (("holiday.mp4", 48_000_000), ("talk.mp3", 6_200_000), ("report.pdf", 812_000),
                       ("backup-2026.zip", 1_250_000_000)):
        with open(os.path.join(root, name), "wb") as f:
            f.truncate(size)


def main():
    work = tempfile.mkdtemp(prefix="ferry-shots-")
    root = os.path.join(work, "shared")
    os.makedirs(root)
    demo(root)
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    server = subprocess.Popen(
        [FERRY, "serve", root, "--listen", f"127.0.0.1:{port}", "--state-dir", os.path.join(work, "state"),
         "--no-discovery", "--allow-all", "--name", "nas"],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    for line in server.stdout:
        if line.startswith("listening on"):
            break
    os.makedirs(OUT, exist_ok=True)
    opts = Options()
    opts.binary_location = "/usr/bin/chromium"
    for a in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
              "--hide-scrollbars"):
        opts.add_argument(a)
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=opts)
    try:
        for scheme in ("light", "dark"):
            driver.execute_cdp_cmd("Emulation.setEmulatedMedia", {
                "features": [{"name": "prefers-color-scheme", "value": scheme}]})
            for label, (w, h, mobile) in (("wide", (1280, 800, False)), ("phone", (390, 844, True))):
                driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
                    "width": w, "height": h, "deviceScaleFactor": 1, "mobile": mobile})
                driver.get(f"http://127.0.0.1:{port}/")
                WebDriverWait(driver, 30).until(EC.presence_of_element_located(
                    (By.CSS_SELECTOR, 'tr[data-name="beach.png"] img.thumb')))
                driver.execute_script("""
                  for (const n of ['beach.png', 'report.pdf'])
                    document.querySelector('tr[data-name="' + n + '"] input.pick').click();""")
                WebDriverWait(driver, 30).until(lambda d: d.execute_script(
                    "return [...document.querySelectorAll('img.thumb')].every(i => i.complete && i.naturalWidth > 0)"))
                time.sleep(0.3)
                path = os.path.join(OUT, f"{label}-{scheme}.png")
                driver.save_screenshot(path)
                print("wrote", os.path.relpath(path, TOP))
    finally:
        driver.quit()
        server.terminate()
        server.wait(timeout=15)


if __name__ == "__main__":
    main()
