//! The qrpayd daemon; see `qrpayd::cli::daemon`.

fn main() -> std::process::ExitCode {
    qrpayd::cli::daemon::main()
}
