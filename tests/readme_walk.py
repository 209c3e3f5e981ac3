#!/usr/bin/env python3
"""Walks through every example of README.md, as written, on fresh servers.

Run by tests/readme.rs inside network, mount and host-name namespaces of
its own, where the host is called `nas`, `nas` and `pool.example` name
127.0.0.1, and port 7070 and NTP's 123 are free:

    readme_walk.py FERRY README WORKDIR

Every command of every ```sh block is taken from the README itself (lines
split at ` · `, comments dropped), placeholders (`…`) filled in, and run
with bash, `ferry` being the binary under test. Each is handled by a step
below: a server started and checked, a client run and its effect checked,
an interactive one typed into (tmux), or, for the few that cannot run
here, a stated reason. A README example no step handles fails the walk,
so the README cannot drift from the binary.
"""
import itertools
import os
import re
import shutil
import signal
import subprocess
import sys
import time

FERRY, README, WORK = sys.argv[1], sys.argv[2], sys.argv[3]
TOKEN = "readme-walk-token-0123456789abcdef"
HOME = os.path.join(WORK, "home")
SHARED = os.path.join(HOME, "shared")
CLIENT = os.path.join(WORK, "client")
BIN = os.path.join(WORK, "bin")

walked = set()
failures = []


def examples():
    text = open(README, encoding="utf-8").read()
    out = []
    for block in re.findall(r"```sh\n(.*?)```", text, re.S):
        for line in block.splitlines():
            line = re.sub(r"\s{2,}#.*$", "", line).strip()
            out.extend(part.strip() for part in line.split("  ·  ") if part.strip())
    return out


def env(**extra):
    e = dict(os.environ)
    e.update(HOME=HOME, PATH=BIN + ":" + e["PATH"], NO_COLOR="1")
    e.pop("FERRY_TOKEN", None)
    e.pop("XDG_STATE_HOME", None)
    e.pop("XDG_CONFIG_HOME", None)
    e.update(extra)
    return e


def fail(example, why):
    failures.append(f"{example}\n    {why}")


def typed(*lines):
    """A shell pipeline that types `lines` a moment apart, then waits for
    the answer: what a person at the keyboard does, for clients that stop
    at the end of their input."""
    said = "; ".join(f"echo '{l}'; sleep 0.5" for l in lines)
    return f"{{ sleep 0.5; {said}; sleep 1; }}"


def run(example, cmd=None, stdin=None, check=None, codes=(0,), cwd=CLIENT, timeout=60, **extra):
    """Runs one client example (or `cmd`, the example with placeholders
    filled) with bash; its exit code must be in `codes`, and `check`, given
    the output, must hold."""
    walked.add(example)
    try:
        p = subprocess.run(["bash", "-c", cmd or example], cwd=cwd, env=env(**extra),
                           input=stdin, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return fail(example, f"still running after {timeout} s")
    out = p.stdout + p.stderr
    if p.returncode not in codes:
        return fail(example, f"exit {p.returncode}: {out[-800:]}")
    if check and not check(out):
        return fail(example, f"unexpected outcome: {out[-800:]}")


class Server:
    """A server example, started as written (from `cwd`) and checked with
    `ferry ping nas`; stopped with SIGTERM."""

    def __init__(self, example, cmd=None, cwd=SHARED, **extra):
        walked.add(example)
        self.example = example
        self.log = open(os.path.join(WORK, "server.log"), "w+")
        self.p = subprocess.Popen(["bash", "-c", "exec " + (cmd or example)], cwd=cwd,
                                  env=env(**extra), stdin=subprocess.DEVNULL,
                                  stdout=self.log, stderr=subprocess.STDOUT)
        # Checked with a known-hosts file of its own: the walk's pins are
        # for the servers before, whose certificates differ.
        fresh = env(FERRY_KNOWN_HOSTS=os.path.join(WORK, f"probe-{time.monotonic_ns()}"))
        for _ in range(100):
            if subprocess.run([FERRY, "ping", "nas", "-c", "1"], env=fresh, capture_output=True,
                              stdin=subprocess.DEVNULL).returncode == 0:
                return
            if self.p.poll() is not None:
                break
            time.sleep(0.1)
        fail(example, "the server did not come up: " + self.output())

    def output(self):
        self.log.flush()
        self.log.seek(0)
        return self.log.read()

    def stop(self):
        self.p.send_signal(signal.SIGTERM)
        try:
            self.p.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.p.kill()
            fail(self.example, "did not stop on SIGTERM")


TMUX_RUNS = itertools.count()


def tmux(example, cmd, keys, want, **extra):
    """Runs an interactive example in tmux, types `keys` (after waiting
    for each `want` before them), and expects `EXIT=0` at the end."""
    walked.add(example)
    # A socket of its own each time: a server just told to stop may still
    # hold the last one, and a new client reaching it sees it exit.
    sock = f"walk{os.getpid()}-{next(TMUX_RUNS)}"
    base = ["tmux", "-L", sock, "-f", "/dev/null"]
    e = env(**extra)
    subprocess.run(base + ["new-session", "-d", "-x", "100", "-y", "30",
                           f"cd {CLIENT}; {cmd}; echo EXIT=$?; sleep 30"], env=e, check=True)
    try:
        for wait_for, typed in zip(want, keys):
            if not screen_has(base, wait_for):
                return fail(example, f"never showed {wait_for!r}: {screen(base)}")
            subprocess.run(base + ["send-keys", "-t", "0"] + typed, check=True)
        if not screen_has(base, "EXIT=0"):
            fail(example, "did not end with status 0: " + screen(base))
    finally:
        subprocess.run(base + ["kill-server"])


def screen(base):
    return subprocess.run(base + ["capture-pane", "-p", "-t", "0"], capture_output=True,
                          text=True).stdout


def screen_has(base, text, secs=20):
    end = time.time() + secs
    while time.time() < end:
        if text in screen(base):
            return True
        time.sleep(0.1)
    return False


def skip(example, why):
    walked.add(example)
    print(f"not run: {example}  ({why})")


def write(path, data, mode=None):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())
    if mode:
        os.chmod(path, mode)


def exists(path):
    return os.path.exists(os.path.join(SHARED, path))


def fixtures():
    for d in (HOME, CLIENT, BIN):
        os.makedirs(d, exist_ok=True)
    os.symlink(FERRY, os.path.join(BIN, "ferry"))
    write(f"{SHARED}/photos/cat.jpg", os.urandom(50_000))
    write(f"{SHARED}/logs/today.log", "INFO start\nERR disk full\nINFO end\n")
    write(f"{SHARED}/big.iso", os.urandom(3_000_000))
    os.makedirs(f"{SHARED}/inbox")
    write(f"{SHARED}/builds/Makefile", "all:\n\t@echo built\n")
    write(f"{SHARED}/run.sh", "#!/bin/sh\necho \"mode=$MODE\"\n", 0o755)
    write(f"{CLIENT}/report.pdf", os.urandom(20_000))
    write(f"{CLIENT}/notes.txt", "notes\n")
    write(f"{CLIENT}/project/main.c", "int main(void) { return 0; }\n")
    write(f"{CLIENT}/project/docs/readme.txt", "project\n")
    write(f"{CLIENT}/src/a.rs", "fn a() {}\n")
    write(f"{CLIENT}/script.sh", "false; echo \"st=$?\"\nX=42\ncd builds\necho \"x=$X in ${PWD##*/}\"\n")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                    "-nodes", "-days", "2", "-subj", "/CN=nas", "-addext", "subjectAltName=DNS:nas",
                    "-keyout", f"{SHARED}/key.pem", "-out", f"{SHARED}/cert.pem"],
                   check=True, capture_output=True)


def same(a, b):
    return open(a, "rb").read() == open(b, "rb").read()


def main():
    fixtures()
    ex = examples()

    skip("cargo run --release -- serve", "the README's own first command: it builds the binary under test")
    skip("./scripts/test", "the README's own second command: it runs this walk")
    skip("export AWS_ENDPOINT_URL=http://storage.lan:8333 AWS_ACCESS_KEY_ID=… AWS_SECRET_ACCESS_KEY=…",
         "names a store on another machine; tests/object_store.rs serves a bucket of a SeaweedFS it starts")
    skip("ferry serve --store s3://team-files/share --allow-all",
         "needs that store; tests/object_store.rs runs nodes on a bucket of a SeaweedFS it starts")
    skip("export FERRY_CHAT_BUS_TOKEN=…",
         "the token of a NATS server on another machine; tests/chat_bus.rs gives one to a nats-server it starts")
    skip("ferry serve --chat-bus nats://chat.lan:4222",
         "needs that NATS server; tests/chat_bus.rs runs nodes on a nats-server -js it starts")

    # Files, over the native protocol and HTTP. The served folder is
    # ~/shared with uploads allowed, as the README starts it; its mv and rm
    # examples need deleting too, which the walk adds.
    first = "ferry serve ~/shared --allow-upload"
    srv = Server(first, first + " --allow-delete --no-discovery", cwd=HOME)
    run("ferry ls nas", check=lambda o: "photos" in o)
    run("ferry ls nas:/photos --json", check=lambda o: '"cat.jpg"' in o)
    for _ in range(2):
        run("ferry get nas:/photos/cat.jpg .")
    ok = same(f"{CLIENT}/cat.jpg", f"{SHARED}/photos/cat.jpg")
    ok or fail("ferry get nas:/photos/cat.jpg .", "the bytes differ")
    for _ in range(2):
        run("ferry get -r nas:/photos ./photos", check=lambda o: True)
    os.path.exists(f"{CLIENT}/photos/cat.jpg") or fail("ferry get -r nas:/photos ./photos", "no ./photos/cat.jpg")
    os.path.exists(f"{CLIENT}/photos/photos") and fail("ferry get -r nas:/photos ./photos", "nested on a re-run")
    run("ferry put report.pdf notes.txt nas:/inbox")
    exists("inbox/report.pdf") and exists("inbox/notes.txt") or fail("ferry put report.pdf notes.txt nas:/inbox", "not there")
    for _ in range(2):
        run("ferry put -r ./project nas:/backup/project")
    exists("backup/project/docs/readme.txt") or fail("ferry put -r ./project nas:/backup/project", "not there")
    exists("backup/project/project") and fail("ferry put -r ./project nas:/backup/project", "nested on a re-run")
    run("ferry get nas:/logs/today.log - | grep ERR", check=lambda o: o.strip() == "ERR disk full")
    run("tar c src | ferry put - nas:/backup/src.tar")
    exists("backup/src.tar") or fail("tar c src | ferry put - nas:/backup/src.tar", "not there")
    run("ferry mkdir -p nas:/a/b")
    run("ferry mv nas:/a/b /c")
    exists("c") or fail("ferry mv nas:/a/b /c", "not moved")
    run("ferry rm -r nas:/c")
    exists("c") and fail("ferry rm -r nas:/c", "still there")
    run("ferry stat nas:/photos/cat.jpg --json", check=lambda o: '"size": 50000' in o)

    run("curl http://nas:7070/photos/cat.jpg -o cat.jpg")
    write(f"{CLIENT}/big.iso", open(f"{SHARED}/big.iso", "rb").read()[:1_000_000])
    run("curl -C - http://nas:7070/big.iso -o big.iso")
    same(f"{CLIENT}/big.iso", f"{SHARED}/big.iso") or fail("curl -C - http://nas:7070/big.iso -o big.iso", "not resumed whole")
    run("curl 'http://nas:7070/photos/?json'", check=lambda o: '"cat.jpg"' in o)
    run("curl 'http://nas:7070/photos/?tar' -o photos.tar",
        check=lambda o: "cat.jpg" in subprocess.run(["tar", "tf", f"{CLIENT}/photos.tar"], capture_output=True, text=True).stdout)
    run("curl 'http://nas:7070/photos/?zip' -o photos.zip",
        check=lambda o: "photos/cat.jpg" in subprocess.run(["python3", "-m", "zipfile", "-l", f"{CLIENT}/photos.zip"], capture_output=True, text=True).stdout)
    run("curl 'http://nas:7070/?search=cat'", check=lambda o: '"path":"photos/cat.jpg"' in o)
    os.remove(f"{SHARED}/inbox/report.pdf")
    run("curl -T report.pdf http://nas:7070/inbox/report.pdf")
    same(f"{CLIENT}/report.pdf", f"{SHARED}/inbox/report.pdf") or fail("curl -T", "not uploaded")
    run("curl -X MKCOL http://nas:7070/inbox/new/")
    exists("inbox/new") or fail("curl -X MKCOL http://nas:7070/inbox/new/", "no folder")
    run("curl -X MOVE -H 'Destination: /inbox/b.pdf' http://nas:7070/inbox/report.pdf")
    exists("inbox/b.pdf") or fail("curl -X MOVE", "not moved")
    run("curl -X DELETE http://nas:7070/inbox/b.pdf")
    exists("inbox/b.pdf") and fail("curl -X DELETE http://nas:7070/inbox/b.pdf", "still there")

    # WebDAV: rclone copies a folder up, keeping its mtimes.
    os.makedirs(f"{CLIENT}/photos", exist_ok=True)
    write(f"{CLIENT}/photos/dav.jpg", b"d" * 1234)
    os.utime(f"{CLIENT}/photos/dav.jpg", (1_600_000_000, 1_600_000_000))
    rc = """rclone copy ./photos ':webdav,url="http://nas:7070/",vendor=owncloud:photos'"""
    run(rc)
    if not exists("photos/dav.jpg") or not same(f"{CLIENT}/photos/dav.jpg", f"{SHARED}/photos/dav.jpg"):
        fail(rc, "not copied")
    elif int(os.stat(f"{SHARED}/photos/dav.jpg").st_mtime) != 1_600_000_000:
        fail(rc, "mtime not kept")

    # Chat, on the same server.
    run("ferry chat nas", stdin="hello from the walk\n/quit\n", check=lambda o: "welcome" in o)
    run("ferry chat nas --nick ana --room ops --room dev", stdin="/quit\n", check=lambda o: "ana" in o)
    run("ferry chat nas --room ops --send \"deploy done\"")
    for line in ("nc nas 7070", "telnet nas 7070", "socat - TCP:nas:7070"):
        # telnet says "Connection closed by foreign host" and exits 1.
        run(line, f"{typed('hi', '/quit')} | {line}", codes=(0, 1),
            check=lambda o: "welcome" in o and "bye" in o.lower(), timeout=20)

    # Finding servers and helpers.
    run("ferry ping nas", check=lambda o: "features" in o)
    run("ferry discover")
    run("ferry discover --watch", "timeout 3 ferry discover --watch", codes=(124,))
    run("ferry subnet 192.168.1.10/24 192.168.1.77", check=lambda o: "192.168.1.255" in o)
    run("ferry subnet 192.168.1.10 255.255.255.0", check=lambda o: "192.168.1.255" in o)
    srv.stop()

    # Remote commands: a token, and exec allowed, from the served folder.
    srv = Server("FERRY_TOKEN=… ferry serve --allow-exec", "ferry serve --allow-exec --no-discovery",
                 FERRY_TOKEN=TOKEN)
    walked.add("export FERRY_TOKEN=…")
    tok = {"FERRY_TOKEN": TOKEN}
    run("ferry exec nas ls -la /var/log", check=lambda o: "total" in o, **tok)
    run("ferry exec nas --shell 'du -sh * | sort -h'", check=lambda o: "photos" in o, **tok)
    run("echo data | ferry exec nas -- wc -c", check=lambda o: o.strip() == "5", **tok)
    run("ferry exec -n nas:/builds make -j4", check=lambda o: "built" in o, **tok)
    run("ferry exec nas --timeout 60 -e MODE=fast ./run.sh", check=lambda o: "mode=fast" in o, **tok)
    tmux("ferry exec -t nas top", "ferry exec -t nas top", [["q"]], ["load average"], **tok)
    tmux("ferry shell nas", "ferry shell nas",
         [["echo walk-$((6*7))", "Enter"], ["exit", "Enter"]], ["", "walk-42"], **tok)
    run("ferry shell nas < script.sh", check=lambda o: "st=1" in o and "x=42 in builds" in o, **tok)
    run("curl -H \"Authorization: Bearer $FERRY_TOKEN\" …",
        "curl -f -H \"Authorization: Bearer $FERRY_TOKEN\" 'http://nas:7070/?json'",
        check=lambda o: '"exec":true' in o, **tok)
    srv.stop()

    # Time.
    srv = Server("ferry serve --ntp-port 123", "ferry serve --ntp-port 123 --no-discovery")
    run("ferry time nas", check=lambda o: "offset" in o)
    run("ferry time pool.example:123 --json", check=lambda o: '"offset"' in o)
    run("ferry time nas --sync", check=lambda o: any(w in o.lower() for w in ("dry run", "would", "nothing to do")))
    # Without the right to set the clock (this machine's clock is not the
    # walk's to change), it must get as far as asking for it.
    run("ferry time nas --sync --apply",
        "setpriv --inh-caps=-sys_time --bounding-set=-sys_time ferry time nas --sync --apply",
        codes=(0, 1), check=lambda o: "CAP_SYS_TIME" in o or "nothing to do" in o.lower() or "slew" in o.lower())
    run("(printf time; sleep 1) | nc -u -w1 nas 7070", check=lambda o: re.search(r"20\d\d", o))
    srv.stop()

    # Discovery switches.
    for line in ("ferry serve --announce 30", "ferry serve --no-discovery"):
        Server(line).stop()

    # TLS.
    srv = Server("ferry serve --tls", "ferry serve --tls --no-discovery")
    fp = re.search(r"SHA-256 ([0-9A-F:]{95})", srv.output())
    if not fp:
        fail("ferry serve --tls", "no fingerprint printed: " + srv.output())
    else:
        run("ferry ping --fingerprint AB:CD:…:EF nas", f"ferry ping --fingerprint {fp.group(1)} nas")
    run("ferry ping nas --tls", check=lambda o: "tls" in o.lower())
    os.remove(f"{CLIENT}/big.iso")
    run("ferry get nas:/big.iso .")
    same(f"{CLIENT}/big.iso", f"{SHARED}/big.iso") or fail("ferry get nas:/big.iso .", "bytes differ")
    run("ferry ls --accept-new nas", check=lambda o: "big.iso" in o)
    run("curl --cacert ~/.local/state/ferry/tls/cert.pem https://nas:7070/", check=lambda o: "big.iso" in o)
    run("openssl s_client -quiet -connect nas:7070",
        f"{typed('/quit')} | openssl s_client -quiet -connect nas:7070",
        check=lambda o: "welcome" in o, timeout=20)
    srv.stop()
    Server("ferry serve --tls-required").stop()
    Server("ferry serve --tls-cert cert.pem --tls-key key.pem").stop()

    # Completions and the manual, where the README puts them.
    run("mkdir -p ~/.local/share/bash-completion/completions && ferry completions bash > ~/.local/share/bash-completion/completions/ferry")
    run("mkdir -p ~/.zfunc && ferry completions zsh  > ~/.zfunc/_ferry")
    run("mkdir -p ~/.config/fish/completions && ferry completions fish > ~/.config/fish/completions/ferry.fish")
    run("ferry man --dir ~/.local/share/man/man1")
    os.path.exists(f"{HOME}/.local/share/man/man1/ferry-get.1") or fail("ferry man --dir", "no ferry-get.1")
    bash = subprocess.run(["bash", "-c", "source ~/.local/share/bash-completion/completions/ferry && complete -p ferry"],
                          env=env(), capture_output=True, text=True)
    bash.returncode == 0 or fail("ferry completions bash", bash.stderr)

    for e in ex:
        if e not in walked:
            fail(e, "a README example no step of tests/readme_walk.py walks: add one")
    print(f"walked {len(set(ex))} README examples")
    if failures:
        print("README examples that failed:\n" + "\n".join(failures))
        sys.exit(1)


if __name__ == "__main__":
    main()
