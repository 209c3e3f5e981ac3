//! The `share` request: making, listing and revoking share links, for the
//! native door (the links themselves are `access::links`).

use crate::access::{Action, Level, Who};
use crate::files::RelPath;
use crate::server::fail::Fail;
use crate::wire::messages::{ErrorCode, ShareInfo, ShareReply};

use super::Ctx;

/// A week: how long a link lasts unless asked otherwise.
const DEFAULT_LIFE: u64 = 7 * 86_400;

fn info((g, revoked): (crate::access::links::Grant, bool)) -> ShareInfo {
    ShareInfo {
        id: g.id,
        by: g.by,
        path: format!("/{}", g.path),
        upload: g.upload,
        until: g.until,
        revoked,
    }
}

/// Answers a `share` request from `who`.
pub(super) fn answer(
    ctx: &Ctx,
    who: Who,
    path: Option<String>,
    upload: bool,
    expires: Option<u64>,
    revoke: Option<String>,
) -> Result<ShareReply, Fail> {
    let files = &ctx.files;
    let policy = files.policy();
    if !matches!(who, Who::TokenHolder | Who::User(_)) {
        return Err(Fail::Reply(
            ErrorCode::AuthRequired,
            "share links are made by a logged-in account or the token holder".into(),
        ));
    }
    let me = policy.name_of(who).to_string();
    // May `who` manage the link: its maker, the token holder, or an
    // admin of the folder it shares.
    let manages = |g: &crate::access::links::Grant| {
        who == Who::TokenHolder
            || g.by == me
            || match (who, RelPath::parse(&g.path)) {
                (Who::User(i), Ok(p)) => policy
                    .accounts
                    .get(i as usize)
                    .is_some_and(|a| a.grants.level(&p) >= Level::Admin),
                _ => false,
            }
    };
    if let Some(id) = revoke {
        let found = policy.links.made().into_iter().find(|(g, _)| g.id == id);
        // The token holder revokes any link by its id, listed or not (one
        // made through a server whose list is gone).
        let found = found.or_else(|| {
            let hex = id.len() == 16 && id.bytes().all(|b| b.is_ascii_hexdigit());
            (who == Who::TokenHolder && hex).then(|| {
                let until = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs())
                    + crate::access::links::MAX_LIFE;
                let g = crate::access::links::Grant {
                    id: id.clone(),
                    by: String::new(),
                    path: String::new(),
                    upload: false,
                    until,
                    pw: None,
                };
                (g, false)
            })
        });
        return match found {
            Some((g, _)) if manages(&g) => {
                policy.links.revoke(&g).map_err(|e| {
                    Fail::Reply(
                        ErrorCode::Unavailable,
                        format!("the link is revoked here, not yet on the other servers: {e}"),
                    )
                })?;
                tracing::info!(id = %crate::text::escape(&id), by = %me, "share link revoked");
                Ok(ShareReply::default())
            }
            _ => Err(Fail::Reply(
                ErrorCode::NotFound,
                format!("no share link {} of yours", crate::text::escape(&id)),
            )),
        };
    }
    let Some(path) = path else {
        let links = policy
            .links
            .made()
            .into_iter()
            .filter(|(g, _)| manages(g))
            .map(info)
            .collect();
        return Ok(ShareReply { token: None, links });
    };
    let rel = RelPath::parse(&path)?;
    if expires == Some(0) {
        // A link that has run out before it is made is a mistake.
        return Err(Fail::Reply(
            ErrorCode::BadRequest,
            "expires: seconds, above 0".into(),
        ));
    }
    let action = if upload { Action::Create } else { Action::Read };
    files.check(who, action, &rel)?;
    let (grant, token) = policy.links.make(
        &me,
        policy.maker_pw(who),
        &rel,
        upload,
        expires.unwrap_or(DEFAULT_LIFE),
    )?;
    tracing::info!(
        id = %grant.id,
        by = %me,
        path = %rel,
        upload,
        "share link made"
    );
    Ok(ShareReply {
        token: Some(token),
        links: vec![info((grant, false))],
    })
}
