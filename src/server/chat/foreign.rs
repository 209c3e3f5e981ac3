//! Lines a plain-text chat client sends that are another protocol's, not
//! chat: what a program speaking something else sends when it reaches the
//! chat port (its login, its request and headers, its binary framing).
//! None of it is ever posted; the connection is closed instead.

/// Whether `line` is another protocol's rather than chat. Each piece of
/// it between bare carriage returns (which some clients end lines with)
/// counts as a line. At any time: a header that carries credentials, and
/// a login command or a request line in the exact shape clients send.
/// `early` (the connection's first line, or a line sent in its first
/// seconds, as a program sends its opening lines without reading the
/// welcome): also the looser shapes of those, and a NUL.
pub(super) fn foreign_line(line: &str, early: bool) -> bool {
    line.split('\r').any(|piece| {
        credential_header(piece, early)
            || request_line(piece, early)
            || login(piece, early)
            || (early && typed_by_no_one(piece))
    })
}

/// `Name: value` where the name is a header that carries a credential:
/// `Authorization`, `Cookie`, a password's, a token's, a secret's or an
/// API key's at any time; early on, also any `X-` header and any name
/// ending in `-key` or `-auth` (later, `X-Men: tonight?` and `Hot-key:
/// ctrl+k` are chat). What cannot be seen in a name (blanks, control and
/// invisible format characters, a byte order mark) is not counted.
fn credential_header(line: &str, early: bool) -> bool {
    let Some((name, _)) = line.split_once(':') else {
        return false;
    };
    let name: String = without_escapes(name)
        .filter(|c| !c.is_whitespace() && !c.is_control() && !crate::text::invisible(*c))
        .map(|c| match c {
            '_' | '.' => '-',
            c => c.to_ascii_lowercase(),
        })
        .collect();
    if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
        return false;
    }
    const ALWAYS: &[&str] = &[
        "authorization",
        "proxy-authorization",
        "authentication",
        "cookie",
        "cookie2",
        "set-cookie",
        "password",
        "passwd",
        "pass",
        "secret",
        "token",
        "apikey",
        "api-key",
        "private-token",
    ];
    let ends = |ends: &[&str]| ends.iter().any(|end| name.ends_with(end));
    ALWAYS.contains(&name.as_str())
        || ends(&["-token", "-secret", "-password", "-apikey", "-api-key"])
        || (early && (name.starts_with("x-") || ends(&["-key", "-auth"])))
}

/// `text`'s characters without its terminal escape sequences (`ESC [ …
/// letter`, `ESC letter`), which a terminal shows as nothing.
fn without_escapes(text: &str) -> impl Iterator<Item = char> + '_ {
    let mut chars = text.chars().peekable();
    std::iter::from_fn(move || {
        loop {
            let c = chars.next()?;
            if c != '\u{1b}' {
                return Some(c);
            }
            if chars.next_if_eq(&'[').is_some() {
                // Parameters and intermediates, then the final byte.
                while chars
                    .next_if(|c| ('\u{20}'..='\u{3f}').contains(c))
                    .is_some()
                {}
            }
            chars.next_if(|c| ('\u{40}'..='\u{7e}').contains(c));
        }
    })
}

/// A NUL: a binary protocol's framing (a length's high bytes), which no
/// one types. Other control characters are shown escaped, as a peer may
/// paste them.
fn typed_by_no_one(line: &str) -> bool {
    line.contains('\0')
}

/// `METHOD TARGET PROTO/DIGIT`: a method in capitals, a path, `*` or a
/// URL, a version. At any time as the whole line; early on, whatever
/// spaces (or other blanks) separate them. A sentence that only holds
/// one (`a 404 on GET / HTTP/1.1`) is chat.
fn request_line(line: &str, early: bool) -> bool {
    let words: Vec<&str> = if early {
        line.split(char::is_whitespace)
            .filter(|w| !w.is_empty())
            .collect()
    } else {
        line.trim_end().split(' ').collect()
    };
    let [method, target, version] = words[..] else {
        return false;
    };
    let version = version.split_once('/').is_some_and(|(p, v)| {
        !p.is_empty()
            && p.bytes().all(|b| b.is_ascii_uppercase())
            && v.starts_with(|c: char| c.is_ascii_digit())
    });
    let target = target.starts_with('/') || target == "*" || target.contains(':');
    !method.is_empty() && method.bytes().all(|b| b.is_ascii_uppercase()) && target && version
}

/// A login or greeting. At any time: one in the upper case clients send
/// with its argument (`PASS WORD`, `AUTH PLAIN …`, `a1 LOGIN NAME
/// PASSWORD`). Early on, also one alone (`CAPA`, `FEAT`), and in the
/// lower case some scripts send, with the command's shape (`user NAME`,
/// `pass WORD`, `auth WORD`, `ehlo HOST`, `a1 login NAME PASSWORD`), so
/// that `pass the salt`, `User error` and `NICK` alone are still chat.
fn login(line: &str, early: bool) -> bool {
    let words: Vec<&str> = line.split_ascii_whitespace().collect();
    let one = words.first().copied().unwrap_or("");
    let two = words.get(1).copied().unwrap_or("");
    const WITH_ARGS: &[&str] = &[
        "USER", "PASS", "AUTH", "EHLO", "HELO", "APOP", "ACCT", "NICK",
    ];
    const ALONE: &[&str] = &["STARTTLS", "STLS", "CAPA", "FEAT", "SYST", "OPTS"];
    // IMAP, in the upper case clients send: any tag, then the command.
    let imap = (two == "LOGIN" && words.len() >= 4) || (two == "AUTHENTICATE" && words.len() >= 3);
    if (WITH_ARGS.contains(&one) && words.len() >= 2) || imap {
        return true;
    }
    if !early {
        return false;
    }
    if ALONE.contains(&one) || matches!(two, "LOGIN" | "AUTHENTICATE") {
        return true;
    }
    match (one, words.len()) {
        ("user" | "pass" | "auth" | "ehlo" | "helo", 2) => return true,
        ("auth", _) if SASL.contains(&two.to_ascii_lowercase().as_str()) => return true,
        ("cap" | "CAP", _) if matches!(two.to_ascii_lowercase().as_str(), "ls" | "req" | "end") => {
            return true;
        }
        _ => {}
    }
    // IMAP in the lower case: a tag with a digit in it, then the command
    // with its arguments.
    let tag = one.bytes().any(|b| b.is_ascii_digit())
        && one.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.');
    tag && match two.to_ascii_lowercase().as_str() {
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
            // Later on too, in the shape clients send.
            ("PASS SECRET62", false),
            ("a1 LOGIN bob SECRET63", false),
            ("AUTH PLAIN AGJvYgBw", false),
            ("GET /?token=SECRET60 HTTP/1.1", false),
            ("hello\rAuthorization: Bearer SECRET11", false),
            ("\u{feff}Authorization: Bearer SECRET6", false),
            ("Authorization\u{200b}: x", false),
            ("\u{1b}[AAuthorization: x", false),
            ("Cookie2: SECRET16", false),
            ("Authentication: SECRET31", false),
            ("Api.Key: SECRET24", false),
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
            ("User error", true),
            ("Auth works", true),
            ("Helo everyone", true),
            ("NICK", true),
            ("I got a 404 on GET /docs/index.html HTTP/1.1", true),
            ("PASS", false),
            ("\u{1b}[A up arrow\t", true),
            ("\u{1b}[2J\u{1b}]0;pwned\u{7} clear", true),
        ] {
            assert!(!foreign_line(line, early), "{line:?}");
        }
    }
}
