//! The soak's short seeded form (the shared program is `tests/support/soak.rs`; its long run is
//! `cargo bench --bench soak`): the real daemon process against the mock QPay and the mock
//! AppotaPay with faults, `kill -9` a dozen times at random moments, the fault campaign's
//! invariants after every kill and once healed.
//!
//! `QRPAYD_SOAK_SEED` and `QRPAYD_SOAK_KILLS` change the seed (default 1) and the kills
//! (default 12); `QRPAYD_SOAK_TRACE=1` prints every step.

#[path = "../support/soak.rs"]
mod run;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_soak_with_faults_and_kill_9_keeps_every_invariant() {
    let settings = run::Settings::from_env(Some(1), 12, env!("CARGO_BIN_EXE_qrpayd"))
        .unwrap_or_else(|error| panic!("{error}"));
    let (seed, kills) = (settings.seed, settings.kills);
    match run::run(settings).await {
        Ok(report) => {
            println!("soak: {report:?}");
            assert_eq!(
                (report.seed, report.kills),
                (seed, kills),
                "every kill happened"
            );
            assert!(report.checkouts > 0, "the till did something: {report:?}");
        }
        Err(violation) => panic!(
            "{violation}\nReplay it with:\n  QRPAYD_SOAK_SEED={seed} QRPAYD_SOAK_KILLS={kills} \
             QRPAYD_SOAK_TRACE=1 cargo test --test api soak -- --nocapture"
        ),
    }
}
