//! `ferry share`: a link that gives read access to a path, or upload-only
//! access to a folder, until it expires or is revoked.

use std::io::IsTerminal;

use clap::Args;

use super::{connect, remote};
use crate::client::ClientError;
use crate::text::escape;
use crate::wire::messages::{Request, ShareReply};

/// Arguments of `ferry share`.
#[derive(Debug, Args)]
pub struct ShareArgs {
    /// HOST[:PORT]:/PATH to share; HOST[:PORT] with --list or --revoke.
    pub remote: String,
    /// How long the link lasts: 90s, 30m, 12h, 7d (default 7d, at most a
    /// year).
    #[arg(long, value_name = "TIME")]
    pub expires: Option<String>,
    /// Upload-only into the folder (a drop box), instead of read.
    #[arg(long)]
    pub upload: bool,
    /// List the links you made (all of them, with the token).
    #[arg(long, conflicts_with_all = ["revoke", "upload", "expires"])]
    pub list: bool,
    /// Revoke the link with this id.
    #[arg(long, value_name = "ID", conflicts_with_all = ["upload", "expires"])]
    pub revoke: Option<String>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
    /// TLS.
    #[command(flatten)]
    pub tls: super::TlsArgs,
}

/// Seconds in `text`: a number with `s`, `m`, `h` or `d` (seconds alone
/// without a unit).
pub(super) fn seconds(text: &str) -> Result<u64, ClientError> {
    let t = text.trim();
    let (n, unit) = match t.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((i, _)) => (&t[..i], &t[i..]),
        None => (t, "s"),
    };
    let scale = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => 0,
    };
    match n.parse::<u64>() {
        Ok(n) if scale > 0 && n > 0 => Ok(n.saturating_mul(scale)),
        _ => Err(ClientError::Usage(format!(
            "--expires {}: give a time such as 90s, 30m, 12h or 7d",
            escape(text)
        ))),
    }
}

/// A time in seconds since the epoch, as RFC 3339.
fn when(secs: u64) -> String {
    chrono::DateTime::from_timestamp(secs as i64, 0)
        .map_or_else(|| secs.to_string(), |t| t.to_rfc3339())
}

pub(crate) async fn run(a: ShareArgs) -> Result<(), ClientError> {
    let expires = a.expires.as_deref().map(seconds).transpose()?;
    let r = remote(&a.remote)?;
    let making = !a.list && a.revoke.is_none();
    if making && r.path.trim_matches('/').is_empty() && !a.remote.contains(":/") {
        return Err(ClientError::Usage(
            "name what to share: HOST:/PATH (or use --list or --revoke)".into(),
        ));
    }
    let mut c = connect(&r).await?;
    let req = Request::Share {
        path: making.then(|| r.path.clone()),
        upload: a.upload,
        expires,
        revoke: a.revoke.clone(),
    };
    let reply: ShareReply = c.request(&req).await?;
    let scheme = if c.tls().is_some() { "https" } else { "http" };
    let url = reply
        .token
        .as_ref()
        .map(|t| format!("{scheme}://{}/.ferry/share/{t}", r.authority()));
    if a.json {
        let v = serde_json::json!({ "url": url, "links": reply.links });
        return super::output::print_json(&v);
    }
    if let Some(id) = &a.revoke {
        println!("revoked {}", escape(id));
        return Ok(());
    }
    if let Some(url) = url {
        println!("{url}");
        if let Some(l) = reply.links.first() {
            crate::say!(
                "{} of {} until {} (id {}; revoke with --revoke {})",
                if l.upload { "upload-only" } else { "read" },
                escape(&l.path),
                when(l.until),
                l.id,
                l.id
            );
        }
        if std::io::stdout().is_terminal() {
            if let Some(code) = crate::qr::render(&url) {
                print!("{code}");
            }
        }
        return Ok(());
    }
    for l in &reply.links {
        println!(
            "{}  {:<6}  {}  until {}  by {}{}",
            l.id,
            if l.upload { "upload" } else { "read" },
            escape(&l.path),
            when(l.until),
            escape(&l.by),
            if l.revoked { "  (revoked)" } else { "" }
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::seconds;

    #[test]
    fn times_take_units() {
        assert_eq!(seconds("90").unwrap(), 90);
        assert_eq!(seconds("30m").unwrap(), 1800);
        assert_eq!(seconds("7d").unwrap(), 604_800);
        for bad in ["", "0s", "7w", "d", "-1h", "1.5h"] {
            assert!(seconds(bad).is_err(), "{bad:?}");
        }
    }
}
