#!/usr/bin/env python3
"""ferry's page in a real browser: Debian's chromium, headless, driven by
chromedriver through Selenium. Started by tests/browser.rs with the path of
the ferry binary; exits 0 when every check passed.

Checks: upload a file and a folder through the page (tus), see them listed,
download one and compare its bytes, delete one, rename one, make a folder,
send a chat message from the page and see it arrive in a native client
(`ferry chat`), and the other way round; names are shown as text, never
run as HTML. Then, on a server with an account: log in as it, see only the
buttons its rights allow in each folder, make a share link that opens
without a login, log out. Then the page's own features on a third server
(tests/browser_page.py): zip downloads, search, previews and thumbnails,
selection, copy-link, QR, the hidden-files toggle, a 10,000-entry folder,
hostile files, and the phone layout at 390x844.
"""
import hashlib
import os
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time

from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import WebDriverWait

FERRY = sys.argv[1]
WAIT = 30


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def sha(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def serve(work, root, state, port, flags):
    """`ferry serve` on `port`, once it listens; its log goes to server.log."""
    server = subprocess.Popen(
        [FERRY, "serve", root, "--listen", f"127.0.0.1:{port}", "--state-dir", state,
         "--no-discovery", *flags],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
        stderr=open(os.path.join(work, "server.log"), "a"), text=True,
    )
    for line in server.stdout:
        if line.startswith("listening on"):
            break
    threading.Thread(target=lambda: [None for _ in server.stdout], daemon=True).start()
    return server


def main():
    work = tempfile.mkdtemp(prefix="ferry-browser-")
    root = os.path.join(work, "root")
    state = os.path.join(work, "state")
    downloads = os.path.join(work, "downloads")
    local = os.path.join(work, "local")
    for d in (root, state, downloads, local):
        os.makedirs(d)
    # What the page will upload: one file, and a folder with a subfolder.
    one = os.path.join(local, "photo.bin")
    with open(one, "wb") as f:
        f.write(os.urandom(3 * 1024 * 1024 + 17))
    tree = os.path.join(local, "album")
    os.makedirs(os.path.join(tree, "day two"))
    with open(os.path.join(tree, "a.txt"), "w") as f:
        f.write("first file\n")
    with open(os.path.join(tree, "day two", "b.txt"), "w") as f:
        f.write("second file\n")
    # A hostile name already on the server.
    with open(os.path.join(root, "<img src=x onerror=alert(1)>.txt"), "w") as f:
        f.write("x")

    port = free_port()
    server = serve(work, root, state, port, ["--allow-all", "--chat-rate", "100"])
    native = None
    driver = None
    try:
        base = f"http://127.0.0.1:{port}"

        opts = Options()
        opts.binary_location = "/usr/bin/chromium"
        for a in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                  "--window-size=1280,900"):
            opts.add_argument(a)
        opts.add_experimental_option("prefs", {
            "download.default_directory": downloads,
            "download.prompt_for_download": False,
        })
        driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=opts)
        driver.set_page_load_timeout(WAIT)
        driver.execute_cdp_cmd("Page.setDownloadBehavior", {"behavior": "allow", "downloadPath": downloads})
        wait = WebDriverWait(driver, WAIT)

        # The first load shares two cores with the rest of the suite and with
        # chromium's own start: give it a longer wait, and one reload.
        for attempt in range(2):
            driver.get(base + "/")
            try:
                WebDriverWait(driver, 2 * WAIT).until(
                    EC.presence_of_element_located((By.ID, "file-input")))
                break
            except Exception:
                if attempt == 1:
                    raise
        # The hostile name is text, and no alert ran.
        row = wait.until(EC.presence_of_element_located(
            (By.CSS_SELECTOR, 'tr[data-name="<img src=x onerror=alert(1)>.txt"]')))
        assert "<img src=x onerror=alert(1)>.txt" in row.text, row.text
        assert not driver.find_elements(By.CSS_SELECTOR, "#list img:not(.thumb)")
        try:
            driver.switch_to.alert
            raise AssertionError("an alert ran")
        except Exception as e:
            if isinstance(e, AssertionError):
                raise

        def listed(name):
            wait.until(EC.presence_of_element_located((By.CSS_SELECTOR, f'tr[data-name="{name}"]')))

        # Upload a file by the button's input.
        driver.find_element(By.ID, "file-input").send_keys(one)
        wait.until(EC.presence_of_element_located(
            (By.CSS_SELECTOR, '.upload[data-path="photo.bin"][data-state="done"]')))
        listed("photo.bin")
        assert sha(os.path.join(root, "photo.bin")) == sha(one), "uploaded bytes differ"

        # Upload a folder (webkitdirectory).
        driver.find_element(By.ID, "folder-input").send_keys(tree)
        wait.until(EC.presence_of_element_located(
            (By.CSS_SELECTOR, '.upload[data-path="album/day two/b.txt"][data-state="done"]')))
        wait.until(EC.presence_of_element_located(
            (By.CSS_SELECTOR, '.upload[data-path="album/a.txt"][data-state="done"]')))
        listed("album")
        with open(os.path.join(root, "album", "day two", "b.txt")) as f:
            assert f.read() == "second file\n"
        with open(os.path.join(root, "album", "a.txt")) as f:
            assert f.read() == "first file\n"

        # Download one and compare bytes.
        driver.find_element(By.CSS_SELECTOR, 'tr[data-name="photo.bin"] a.download').click()
        got = os.path.join(downloads, "photo.bin")
        deadline = time.time() + WAIT
        while time.time() < deadline and not (os.path.exists(got) and os.path.getsize(got) == os.path.getsize(one)):
            time.sleep(0.2)
        time.sleep(0.5)
        assert os.path.exists(got), os.listdir(downloads)
        assert sha(got) == sha(one), "downloaded bytes differ"

        # Make a folder, rename a file, delete one (dialogs answered).
        driver.find_element(By.ID, "mkdir").click()
        wait.until(EC.alert_is_present())
        a = driver.switch_to.alert
        a.send_keys("new folder")
        a.accept()
        listed("new folder")
        assert os.path.isdir(os.path.join(root, "new folder"))

        driver.find_element(By.CSS_SELECTOR, 'tr[data-name="photo.bin"] button.rename').click()
        wait.until(EC.alert_is_present())
        a = driver.switch_to.alert
        a.send_keys("renamed.bin")
        a.accept()
        listed("renamed.bin")
        assert os.path.exists(os.path.join(root, "renamed.bin"))
        assert not os.path.exists(os.path.join(root, "photo.bin"))

        driver.find_element(By.CSS_SELECTOR, 'tr[data-name="renamed.bin"] button.delete').click()
        wait.until(EC.alert_is_present())
        driver.switch_to.alert.accept()
        wait.until(EC.invisibility_of_element_located((By.CSS_SELECTOR, 'tr[data-name="renamed.bin"]')))
        assert not os.path.exists(os.path.join(root, "renamed.bin"))

        # Sorting and filtering.
        f = driver.find_element(By.ID, "filter")
        f.send_keys("alb")
        rows = driver.find_elements(By.CSS_SELECTOR, "#list tbody tr")
        assert [r.get_attribute("data-name") for r in rows] == ["album"], [r.get_attribute("data-name") for r in rows]
        f.clear()
        f.send_keys(Keys.BACKSPACE)

        # Chat: a native client and the page, both ways.
        native = subprocess.Popen(
            [FERRY, "chat", f"127.0.0.1:{port}", "--nick", "native"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1,
        )
        lines = []

        def pump():
            for line in native.stdout:
                lines.append(line)

        threading.Thread(target=pump, daemon=True).start()

        def native_saw(pattern):
            deadline = time.time() + WAIT
            while time.time() < deadline:
                if any(re.search(pattern, l) for l in lines):
                    return
                time.sleep(0.1)
            raise AssertionError(f"native client never saw {pattern!r}: {lines}")

        native_saw(r"welcome|you are native")
        driver.find_element(By.ID, "chat-toggle").click()
        nick = wait.until(EC.presence_of_element_located((By.ID, "chat-nick")))
        wait.until(lambda d: "connected" == d.find_element(By.ID, "chat-state").text)
        nick.clear()
        nick.send_keys("webby")
        driver.find_element(By.ID, "chat-join").click()
        wait.until(lambda d: "you are webby" in d.find_element(By.ID, "chat-log").text)
        box = driver.find_element(By.ID, "chat-input")
        box.send_keys("hello from the page <b>bold</b>")
        box.send_keys(Keys.ENTER)
        native_saw(r"<webby> hello from the page <b>bold</b>")
        native.stdin.write("hello from the terminal\n")
        native.stdin.flush()
        wait.until(lambda d: "<native> hello from the terminal" in d.find_element(By.ID, "chat-log").text)
        # A bidi override and a control character are shown as escapes,
        # not obeyed.
        native.stdin.write("flip \u202eright-to-left \x07bell\n")
        native.stdin.flush()
        wait.until(lambda d: "<native> flip \\u{202e}right-to-left \\u{7}bell" in d.find_element(By.ID, "chat-log").text)
        assert "\u202e" not in driver.find_element(By.ID, "chat-log").text
        assert not driver.find_elements(By.CSS_SELECTOR, "#chat-log b")
        accounts_phase(driver, wait, work)
        import browser_page
        browser_page.run(driver, wait, work, serve, free_port, downloads)
        print("browser checks passed")
    except Exception:
        if driver is not None:
            explain(work, driver)
        raise
    finally:
        if driver is not None:
            driver.quit()
        if native is not None:
            native.kill()
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()


def accounts_phase(driver, wait, work):
    """A server with an account: the page logs in as it, offers in each
    folder exactly the buttons of its rights there, makes a share link that
    opens without any login, and logs out."""
    root = os.path.join(work, "root2")
    os.makedirs(os.path.join(root, "alice"))
    with open(os.path.join(root, "alice", "mine.txt"), "w") as f:
        f.write("alice's file")
    with open(os.path.join(root, "top.txt"), "w") as f:
        f.write("top")
    hashed = subprocess.run([FERRY, "passwd"], input="alice-password\n", text=True,
                            capture_output=True, check=True).stdout.strip()
    cfg = os.path.join(work, "ferry.toml")
    with open(cfg, "w") as f:
        f.write(f'[users.alice]\npassword_hash = "{hashed}"\nrights = ["/:read", "/alice:delete"]\n'
                '[anonymous]\nrights = ["/:read", "/alice:none"]\n')
    port = free_port()
    server = serve(work, root, os.path.join(work, "state2"), port, ["--allow-all", "--config", cfg])
    try:
        base = f"http://127.0.0.1:{port}"
        driver.get(base + "/")
        wait.until(EC.presence_of_element_located((By.ID, "user"))).send_keys("alice")
        driver.find_element(By.ID, "token").send_keys("alice-password")
        driver.find_element(By.CSS_SELECTOR, "#login button[type=submit]").click()
        wait.until(lambda d: d.find_elements(By.ID, "whoami")
                   and d.find_element(By.ID, "whoami").text == "alice")
        # At the top: read only, so no upload, rename or delete; but share.
        wait.until(EC.presence_of_element_located((By.CSS_SELECTOR, 'tr[data-name="top.txt"] button.share')))
        assert not driver.find_elements(By.ID, "file-input")
        assert not driver.find_elements(By.CSS_SELECTOR, "button.delete, button.rename")
        # In her folder: everything.
        driver.get(base + "/alice/")
        wait.until(EC.presence_of_element_located((By.CSS_SELECTOR, 'tr[data-name="mine.txt"] button.delete')))
        assert driver.find_elements(By.ID, "file-input")
        driver.find_element(By.CSS_SELECTOR, 'tr[data-name="mine.txt"] button.share').click()
        link = wait.until(EC.presence_of_element_located((By.ID, "share-url"))).get_attribute("value")
        assert link.startswith(base + "/.ferry/share/"), link
        # Logged out, her folder is closed; the link still opens the file.
        driver.find_element(By.ID, "logout").click()
        wait.until(EC.presence_of_element_located((By.ID, "login")))
        assert driver.current_url == base + "/", driver.current_url
        assert not driver.find_elements(By.CSS_SELECTOR, "button.share")
        driver.delete_all_cookies()
        driver.get(base + "/alice/mine.txt")
        assert "alice's file" not in driver.page_source
        driver.get(link)
        wait.until(lambda d: "alice's file" in d.page_source)
        assert driver.current_url == base + "/alice/mine.txt", driver.current_url
    finally:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()


def explain(work, driver):
    """What the page and the server said, for a check that failed."""
    try:
        rows = driver.execute_script(
            "return [...document.querySelectorAll('.upload')].map("
            "r => r.dataset.path + ' [' + r.dataset.state + '] ' + r.textContent)")
        print("uploads on the page:", *rows, sep="\n  ", file=sys.stderr)
    except Exception as e:  # the browser itself may be what failed
        print("the page could not be read:", e, file=sys.stderr)
    try:
        with open(os.path.join(work, "server.log")) as f:
            print("server log (end):", *f.readlines()[-40:], sep="\n  ", file=sys.stderr)
    except OSError:
        pass


if __name__ == "__main__":
    main()
