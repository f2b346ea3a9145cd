//! Logging set-up: where log lines go and which of them are kept, for `qrpayd` and `qrpayctl`.
//!
//! Under systemd, when stderr is connected to the journal, lines go to journald natively, as
//! structured entries; otherwise they go to stderr as text. The level is `RUST_LOG` when it is
//! set and valid, otherwise the config's `daemon.log_level`. Trouble with either (no journal
//! socket, a `RUST_LOG` that does not parse) is said once on stderr, and logging goes on.
//!
//! A journal entry (tracing-journald 0.3) holds `MESSAGE`, the event's own fields and the fields
//! of every span it was logged in, outermost first, their names upper-cased without a prefix
//! (`transaction_id` is `TRANSACTION_ID`); `SYSLOG_IDENTIFIER=qrpayd`, `TARGET`, `CODE_FILE`,
//! `CODE_LINE`, and `SPAN_NAME` for each span; and `PRIORITY` from the level, by
//! tracing-journald's default mapping:
//!
//! | level | `PRIORITY`  |
//! |-------|-------------|
//! | ERROR | 3 (err)     |
//! | WARN  | 4 (warning) |
//! | INFO  | 5 (notice)  |
//! | DEBUG | 6 (info)    |
//! | TRACE | 7 (debug)   |
//!
//! [`attempt_span`] gives every line logged while working on an attempt `TRANSACTION_ID`,
//! `ATTEMPT_ID` and `PROVIDER`: its checkout's create, its supervisor, the till's verify, cancel
//! or refund of it, with their store work and provider calls. A line about an attempt that can
//! also be logged outside such a span names the fields itself; inside one it then holds them
//! twice with the same values, which journald stores once (systemd 250 and later). A cancel's
//! lines name both the cancel and the payment whose invoice it closes.
//!
//! This module must never log a secret, and nothing may put one in a field: client secrets,
//! keys, tokens and card numbers stay out of every line (`tests/api/logging.rs` checks).

use std::io::IsTerminal;
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::fs::MetadataExt;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// The journal's `SYSLOG_IDENTIFIER` (what `journalctl -t` selects), whichever program logs.
pub const SYSLOG_IDENTIFIER: &str = "qrpayd";

/// The level used when the configured one is not a valid filter.
const FALLBACK_LEVEL: &str = "info";

/// Where log lines go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sink {
    /// journald's native protocol, with structured fields.
    Journal,
    /// Text lines on stderr.
    Stderr,
}

/// A file's identity as systemd writes it into `JOURNAL_STREAM`: its device and inode numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileId {
    pub dev: u64,
    pub ino: u64,
}

impl FileId {
    /// The identity of the file open on `fd` (fstat), if it can be read.
    pub fn of(fd: BorrowedFd<'_>) -> Option<FileId> {
        let file = std::fs::File::from(fd.try_clone_to_owned().ok()?);
        let metadata = file.metadata().ok()?;
        Some(FileId {
            dev: metadata.dev(),
            ino: metadata.ino(),
        })
    }

    /// Parses `JOURNAL_STREAM`'s `<dev>:<inode>` (two decimal numbers).
    fn parse(value: &str) -> Option<FileId> {
        let (dev, ino) = value.split_once(':')?;
        let number = |text: &str| {
            if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            text.parse::<u64>().ok()
        };
        Some(FileId {
            dev: number(dev)?,
            ino: number(ino)?,
        })
    }
}

/// Where to log, as systemd.exec(5) says to decide it: the journal only when `JOURNAL_STREAM`
/// (`journal_stream`) names the very file stderr is (`stderr`). Inherited from a parent whose
/// stderr went to the journal while ours was redirected, it names another file, and the lines
/// stay on stderr where whoever redirected it expects them.
pub fn choose_sink(journal_stream: Option<&str>, stderr: Option<FileId>) -> Sink {
    match (journal_stream.and_then(FileId::parse), stderr) {
        (Some(named), Some(stderr)) if named == stderr => Sink::Journal,
        _ => Sink::Stderr,
    }
}

/// The filter to log with, and what to say about a value that was passed over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilterChoice {
    /// `EnvFilter` directives that parse.
    pub directives: String,
    /// Said once on stderr when `RUST_LOG` or the configured level was not valid.
    pub warning: Option<String>,
}

/// `RUST_LOG` (`rust_log`) when it is set and valid, otherwise the configured level. A
/// `RUST_LOG` that does not parse must not silence the daemon: the configured level is used
/// and the choice explained. An invalid configured level falls back to `info`.
pub fn choose_filter(rust_log: Option<&str>, configured: &str) -> FilterChoice {
    let mut warnings = Vec::new();
    if let Some(value) = rust_log.map(str::trim).filter(|v| !v.is_empty()) {
        match parse_filter(value) {
            Ok(_) => {
                return FilterChoice {
                    directives: value.to_owned(),
                    warning: None,
                };
            }
            Err(error) => warnings.push(format!("RUST_LOG={value:?} is not valid ({error})")),
        }
    }
    let directives = match parse_filter(configured) {
        Ok(_) => configured.to_owned(),
        Err(error) => {
            warnings.push(format!(
                "daemon.log_level {configured:?} is not valid ({error})"
            ));
            FALLBACK_LEVEL.to_owned()
        }
    };
    let warning = (!warnings.is_empty()).then(|| {
        format!(
            "logging: {}; logging at level {directives:?}",
            warnings.join("; ")
        )
    });
    FilterChoice {
        directives,
        warning,
    }
}

fn parse_filter(directives: &str) -> Result<EnvFilter, tracing_subscriber::filter::ParseError> {
    EnvFilter::builder().parse(directives)
}

/// Sets up this process's logging (see the module documentation) at `configured_level` unless
/// `RUST_LOG` says otherwise. Only the first call in a process does anything.
pub fn init(configured_level: &str) {
    let choice = choose_filter(std::env::var("RUST_LOG").ok().as_deref(), configured_level);
    let filter =
        parse_filter(&choice.directives).unwrap_or_else(|_| EnvFilter::new(FALLBACK_LEVEL));
    let sink = choose_sink(
        std::env::var("JOURNAL_STREAM").ok().as_deref(),
        FileId::of(std::io::stderr().as_fd()),
    );
    let mut notes: Vec<String> = choice.warning.into_iter().collect();
    let journal = match sink {
        Sink::Journal => match journal_layer() {
            Ok(layer) => Some(layer),
            Err(error) => {
                notes.push(format!(
                    "logging: cannot open the journal socket ({error}); logging to stderr"
                ));
                None
            }
        },
        Sink::Stderr => None,
    };
    let stderr = journal.is_none().then(|| {
        tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_ansi(std::io::stderr().is_terminal())
    });
    let installed = tracing_subscriber::registry()
        .with(filter)
        .with(journal)
        .with(stderr)
        .try_init()
        .is_ok();
    if installed {
        for note in notes {
            eprintln!("{note}");
        }
    }
}

/// The journald layer: fields without tracing-journald's default `F_` prefix, so that
/// `attempt_id` is `ATTEMPT_ID`, and the identifier `qrpayd` for every program.
fn journal_layer() -> std::io::Result<tracing_journald::Layer> {
    Ok(tracing_journald::layer()?
        .with_field_prefix(None)
        .with_syslog_identifier(SYSLOG_IDENTIFIER.to_owned()))
}

/// The span of the work on one attempt: every line logged inside it carries `transaction_id`,
/// `attempt_id` and `provider` (in the journal: `TRANSACTION_ID`, `ATTEMPT_ID`, `PROVIDER`).
///
/// It is a root span, never inside the caller's, so that its fields are the only ones of their
/// names; and it is at level ERROR, so that a level filter (`warn`, `error`) keeps it whenever
/// it keeps any line logged inside it.
pub fn attempt_span(transaction_id: &str, attempt_id: &str, provider: &str) -> tracing::Span {
    tracing::error_span!(
        parent: None,
        "attempt",
        transaction_id = %transaction_id,
        attempt_id = %attempt_id,
        provider = %provider,
    )
}

/// `tokio::task::spawn_blocking`, with the caller's span and subscriber on the blocking thread,
/// so that what is logged there is in the caller's span (an attempt's, say) like the rest.
pub fn spawn_blocking<T, F>(f: F) -> tokio::task::JoinHandle<T>
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    let span = tracing::Span::current();
    let dispatch = tracing::dispatcher::get_default(Clone::clone);
    tokio::task::spawn_blocking(move || {
        tracing::dispatcher::with_default(&dispatch, || span.in_scope(f))
    })
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    #[test]
    fn without_journal_stream_lines_go_to_stderr() {
        let stderr = Some(FileId { dev: 27, ino: 4321 });
        assert_eq!(choose_sink(None, stderr), Sink::Stderr);
    }

    #[test]
    fn a_malformed_journal_stream_is_ignored() {
        let stderr = Some(FileId { dev: 27, ino: 4321 });
        for value in [
            "",
            "27",
            "27:",
            ":4321",
            "27:4321:1",
            "27 :4321",
            "-27:4321",
            "+27:4321",
            "a:b",
            "27;4321",
            "0x1b:4321",
        ] {
            assert_eq!(choose_sink(Some(value), stderr), Sink::Stderr, "{value:?}");
        }
    }

    #[test]
    fn a_journal_stream_naming_another_file_is_ignored() {
        let stderr = Some(FileId { dev: 27, ino: 4321 });
        assert_eq!(choose_sink(Some("27:4322"), stderr), Sink::Stderr);
        assert_eq!(choose_sink(Some("28:4321"), stderr), Sink::Stderr);
        assert_eq!(choose_sink(Some("27:4321"), None), Sink::Stderr);
    }

    #[test]
    fn a_journal_stream_naming_stderr_selects_the_journal() {
        let stderr = Some(FileId { dev: 27, ino: 4321 });
        assert_eq!(choose_sink(Some("27:4321"), stderr), Sink::Journal);
        let large = Some(FileId {
            dev: u64::MAX,
            ino: 18_446_744_073_709_551_000,
        });
        assert_eq!(
            choose_sink(Some("18446744073709551615:18446744073709551000"), large),
            Sink::Journal
        );
    }

    /// What systemd puts in `JOURNAL_STREAM` (st_dev and st_ino in decimal) is what
    /// [`FileId::of`] reads from a descriptor of the same file.
    #[test]
    fn the_identity_of_a_descriptor_is_its_files_dev_and_inode() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("stderr");
        let file = std::fs::File::create(&path).expect("file");
        let by_path = std::fs::metadata(&path).expect("metadata");
        let stream = format!("{}:{}", by_path.dev(), by_path.ino());
        let id = FileId::of(file.as_fd());
        assert_eq!(choose_sink(Some(&stream), id), Sink::Journal);
        let other = std::fs::File::create(dir.path().join("other")).expect("file");
        assert_eq!(
            choose_sink(Some(&stream), FileId::of(other.as_fd())),
            Sink::Stderr
        );
    }

    #[test]
    fn a_valid_rust_log_wins_over_the_configured_level() {
        for value in ["debug", "warn,qrpayd=trace", "qrpayd::engine=debug"] {
            assert_eq!(
                choose_filter(Some(value), "info"),
                FilterChoice {
                    directives: value.to_owned(),
                    warning: None
                }
            );
        }
    }

    #[test]
    fn without_rust_log_the_configured_level_is_used() {
        for rust_log in [None, Some(""), Some("  ")] {
            assert_eq!(
                choose_filter(rust_log, "warn"),
                FilterChoice {
                    directives: "warn".to_owned(),
                    warning: None
                }
            );
        }
    }

    #[test]
    fn an_invalid_rust_log_falls_back_to_the_configured_level_and_says_so() {
        for value in ["qrpayd=loud", "info,[", "=debug"] {
            let choice = choose_filter(Some(value), "warn");
            assert_eq!(choice.directives, "warn", "{value}");
            let warning = choice.warning.expect("a warning");
            assert!(warning.contains("RUST_LOG"), "{warning}");
            assert!(warning.contains(value), "{warning}");
        }
    }

    #[test]
    fn an_invalid_configured_level_falls_back_to_info_and_says_so() {
        let choice = choose_filter(None, "qrpayd=chatty");
        assert_eq!(choice.directives, "info");
        let warning = choice.warning.expect("a warning");
        assert!(warning.contains("daemon.log_level"), "{warning}");

        let both = choose_filter(Some("x=y"), "qrpayd=chatty");
        assert_eq!(both.directives, "info");
        let warning = both.warning.expect("a warning");
        assert!(
            warning.contains("RUST_LOG") && warning.contains("daemon.log_level"),
            "{warning}"
        );
    }

    /// Text written by a test subscriber.
    #[derive(Clone, Default)]
    struct Written(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Written {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0
                .lock()
                .expect("not poisoned")
                .extend_from_slice(bytes);
            Ok(bytes.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Written {
        type Writer = Written;
        fn make_writer(&'a self) -> Written {
            self.clone()
        }
    }

    /// Lines logged inside an attempt span carry its three fields, even at level `warn` and
    /// even when the caller is inside a span of its own.
    #[test]
    fn lines_inside_an_attempt_span_carry_its_fields() {
        let written = Written::default();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(written.clone())
            .with_env_filter(EnvFilter::new("warn"))
            .with_ansi(false)
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            let outer = tracing::error_span!("dbus_call", attempt_id = "not-this-one");
            let _outer = outer.enter();
            attempt_span("T-1", "A-1", "qpay").in_scope(|| {
                tracing::warn!("the provider is slow");
                tracing::info!("filtered out");
            });
        });
        let text =
            String::from_utf8(written.0.lock().expect("not poisoned").clone()).expect("text");
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 1, "{text}");
        assert!(
            lines[0].contains("attempt{transaction_id=T-1 attempt_id=A-1 provider=qpay}"),
            "{text}"
        );
        assert!(!lines[0].contains("not-this-one"), "{text}");
    }

    /// What the engine logs on a blocking thread (its store work) is in the caller's span.
    #[tokio::test]
    async fn a_blocking_task_logs_in_the_callers_span() {
        let written = Written::default();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(written.clone())
            .with_ansi(false)
            .finish();
        let _default = tracing::subscriber::set_default(subscriber);
        let caller = std::thread::current().id();
        let task = attempt_span("T-2", "A-2", "simulator").in_scope(|| {
            spawn_blocking(move || {
                assert_ne!(std::thread::current().id(), caller);
                tracing::info!("payment recorded");
            })
        });
        task.await.expect("the blocking task");
        let text =
            String::from_utf8(written.0.lock().expect("not poisoned").clone()).expect("text");
        assert!(
            text.contains("attempt{transaction_id=T-2 attempt_id=A-2 provider=simulator}")
                && text.contains("payment recorded"),
            "{text}"
        );
    }
}
