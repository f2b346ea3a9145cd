//! The files the Debian package ships that come from the clap definitions: man pages and shell
//! completions for `qrpayd` and `qrpayctl`. `qrpayctl generate-assets DIR` writes them (the
//! packaging script runs it before cargo-deb), so they always match the binaries they describe.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use clap::CommandFactory;
use clap_complete::Shell;

use super::ctl::CtlArgs;
use super::daemon::DaemonArgs;

/// Extra man-page text for `qrpayd(8)`, in roff.
const QRPAYD_EXTRA: &str = r#".SH ENVIRONMENT
.TP
\fBQRPAYD_CONFIG\fR
The config file when \fB\-\-config\fR is not given (else \fI/etc/qrpayd/qrpayd.toml\fR).
.TP
\fBRUST_LOG\fR
The log level or tracing directives (\fBdebug\fR, \fBqrpayd=debug,info\fR); it overrides
\fBdaemon.log_level\fR when it is valid.
.TP
\fBCREDENTIALS_DIRECTORY\fR
Where systemd's \fBLoadCredential=\fR put the provider secrets named by \fB*_file\fR keys.
.TP
\fBDBUS_SESSION_BUS_ADDRESS\fR
The session bus \fBqrpayd dev\fR serves on when there is one (else a private bus).
.SH FILES
.TP
\fI/etc/qrpayd/qrpayd.toml\fR
The configuration (\fBqrpayd check\-config\fR checks it).
.TP
\fI/etc/qrpayd/credentials/\fR
Provider secrets, one file each, loaded by systemd's \fBLoadCredential=\fR; the file
\fIqpay_client_secret\fR is the credential \fIqrpayd_qpay_client_secret\fR, named so in the config.
.TP
\fI/var/lib/qrpayd/\fR
The SQLite queue of transactions and their outbox.
.TP
\fI/run/qrpayd/display.png\fR
The customer display frame.
.SH SEE ALSO
\fBqrpayctl\fR(1), \fBsystemctl\fR(1), \fBjournalctl\fR(1)
"#;

/// Extra man-page text for `qrpayctl(1)`, in roff, after its EXIT STATUS section (made from
/// the one table of exit codes, [`super::ctl::exit::EXIT_CODES`]).
const QRPAYCTL_EXTRA: &str = r#".SH ENVIRONMENT
.TP
\fBQRPAYD_BUS\fR
The bus when \fB\-\-bus\fR is not given: \fBsystem\fR (the default), \fBsession\fR or a
D\-Bus address such as the one \fBqrpayd dev\fR prints.
.TP
\fBNO_COLOR\fR
When set and not empty, statuses are not coloured on a terminal.
.TP
\fBRUST_LOG\fR
The level of qrpayctl's own log on stderr (warnings by default).
.SH SEE ALSO
\fBqrpayd\fR(8)
"#;

/// Writes `man/` (one page per command and subcommand) and `completions/` (bash, zsh, fish)
/// under `out`, and returns the files written.
pub fn generate(out: &Path) -> io::Result<Vec<PathBuf>> {
    let man = out.join("man");
    let completions = out.join("completions");
    fs::create_dir_all(&man)?;
    fs::create_dir_all(&completions)?;

    let mut written = Vec::new();
    write_man_pages(DaemonArgs::command(), "8", QRPAYD_EXTRA, &man, &mut written)?;
    let qrpayctl_extra = format!("{}{QRPAYCTL_EXTRA}", super::ctl::exit::roff());
    write_man_pages(CtlArgs::command(), "1", &qrpayctl_extra, &man, &mut written)?;
    for (mut command, name) in [
        (DaemonArgs::command(), "qrpayd"),
        (CtlArgs::command(), "qrpayctl"),
    ] {
        for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
            written.push(clap_complete::generate_to(
                shell,
                &mut command,
                name,
                &completions,
            )?);
        }
    }
    Ok(written)
}

/// Writes the page of `command` and of each visible subcommand (`qrpayctl-pay.1`, …), with
/// `extra` roff appended to the top page.
fn write_man_pages(
    command: clap::Command,
    section: &str,
    extra: &str,
    dir: &Path,
    written: &mut Vec<PathBuf>,
) -> io::Result<()> {
    let mut command = command.disable_help_subcommand(true);
    command.build();
    write_subcommand_pages(&command, section, dir, written)?;
    let page = clap_mangen::Man::new(command)
        .section(section)
        .manual("qrpayd");
    let path = dir.join(page.get_filename());
    let mut file = fs::File::create(&path)?;
    page.render(&mut file)?;
    file.write_all(extra.as_bytes())?;
    file.flush()?;
    written.push(path);
    Ok(())
}

/// Writes a page for each visible subcommand of `command` and, below it, of theirs
/// (`qrpayctl-simulate.1`, `qrpayctl-simulate-pay.1`, …).
fn write_subcommand_pages(
    command: &clap::Command,
    section: &str,
    dir: &Path,
    written: &mut Vec<PathBuf>,
) -> io::Result<()> {
    for sub in command.get_subcommands().filter(|sub| !sub.is_hide_set()) {
        let page = clap_mangen::Man::new(sub.clone())
            .section(section)
            .manual("qrpayd");
        written.push(page.generate_to(dir)?);
        write_subcommand_pages(sub, section, dir, written)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_man_pages_and_completions_for_both_commands() {
        let dir = tempfile::tempdir().expect("temp dir");
        let written = generate(dir.path()).expect("generate");
        let names: Vec<String> = written
            .iter()
            .map(|path| {
                path.strip_prefix(dir.path())
                    .expect("inside")
                    .display()
                    .to_string()
            })
            .collect();
        for expected in [
            "man/qrpayd.8",
            "man/qrpayd-run.8",
            "man/qrpayctl.1",
            "man/qrpayctl-pay.1",
            "man/qrpayctl-simulate.1",
            "man/qrpayctl-simulate-pay.1",
            "man/qrpayctl-qr-decode.1",
            "man/qrpayctl-qr-vietqr.1",
            "man/qrpayd-dev.8",
            "completions/qrpayd.bash",
            "completions/_qrpayctl",
            "completions/qrpayctl.fish",
        ] {
            assert!(
                names.iter().any(|name| name == expected),
                "{expected} in {names:?}"
            );
        }
        // The hidden generator itself is no part of the documented interface.
        assert!(
            !names.iter().any(|name| name.contains("generate")),
            "{names:?}"
        );

        let page = fs::read_to_string(dir.path().join("man/qrpayctl.1")).expect("page");
        assert!(
            page.starts_with(".ie"),
            "roff: {}",
            &page[..40.min(page.len())]
        );
        assert!(page.contains(".TH qrpayctl 1"), "{page}");
        assert!(page.contains("Take a payment"), "subcommands listed");
        assert!(page.contains(".SH EXIT STATUS"), "{page}");
        assert!(
            page.contains("pay \\-\\-wait: the attempt expired"),
            "{page}"
        );
        assert!(
            page.contains(".SH ENVIRONMENT") && page.contains("QRPAYD_BUS"),
            "{page}"
        );
        let daemon = fs::read_to_string(dir.path().join("man/qrpayd.8")).expect("page");
        for variable in ["QRPAYD_CONFIG", "RUST_LOG"] {
            assert!(daemon.contains(variable), "{variable} in qrpayd(8)");
        }
        let bash = fs::read_to_string(dir.path().join("completions/qrpayctl.bash")).expect("bash");
        assert!(bash.contains("refund"), "subcommands completed");
        for name in ["qrpayctl.bash", "_qrpayctl", "qrpayctl.fish"] {
            let completion =
                fs::read_to_string(dir.path().join("completions").join(name)).expect(name);
            assert!(
                !completion.contains("generate"),
                "{name} offers generate-assets"
            );
        }
    }
}

#[cfg(test)]
mod described {
    use super::*;

    /// Every option and argument of every command says what it is for, in `--help` and in the
    /// man pages.
    #[test]
    fn every_argument_has_a_description() {
        fn undescribed(command: &clap::Command, path: &str, missing: &mut Vec<String>) {
            let path = format!("{path} {}", command.get_name());
            for arg in command.get_arguments() {
                let builtin = matches!(arg.get_id().as_str(), "help" | "version");
                if !builtin && !arg.is_hide_set() && arg.get_help().is_none() {
                    missing.push(format!("{path} {}", arg.get_id()));
                }
            }
            for sub in command.get_subcommands() {
                undescribed(sub, &path, missing);
            }
        }
        let mut missing = Vec::new();
        for mut command in [DaemonArgs::command(), CtlArgs::command()] {
            command.build();
            undescribed(&command, "", &mut missing);
        }
        assert!(missing.is_empty(), "no description: {missing:#?}");
    }
}
