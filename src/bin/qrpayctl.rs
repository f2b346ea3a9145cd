//! The qrpayctl client; see `qrpayd::cli::ctl`.

fn main() -> std::process::ExitCode {
    qrpayd::cli::ctl::main()
}
