//! The discovery datagrams, as pure functions.
//!
//! A probe is `FERRY-DISCOVER/1\n`, a JSON object with a random nonce, and
//! space padding to exactly [`PROBE_LEN`] bytes. An answer is
//! `FERRY-HERE/1\n`, a JSON object describing the server, and, when the
//! server has a token, `\nhmac=` and the hex HMAC-SHA256 (keyed with the
//! token) of the nonce followed by the JSON bytes. Answers are at most
//! [`MAX_ANSWER`] bytes, never more than the probe: the exchange cannot be
//! used to amplify traffic, and it fits one unfragmented datagram.

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

pub use crate::ids::{hex, random_hex};

/// First line of a probe.
pub const PROBE_MAGIC: &[u8] = b"FERRY-DISCOVER/1\n";
/// First line of an answer.
pub const ANSWER_MAGIC: &[u8] = b"FERRY-HERE/1\n";
/// Every probe is padded to exactly this size.
pub const PROBE_LEN: usize = 512;
/// No answer is larger.
pub const MAX_ANSWER: usize = PROBE_LEN;
/// Longest server name carried (longer ones are cut).
const MAX_NAME: usize = 64;

#[derive(Debug, Serialize, Deserialize)]
struct ProbeBody {
    nonce: String,
}

/// What a server says about itself.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Announcement {
    /// Display name.
    pub name: String,
    /// Random per server start; tells servers apart across interfaces.
    pub instance: String,
    /// Software and version.
    pub software: String,
    /// TCP port of the shared door.
    pub tcp_port: u16,
    /// UDP port (time and discovery).
    pub udp_port: u16,
    /// Services offered.
    pub features: Vec<String>,
    /// Whether a token is needed for anything.
    pub auth_required: bool,
    /// The probe's nonce, echoed (or `announce-TIME` when unsolicited).
    pub nonce: String,
    /// Seconds between unsolicited announcements, when the server makes them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub announce_every: Option<u32>,
    /// The cluster this server is a node of (the servers sharing one chat
    /// bus or one bucket): nodes of one cluster are one service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<String>,
}

/// Builds a probe carrying `nonce` (32 hex characters).
pub fn probe(nonce: &str) -> Vec<u8> {
    let mut out = PROBE_MAGIC.to_vec();
    out.extend(
        serde_json::to_vec(&ProbeBody {
            nonce: nonce.to_string(),
        })
        .expect("serialises"),
    );
    out.resize(PROBE_LEN, b' ');
    out
}

/// The nonce of a well-formed probe of exactly [`PROBE_LEN`] bytes.
pub fn parse_probe(datagram: &[u8]) -> Option<String> {
    if datagram.len() != PROBE_LEN {
        return None;
    }
    let body = datagram.strip_prefix(PROBE_MAGIC)?.trim_ascii_end();
    let p: ProbeBody = serde_json::from_slice(body).ok()?;
    (p.nonce.len() == 32 && p.nonce.bytes().all(|b| b.is_ascii_hexdigit())).then_some(p.nonce)
}

fn mac(token: &[u8], nonce: &str, json: &[u8]) -> String {
    let mut m = <Hmac<Sha256> as Mac>::new_from_slice(token).expect("HMAC takes any key length");
    m.update(nonce.as_bytes());
    m.update(json);
    hex(&m.finalize().into_bytes())
}

/// Builds the answer, signed when `token` is given. It always fits in
/// [`MAX_ANSWER`]: the name is cut to 64 bytes, and if the answer is still
/// too large (a name full of characters JSON must escape, many features),
/// features are dropped and then the name shortened until it fits; bytes
/// are never cut off the encoded answer.
pub fn answer(mut a: Announcement, token: Option<&[u8]>) -> Vec<u8> {
    cut_name(&mut a.name, MAX_NAME);
    loop {
        let json = serde_json::to_vec(&a).expect("serialises");
        let mut out = ANSWER_MAGIC.to_vec();
        out.extend_from_slice(&json);
        if let Some(t) = token {
            out.extend_from_slice(b"\nhmac=");
            out.extend_from_slice(mac(t, &a.nonce, &json).as_bytes());
        }
        if out.len() <= MAX_ANSWER {
            return out;
        }
        if a.features.pop().is_some() {
            continue;
        }
        if !a.name.is_empty() {
            let half = a.name.len() / 2;
            cut_name(&mut a.name, half);
            continue;
        }
        a.software.clear();
    }
}

fn cut_name(name: &mut String, max: usize) {
    if name.len() > max {
        let mut cut = max;
        while !name.is_char_boundary(cut) {
            cut -= 1;
        }
        name.truncate(cut);
    }
}

/// Why an answer was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AnswerError {
    /// Not a ferry answer at all.
    #[error("not a ferry answer")]
    Malformed,
    /// It does not answer our probe.
    #[error("answers another probe")]
    WrongNonce,
    /// A token is set and the answer is not signed with it.
    #[error("not signed with our token (forged, or another network's server)")]
    BadSignature,
}

/// Checks an answer to the probe with `nonce`; with `token`, only a
/// correctly signed one is accepted.
pub fn parse_answer(
    datagram: &[u8],
    nonce: &str,
    token: Option<&[u8]>,
) -> Result<Announcement, AnswerError> {
    if datagram.len() > MAX_ANSWER {
        return Err(AnswerError::Malformed);
    }
    let rest = datagram
        .strip_prefix(ANSWER_MAGIC)
        .ok_or(AnswerError::Malformed)?;
    let (json, sig) = match rest.windows(6).position(|w| w == b"\nhmac=") {
        Some(i) => (&rest[..i], Some(&rest[i + 6..])),
        None => (rest, None),
    };
    let a: Announcement = serde_json::from_slice(json).map_err(|_| AnswerError::Malformed)?;
    if a.nonce != nonce {
        return Err(AnswerError::WrongNonce);
    }
    if let Some(t) = token {
        let expected = mac(t, nonce, json);
        let ok = sig.is_some_and(|s| {
            use subtle::ConstantTimeEq;
            s.ct_eq(expected.as_bytes()).into()
        });
        if !ok {
            return Err(AnswerError::BadSignature);
        }
    }
    Ok(a)
}

/// Announcements travel to the discovery port plus this.
pub const ANNOUNCE_PORT_OFFSET: u16 = 1;
/// Announcements older or newer than this are refused (replays).
pub const ANNOUNCE_WINDOW_SECS: i64 = 60;

/// The nonce an unsolicited announcement carries: the time it was sent.
pub fn announce_nonce(unix_secs: i64) -> String {
    format!("announce-{unix_secs}")
}

/// Checks an unsolicited announcement received at `now` (Unix seconds):
/// fresh within [`ANNOUNCE_WINDOW_SECS`], and signed when `token` is given.
pub fn parse_announcement(
    datagram: &[u8],
    now: i64,
    token: Option<&[u8]>,
) -> Result<Announcement, AnswerError> {
    let rest = datagram
        .strip_prefix(ANSWER_MAGIC)
        .ok_or(AnswerError::Malformed)?;
    let json_end = rest
        .windows(6)
        .position(|w| w == b"\nhmac=")
        .unwrap_or(rest.len());
    let a: Announcement =
        serde_json::from_slice(&rest[..json_end]).map_err(|_| AnswerError::Malformed)?;
    let sent: i64 = a
        .nonce
        .strip_prefix("announce-")
        .and_then(|t| t.parse().ok())
        .ok_or(AnswerError::WrongNonce)?;
    if (now - sent).abs() > ANNOUNCE_WINDOW_SECS {
        return Err(AnswerError::WrongNonce);
    }
    parse_answer(datagram, &a.nonce, token)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn announcement(nonce: &str) -> Announcement {
        Announcement {
            name: "nas".into(),
            instance: "0".repeat(32),
            software: "ferry/0.1.0".into(),
            tcp_port: 7070,
            udp_port: 7070,
            features: vec!["files".into(), "time".into()],
            auth_required: false,
            nonce: nonce.into(),
            announce_every: None,
            cluster: None,
        }
    }

    #[test]
    fn probes_round_trip_and_bad_ones_are_ignored() {
        let n = random_hex().unwrap();
        let p = probe(&n);
        assert_eq!(p.len(), PROBE_LEN);
        assert_eq!(parse_probe(&p), Some(n));
        assert_eq!(
            parse_probe(&p[..PROBE_LEN - 1]),
            None,
            "short probes could amplify"
        );
        let mut long = p;
        long.push(b' ');
        assert_eq!(parse_probe(&long), None);
        assert_eq!(parse_probe(&probe("not-hex")), None);
        assert_eq!(parse_probe(&[b' '; PROBE_LEN]), None);
    }

    #[test]
    fn answers_are_bounded_signed_and_checked() {
        let n = random_hex().unwrap();
        let mut big = announcement(&n);
        big.name = "é".repeat(500);
        big.features = vec!["x".repeat(30); 40];
        let mut quoted = announcement(&n);
        quoted.name = "\"\u{1}".repeat(200);
        let q = answer(quoted, Some(b"token-12345"));
        assert!(q.len() <= MAX_ANSWER);
        assert!(
            parse_answer(&q, &n, Some(b"token-12345")).is_ok(),
            "still a valid, signed answer"
        );
        let a = answer(big, Some(b"token-12345"));
        assert!(a.len() <= MAX_ANSWER && a.len() <= PROBE_LEN);
        let got = parse_answer(&a, &n, Some(b"token-12345")).unwrap();
        assert!(got.name.len() <= 64);

        let signed = answer(announcement(&n), Some(b"token-12345"));
        assert!(parse_answer(&signed, &n, Some(b"token-12345")).is_ok());
        assert_eq!(
            parse_answer(&signed, &n, Some(b"other-token")),
            Err(AnswerError::BadSignature)
        );
        let unsigned = answer(announcement(&n), None);
        assert!(parse_answer(&unsigned, &n, None).is_ok());
        assert_eq!(
            parse_answer(&unsigned, &n, Some(b"token-12345")),
            Err(AnswerError::BadSignature)
        );
        // A forger who changes a field breaks the signature.
        let forged = String::from_utf8(signed.clone())
            .unwrap()
            .replace("\"nas\"", "\"evil\"");
        assert_eq!(
            parse_answer(forged.as_bytes(), &n, Some(b"token-12345")),
            Err(AnswerError::BadSignature)
        );
        assert_eq!(
            parse_answer(&signed, &random_hex().unwrap(), None),
            Err(AnswerError::WrongNonce)
        );
        assert_eq!(
            parse_answer(b"hello", &n, None),
            Err(AnswerError::Malformed)
        );
    }

    #[test]
    fn announcements_must_be_fresh_and_signed() {
        let t = 1_800_000_000;
        let a = answer(announcement(&announce_nonce(t)), Some(b"token-12345"));
        assert!(parse_announcement(&a, t + 5, Some(b"token-12345")).is_ok());
        assert_eq!(
            parse_announcement(&a, t + 600, Some(b"token-12345")),
            Err(AnswerError::WrongNonce),
            "a replay"
        );
        assert_eq!(
            parse_announcement(&a, t, Some(b"other-token")),
            Err(AnswerError::BadSignature)
        );
        let probe_answer = answer(announcement(&random_hex().unwrap()), None);
        assert_eq!(
            parse_announcement(&probe_answer, t, None),
            Err(AnswerError::WrongNonce)
        );
    }
}
