//! The exec service: remote commands with real exit codes.
//!
//! [`job`] runs one command in its own process group and guarantees that
//! nothing of it outlives the job; this module builds the clean environment
//! a command starts with. The native door (`server::exec`) moves the
//! command's streams over a connection; the client side is
//! [`client::exec`](crate::client).

pub mod job;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;

pub use job::{Ending, Finish, Job, JobSpec, SpawnError};

/// Which output stream a chunk belongs to.
#[derive(Debug, Clone, Copy, serde::Serialize, serde::Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Stream {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
}

/// The `PATH` every command starts with.
pub const PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Variables the server passes on from its own environment when set.
const PASSED_ON: &[&str] = &["HOME", "USER", "LOGNAME", "LANG", "TZ"];

/// The environment of a command: a fixed, documented base, then what the
/// client asked for explicitly (which wins).
///
/// Base: `PATH` (see [`PATH`]), `SHELL=/bin/sh`, `PWD`, the server's own
/// `HOME`, `USER`, `LOGNAME` (from its user when not set), `LANG` (default
/// `C.UTF-8`) and `TZ` when set, `FERRY_PEER` (the client's address and
/// port, as `SSH_CLIENT` gives them) and `FERRY_SERVER` (the server's
/// name). The client may set any other variable, not those three.
pub fn environment(
    cwd: &Path,
    peer: SocketAddr,
    server: &str,
    extra: &BTreeMap<String, String>,
) -> Result<Vec<(String, String)>, String> {
    let mut env = BTreeMap::new();
    env.insert("PATH".to_string(), PATH.to_string());
    env.insert("SHELL".to_string(), "/bin/sh".to_string());
    env.insert("LANG".to_string(), "C.UTF-8".to_string());
    for name in PASSED_ON {
        if let Ok(v) = std::env::var(name) {
            env.insert((*name).to_string(), v);
        }
    }
    env.entry("HOME".to_string()).or_insert_with(|| "/".into());
    env.insert("PWD".to_string(), cwd.display().to_string());
    env.insert(
        "FERRY_PEER".to_string(),
        format!("{} {}", peer.ip(), peer.port()),
    );
    env.insert("FERRY_SERVER".to_string(), server.to_string());
    // The server's user, also when its own environment does not say.
    if !env.contains_key("USER") || !env.contains_key("LOGNAME") {
        if let Ok(Some(user)) = nix::unistd::User::from_uid(nix::unistd::getuid()) {
            env.entry("USER".to_string()).or_insert(user.name.clone());
            env.entry("LOGNAME".to_string()).or_insert(user.name);
        }
    }
    for (k, v) in extra {
        check_var(k, v)?;
        env.insert(k.clone(), v.clone());
    }
    Ok(env.into_iter().collect())
}

/// What the server tells a command about the request, which the client may
/// not set: a command that logs or decides by its client's address must
/// not be lied to by that client.
const SERVER_SAYS: &[&str] = &["FERRY_PEER", "FERRY_SERVER", "PWD"];

/// A variable a client may set: a name of letters, digits and `_` not
/// starting with a digit, and a value without NUL.
fn check_var(name: &str, value: &str) -> Result<(), String> {
    let ok_name = !name.is_empty()
        && name.len() <= 256
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if !ok_name {
        return Err(format!(
            "environment variable name {:?} is not letters, digits and _",
            crate::text::escape(name)
        ));
    }
    if SERVER_SAYS.contains(&name) {
        return Err(format!(
            "{name} is set by the server (to {}); a client may not set it",
            match name {
                "FERRY_PEER" => "the client's address",
                "FERRY_SERVER" => "its name",
                _ => "the working folder",
            }
        ));
    }
    if value.contains('\0') {
        return Err(format!("the value of {name} contains a NUL byte"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer() -> SocketAddr {
        "192.0.2.7:5000".parse().unwrap()
    }

    #[test]
    fn base_is_fixed_and_extras_win() {
        let mut extra = BTreeMap::new();
        extra.insert("GREETING".to_string(), "hi there".to_string());
        extra.insert("LANG".to_string(), "fr_FR.UTF-8".to_string());
        let env = environment(Path::new("/srv/x"), peer(), "box", &extra).unwrap();
        let get = |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("PATH"), Some(PATH));
        assert_eq!(get("PWD"), Some("/srv/x"));
        assert_eq!(get("FERRY_PEER"), Some("192.0.2.7 5000"));
        assert_eq!(get("FERRY_SERVER"), Some("box"));
        assert_eq!(get("GREETING"), Some("hi there"));
        assert_eq!(get("LANG"), Some("fr_FR.UTF-8"));
        assert!(get("CARGO").is_none(), "nothing else is inherited");
        assert!(get("USER").is_some_and(|u| !u.is_empty()));
    }

    #[test]
    fn what_the_server_says_cannot_be_set_by_the_client() {
        for name in ["FERRY_PEER", "FERRY_SERVER", "PWD"] {
            let extra = BTreeMap::from([(name.to_string(), "8.8.8.8 1".to_string())]);
            let e = environment(Path::new("/srv/x"), peer(), "box", &extra).unwrap_err();
            assert!(e.contains("set by the server"), "{e}");
        }
    }

    #[test]
    fn bad_names_and_values_are_refused() {
        for (k, v) in [
            ("", "x"),
            ("1A", "x"),
            ("A=B", "x"),
            ("A B", "x"),
            ("OK", "a\0b"),
        ] {
            let mut extra = BTreeMap::new();
            extra.insert(k.to_string(), v.to_string());
            assert!(
                environment(Path::new("/"), peer(), "s", &extra).is_err(),
                "{k:?}={v:?}"
            );
        }
    }
}
