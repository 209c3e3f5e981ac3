//! Pure HTTP semantics for file responses: validators (ETag,
//! Last-Modified), conditional requests (RFC 9110 §13) and byte ranges
//! (§14).
//!
//! Hand-written rather than taken from a crate: the rules are short, and
//! ferry needs exact control of three outcomes the crates blur together
//! (a malformed `Range` is ignored, an unsatisfiable one is a 416, and a
//! request for several ranges is answered whole), each tested below.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// What identifies one version of a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Validators {
    /// Strong entity tag, quoted.
    pub etag: String,
    /// Modification time, truncated to whole seconds as HTTP dates are.
    pub modified: Option<SystemTime>,
}

impl Validators {
    /// Validators for a file of `size` bytes modified at `mtime` (seconds
    /// and nanoseconds since the epoch).
    pub fn new(size: u64, mtime: Option<(i64, u32)>) -> Validators {
        // `"size-secs.nanos"` in hex, written without the formatting
        // machinery: this runs for every GET.
        let mut etag = String::with_capacity(40);
        etag.push('"');
        push_hex(&mut etag, size);
        if let Some((s, n)) = mtime {
            etag.push('-');
            push_hex(&mut etag, s as u64);
            etag.push('.');
            push_hex(&mut etag, u64::from(n));
        }
        etag.push('"');
        let modified = mtime.and_then(|(s, _)| {
            u64::try_from(s)
                .ok()
                .map(|s| UNIX_EPOCH + Duration::from_secs(s))
        });
        Validators { etag, modified }
    }

    /// `Last-Modified`, when known.
    pub fn last_modified(&self) -> Option<String> {
        self.modified.map(httpdate::fmt_http_date)
    }
}

/// Appends `v` in lower-case hex, without leading zeros.
fn push_hex(out: &mut String, v: u64) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let digits = (64 - v.leading_zeros()).div_ceil(4).max(1);
    for i in (0..digits).rev() {
        out.push(char::from(DIGITS[(v >> (i * 4)) as usize & 15]));
    }
}

/// The request headers that matter here, as text.
#[derive(Debug, Default, Clone)]
pub struct Conditions<'a> {
    /// `If-Match`.
    pub if_match: Option<&'a str>,
    /// `If-None-Match`.
    pub if_none_match: Option<&'a str>,
    /// `If-Modified-Since`.
    pub if_modified_since: Option<&'a str>,
    /// `If-Unmodified-Since`.
    pub if_unmodified_since: Option<&'a str>,
    /// `If-Range`.
    pub if_range: Option<&'a str>,
    /// `Range`.
    pub range: Option<&'a str>,
}

/// What to do before any body is sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Go on (the method's normal answer).
    Proceed,
    /// 304 Not Modified (GET and HEAD only).
    NotModified,
    /// 412 Precondition Failed.
    Failed,
}

/// Tags in a list header (`"a", W/"b"`, or `*`).
fn tags(list: &str) -> impl Iterator<Item = &str> {
    list.split(',').map(str::trim).filter(|t| !t.is_empty())
}

fn weak_eq(a: &str, b: &str) -> bool {
    a.trim_start_matches("W/") == b.trim_start_matches("W/")
}

fn strong_eq(a: &str, b: &str) -> bool {
    !a.starts_with("W/") && !b.starts_with("W/") && a == b
}

fn parse_date(s: &str) -> Option<SystemTime> {
    httpdate::parse_http_date(s.trim()).ok()
}

/// Evaluates the preconditions in RFC 9110's order (§13.2.2) for a
/// resource that exists (`current` is `Some`) or does not. `safe` is true
/// for GET and HEAD.
pub fn evaluate(c: &Conditions<'_>, current: Option<&Validators>, safe: bool) -> Verdict {
    // 1. If-Match, else 2. If-Unmodified-Since.
    if let Some(list) = c.if_match {
        let ok = match current {
            None => false,
            Some(v) => tags(list).any(|t| t == "*" || strong_eq(t, &v.etag)),
        };
        if !ok {
            return Verdict::Failed;
        }
    } else if let (Some(d), Some(v)) = (c.if_unmodified_since.and_then(parse_date), current) {
        if v.modified.is_some_and(|m| m > d) {
            return Verdict::Failed;
        }
    }
    // 3. If-None-Match, else 4. If-Modified-Since.
    if let Some(list) = c.if_none_match {
        let matched = match current {
            None => false,
            Some(v) => tags(list).any(|t| t == "*" || weak_eq(t, &v.etag)),
        };
        if matched {
            return if safe {
                Verdict::NotModified
            } else {
                Verdict::Failed
            };
        }
    } else if safe {
        if let (Some(d), Some(v)) = (c.if_modified_since.and_then(parse_date), current) {
            if v.modified.is_some_and(|m| m <= d) {
                return Verdict::NotModified;
            }
        }
    }
    Verdict::Proceed
}

/// How to answer a GET as far as ranges go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Span {
    /// 200, the whole file.
    Whole,
    /// 206, bytes `start..=end`.
    Part {
        /// First byte.
        start: u64,
        /// Last byte (inclusive).
        end: u64,
    },
    /// 416, with `Content-Range: bytes */size`.
    Unsatisfiable,
}

/// Decides the span of a GET of a `size`-byte file: `Range` honoured only
/// when `If-Range` (if any) still matches; a malformed `Range` or one with
/// several ranges is answered whole.
pub fn span(c: &Conditions<'_>, v: &Validators, size: u64) -> Span {
    let Some(range) = c.range else {
        return Span::Whole;
    };
    if let Some(ir) = c.if_range {
        let ir = ir.trim();
        let still = if ir.starts_with('"') || ir.starts_with("W/") {
            strong_eq(ir, &v.etag)
        } else {
            // A date validates only if it is exactly the modification time.
            parse_date(ir).is_some_and(|d| v.modified == Some(d))
        };
        if !still {
            return Span::Whole;
        }
    }
    parse_range(range, size)
}

/// One `bytes=` range against a file of `size` bytes.
pub fn parse_range(header: &str, size: u64) -> Span {
    let Some(spec) = header.trim().strip_prefix("bytes=") else {
        return Span::Whole; // another unit: ignored
    };
    let spec = spec.trim();
    if spec.contains(',') {
        return Span::Whole; // several ranges: answered whole
    }
    let Some((first, last)) = spec.split_once('-') else {
        return Span::Whole;
    };
    let (first, last) = (first.trim(), last.trim());
    let num = |s: &str| -> Option<u64> {
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
            None
        } else {
            s.parse().ok()
        }
    };
    if first.is_empty() {
        // Suffix: the last N bytes.
        let Some(n) = num(last) else {
            return Span::Whole;
        };
        if n == 0 || size == 0 {
            return Span::Unsatisfiable;
        }
        return Span::Part {
            start: size.saturating_sub(n),
            end: size - 1,
        };
    }
    let Some(start) = num(first) else {
        return Span::Whole;
    };
    let end = if last.is_empty() {
        None
    } else {
        match num(last) {
            Some(e) => Some(e),
            None => return Span::Whole,
        }
    };
    if let Some(e) = end {
        if e < start {
            // Syntactically a range, but an empty one: nothing satisfies it.
            return Span::Unsatisfiable;
        }
    }
    if start >= size {
        return Span::Unsatisfiable;
    }
    Span::Part {
        start,
        end: end.map_or(size - 1, |e| e.min(size - 1)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v() -> Validators {
        Validators::new(1000, Some((1_700_000_000, 5)))
    }

    #[test]
    fn entity_tags_are_size_and_time_in_hex() {
        assert_eq!(v().etag, "\"3e8-6553f100.5\"");
        assert_eq!(Validators::new(0, None).etag, "\"0\"");
        assert_eq!(
            Validators::new(u64::MAX, Some((-1, 0))).etag,
            format!("\"{:x}-{:x}.0\"", u64::MAX, -1i64)
        );
        assert_ne!(
            Validators::new(1, Some((2, 3))).etag,
            Validators::new(1, Some((2, 4))).etag
        );
    }

    #[test]
    fn ranges_and_their_edges() {
        use Span::*;
        let p = |s, e| Part { start: s, end: e };
        assert_eq!(parse_range("bytes=0-0", 1000), p(0, 0));
        assert_eq!(parse_range("bytes=0-", 1000), p(0, 999));
        assert_eq!(parse_range("bytes=10-19", 1000), p(10, 19));
        assert_eq!(parse_range("bytes=990-5000", 1000), p(990, 999));
        assert_eq!(parse_range("bytes=-10", 1000), p(990, 999));
        assert_eq!(parse_range("bytes=-5000", 1000), p(0, 999));
        assert_eq!(parse_range("bytes=-0", 1000), Unsatisfiable);
        assert_eq!(parse_range("bytes=10-1", 1000), Unsatisfiable);
        assert_eq!(parse_range("bytes=1000-", 1000), Unsatisfiable);
        assert_eq!(parse_range("bytes=0-0", 0), Unsatisfiable);
        assert_eq!(parse_range("bytes=0-1,5-6", 1000), Whole);
        assert_eq!(parse_range("items=0-1", 1000), Whole);
        assert_eq!(parse_range("bytes=a-b", 1000), Whole);
        assert_eq!(parse_range("bytes=+1-2", 1000), Whole);
        assert_eq!(parse_range("bytes=5", 1000), Whole);
        let big = 5 * 1024 * 1024 * 1024u64;
        assert_eq!(parse_range("bytes=4294967296-", big), p(1 << 32, big - 1));
    }

    #[test]
    fn if_range_needs_the_same_version() {
        let v = v();
        let c = |ir| Conditions {
            range: Some("bytes=0-9"),
            if_range: Some(ir),
            ..Default::default()
        };
        assert_eq!(span(&c(&v.etag), &v, 1000), Span::Part { start: 0, end: 9 });
        assert_eq!(span(&c("\"other\""), &v, 1000), Span::Whole);
        let weak = format!("W/{}", v.etag);
        assert_eq!(span(&c(&weak), &v, 1000), Span::Whole);
        let date = v.last_modified().unwrap();
        assert_eq!(span(&c(&date), &v, 1000), Span::Part { start: 0, end: 9 });
        assert_eq!(
            span(&c("Mon, 01 Jan 2001 00:00:00 GMT"), &v, 1000),
            Span::Whole
        );
    }

    #[test]
    fn preconditions_in_order() {
        let v = v();
        let date = v.last_modified().unwrap();
        let e = |c: Conditions<'_>, safe| evaluate(&c, Some(&v), safe);
        assert_eq!(e(Conditions::default(), true), Verdict::Proceed);
        let inm = Conditions {
            if_none_match: Some(&v.etag),
            ..Default::default()
        };
        assert_eq!(e(inm.clone(), true), Verdict::NotModified);
        assert_eq!(e(inm, false), Verdict::Failed);
        let weak = format!("\"x\", W/{}", v.etag);
        let inm_weak = Conditions {
            if_none_match: Some(&weak),
            ..Default::default()
        };
        assert_eq!(e(inm_weak, true), Verdict::NotModified);
        let ims = Conditions {
            if_modified_since: Some(&date),
            ..Default::default()
        };
        assert_eq!(e(ims, true), Verdict::NotModified);
        let old = Conditions {
            if_modified_since: Some("Mon, 01 Jan 2001 00:00:00 GMT"),
            ..Default::default()
        };
        assert_eq!(e(old, true), Verdict::Proceed);
        // If-None-Match wins over If-Modified-Since.
        let both = Conditions {
            if_none_match: Some("\"other\""),
            if_modified_since: Some(&date),
            ..Default::default()
        };
        assert_eq!(e(both, true), Verdict::Proceed);
        let im = Conditions {
            if_match: Some("\"other\""),
            ..Default::default()
        };
        assert_eq!(e(im, false), Verdict::Failed);
        let im_ok = Conditions {
            if_match: Some(&v.etag),
            ..Default::default()
        };
        assert_eq!(e(im_ok, false), Verdict::Proceed);
        let ius = Conditions {
            if_unmodified_since: Some("Mon, 01 Jan 2001 00:00:00 GMT"),
            ..Default::default()
        };
        assert_eq!(e(ius, false), Verdict::Failed);
        // If-Match: * needs the resource; If-None-Match: * needs its absence.
        let star = Conditions {
            if_match: Some("*"),
            ..Default::default()
        };
        assert_eq!(evaluate(&star, None, false), Verdict::Failed);
        let none_star = Conditions {
            if_none_match: Some("*"),
            ..Default::default()
        };
        assert_eq!(evaluate(&none_star, None, false), Verdict::Proceed);
        assert_eq!(e(none_star, false), Verdict::Failed);
    }
}
