//! Remote addresses as users type them, scp- and curl-like:
//!
//! ```text
//! HOST                  the served root on port 7070
//! HOST:PORT             the root on PORT
//! HOST:/PATH  HOST:PATH  a path (scp style)
//! HOST:PORT:/PATH       both
//! HOST/PATH  HOST:PORT/PATH   a path (URL style)
//! [IPV6]:PORT/PATH      IPv6 literals in brackets
//! ferry://HOST:PORT/PATH
//! ```
//! After `HOST:`, digits alone are a port; write `HOST:/123` for a file
//! named `123`.

use crate::config::DEFAULT_PORT;

/// A parsed remote address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Remote {
    /// Host name or IP literal (without brackets).
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// Path on the server, relative to its root (may be empty).
    pub path: String,
}

impl Remote {
    /// `host:port` for connecting (IPv6 literals bracketed).
    pub fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

/// Why an address could not be understood.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot read remote address {input:?}: {reason}")]
pub struct AddrError {
    input: String,
    reason: &'static str,
}

/// Parses a remote address (see the module docs).
pub fn parse_remote(input: &str) -> Result<Remote, AddrError> {
    let fail = |reason| AddrError {
        input: input.to_string(),
        reason,
    };
    let s = input.strip_prefix("ferry://").unwrap_or(input);
    let (host, rest) = if let Some(after) = s.strip_prefix('[') {
        let end = after
            .find(']')
            .ok_or_else(|| fail("missing ']' after an IPv6 address"))?;
        (&after[..end], &after[end + 1..])
    } else {
        let end = s.find([':', '/']).unwrap_or(s.len());
        (&s[..end], &s[end..])
    };
    if host.is_empty() {
        return Err(fail("no host"));
    }
    let (port, path) = if let Some(after) = rest.strip_prefix(':') {
        let digits = after.bytes().take_while(u8::is_ascii_digit).count();
        let tail = &after[digits..];
        if digits > 0 && (tail.is_empty() || tail.starts_with('/') || tail.starts_with(':')) {
            let port: u16 = after[..digits]
                .parse()
                .map_err(|_| fail("port out of range"))?;
            if port == 0 {
                return Err(fail("port 0"));
            }
            (port, tail.strip_prefix(':').unwrap_or(tail))
        } else {
            (DEFAULT_PORT, after)
        }
    } else {
        (DEFAULT_PORT, rest)
    };
    Ok(Remote {
        host: host.to_string(),
        port,
        path: path.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> (String, u16, String) {
        let r = parse_remote(s).unwrap();
        (r.host, r.port, r.path)
    }

    #[test]
    fn every_documented_form() {
        assert_eq!(p("box"), ("box".into(), 7070, "".into()));
        assert_eq!(p("box:9000"), ("box".into(), 9000, "".into()));
        assert_eq!(
            p("box:/docs/a.txt"),
            ("box".into(), 7070, "/docs/a.txt".into())
        );
        assert_eq!(
            p("box:docs/a.txt"),
            ("box".into(), 7070, "docs/a.txt".into())
        );
        assert_eq!(p("box:9000:/docs"), ("box".into(), 9000, "/docs".into()));
        assert_eq!(p("box:9000/docs"), ("box".into(), 9000, "/docs".into()));
        assert_eq!(p("box/docs"), ("box".into(), 7070, "/docs".into()));
        assert_eq!(p("[::1]:9000/x"), ("::1".into(), 9000, "/x".into()));
        assert_eq!(p("[::1]"), ("::1".into(), 7070, "".into()));
        assert_eq!(
            p("ferry://10.0.0.2:7071/a"),
            ("10.0.0.2".into(), 7071, "/a".into())
        );
        assert_eq!(p("box:/123"), ("box".into(), 7070, "/123".into()));
        assert_eq!(p("box:12ab"), ("box".into(), 7070, "12ab".into()));
        assert_eq!(parse_remote("box:9000").unwrap().authority(), "box:9000");
        assert_eq!(parse_remote("[::1]:1").unwrap().authority(), "[::1]:1");
    }

    #[test]
    fn bad_forms_are_refused() {
        assert!(parse_remote("").is_err());
        assert!(parse_remote(":7070").is_err());
        assert!(parse_remote("[::1").is_err());
        assert!(parse_remote("box:99999").is_err());
        assert!(parse_remote("box:0").is_err());
    }
}
