//! What a request is about, in a few words: its log line's target and
//! its audit record's path.

use crate::text::escape;
use crate::wire::messages::Request;

/// A short, escaped description of a request's target for the log.
pub(super) fn describe(req: &Request) -> String {
    let s = match req {
        Request::Ls { path }
        | Request::Stat { path }
        | Request::Walk { path }
        | Request::Get { path, .. }
        | Request::Put { path, .. }
        | Request::Plan { path, .. }
        | Request::Rm { path, .. }
        | Request::Mkdir { path, .. } => path.clone(),
        Request::Mv { from, to, .. } => format!("{from} -> {to}"),
        Request::Share {
            revoke: Some(id), ..
        } => format!("revoke {id}"),
        Request::Share {
            path: Some(p),
            upload,
            ..
        } => format!("{p}{}", if *upload { " (upload)" } else { "" }),
        // What was run, and where: the audit trail's "what" of a command.
        Request::Exec(e) => {
            let mut cmd = match e.argv.is_empty() {
                true => "(the interactive shell)".to_string(),
                false => e.argv.join(" "),
            };
            if cmd.len() > 1024 {
                let cut = (0..=1024)
                    .rev()
                    .find(|&i| cmd.is_char_boundary(i))
                    .unwrap_or(0);
                cmd.truncate(cut);
                cmd.push_str("...");
            }
            format!("{cmd} (in /{})", e.cwd.trim_start_matches('/'))
        }
        _ => String::new(),
    };
    escape(&s).into_owned()
}
