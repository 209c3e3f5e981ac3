//! `ferry login HOST`: logs in to an account once, with its password, and
//! keeps the login token the server gives in place of the password
//! (`logins` beside the known-hosts file, 0600). Every later command to
//! that server presents it, unless `FERRY_TOKEN` or `FERRY_USER` says
//! otherwise. `ferry logout HOST` forgets it.

use std::io::{BufRead, IsTerminal};
use std::path::PathBuf;

use clap::Args;

use super::remote;
use crate::client::ClientError;
use crate::secret::Secret;
use crate::wire::messages::{LoginReply, Request};

/// Arguments of `ferry login`.
#[derive(Debug, Args)]
pub struct LoginArgs {
    /// HOST[:PORT] of the server.
    pub remote: String,
    /// The account [default: FERRY_USER]. Its password is read from
    /// FERRY_PASSWORD, the terminal or standard input; never argv.
    #[arg(long, short = 'u', value_name = "NAME")]
    pub user: Option<String>,
    /// How long the login lasts: 12h, 30d (default 90d, at most a year).
    #[arg(long, value_name = "TIME")]
    pub expires: Option<String>,
    /// TLS.
    #[command(flatten)]
    pub tls: super::TlsArgs,
}

/// Arguments of `ferry logout`.
#[derive(Debug, Args)]
pub struct LogoutArgs {
    /// HOST[:PORT] of the server.
    pub remote: String,
}

/// `$FERRY_LOGINS`, else `logins` beside the known-hosts file.
fn path() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("FERRY_LOGINS").filter(|v| !v.is_empty()) {
        return Some(PathBuf::from(p));
    }
    let hosts = crate::tls::client::KnownHosts::default_path()?;
    Some(hosts.with_file_name("logins"))
}

/// The kept logins: (`host:port`, token) per line.
fn read() -> Vec<(String, String)> {
    let Some(p) = path() else { return Vec::new() };
    let text = std::fs::read_to_string(p).unwrap_or_default();
    text.lines()
        .filter_map(|l| {
            let (h, t) = l.split_once(' ')?;
            Some((h.to_ascii_lowercase(), t.trim().to_string()))
        })
        .collect()
}

fn write(all: &[(String, String)]) -> Result<PathBuf, ClientError> {
    let p = path().ok_or_else(|| {
        ClientError::Local(
            "no place for the logins file: set HOME, XDG_CONFIG_HOME or FERRY_LOGINS".into(),
        )
    })?;
    if let Some(dir) = p.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| ClientError::Local(format!("cannot make {}: {e}", dir.display())))?;
    }
    let text: String = all.iter().map(|(h, t)| format!("{h} {t}\n")).collect();
    crate::secret::write_private(&p, text.as_bytes())
        .map_err(|e| ClientError::Local(format!("cannot write {}: {e}", p.display())))?;
    Ok(p)
}

/// The login kept for `authority` (`host:port`), if any.
pub(super) fn kept(authority: &str) -> Option<Secret> {
    let key = authority.to_ascii_lowercase();
    read()
        .into_iter()
        .find(|(h, _)| *h == key)
        .map(|(_, t)| Secret::new(t))
}

/// The password: `FERRY_PASSWORD`, else typed on the terminal, else the
/// first line of standard input.
fn password() -> Result<Secret, ClientError> {
    if let Some(p) = std::env::var("FERRY_PASSWORD")
        .ok()
        .filter(|p| !p.is_empty())
    {
        return Ok(Secret::new(p));
    }
    let line = if std::io::stdin().is_terminal() {
        super::passwd::read_hidden("password: ").map_err(|e| ClientError::Local(e.to_string()))?
    } else {
        let mut l = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut l)
            .map_err(|e| ClientError::Local(e.to_string()))?;
        l.trim_end_matches(['\r', '\n']).to_string()
    };
    if line.is_empty() {
        return Err(ClientError::Usage("no password given".into()));
    }
    Ok(Secret::new(line))
}

pub(crate) async fn login(a: LoginArgs) -> Result<(), ClientError> {
    let expires = a
        .expires
        .as_deref()
        .map(super::share::seconds)
        .transpose()?;
    let r = remote(&a.remote)?;
    let user = a
        .user
        .clone()
        .or_else(crate::access::accounts::login_user)
        .ok_or_else(|| ClientError::Usage("name the account: --user NAME or FERRY_USER".into()))?;
    crate::access::accounts::check_name(&user).map_err(ClientError::Usage)?;
    crate::access::accounts::set_login_user(&user);
    let password = password()?;
    let mut c = super::connect_as(&r, Some(&password)).await?;
    let reply: LoginReply = c.request(&Request::Login { expires }).await?;
    let authority = r.authority().to_ascii_lowercase();
    let mut all: Vec<_> = read()
        .into_iter()
        .filter(|(h, _)| *h != authority)
        .collect();
    all.push((authority.clone(), reply.token.expose().to_string()));
    let p = write(&all)?;
    let until = chrono::DateTime::from_timestamp(reply.until as i64, 0)
        .map_or_else(|| reply.until.to_string(), |t| t.to_rfc3339());
    crate::say!(
        "logged in to {authority} as {user} until {until}; kept in {}",
        p.display()
    );
    Ok(())
}

pub(crate) async fn logout(a: LogoutArgs) -> Result<(), ClientError> {
    let r = remote(&a.remote)?;
    let authority = r.authority().to_ascii_lowercase();
    let all = read();
    let left: Vec<_> = all
        .iter()
        .filter(|(h, _)| *h != authority)
        .cloned()
        .collect();
    if left.len() == all.len() {
        return Err(ClientError::Local(format!("no login kept for {authority}")));
    }
    write(&left)?;
    crate::say!("forgot the login to {authority}");
    Ok(())
}
