//! A real NATS server with JetStream for the tests: Debian's
//! `nats-server -js` on a free loopback port, with a store folder of its
//! own and a token, each test with its own server.

use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::{BinServer, Daemon, spawn_bin_server};

/// The token every test server asks for.
pub const TOKEN: &str = "ferry-tests-nats-token";

/// A running `nats-server -js`.
pub struct Nats {
    child: Daemon,
    dir: tempfile::TempDir,
    pub port: u16,
}

impl Nats {
    /// Starts it and waits until it takes connections.
    pub fn start() -> Nats {
        let port = {
            let l = TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let mut n = Nats {
            child: Daemon::default(),
            dir: tempfile::tempdir().unwrap(),
            port,
        };
        n.launch();
        n
    }

    fn launch(&mut self) {
        let log = std::fs::File::create(self.dir.path().join("nats.log")).unwrap();
        // Debian puts it in /usr/sbin, which a user's PATH may lack.
        let bin = ["/usr/sbin/nats-server", "/usr/bin/nats-server"]
            .into_iter()
            .find(|p| Path::new(p).exists())
            .unwrap_or("nats-server");
        let child = Command::new(bin)
            .arg("-js")
            .arg("-sd")
            .arg(self.dir.path().join("js"))
            .args(["-a", "127.0.0.1", "-p", &self.port.to_string()])
            .args(["--auth", TOKEN])
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("nats-server (apt-get install nats-server)");
        self.child.set(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "nats-server did not start: {}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("nats.log")).unwrap_or_default()
    }

    /// Kills it outright (`kill -9`).
    pub fn kill(&mut self) {
        self.child.kill();
    }

    /// Starts it again on the same port and store.
    pub fn restart(&mut self) {
        self.kill();
        self.launch();
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

/// A ferry node whose chat rooms span the servers on `nats`.
pub fn node(nats: &Nats, extra: &[&str]) -> (BinServer, tempfile::TempDir) {
    let root = tempfile::tempdir().unwrap();
    let url = nats.url();
    let mut args = vec!["--chat-bus", url.as_str(), "--chat-rate", "10000"];
    args.extend_from_slice(extra);
    let srv = spawn_bin_server(
        root.path(),
        &args,
        &[("FERRY_CHAT_BUS_TOKEN", TOKEN), ("RUST_LOG", "ferry=info")],
    );
    (srv, root)
}
