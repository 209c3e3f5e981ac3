//! Lines a plain-text chat client sends that are another protocol's, not
//! chat: what a program speaking something else sends when it reaches the
//! chat port (its login, its request and headers, its binary framing).
//! None of it is ever posted; the connection is closed instead.

/// Whether `line` is another protocol's rather than chat. At any time: a
/// header that carries credentials. `early` (the connection's first line,
/// or a line sent in its first seconds, as a program sends its opening
/// lines without reading the welcome): also a login or greeting of FTP,
/// POP3, SMTP, IMAP or IRC, a request line of HTTP and its kin, and bytes
/// no one types.
pub(super) fn foreign_line(line: &str, early: bool) -> bool {
    credential_header(line)
        || (early && (typed_by_no_one(line) || request_line(line) || login(line)))
}

/// `Name: value` where the name is a header that carries a credential:
/// `Authorization`, `Cookie`, a password's or a token's, any `X-` header.
fn credential_header(line: &str) -> bool {
    let Some((name, _)) = line.split_once(':') else {
        return false;
    };
    let name = name.trim().to_ascii_lowercase();
    if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
        return false;
    }
    matches!(
        name.as_str(),
        "authorization" | "proxy-authorization" | "cookie" | "password" | "api-key"
    ) || name.starts_with("x-")
        || [
            "-token",
            "-key",
            "-secret",
            "-password",
            "-auth",
            "-authorization",
        ]
        .iter()
        .any(|end| name.ends_with(end))
}

/// A NUL or another control character but a tab, a carriage return and
/// an escape (which arrow keys send): a binary protocol's framing.
fn typed_by_no_one(line: &str) -> bool {
    line.chars()
        .any(|c| c.is_control() && !matches!(c, '\t' | '\r' | '\u{1b}'))
}

/// `METHOD TARGET PROTO/DIGIT`, whatever separates them: a request of
/// HTTP, RTSP or SIP, even one a lenient parser would not take.
fn request_line(line: &str) -> bool {
    let words: Vec<&str> = line
        .split(|c: char| c.is_whitespace())
        .filter(|w| !w.is_empty())
        .collect();
    let (Some(first), Some(last)) = (words.first(), words.last()) else {
        return false;
    };
    let version = last.split_once('/').is_some_and(|(p, v)| {
        !p.is_empty()
            && p.bytes().all(|b| b.is_ascii_uppercase())
            && v.starts_with(|c: char| c.is_ascii_digit())
    });
    words.len() >= 3 && first.bytes().all(|b| b.is_ascii_uppercase()) && version
}

/// A login or greeting: one of the commands in the upper case clients
/// send, or in any case when it has the command's shape (`user NAME`,
/// `pass WORD`, `auth MECHANISM …`, `ehlo HOST`, an IMAP tag before
/// `login`), so that `pass the salt` is still chat.
fn login(line: &str) -> bool {
    let words: Vec<&str> = line.split_ascii_whitespace().collect();
    let one = words.first().copied().unwrap_or("");
    let two = words.get(1).copied().unwrap_or("");
    const UPPER: &[&str] = &[
        "USER", "PASS", "AUTH", "EHLO", "HELO", "APOP", "STARTTLS", "STLS", "CAPA", "FEAT", "SYST",
        "OPTS", "ACCT", "NICK",
    ];
    if UPPER.contains(&one) {
        return true;
    }
    let (one, two) = (one.to_ascii_lowercase(), two.to_ascii_lowercase());
    match (one.as_str(), words.len()) {
        ("user" | "pass" | "ehlo" | "helo", 2) => return true,
        ("auth", _) if SASL.contains(&two.as_str()) => return true,
        ("cap", _) if matches!(two.as_str(), "ls" | "req" | "end") => return true,
        _ => {}
    }
    // IMAP: a tag (with a digit in it), then the command.
    one.bytes().any(|b| b.is_ascii_digit())
        && one.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.')
        && matches!(
            two.as_str(),
            "login" | "authenticate" | "capability" | "starttls"
        )
}

/// SASL mechanisms and the TLS words `AUTH` takes (SMTP, IMAP, FTP).
const SASL: &[&str] = &[
    "plain",
    "login",
    "cram-md5",
    "digest-md5",
    "xoauth2",
    "oauthbearer",
    "scram-sha-1",
    "scram-sha-256",
    "external",
    "gssapi",
    "ntlm",
    "tls",
    "ssl",
];

#[cfg(test)]
mod tests {
    use super::foreign_line;

    #[test]
    fn another_protocols_lines_are_not_chat() {
        for (line, early) in [
            ("USER alice", true),
            ("PASS s3cret", true),
            ("AUTH s3cret", true),
            ("EHLO mail.example", true),
            ("a1 LOGIN alice s3cret", true),
            // In the case a client may send them, as their servers take them.
            ("user bob", true),
            ("pass SECRET8", true),
            ("auth plain SECRET17", true),
            ("a001 login bob SECRET9", true),
            ("a001 capability", true),
            ("CAP LS 302", true),
            ("cap req :sasl", true),
            ("CAPA", true),
            ("FEAT", true),
            // A request line however it is mangled, and binary framing.
            ("GET\0/ HTTP/1.1", true),
            ("GET\u{b}/ HTTP/1.1", true),
            ("GET\u{a0}/ HTTP/1.1", true),
            ("G\rET / HTTP/1.1", true),
            ("DESCRIBE rtsp://cam/ RTSP/1.0", true),
            (".\0\0\0{\"cmd\":\"get\",", true),
            // Credentials in a header, at any time.
            ("Authorization: Basic eDp5", false),
            ("Authorization : Bearer SECRET13", false),
            ("  cookie: session=1", false),
            ("X-Api-Key: SECRET1", false),
            ("X-Ferry-Token: SECRET", false),
            ("Private-Token: SECRET", false),
        ] {
            assert!(foreign_line(line, early), "{line:?}");
        }
        for (line, early) in [
            ("user error, again", true),
            ("pass the salt", true),
            ("auth is broken again", true),
            ("I login daily", true),
            ("Nick here, hi all", true),
            ("we moved to HTTP/2", true),
            ("USER alice", false),
            ("pass SECRET8", false),
            ("GET\0/ HTTP/1.1", false),
            ("the authorization: came through", false),
            ("monkey: banana", false),
            ("note: x-ray at 3", false),
            ("hello", true),
            ("\u{1b}[A up arrow\t", true),
        ] {
            assert!(!foreign_line(line, early), "{line:?}");
        }
    }
}
