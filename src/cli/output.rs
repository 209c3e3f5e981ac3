//! Human output: sizes, times, progress bars (on stderr, only on a terminal).

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::wire::messages::Mtime;

/// A byte progress bar on stderr, or a hidden one when stderr is not a
/// terminal (scripts and logs get no bar noise).
pub(crate) fn bar(label: &str) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr());
    bar.set_style(
        ProgressStyle::with_template(
            "{msg:24!} {bar:30} {bytes:>10}/{total_bytes:<10} {binary_bytes_per_sec:>12} {eta:>4}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.set_message(crate::text::escape(label).into_owned());
    bar
}

/// Prints `value` as pretty JSON on stdout: the one way every `--json`
/// option prints.
pub(crate) fn print_json<T: serde::Serialize>(value: &T) -> Result<(), crate::client::ClientError> {
    let s = serde_json::to_string_pretty(value)
        .map_err(|e| crate::client::ClientError::Local(e.to_string()))?;
    println!("{s}");
    Ok(())
}

/// [`print_json`] for commands that end in an exit code.
pub(crate) fn print_json_exit<T: serde::Serialize>(value: &T) -> std::process::ExitCode {
    match print_json(value) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            crate::say!("ferry: {e}");
            std::process::ExitCode::from(1)
        }
    }
}

/// `1.5 MiB`-style size.
pub(crate) fn size(n: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = n as f64;
    let mut i = 0;
    while v >= 1024.0 && i + 1 < UNITS.len() {
        v /= 1024.0;
        i += 1;
    }
    // Just under the next unit rounds up to it: 1 MiB less a byte is
    // "1.0 MiB", not "1024.0 KiB".
    if i > 0 && (v * 10.0).round() >= 10240.0 && i + 1 < UNITS.len() {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[i])
    }
}

/// `YYYY-MM-DD HH:MM` in UTC.
pub(crate) fn time(m: Option<Mtime>) -> String {
    let Some(m) = m else { return "-".repeat(16) };
    let days = m.secs.div_euclid(86_400);
    let secs = m.secs.rem_euclid(86_400);
    let (y, mo, d) = civil_from_days(days);
    format!(
        "{y:04}-{mo:02}-{d:02} {:02}:{:02}",
        secs / 3600,
        secs % 3600 / 60
    )
}

/// Days since 1970-01-01 to a proleptic Gregorian date (H. Hinnant's
/// algorithm; small enough not to warrant a date crate).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// This process's stdout or stderr, written in place. tokio's own handles
/// copy every chunk over to a blocking thread first, which halves the rate
/// of a big output; a blocking write here only holds up this one command's
/// task, which has nothing else to do until the write is through.
pub(crate) struct DirectOut<W>(pub(crate) W);

/// Runs a blocking write: in place on a runtime of one thread (which has
/// nothing else to hand over to), through `block_in_place` on others.
fn blocking<T>(f: impl FnOnce() -> T) -> T {
    use tokio::runtime::{Handle, RuntimeFlavor};
    match Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(RuntimeFlavor::MultiThread) => tokio::task::block_in_place(f),
        _ => f(),
    }
}

impl<W: std::io::Write + Unpin> tokio::io::AsyncWrite for DirectOut<W> {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::task::Poll::Ready(blocking(|| self.0.write(buf)))
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(blocking(|| self.0.flush()))
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        self.poll_flush(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_and_sizes() {
        assert_eq!(time(Some(Mtime { secs: 0, nanos: 0 })), "1970-01-01 00:00");
        assert_eq!(
            time(Some(Mtime {
                secs: 951_782_400,
                nanos: 0
            })),
            "2000-02-29 00:00"
        );
        assert_eq!(
            time(Some(Mtime {
                secs: -86_400,
                nanos: 0
            })),
            "1969-12-31 00:00"
        );
        assert_eq!(
            time(Some(Mtime {
                secs: 2_085_978_496,
                nanos: 0
            })),
            "2036-02-07 06:28"
        );
        assert_eq!(size(512), "512 B");
        assert_eq!(size(1536), "1.5 KiB");
        assert_eq!(size(5 << 30), "5.0 GiB");
        assert_eq!(size(1023), "1023 B");
        assert_eq!(size((1 << 20) - 1), "1.0 MiB");
        assert_eq!(size((1 << 30) - 1), "1.0 GiB");
        assert_eq!(size((1 << 40) - 1), "1.0 TiB");
        assert_eq!(size((1 << 20) - 52), "1023.9 KiB");
    }
}
