//! Logging in on the native door: the server's token, an account's
//! password, or an account's login token; and making login tokens
//! (`ferry login`).

use tracing::{info, warn};

use super::{MAX_AUTH_FAILURES, Session};
use crate::access::Who;
use crate::secret::Secret;
use crate::server::auth::Verdict;
use crate::server::fail::Fail;
use crate::wire::messages::{AuthReply, ErrorCode, LoginReply};

/// How long a login token lasts unless asked otherwise: 90 days.
const DEFAULT_LIFE: u64 = 90 * 86_400;
/// The longest it may last: a year.
const MAX_LIFE: u64 = 366 * 86_400;

impl Session {
    /// Checks the server's token, or an account's login token.
    pub(super) async fn auth(&mut self, token: &Secret) -> Result<(), Fail> {
        let verdict = self.ctx.gate.check(self.peer.ip(), token).await;
        if let Verdict::Throttled(wait) = verdict {
            return Err(Fail::Fatal(
                ErrorCode::Busy,
                format!(
                    "too many wrong tokens from your address lately; try again in {} s",
                    wait.as_secs().max(1)
                ),
            ));
        }
        self.refused = verdict.who().is_none();
        if let Some(who) = verdict.who() {
            self.who = Some(who);
            self.by_password = false;
            match self.ctx.files.policy().account_name(who) {
                Some(name) => info!(user = %name, "logged in with a login token"),
                None => info!("authenticated"),
            }
            let permissions = self.ctx.files.policy().rights(who).into();
            return self.ok(&AuthReply { permissions }).await;
        }
        self.auth_failures += 1;
        warn!(failures = self.auth_failures, "wrong token");
        let msg = if crate::access::logins::Logins::looks_like(token.expose()) {
            "the login token is not valid here any more (run `ferry login` again)"
        } else {
            "wrong token"
        };
        if self.auth_failures >= MAX_AUTH_FAILURES {
            return Err(Fail::Fatal(ErrorCode::AuthFailed, msg.into()));
        }
        Err(Fail::Reply(ErrorCode::AuthFailed, msg.into()))
    }

    /// Logs in to the account `name`.
    pub(super) async fn login(&mut self, name: &str, password: &Secret) -> Result<(), Fail> {
        let verdict = self.ctx.gate.login(self.peer.ip(), name, password).await;
        self.refused = verdict.is_err();
        match verdict {
            Ok(i) => {
                let who = Who::User(i);
                self.who = Some(who);
                self.by_password = true;
                info!(user = %crate::text::escape(name), "logged in");
                let permissions = self.ctx.files.policy().rights(who).into();
                self.ok(&AuthReply { permissions }).await
            }
            Err(Verdict::Throttled(wait)) => Err(Fail::Fatal(
                ErrorCode::Busy,
                format!(
                    "too many wrong passwords lately; try again in {} s",
                    wait.as_secs().max(1)
                ),
            )),
            Err(_) => {
                self.auth_failures += 1;
                warn!(failures = self.auth_failures, "wrong user name or password");
                let msg = "wrong user name or password".to_string();
                if self.auth_failures >= MAX_AUTH_FAILURES {
                    return Err(Fail::Fatal(ErrorCode::AuthFailed, msg));
                }
                Err(Fail::Reply(ErrorCode::AuthFailed, msg))
            }
        }
    }

    /// A login token for the account logged in here with its password.
    pub(super) async fn mint(&mut self, expires: Option<u64>) -> Result<(), Fail> {
        let (Some(Who::User(i)), true) = (self.who, self.by_password) else {
            return Err(Fail::Reply(
                ErrorCode::AuthRequired,
                "a login token is made for an account logged in with its password".into(),
            ));
        };
        let life = expires.unwrap_or(DEFAULT_LIFE).clamp(1, MAX_LIFE);
        let Some((token, until)) = self.ctx.gate.mint(i, life) else {
            return Err(Fail::Reply(
                ErrorCode::Internal,
                "this server makes no login tokens".into(),
            ));
        };
        self.ok(&LoginReply {
            token: Secret::new(token),
            until,
        })
        .await
    }
}
