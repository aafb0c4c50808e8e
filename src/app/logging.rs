//! Where log lines go and which ones: stderr, in the human format at a terminal or in a file, and
//! in the journal's own format when systemd connected stderr to the journal (no timestamps, the
//! journal adds its own; an `<N>` syslog priority in front, as sd-daemon(3) describes, so
//! `journalctl -p warning` works). The filter comes from `RUST_LOG`, else `-v`, else the running
//! service's `[log] filter`, which a reload may change. What to log is every other module's
//! business.

use std::fmt;
use std::io::IsTerminal;
use std::os::fd::AsFd;
use std::os::unix::fs::MetadataExt;
use std::sync::OnceLock;
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::{FormatEvent, FormatFields, Writer};
use tracing_subscriber::fmt::{FmtContext, format};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Registry, reload};

/// Set when neither `RUST_LOG` nor `-v` chose the filter, so the config's may replace it.
static CONFIGURABLE: OnceLock<reload::Handle<EnvFilter, Registry>> = OnceLock::new();

/// Installs the global subscriber. `verbose` is the count of `-v` flags.
pub fn init(verbose: u8) {
    let from_env = std::env::var("RUST_LOG")
        .ok()
        .map(|v| crate::config::parse_log_filter(&v));
    let (filter, configurable) = match from_env {
        Some(Ok(filter)) => (filter, false),
        _ => match verbose {
            0 => (EnvFilter::new("warn"), true),
            1 => (EnvFilter::new("info"), false),
            _ => (EnvFilter::new("debug"), false),
        },
    };
    let (filter, handle) = reload::Layer::new(filter);
    let journal = stderr_is_journal();
    let to_journal = journal.then(|| {
        tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_ansi(false)
            .event_format(JournalFormat(format().without_time().with_level(false)))
    });
    let to_stderr = (!journal).then(|| {
        tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            // Colour codes only for a person at a terminal, never into a file.
            .with_ansi(std::io::stderr().is_terminal())
    });
    tracing_subscriber::registry()
        .with(filter)
        .with(to_journal)
        .with(to_stderr)
        .init();
    if configurable {
        let _ = CONFIGURABLE.set(handle);
    }
}

/// Applies a config's `[log] filter` (already validated by the config), unless `RUST_LOG` or
/// `-v` chose the filter, or no subscriber was installed by `init` (the daemon run in-process by
/// tests).
pub fn use_config_filter(filter: &str) {
    let Some(handle) = CONFIGURABLE.get() else {
        return;
    };
    match crate::config::parse_log_filter(filter) {
        Ok(filter) => {
            if let Err(error) = handle.reload(filter) {
                tracing::warn!("cannot change the log filter: {error}");
            }
        }
        Err(error) => tracing::warn!("cannot use the log filter {filter:?}: {error}"),
    }
}

/// Whether stderr is the journal stream systemd names in `JOURNAL_STREAM` (device and inode),
/// rather than something a child inherited the variable with.
fn stderr_is_journal() -> bool {
    let Some(stream) = std::env::var_os("JOURNAL_STREAM") else {
        return false;
    };
    let stderr = std::io::stderr()
        .as_fd()
        .try_clone_to_owned()
        .map(std::fs::File::from)
        .and_then(|file| file.metadata());
    match stderr {
        Ok(meta) => names_stream(&stream.to_string_lossy(), meta.dev(), meta.ino()),
        Err(_) => false,
    }
}

/// `JOURNAL_STREAM` is "DEVICE:INODE", both decimal.
fn names_stream(journal_stream: &str, dev: u64, ino: u64) -> bool {
    journal_stream
        .split_once(':')
        .and_then(|(d, i)| Some((d.parse::<u64>().ok()?, i.parse::<u64>().ok()?)))
        == Some((dev, ino))
}

/// The syslog priority journald reads from a line's `<N>` prefix.
fn syslog_priority(level: &Level) -> u8 {
    match *level {
        Level::ERROR => 3,
        Level::WARN => 4,
        Level::INFO => 6,
        Level::DEBUG | Level::TRACE => 7,
    }
}

/// The inner format with the line's priority in front.
struct JournalFormat<F>(F);

impl<S, N, F> FormatEvent<S, N> for JournalFormat<F>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
    F: FormatEvent<S, N>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        write!(writer, "<{}>", syslog_priority(event.metadata().level()))?;
        self.0.format_event(ctx, writer, event)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_journal_stream_must_name_this_device_and_inode() {
        assert!(names_stream("8:123456", 8, 123456));
        assert!(!names_stream("8:123456", 8, 123457));
        assert!(!names_stream("8", 8, 123456));
        assert!(!names_stream("x:1", 8, 1));
    }

    #[test]
    fn levels_map_to_syslog_priorities() {
        let priorities: Vec<u8> = [
            Level::ERROR,
            Level::WARN,
            Level::INFO,
            Level::DEBUG,
            Level::TRACE,
        ]
        .iter()
        .map(syslog_priority)
        .collect();
        assert_eq!(priorities, [3, 4, 6, 7, 7]);
    }
}
