//! Who an HTTP request is, and the checks that keep other sites from
//! acting through a visitor's browser.
//!
//! A request presents the token as `Authorization: Bearer TOKEN`, as the
//! password of HTTP Basic (any user name), or by a session cookie that the
//! page's login form obtains (HttpOnly, SameSite=Strict). Without any,
//! it has the anonymous rights. Wrong tokens go through the same
//! `Gate` as the native door: constant-time,
//! with a doubling delay per address.

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;

use super::{Web, error};
use crate::access::{self, Action, Denied, Rights};
use crate::files::RelPath;
use crate::secret::Secret;
use crate::server::Verdict;

/// Session cookie name.
pub const COOKIE: &str = "ferry_session";
/// The header the page sends with every request: its presence proves the
/// request came from script on this origin (browsers never let another
/// site set it without a CORS preflight, which ferry never grants).
pub const PAGE_HEADER: &str = "x-ferry";
pub use super::sessions::{SESSION_TTL, Sessions};

/// Who a request is, and what it may do.
#[derive(Debug, Clone, Copy)]
pub struct Who {
    /// Who, for the access decision.
    pub id: access::Who,
    /// Its rights anywhere, for the page to show.
    pub perms: Rights,
    /// Whether it proved the token (or none is needed).
    pub authed: bool,
}

fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// A wrong Basic login, whatever its name.
const WRONG_LOGIN: &str = "wrong user name or password";

/// What an `Authorization` header presents.
enum Presented {
    /// The server's token: Bearer, or Basic under `basic`, a user name
    /// that is no account.
    Token {
        token: Secret,
        basic: Option<String>,
    },
    /// An account's name and password (Basic).
    Login(String, Secret),
}

/// What an `Authorization` header carries, if anything.
fn presented(headers: &HeaderMap, policy: &access::Policy) -> Option<Presented> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, rest) = v.trim().split_once(' ')?;
    let rest = rest.trim();
    if scheme.eq_ignore_ascii_case("bearer") {
        return Some(Presented::Token {
            token: Secret::new(rest),
            basic: None,
        });
    }
    if scheme.eq_ignore_ascii_case("basic") {
        let raw = base64::engine::general_purpose::STANDARD
            .decode(rest)
            .ok()?;
        let pair = String::from_utf8(raw).ok()?;
        let (user, pass) = pair.split_once(':')?;
        if policy.account(user).is_some() {
            return Some(Presented::Login(user.to_string(), Secret::new(pass)));
        }
        return Some(Presented::Token {
            token: Secret::new(pass),
            basic: Some(user.to_string()),
        });
    }
    None
}

/// Who `headers` claim to be, for the audit trail, without checking a
/// password or the token (the answer's status says whether it held): an
/// account's name, `admin`, `link:ID`, or `-`.
pub fn claimed(web: &Web, headers: &HeaderMap) -> String {
    let policy = web.ctx.files.policy();
    if !web.ctx.gate.enabled() {
        return policy.name_of(policy.newcomer()).to_string();
    }
    match presented(headers, policy) {
        Some(Presented::Login(name, _)) => return name,
        Some(Presented::Token { token, .. }) => return web.ctx.gate.holder_name(&token),
        None => {}
    }
    if let Some(who) = cookie(headers, COOKIE).and_then(|id| {
        web.ctx
            .sessions
            .who(id, web.ctx.files.store().shared(), policy)
    }) {
        return policy.name_of(who).to_string();
    }
    if let Some(link) = cookie(headers, SHARE_COOKIE) {
        if let Ok(g) = policy.links.open(link) {
            return format!("link:{}", g.id);
        }
    }
    "-".into()
}

/// Works out who `headers` belong to; a wrong token or password is
/// answered 401, and too many of them lately 429.
pub async fn who(web: &Web, headers: &HeaderMap) -> Result<Who, Response> {
    let policy = web.ctx.files.policy();
    let gate = &web.ctx.gate;
    let id = if !gate.enabled() {
        policy.newcomer()
    } else {
        match presented(headers, policy) {
            Some(Presented::Token { token, basic }) => match match &basic {
                Some(name) => gate.check_as_password(web.peer.ip(), name, &token).await,
                None => gate.check(web.peer.ip(), &token).await,
            } {
                Verdict::Right => access::Who::TokenHolder,
                Verdict::User(i) => access::Who::User(i),
                // Under Basic, the words an account's wrong password gets:
                // the answer does not tell which names are accounts.
                Verdict::Wrong if basic.is_some() => {
                    return Err(unauthorized(headers, WRONG_LOGIN));
                }
                Verdict::Wrong => return Err(unauthorized(headers, "wrong token")),
                Verdict::Throttled(wait) => return Err(throttled(wait)),
            },
            Some(Presented::Login(name, password)) => {
                match gate.login(web.peer.ip(), &name, &password).await {
                    Ok(i) => access::Who::User(i),
                    Err(Verdict::Throttled(wait)) => return Err(throttled(wait)),
                    Err(_) => return Err(unauthorized(headers, WRONG_LOGIN)),
                }
            }
            None => match cookie(headers, COOKIE).and_then(|id| {
                web.ctx
                    .sessions
                    .who(id, web.ctx.files.store().shared(), policy)
            }) {
                Some(session) => session,
                None => match cookie(headers, SHARE_COOKIE) {
                    // A share link taken in; one no longer good is dropped
                    // for anonymous rights, not refused.
                    Some(link) => policy
                        .links
                        .admit(link)
                        .map_or(access::Who::Anonymous, access::Who::Link),
                    None => access::Who::Anonymous,
                },
            },
        }
    };
    Ok(Who {
        id,
        perms: policy.rights(id),
        authed: id != access::Who::Anonymous,
    })
}

/// What `who` may do in the folder `rel` (what the page's buttons offer
/// there): file rights at that path, exec and chat as they are.
pub fn rights_at(web: &Web, who: &Who, rel: &crate::files::RelPath) -> Rights {
    let may = |a: Action| web.ctx.files.check(who.id, a, rel).is_ok();
    Rights {
        read: may(Action::Read),
        upload: may(Action::Create),
        delete: may(Action::Delete),
        ..who.perms
    }
}

/// 429 with `Retry-After`: too many wrong tokens lately.
fn throttled(wait: std::time::Duration) -> Response {
    let secs = wait.as_secs().max(1);
    let mut res = error(
        StatusCode::TOO_MANY_REQUESTS,
        format!("too many wrong tokens or passwords lately; try again in {secs} s"),
    );
    res.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    res
}

fn unauthorized(headers: &HeaderMap, why: &str) -> Response {
    let mut res = error(StatusCode::UNAUTHORIZED, why);
    // The page has its own login form: no browser dialog for it.
    if !headers.contains_key(PAGE_HEADER) {
        res.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"ferry\", charset=\"UTF-8\""),
        );
    }
    res
}

/// Asks the access decision whether `who` may do `action` to `rel`; the
/// refusal is 401 when the token would allow it, 403 when nothing would.
pub fn allow(
    who: &Who,
    web: &Web,
    headers: &HeaderMap,
    action: Action,
    rel: &RelPath,
) -> Result<(), Response> {
    web.ctx
        .files
        .check(who.id, action, rel)
        .map_err(|d| denied(headers, d))
}

/// A refusal of the access decision, as an answer.
pub fn denied(headers: &HeaderMap, d: Denied) -> Response {
    if d.asks_login() {
        unauthorized(headers, &d.to_string())
    } else {
        error(StatusCode::FORBIDDEN, d.to_string())
    }
}

/// Refuses a state-changing request that another site's page could have
/// made: a cross-site `Sec-Fetch-Site`, or an `Origin` that is not this
/// server's.
pub fn same_origin(headers: &HeaderMap) -> Result<(), Response> {
    if let Some(site) = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()) {
        if site == "cross-site" || site == "same-site" {
            return Err(error(StatusCode::FORBIDDEN, "cross-site request refused"));
        }
    }
    if let Some(origin) = headers.get(header::ORIGIN) {
        let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
        let origin_host = origin
            .to_str()
            .ok()
            .and_then(|o| o.split_once("://"))
            .map(|(_, h)| h.trim_end_matches('/'));
        match (origin_host, host) {
            (Some(o), Some(h)) if o.eq_ignore_ascii_case(h) => {}
            _ => {
                return Err(error(StatusCode::FORBIDDEN, "cross-origin request refused"));
            }
        }
    }
    Ok(())
}

/// A POST is a "simple" request a foreign form can send: ferry's POSTs
/// also need the page's header (or tus's), which such a form cannot set.
pub fn scripted(headers: &HeaderMap) -> Result<(), Response> {
    same_origin(headers)?;
    if headers.contains_key(PAGE_HEADER) || headers.contains_key("tus-resumable") {
        Ok(())
    } else {
        Err(error(
            StatusCode::FORBIDDEN,
            "this request needs the X-Ferry header",
        ))
    }
}

/// A form field of an `application/x-www-form-urlencoded` body.
pub(super) fn field(body: &str, name: &str) -> Option<String> {
    body.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        (k == name).then(|| {
            percent_encoding::percent_decode_str(&v.replace('+', " "))
                .decode_utf8_lossy()
                .into_owned()
        })
    })
}

/// `POST /.ferry/login`: an account's `user` and `password` (form
/// fields), or the token (a form field `token=`, or the bare token). Sets
/// the session cookie.
pub async fn login(State(web): State<Web>, req: Request) -> Response {
    let headers = req.headers().clone();
    if let Err(r) = scripted(&headers) {
        return r;
    }
    if !web.ctx.gate.enabled() {
        return error(
            StatusCode::BAD_REQUEST,
            "this server has no token or accounts",
        );
    }
    let Ok(body) = axum::body::to_bytes(req.into_body(), 4096).await else {
        return error(StatusCode::PAYLOAD_TOO_LARGE, "a login is at most 4 KiB");
    };
    let text = String::from_utf8_lossy(&body);
    let who = match (
        field(&text, "user").filter(|u| !u.is_empty()),
        field(&text, "password"),
    ) {
        (Some(user), Some(password)) => {
            match web
                .ctx
                .gate
                .login(web.peer.ip(), &user, &Secret::new(password))
                .await
            {
                Ok(i) => access::Who::User(i),
                Err(Verdict::Throttled(wait)) => return throttled(wait),
                Err(_) => return unauthorized(&headers, "wrong user name or password"),
            }
        }
        _ => {
            let token = field(&text, "token").unwrap_or_else(|| text.trim().to_string());
            match web.ctx.gate.check(web.peer.ip(), &Secret::new(token)).await {
                Verdict::Right => access::Who::TokenHolder,
                Verdict::User(i) => access::Who::User(i),
                Verdict::Wrong => return unauthorized(&headers, "wrong token"),
                Verdict::Throttled(wait) => return throttled(wait),
            }
        }
    };
    let store = web.ctx.files.store();
    let id = match web
        .ctx
        .sessions
        .create(who, store.shared(), web.ctx.files.policy())
    {
        Ok(id) => id,
        Err(e) => {
            return error(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("cannot log in now: {e}"),
            );
        }
    };
    // Over TLS the browser is told never to send it in clear.
    let secure = if web.tls { "; Secure" } else { "" };
    let cookie = format!(
        "{COOKIE}={id}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{secure}",
        SESSION_TTL.as_secs()
    );
    (StatusCode::NO_CONTENT, [(header::SET_COOKIE, cookie)]).into_response()
}

/// `POST /.ferry/logout`: ends the session.
pub async fn logout(State(web): State<Web>, headers: HeaderMap) -> Response {
    if let Err(r) = scripted(&headers) {
        return r;
    }
    if let Some(id) = cookie(&headers, COOKIE) {
        if let Err(e) = web.ctx.sessions.remove(id, web.ctx.files.store().shared()) {
            return error(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("cannot log out everywhere now: {e}"),
            );
        }
    }
    (
        StatusCode::NO_CONTENT,
        [(
            header::SET_COOKIE,
            format!("{COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0"),
        )],
    )
        .into_response()
}

/// The cookie a share link is kept in once opened.
pub const SHARE_COOKIE: &str = "ferry_share";

/// `GET /.ferry/share/LINK`: takes a share link in (a cookie that lasts
/// as long as the link) and goes to what it shares. A link that is not
/// good here is refused in words.
pub async fn share(
    State(web): State<Web>,
    axum::extract::Path(link): axum::extract::Path<String>,
) -> Response {
    let grant = match web.ctx.files.policy().links.open(&link) {
        Ok(g) => g,
        Err(e) => return error(StatusCode::FORBIDDEN, e.to_string()),
    };
    let left = grant.until.saturating_sub(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
    );
    let secure = if web.tls { "; Secure" } else { "" };
    // Lax: the link is opened from another site's page (a chat, a mail).
    let cookie =
        format!("{SHARE_COOKIE}={link}; Path=/; HttpOnly; SameSite=Lax; Max-Age={left}{secure}");
    let target =
        crate::files::RelPath::parse(&grant.path).unwrap_or_else(|_| crate::files::RelPath::root());
    let at = target.clone();
    let is_folder = web
        .ctx
        .files
        .blocking(move |s| s.stat(&at))
        .await
        .is_ok_and(|e| e.kind == crate::files::entry::EntryKind::Dir);
    let to = super::paths::url_of(&target, is_folder);
    (
        StatusCode::SEE_OTHER,
        [(header::SET_COOKIE, cookie), (header::LOCATION, to)],
    )
        .into_response()
}

/// `GET /.ferry/whoami`: this client's rights, for the page.
pub async fn whoami(State(web): State<Web>, headers: HeaderMap) -> Response {
    let who = match who(&web, &headers).await {
        Ok(w) => w,
        Err(r) => return r,
    };
    axum::Json(serde_json::json!({
        "server": web.ctx.config.name,
        "software": crate::SOFTWARE,
        "permissions": who.perms,
        "authenticated": who.authed,
        "user": web.ctx.files.policy().name_of(who.id),
        "auth_available": web.ctx.gate.enabled(),
    }))
    .into_response()
}
