//! Lines a plain-text chat client sends that are another protocol's, not
//! chat: what a program speaking something else sends when it reaches the
//! chat port (its login, its request and headers, its binary framing).
//! None of it is ever posted; the connection is closed instead.

/// Whether `line` is another protocol's rather than chat. At any time: a
/// header that carries credentials. `early` (the connection's first line,
/// or a line sent in its first seconds, as a program sends its opening
/// lines without reading the welcome): also a login or greeting of FTP,
/// POP3, SMTP, IMAP or IRC, a request line of HTTP and its kin, and a NUL.
pub(super) fn foreign_line(line: &str, early: bool) -> bool {
    credential_header(line, early)
        || (early && (typed_by_no_one(line) || request_line(line) || login(line)))
}

/// `Name: value` where the name is a header that carries a credential:
/// `Authorization`, `Cookie`, a password's, a token's, a secret's or an
/// API key's at any time; early on, also any `X-` header and any name
/// ending in `-key` or `-auth` (later, `X-Men: tonight?` and `Hot-key:
/// ctrl+k` are chat).
fn credential_header(line: &str, early: bool) -> bool {
    let Some((name, _)) = line.split_once(':') else {
        return false;
    };
    let name = name.trim().to_ascii_lowercase().replace('_', "-");
    if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
        return false;
    }
    const ALWAYS: &[&str] = &[
        "authorization",
        "proxy-authorization",
        "cookie",
        "set-cookie",
        "password",
        "passwd",
        "token",
        "apikey",
        "api-key",
        "x-api-key",
        "x-auth-token",
        "private-token",
    ];
    let ends = |ends: &[&str]| ends.iter().any(|end| name.ends_with(end));
    ALWAYS.contains(&name.as_str())
        || ends(&["-token", "-secret", "-password"])
        || (early && (name.starts_with("x-") || ends(&["-key", "-auth"])))
}

/// A NUL: a binary protocol's framing (a length's high bytes), which no
/// one types. Other control characters are shown escaped, as a peer may
/// paste them.
fn typed_by_no_one(line: &str) -> bool {
    line.contains('\0')
}

/// `METHOD TARGET PROTO/DIGIT`, whatever separates them (a method in
/// capitals, a path, `*` or a URL): a request of HTTP, RTSP or SIP, even
/// one a lenient parser would not take.
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
    // The target before the version: a path, `*`, or a URL or address.
    let target = words.len() >= 3 && {
        let t = words[words.len() - 2];
        t.starts_with('/') || t == "*" || t.contains(':')
    };
    target && first.bytes().all(|b| b.is_ascii_uppercase()) && version
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
    // IMAP, in the upper case clients send: any tag, then the command.
    if matches!(two, "LOGIN" | "AUTHENTICATE") {
        return true;
    }
    let (one, two) = (one.to_ascii_lowercase(), two.to_ascii_lowercase());
    match (one.as_str(), words.len()) {
        ("user" | "pass" | "auth" | "ehlo" | "helo", 2) => return true,
        ("auth", _) if SASL.contains(&two.as_str()) => return true,
        ("cap", _) if matches!(two.as_str(), "ls" | "req" | "end") => return true,
        _ => {}
    }
    // IMAP in any case: a tag with a digit in it, then the command with
    // its arguments (`a1 login NAME PASSWORD`).
    let tag = one.bytes().any(|b| b.is_ascii_digit())
        && one.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.');
    tag && match two.as_str() {
        "login" => words.len() >= 4,
        "authenticate" => words.len() >= 3,
        "capability" | "starttls" => words.len() == 2,
        _ => false,
    }
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
            ("X_API_KEY: SECRET", true),
            ("Token: SECRET", false),
            (". LOGIN alice pw", true),
            ("A AUTHENTICATE PLAIN", true),
            ("auth SECRET", true),
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
            ("X-Men: tonight?", false),
            ("Hot-key: ctrl+k", false),
            ("I use HTTP/2", true),
            ("2 login attempts", true),
            ("\u{1b}[A up arrow\t", true),
            ("\u{1b}[2J\u{1b}]0;pwned\u{7} clear", true),
        ] {
            assert!(!foreign_line(line, early), "{line:?}");
        }
    }
}
