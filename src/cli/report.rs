//! What a transfer reports: a line per file for `--json`, and the count
//! of unchanged files on standard error.

use serde::Serialize;

use crate::client::{ClientError, Transferred};
use crate::files::digest::Algo;

/// One line of the `--json` report: the digest under its algorithm's
/// name (`blake3` or `sha256`).
#[derive(Debug, Serialize)]
pub(super) struct Report {
    path: String,
    size: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    sha256: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    blake3: Option<String>,
    resumed_from: u64,
    /// Already there, the same bytes: nothing was sent.
    unchanged: bool,
}

pub(super) fn report(path: &str, t: &Transferred) -> Report {
    let mut r = unchanged(path, t.size, t.digest.clone(), t.algo);
    r.resumed_from = t.resumed_from;
    r.unchanged = false;
    r
}

pub(super) fn unchanged(path: &str, size: u64, digest: String, algo: Algo) -> Report {
    let (sha256, blake3) = match algo {
        Algo::Sha256 => (Some(digest), None),
        Algo::Blake3 => (None, Some(digest)),
    };
    Report {
        path: path.to_string(),
        size,
        sha256,
        blake3,
        resumed_from: size,
        unchanged: true,
    }
}

pub(super) fn join_remote(dir: &str, name: &str) -> String {
    format!("{}/{name}", dir.trim_end_matches('/'))
}

pub(super) fn print_reports(json: bool, reports: &[Report]) -> Result<(), ClientError> {
    let same = reports.iter().filter(|r| r.unchanged).count();
    if same > 0 && !json {
        let sent = reports.len() - same;
        crate::say!("ferry: {same} unchanged (skipped), {sent} transferred");
    }
    if json {
        super::output::print_json(&reports)?;
    }
    Ok(())
}
