//! Login tokens: what `ferry login` keeps in place of a password, and
//! what HTTP clients send as `Authorization: Bearer`. Each is signed with
//! the server's `login.key` (HMAC-SHA256, in the state folder, made on
//! first use) and names its account, when it ends, and a fingerprint of
//! the account's password hash: a new password ends every token made
//! under the old one, and a new key ends them all. The server keeps
//! nothing per token.

use serde::{Deserialize, Serialize};
use sha2::Digest as _;

use super::Account;

/// How every login token begins, so that it is told from the server's
/// token (and from a password) without trying it as one.
pub const PREFIX: &str = "ferry1.";

/// The longest a token's text may be (a name of 64 bytes fits well).
const MAX_TOKEN: usize = 512;

/// What a token says.
#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    /// The account.
    u: String,
    /// When it ends (seconds since the epoch).
    x: u64,
    /// The account's password hash, fingerprinted.
    p: String,
}

/// Makes and checks login tokens.
#[derive(Debug)]
pub struct Logins {
    key: Vec<u8>,
}

/// Seconds since the epoch.
fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// 16 hex digits of the SHA-256 of a password hash: enough to tell a new
/// password from the old, nothing to guess either from.
pub(crate) fn fingerprint(hash: &str) -> String {
    let d = sha2::Sha256::digest(hash.as_bytes());
    d[..8].iter().map(|b| format!("{b:02x}")).collect()
}

impl Logins {
    /// Tokens signed with `key`.
    pub fn new(key: Vec<u8>) -> Logins {
        Logins { key }
    }

    /// Whether `text` is meant as a login token.
    pub fn looks_like(text: &str) -> bool {
        text.starts_with(PREFIX)
    }

    /// A token for `account`, good for `life` seconds: (token, when it
    /// ends).
    pub fn mint(&self, account: &Account, life: u64) -> (String, u64) {
        let until = now().saturating_add(life);
        let claims = Claims {
            u: account.name.clone(),
            x: until,
            p: fingerprint(&account.hash),
        };
        let body = serde_json::to_vec(&claims).unwrap_or_default();
        (
            format!("{PREFIX}{}", crate::secret::seal(&self.key, &body)),
            until,
        )
    }

    /// The account (its index in `accounts`) a token logs in to: signed
    /// here, not run out, its account still there with the same password.
    pub fn open(&self, token: &str, accounts: &[Account]) -> Option<u32> {
        if token.len() > MAX_TOKEN {
            return None;
        }
        let sealed = token.strip_prefix(PREFIX)?;
        let body = crate::secret::unseal(&self.key, sealed, MAX_TOKEN)?;
        let c: Claims = serde_json::from_slice(&body).ok()?;
        if c.x <= now() {
            return None;
        }
        let (i, a) = accounts.iter().enumerate().find(|(_, a)| a.name == c.u)?;
        (fingerprint(&a.hash) == c.p).then_some(i as u32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn account(name: &str, hash: &str) -> Account {
        Account {
            name: name.into(),
            hash: hash.into(),
            grants: super::super::Grants::new(Vec::new()).unwrap(),
            exec: false,
            chat: true,
        }
    }

    #[test]
    fn a_token_logs_in_to_its_account_until_anything_changes() {
        let l = Logins::new(vec![7; 32]);
        let accounts = vec![account("bob", "h0"), account("alice", "h1")];
        let (t, until) = l.mint(&accounts[1], 3600);
        assert!(Logins::looks_like(&t) && until > now());
        assert_eq!(l.open(&t, &accounts), Some(1));
        // A new password, another key, a changed byte, an account gone.
        assert_eq!(l.open(&t, &[account("alice", "h2")]), None);
        assert_eq!(Logins::new(vec![8; 32]).open(&t, &accounts), None);
        let mut bad = t.clone().into_bytes();
        let n = bad.len() - 3;
        bad[n] = if bad[n] == b'A' { b'B' } else { b'A' };
        assert_eq!(l.open(&String::from_utf8(bad).unwrap(), &accounts), None);
        assert_eq!(l.open(&t, &accounts[..1]), None);
        // Run out.
        let (old, _) = l.mint(&accounts[1], 0);
        assert_eq!(l.open(&old, &accounts), None);
        assert_eq!(l.open("ferry1.x", &accounts), None);
        assert_eq!(l.open(&"a".repeat(4000), &accounts), None);
    }
}
