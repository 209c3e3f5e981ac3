//! What the TLS tests share: the token, fingerprints as openssl computes
//! them, and the CLI with its pins in a file of the test's own.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::{BinServer, run_cli};

pub const TOKEN: &str = "tls-token-for-tests-7f3a";

/// The certificate's SHA-256 as openssl prints it (`AA:BB:...`).
pub fn openssl_fingerprint(cert: &Path) -> String {
    let out = Command::new("openssl")
        .args(["x509", "-noout", "-fingerprint", "-sha256", "-in"])
        .arg(cert)
        .output()
        .expect("openssl is installed (scripts/test installs it)");
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    text.trim().rsplit('=').next().unwrap().to_string()
}

/// The generated certificate of a server started with `--tls`.
pub fn cert_of(srv: &BinServer) -> PathBuf {
    srv.state.join("tls").join("cert.pem")
}

/// Kills the server; its log.
pub fn stop(mut srv: BinServer) -> String {
    let _ = srv.child.kill();
    let _ = srv.child.wait();
    srv.stderr.join().unwrap()
}

/// Runs the CLI with its pins in `known` (and the token).
pub fn cli(args: &[&str], known: &Path) -> (i32, String, String) {
    let known = known.to_str().unwrap();
    run_cli(
        args,
        &[("FERRY_KNOWN_HOSTS", known), ("FERRY_TOKEN", TOKEN)],
    )
}
