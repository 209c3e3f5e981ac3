//! TLS on the shared port: every door over TLS with the certificate pinned,
//! tokens only inside TLS, TLS required, given certificates, and
//! handshakes that stall or make no sense closed without holding anything.
//! Trust on first use and changed certificates: tests/tls_pins.rs.
//!
//! Fingerprints are checked against `openssl x509 -fingerprint`, and the
//! HTTP and text doors are driven by curl, reqwest and `openssl s_client`.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::tls::{TOKEN, cert_of, cli, openssl_fingerprint, stop};
use common::{TestServer, noise, sha256_file, spawn_bin_server};
use ferry::client::Client;
use ferry::config::TlsConfig;
use ferry::tls::client::{TlsOptions, Trust};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// `openssl s_client -quiet` on the text door: lines in, lines out.
struct OpensslText {
    child: std::process::Child,
    lines: mpsc::Receiver<String>,
}

impl OpensslText {
    fn connect(port: u16) -> OpensslText {
        let mut child = Command::new("openssl")
            .args(["s_client", "-quiet", "-connect"])
            .arg(format!("127.0.0.1:{port}"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let out = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for l in BufReader::new(out).lines() {
                let Ok(l) = l else { return };
                if tx.send(l).is_err() {
                    return;
                }
            }
        });
        OpensslText { child, lines }
    }

    fn send(&mut self, line: &str) {
        let stdin = self.child.stdin.as_mut().unwrap();
        stdin.write_all(line.as_bytes()).unwrap();
        stdin.write_all(b"\n").unwrap();
        stdin.flush().unwrap();
    }

    fn until(&self, want: impl Fn(&str) -> bool) -> Vec<String> {
        let mut seen = Vec::new();
        loop {
            match self.lines.recv_timeout(Duration::from_secs(15)) {
                Ok(l) => {
                    let done = want(&l);
                    seen.push(l);
                    if done {
                        return seen;
                    }
                }
                Err(e) => panic!("{e}; saw {seen:?}"),
            }
        }
    }
}

impl Drop for OpensslText {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn every_door_answers_over_tls_with_the_pinned_certificate() {
    let root = tempfile::tempdir().unwrap();
    let srv = spawn_bin_server(
        root.path(),
        &["--tls", "--allow-exec", "--allow-upload", "--no-discovery"],
        &[("FERRY_TOKEN", TOKEN)],
    );
    let host = format!("127.0.0.1:{}", srv.port);
    let cert = cert_of(&srv);
    let fp = openssl_fingerprint(&cert);
    let home = tempfile::tempdir().unwrap();
    let known = home.path().join("known_hosts");

    // The generated key is private to its owner.
    use std::os::unix::fs::PermissionsExt;
    let key_mode = std::fs::metadata(srv.state.join("tls/key.pem"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(key_mode & 0o077, 0, "key mode {key_mode:o}");

    // Pin with the fingerprint openssl computed; ping reports the same one.
    let (code, out, err) = cli(&["ping", "-c", "1", "--fingerprint", &fp, &host], &known);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains(&format!("TLS, certificate SHA-256 {fp}")),
        "{out}"
    );
    let pins = std::fs::read_to_string(&known).unwrap();
    assert!(pins.contains(&format!("{host} {fp}")), "{pins}");

    // From now on the server gets TLS without being asked.
    let (code, out, err) = cli(&["ping", "-c", "1", &host], &known);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("TLS, certificate"), "{out}");

    // Native put and get.
    let local = home.path().join("up.bin");
    std::fs::write(&local, noise(3 << 20, 8)).unwrap();
    let (code, _, err) = cli(
        &["put", local.to_str().unwrap(), &format!("{host}:/")],
        &known,
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        sha256_file(&root.path().join("up.bin")),
        sha256_file(&local)
    );
    let back = home.path().join("back.bin");
    let (code, _, err) = cli(
        &["get", &format!("{host}:/up.bin"), back.to_str().unwrap()],
        &known,
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(sha256_file(&back), sha256_file(&local));

    // A remote command, with its streams and its exit status.
    let (code, out, err) = cli(
        &[
            "exec",
            &host,
            "--",
            "sh",
            "-c",
            "echo out; echo err >&2; exit 3",
        ],
        &known,
    );
    assert_eq!(code, 3, "{err}");
    assert_eq!(out, "out\n");
    assert!(err.contains("err"), "{err}");

    // Chat: a text client through openssl s_client hears the CLI's line.
    let mut text = OpensslText::connect(srv.port);
    text.until(|l| l.starts_with("* welcome"));
    text.send("/join ops");
    text.until(|l| l.contains("joined"));
    let (code, _, err) = cli(
        &[
            "chat", &host, "--room", "ops", "--nick", "tls", "--send", "over tls",
        ],
        &known,
    );
    assert_eq!(code, 0, "{err}");
    text.until(|l| l == "[ops] <tls> over tls");
    drop(text);

    // HTTP: curl and reqwest trusting exactly this certificate.
    let out = Command::new("curl")
        .args(["-sS", "--fail", "--cacert"])
        .arg(&cert)
        .arg(format!("https://127.0.0.1:{}/up.bin", srv.port))
        .args(["-w", "\n%{http_version}"])
        .output()
        .expect("curl is installed (scripts/test installs it)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (body, version) = out.stdout.split_at(out.stdout.len() - 4);
    assert_eq!(version, b"\n1.1");
    assert_eq!(body, std::fs::read(&local).unwrap().as_slice());
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let ca = reqwest::Certificate::from_pem(&std::fs::read(&cert).unwrap()).unwrap();
        let c = reqwest::Client::builder()
            .add_root_certificate(ca)
            .build()
            .unwrap();
        let r = c
            .get(format!("https://localhost:{}/up.bin", srv.port))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.version(), reqwest::Version::HTTP_11);
        assert_eq!(r.bytes().await.unwrap().len(), 3 << 20);
        // Logging in over TLS sets a Secure cookie.
        let set = login(&c, &format!("https://localhost:{}", srv.port)).await;
        assert!(set.contains("; Secure"), "{set}");
        // Plain HTTP still answers on the same port (TLS is not required),
        // and its cookie is not marked Secure, which would lose it.
        let set = login(
            &reqwest::Client::new(),
            &format!("http://127.0.0.1:{}", srv.port),
        )
        .await;
        assert!(!set.contains("Secure"), "{set}");
    });

    // ALPN offers HTTP/1.1 (and the server picks it over h2, which it does
    // not speak).
    let out = Command::new("openssl")
        .args(["s_client", "-alpn", "h2,http/1.1", "-connect"])
        .arg(format!("127.0.0.1:{}", srv.port))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("ALPN protocol: http/1.1"), "{text}");

    let log = stop(srv);
    assert!(!log.contains(TOKEN), "the token reached the log");
}

/// Logs in to the page at `base` with the token; the cookie it sets.
async fn login(c: &reqwest::Client, base: &str) -> String {
    let r = c
        .post(format!("{base}/.ferry/login"))
        .header("X-Ferry", "1")
        .body(format!("token={TOKEN}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    r.headers()["set-cookie"].to_str().unwrap().to_string()
}

/// Copies both ways between a client and `target`, recording what the
/// client sent.
async fn recording_proxy(
    target: std::net::SocketAddr,
) -> (std::net::SocketAddr, tokio::task::JoinHandle<Vec<u8>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let (client, _) = listener.accept().await.unwrap();
        let server = TcpStream::connect(target).await.unwrap();
        let (mut cr, mut cw) = client.into_split();
        let (mut sr, mut sw) = server.into_split();
        let down = tokio::spawn(async move { tokio::io::copy(&mut sr, &mut cw).await });
        let mut seen = Vec::new();
        let mut buf = [0u8; 8192];
        loop {
            match cr.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    seen.extend_from_slice(&buf[..n]);
                    if sw.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
            }
        }
        let _ = sw.shutdown().await;
        let _ = down.await;
        seen
    });
    (addr, task)
}

async fn tls_server(tweak: impl FnOnce(&mut ferry::config::ServeConfig)) -> TestServer {
    TestServer::start(|c| {
        c.tls = Some(TlsConfig {
            files: None,
            required: false,
            handshake_timeout: Duration::from_secs(1),
        });
        c.token = Some(ferry::secret::Secret::new(TOKEN));
        c.anonymous = ferry::access::Rights {
            read: true,
            ..Default::default()
        };
        tweak(c);
    })
    .await
}

fn insecure() -> TlsOptions {
    TlsOptions {
        trust: Trust::Insecure,
        known_hosts: PathBuf::from("/nonexistent/known_hosts"),
    }
}

#[tokio::test]
async fn the_token_travels_only_inside_tls() {
    let s = tls_server(|_| {}).await;
    let token = ferry::secret::Secret::new(TOKEN);
    // Over TLS: the token is used (upload is granted with it) and never
    // crosses the wire in clear.
    let (via, seen) = recording_proxy(s.addr).await;
    let mut c = Client::connect_tls(&via.to_string(), Some(&token), &insecure())
        .await
        .unwrap();
    assert!(c.tls().is_some());
    assert!(c.hello().await.unwrap().permissions.upload);
    c.ls("/").await.unwrap();
    drop(c);
    let seen = seen.await.unwrap();
    assert_eq!(seen[0], 0x16, "the first byte is a TLS handshake record");
    assert!(!contains(&seen, TOKEN.as_bytes()));
    // In clear, the same bytes do carry it: the check above can fail.
    let (via, seen) = recording_proxy(s.addr).await;
    let mut c = Client::connect(&via.to_string(), Some(&token))
        .await
        .unwrap();
    assert!(c.tls().is_none());
    c.ls("/").await.unwrap();
    drop(c);
    assert!(contains(&seen.await.unwrap(), TOKEN.as_bytes()));
    s.stop().await;
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// Reads until the server closes; how long that took, or `None` if it did
/// not within `limit`.
async fn closed_within(s: &mut TcpStream, limit: Duration) -> Option<Duration> {
    let started = Instant::now();
    let mut buf = [0u8; 4096];
    let r = tokio::time::timeout(limit, async {
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => continue, // an alert, perhaps
            }
        }
    })
    .await;
    r.ok().map(|()| started.elapsed())
}

#[tokio::test]
async fn slow_and_garbage_handshakes_are_closed_without_holding_the_server() {
    // Few connection slots: stalled handshakes that held theirs would
    // lock everyone else out.
    let s = tls_server(|c| c.limits.max_connections = 8).await;
    // A ClientHello that starts and never finishes.
    let mut stalled = Vec::new();
    for _ in 0..6 {
        let mut t = TcpStream::connect(s.addr).await.unwrap();
        t.write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01])
            .await
            .unwrap();
        stalled.push(t);
    }
    // Gone mid-handshake, or before a byte.
    for first in [&[0x16, 0x03, 0x01][..], &[][..]] {
        let mut t = TcpStream::connect(s.addr).await.unwrap();
        t.write_all(first).await.unwrap();
        drop(t);
    }
    // A record header, then nonsense: closed at once, not on the timeout
    // (a server whose handshake timeout is far longer than the wait).
    let patient =
        tls_server(|c| c.tls.as_mut().unwrap().handshake_timeout = Duration::from_secs(60)).await;
    let mut garbage = TcpStream::connect(patient.addr).await.unwrap();
    garbage
        .write_all(&[0x16, 0x03, 0x01, 0x00, 0x20])
        .await
        .unwrap();
    garbage.write_all(&[0xAB; 32]).await.unwrap();
    let took = closed_within(&mut garbage, Duration::from_secs(20)).await;
    assert!(took.is_some(), "a garbage handshake is closed");
    patient.stop().await;
    // Meanwhile a real client is served.
    let mut c = Client::connect_tls(&s.addr.to_string(), None, &insecure())
        .await
        .unwrap();
    c.ls("/").await.unwrap();
    drop(c);
    // The stalled ones are closed after the handshake timeout (1 s here).
    for t in &mut stalled {
        let took = closed_within(t, Duration::from_secs(10)).await;
        assert!(took.is_some(), "a stalled handshake was left open");
    }
    // And their slots are free again: more clients than slots, one by one.
    for _ in 0..10 {
        let mut c = Client::connect_tls(&s.addr.to_string(), None, &insecure())
            .await
            .unwrap();
        c.ping().await.unwrap();
    }
    s.stop().await;
}

#[tokio::test]
async fn a_plain_client_on_loopback_is_served_when_tls_is_required() {
    // Loopback is exempt (the refusal itself is tested across network
    // namespaces in tests/netns.rs).
    let s = tls_server(|c| {
        c.tls.as_mut().unwrap().required = true;
        c.token = None;
    })
    .await;
    let mut c = Client::connect(&s.addr.to_string(), None).await.unwrap();
    assert!(c.tls().is_none());
    c.ls("/").await.unwrap();
    let mut c = Client::connect_tls(&s.addr.to_string(), None, &insecure())
        .await
        .unwrap();
    assert!(c.tls().is_some());
    c.ls("/").await.unwrap();
    s.stop().await;
}

#[test]
fn a_given_certificate_is_served_and_a_bad_pair_is_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("c.pem"), dir.path().join("k.pem"));
    let ok = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=given",
            "-keyout",
        ])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(ok.success());
    let root = tempfile::tempdir().unwrap();
    let srv = spawn_bin_server(
        root.path(),
        &[
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
            "--no-discovery",
        ],
        &[],
    );
    let fp = openssl_fingerprint(&cert);
    let home = tempfile::tempdir().unwrap();
    let (code, out, err) = cli(
        &[
            "ping",
            "-c",
            "1",
            "--fingerprint",
            &fp,
            &format!("127.0.0.1:{}", srv.port),
        ],
        &home.path().join("k"),
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(&fp));
    assert!(!srv.state.join("tls").exists(), "nothing generated");
    stop(srv);

    // A certificate with a key that is not its own: a clear error at start.
    let other = dir.path().join("other.pem");
    let ok = Command::new("openssl")
        .args([
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-out",
        ])
        .arg(&other)
        .status()
        .unwrap();
    assert!(ok.success());
    let out = Command::new(common::ferry_bin())
        .arg("serve")
        .arg(root.path())
        .args(["--listen", "127.0.0.1:0", "--no-discovery", "--tls-cert"])
        .arg(&cert)
        .arg("--tls-key")
        .arg(&other)
        .arg("--state-dir")
        .arg(home.path())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("does not go with"), "{err}");
    // A missing key file: also at start.
    let mut child = Command::new(common::ferry_bin())
        .arg("serve")
        .arg(root.path())
        .args(["--listen", "127.0.0.1:0", "--no-discovery", "--tls-cert"])
        .arg(&cert)
        .arg("--tls-key")
        .arg(dir.path().join("missing.pem"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert!(!child.wait().unwrap().success());
    assert!(err.contains("missing.pem"), "{err}");
}

#[test]
fn the_classic_python_client_works_inside_tls() {
    let root = tempfile::tempdir().unwrap();
    let srv = spawn_bin_server(
        root.path(),
        &["--tls", "--allow-upload", "--no-discovery"],
        &[],
    );
    // The old exercise's framing, with the socket wrapped by Python's ssl
    // module trusting only the generated certificate.
    let script = r#"
import json, socket, ssl, struct, sys
ctx = ssl.create_default_context(cafile=sys.argv[1])
s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", int(sys.argv[2]))), server_hostname="localhost")
data = b"classic inside tls\n"
h = json.dumps({"cmd": "put", "filename": "classic.txt", "filesize": len(data)}).encode()
s.send(struct.pack('i', len(h))); s.send(h); s.sendall(data)
n = struct.unpack('i', s.recv(4))[0]
buf = b""
while len(buf) < n:
    buf += s.recv(n - len(buf))
print(json.loads(buf)["ok"], s.version())
"#;
    let out = Command::new("python3")
        .args(["-c", script])
        .arg(cert_of(&srv))
        .arg(srv.port.to_string())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "True TLSv1.3");
    assert_eq!(
        std::fs::read(root.path().join("classic.txt")).unwrap(),
        b"classic inside tls\n"
    );
    stop(srv);
}
