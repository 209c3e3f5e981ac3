//! [`Gate`]: checks the shared token, in constant time, accounts'
//! passwords (argon2id, once per session: a login that succeeded is
//! remembered for [`REMEMBER`]) and their login tokens (see
//! [`crate::access::logins`]), and throttles guessing per source address,
//! per account and in all.
//!
//! Every attempt takes a turn before it is checked, as if it were going to
//! fail; a success gives the turn back and forgets the address. So many
//! connections from one address guess no faster than one: an address's
//! turns are spaced 250 ms after its first failure, doubling up to 5 s.
//! Across all addresses, turns are spaced so that no more than
//! [`GLOBAL_RATE`] attempts a second (after a burst of [`GLOBAL_BURST`]) are
//! checked however many addresses guess. An attempt whose turn is further
//! away than [`MAX_WAIT`] fails at once, unchecked.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

use crate::secret::Secret;

/// Failures are forgotten after this long without another.
const FORGET_AFTER: Duration = Duration::from_secs(600);
/// Longest spacing between one address's turns.
const MAX_DELAY: Duration = Duration::from_secs(5);
/// Addresses remembered at most (the forgotten ones first past this).
const MAX_TRACKED: usize = 10_000;
/// Attempts checked per second across all addresses, once the burst is
/// spent.
const GLOBAL_RATE: u32 = 20;
/// Attempts checked at once before the global rate applies.
const GLOBAL_BURST: u32 = 40;
/// An attempt whose turn is further away than this fails at once.
const MAX_WAIT: Duration = Duration::from_secs(20);

/// One address's record.
#[derive(Debug, Clone, Copy)]
struct Record {
    /// Failed (or still running) attempts since the last success.
    failures: u32,
    /// Its next free turn.
    next: Instant,
}

#[derive(Debug)]
struct Turns {
    per_address: HashMap<IpAddr, Record>,
    /// The same for each account name tried (known or not).
    per_account: HashMap<String, Record>,
    /// The global schedule (a generic cell rate: the time the next
    /// attempt would be due were there no burst).
    global_due: Instant,
}

/// How long a login that succeeded is taken as proved again without the
/// password hash being computed (keep-alive Basic auth sends it on every
/// request).
const REMEMBER: Duration = Duration::from_secs(900);
/// Logins remembered at most.
const MAX_REMEMBERED: usize = 4096;

/// The token and password checks with throttling.
#[derive(Debug)]
pub struct Gate {
    token: Option<Secret>,
    accounts: std::sync::Arc<[crate::access::Account]>,
    turns: Mutex<Turns>,
    /// Logins that succeeded lately: a keyed digest of name and password,
    /// the account, and until when.
    remembered: Mutex<HashMap<[u8; 32], (u32, Instant)>>,
    /// This process's key for those digests (never stored).
    key: [u8; 32],
    /// Accounts' login tokens, when the server has accounts.
    logins: Option<crate::access::logins::Logins>,
}

/// Spacing after `failures` failures: 250 ms doubling, up to 5 s.
fn spacing(failures: u32) -> Duration {
    if failures == 0 {
        return Duration::ZERO;
    }
    let ms = 250u64.saturating_mul(1 << (failures - 1).min(10));
    Duration::from_millis(ms).min(MAX_DELAY)
}

fn global_interval() -> Duration {
    Duration::from_secs(1) / GLOBAL_RATE
}

impl Gate {
    /// A gate for `token` (none: nothing to check) and `accounts`.
    pub fn new(token: Option<Secret>, accounts: std::sync::Arc<[crate::access::Account]>) -> Gate {
        // Only this process ever digests with it; a guessable key would
        // still not let anyone present a login without its password.
        let key = crate::ids::random_bytes::<32>().unwrap_or_default();
        Gate {
            token,
            accounts,
            turns: Mutex::new(Turns {
                per_address: HashMap::new(),
                per_account: HashMap::new(),
                global_due: Instant::now(),
            }),
            remembered: Mutex::new(HashMap::new()),
            key,
            logins: None,
        }
    }

    /// The gate, taking accounts' login tokens signed with `logins`.
    pub fn with_logins(self, logins: crate::access::logins::Logins) -> Gate {
        Gate {
            logins: Some(logins),
            ..self
        }
    }

    /// Who a token claims to be, for the audit (unchecked against the
    /// throttle; the request itself is checked): `admin` for the server's
    /// token, the account of a good login token, `?` otherwise.
    pub fn holder_name(&self, token: &Secret) -> String {
        if let Some(logins) = &self.logins {
            if crate::access::logins::Logins::looks_like(token.expose()) {
                return logins
                    .open(token.expose(), &self.accounts)
                    .and_then(|i| self.accounts.get(i as usize))
                    .map_or_else(|| "?".into(), |a| a.name.clone());
            }
        }
        "admin".into()
    }

    /// A login token for the account at `index`, good for `life` seconds:
    /// (token, when it ends).
    pub fn mint(&self, index: u32, life: u64) -> Option<(String, u64)> {
        let account = self.accounts.get(index as usize)?;
        Some(self.logins.as_ref()?.mint(account, life))
    }

    /// Whether there is anything to log in with (a token or accounts).
    pub fn enabled(&self) -> bool {
        self.token.is_some() || !self.accounts.is_empty()
    }

    /// How long an attempt from `ip` made now would wait for its turn.
    pub fn delay_for(&self, ip: IpAddr) -> Duration {
        let t = self.turns.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        let own = t
            .per_address
            .get(&ip)
            .map_or(now, |r| r.next.max(now))
            .saturating_duration_since(now);
        let burst = global_interval() * GLOBAL_BURST;
        let global = t
            .global_due
            .checked_sub(burst)
            .unwrap_or(now)
            .saturating_duration_since(now);
        own.max(global)
    }

    /// Takes a turn for `ip` (and `account`, when one is named): when it
    /// may be checked, or `None` when that is too far away.
    fn take_turn(&self, ip: IpAddr, account: Option<&str>) -> Option<Instant> {
        let mut t = self.turns.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        let fresh = |r: &Record| now.saturating_duration_since(r.next) < FORGET_AFTER;
        if t.per_address.len() >= MAX_TRACKED {
            t.per_address.retain(|_, r| fresh(r));
        }
        if t.per_account.len() >= MAX_TRACKED {
            t.per_account.retain(|_, r| fresh(r));
        }
        let none = Record {
            failures: 0,
            next: now,
        };
        let rec = t
            .per_address
            .get(&ip)
            .copied()
            .filter(fresh)
            .unwrap_or(none);
        let acc = account
            .and_then(|a| t.per_account.get(a).copied())
            .filter(fresh)
            .unwrap_or(none);
        let own = rec.next.max(acc.next).max(now);
        let due = t.global_due.max(now);
        let burst = global_interval() * GLOBAL_BURST;
        let global = due.checked_sub(burst).unwrap_or(now).max(now);
        let at = own.max(global);
        if at.saturating_duration_since(now) > MAX_WAIT {
            return None;
        }
        t.global_due = due + global_interval();
        let after = |r: Record| Record {
            failures: r.failures + 1,
            next: at + spacing(r.failures + 1),
        };
        if t.per_address.len() < MAX_TRACKED || t.per_address.contains_key(&ip) {
            t.per_address.insert(ip, after(rec));
        }
        if let Some(a) = account {
            if t.per_account.len() < MAX_TRACKED || t.per_account.contains_key(a) {
                t.per_account.insert(a.to_string(), after(acc));
            }
        }
        Some(at)
    }

    /// A success: the address (and account) is forgotten and its global
    /// turn given back.
    fn succeeded(&self, ip: IpAddr, account: Option<&str>) {
        let mut t = self.turns.lock().unwrap_or_else(|p| p.into_inner());
        t.per_address.remove(&ip);
        if let Some(a) = account {
            t.per_account.remove(a);
        }
        let back = t.global_due.checked_sub(global_interval());
        if let Some(b) = back {
            t.global_due = b;
        }
    }

    /// Checks the password of the account `name` once its turn has come,
    /// or at once when the same login succeeded within [`REMEMBER`]. An
    /// unknown name costs the same as a wrong password.
    pub async fn login(&self, ip: IpAddr, name: &str, password: &Secret) -> Result<u32, Verdict> {
        let digest = {
            use hmac::Mac;
            let mut m =
                hmac::Hmac::<sha2::Sha256>::new_from_slice(&self.key).expect("HMAC takes any key");
            m.update(name.as_bytes());
            m.update(&[0]);
            m.update(password.expose().as_bytes());
            <[u8; 32]>::from(m.finalize().into_bytes())
        };
        let now = Instant::now();
        if let Some(&(i, until)) = self
            .remembered
            .lock()
            .ok()
            .as_ref()
            .and_then(|r| r.get(&digest))
        {
            if until > now {
                return Ok(i);
            }
        }
        let Some(at) = self.take_turn(ip, Some(name)) else {
            tracing::info!("login refused unchecked: too many recent failures");
            return Err(Verdict::Throttled(
                self.delay_for(ip).max(Duration::from_secs(1)),
            ));
        };
        if at > Instant::now() {
            tokio::time::sleep_until(at).await;
        }
        let found = self
            .accounts
            .iter()
            .enumerate()
            .find(|(_, a)| a.name == name)
            .map(|(i, a)| (i as u32, a.hash.clone()));
        let (index, hash) = match found {
            Some((i, h)) => (Some(i), h),
            None => (None, dummy_hash().to_string()),
        };
        let pw = password.clone();
        let right = tokio::task::spawn_blocking(move || {
            crate::access::accounts::verify_password(&hash, pw.expose())
        })
        .await
        .unwrap_or(false);
        match index.filter(|_| right) {
            Some(i) => {
                self.succeeded(ip, Some(name));
                if let Ok(mut r) = self.remembered.lock() {
                    if r.len() >= MAX_REMEMBERED {
                        r.retain(|_, (_, until)| *until > now);
                        if r.len() >= MAX_REMEMBERED {
                            r.clear();
                        }
                    }
                    r.insert(digest, (i, Instant::now() + REMEMBER));
                }
                Ok(i)
            }
            None => Err(Verdict::Wrong),
        }
    }

    /// Checks `candidate` once its turn has come (see the module docs).
    pub async fn check(&self, ip: IpAddr, candidate: &Secret) -> Verdict {
        if let Some(logins) = &self.logins {
            if crate::access::logins::Logins::looks_like(candidate.expose()) {
                return self.login_token(ip, logins, candidate).await;
            }
        }
        let Some(token) = &self.token else {
            return if self.accounts.is_empty() {
                Verdict::Right
            } else {
                Verdict::Wrong
            };
        };
        let Some(at) = self.take_turn(ip, None) else {
            tracing::info!("token attempt refused unchecked: too many recent failures");
            return Verdict::Throttled(self.delay_for(ip).max(Duration::from_secs(1)));
        };
        // A turn due now is checked at once: no timer tick between taking
        // it and giving it back, so a right token arriving on several
        // connections at once is not held back by its own turns.
        if at > Instant::now() {
            tokio::time::sleep_until(at).await;
        }
        if token.matches(candidate.expose()) {
            self.succeeded(ip, None);
            Verdict::Right
        } else {
            Verdict::Wrong
        }
    }
}

impl Gate {
    /// [`Gate::check`] for the token (or a login token) sent as HTTP
    /// Basic's password under `name`, which is no account. It is taken
    /// as a password is: its turn is the name's as well as the address's,
    /// and a wrong one is answered only after the check of a password
    /// (against a hash no password matches). Neither the answer's time
    /// nor the turns after it tell account names from other names.
    pub async fn check_as_password(&self, ip: IpAddr, name: &str, candidate: &Secret) -> Verdict {
        if self.token.is_none() && self.accounts.is_empty() {
            return Verdict::Right;
        }
        let Some(at) = self.take_turn(ip, Some(name)) else {
            tracing::info!("login refused unchecked: too many recent failures");
            return Verdict::Throttled(self.delay_for(ip).max(Duration::from_secs(1)));
        };
        if at > Instant::now() {
            tokio::time::sleep_until(at).await;
        }
        let c = candidate.expose();
        let verdict = match (&self.logins, &self.token) {
            (Some(logins), _) if crate::access::logins::Logins::looks_like(c) => logins
                .open(c, &self.accounts)
                .map_or(Verdict::Wrong, Verdict::User),
            (_, Some(token)) if token.matches(c) => Verdict::Right,
            _ => Verdict::Wrong,
        };
        if verdict == Verdict::Wrong {
            let pw = candidate.clone();
            let _ = tokio::task::spawn_blocking(move || {
                crate::access::accounts::verify_password(dummy_hash(), pw.expose())
            })
            .await;
        } else {
            self.succeeded(ip, Some(name));
        }
        verdict
    }

    /// Checks an account's login token once its turn has come.
    async fn login_token(
        &self,
        ip: IpAddr,
        logins: &crate::access::logins::Logins,
        candidate: &Secret,
    ) -> Verdict {
        let Some(at) = self.take_turn(ip, None) else {
            return Verdict::Throttled(self.delay_for(ip).max(Duration::from_secs(1)));
        };
        if at > Instant::now() {
            tokio::time::sleep_until(at).await;
        }
        match logins.open(candidate.expose(), &self.accounts) {
            Some(i) => {
                self.succeeded(ip, None);
                Verdict::User(i)
            }
            None => Verdict::Wrong,
        }
    }
}

/// A hash no password matches, checked for names that are no account so
/// that a wrong name takes as long as a wrong password.
fn dummy_hash() -> &'static str {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DUMMY.get_or_init(|| {
        let random = crate::ids::random_hex().unwrap_or_default();
        crate::access::accounts::hash_password(&random).unwrap_or_default()
    })
}

/// What [`Gate::check`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The token is right (or none is set).
    Right,
    /// A login token of the account at this index.
    User(u32),
    /// The token was checked and is wrong.
    Wrong,
    /// Not checked: the address (or everyone) has failed too often lately;
    /// try again after this long.
    Throttled(Duration),
}

impl Verdict {
    /// Who the token makes its holder, when it was right.
    pub fn who(self) -> Option<crate::access::Who> {
        match self {
            Verdict::Right => Some(crate::access::Who::TokenHolder),
            Verdict::User(i) => Some(crate::access::Who::User(i)),
            Verdict::Wrong | Verdict::Throttled(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn failures_slow_the_address_and_success_resets() {
        let g = Gate::new(
            Some(Secret::new("right-token")),
            std::sync::Arc::from(Vec::new()),
        );
        let ip: IpAddr = "192.0.2.9".parse().unwrap();
        let other: IpAddr = "192.0.2.10".parse().unwrap();
        assert_eq!(g.check(ip, &Secret::new("wrong")).await, Verdict::Wrong);
        assert_eq!(g.delay_for(ip), Duration::from_millis(250));
        assert_eq!(g.check(ip, &Secret::new("wrong")).await, Verdict::Wrong);
        assert_eq!(g.delay_for(ip), Duration::from_millis(500));
        assert_eq!(g.delay_for(other), Duration::ZERO);
        let start = Instant::now();
        assert_eq!(
            g.check(ip, &Secret::new("right-token")).await,
            Verdict::Right
        );
        assert!(start.elapsed() >= Duration::from_millis(500));
        assert_eq!(g.delay_for(ip), Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn parallel_guesses_from_one_address_take_turns() {
        let g = std::sync::Arc::new(Gate::new(
            Some(Secret::new("right-token")),
            std::sync::Arc::from(Vec::new()),
        ));
        let ip: IpAddr = "192.0.2.9".parse().unwrap();
        let start = Instant::now();
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..64 {
            let g = g.clone();
            tasks.spawn(async move {
                let v = g.check(ip, &Secret::new("wrong")).await;
                (v, Instant::now())
            });
        }
        let mut checked_in_10s = 0;
        let mut throttled = 0;
        while let Some(r) = tasks.join_next().await {
            let (v, at) = r.unwrap();
            match v {
                Verdict::Wrong if at.duration_since(start) <= Duration::from_secs(10) => {
                    checked_in_10s += 1
                }
                Verdict::Wrong => {}
                Verdict::Throttled(_) => throttled += 1,
                Verdict::Right | Verdict::User(_) => panic!("a wrong token passed"),
            }
        }
        // Turns further than 20 s away are refused unchecked, at once.
        assert!(throttled >= 50, "{throttled} throttled");
        // 0, .25, .75, 1.75, 3.75, 7.75 s: six in the first ten seconds,
        // where 64 connections used to make 64.
        assert!(checked_in_10s <= 6, "{checked_in_10s} guesses in 10 s");
    }

    #[tokio::test(start_paused = true)]
    async fn many_addresses_together_are_held_to_the_global_rate() {
        let g = std::sync::Arc::new(Gate::new(
            Some(Secret::new("right-token")),
            std::sync::Arc::from(Vec::new()),
        ));
        let start = Instant::now();
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..200u32 {
            let g = g.clone();
            let ip = IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + i));
            tasks.spawn(async move {
                g.check(ip, &Secret::new("wrong")).await;
                Instant::now()
            });
        }
        let mut in_first_second = 0;
        while let Some(r) = tasks.join_next().await {
            if r.unwrap().duration_since(start) < Duration::from_secs(1) {
                in_first_second += 1;
            }
        }
        let most = GLOBAL_BURST + GLOBAL_RATE;
        assert!(
            in_first_second <= most as usize,
            "{in_first_second} checked in the first second"
        );
        // A right token still gets through once its turn comes.
        assert_eq!(
            g.check("192.0.2.1".parse().unwrap(), &Secret::new("right-token"))
                .await,
            Verdict::Right
        );
    }
}
