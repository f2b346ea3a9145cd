//! Checks of single values that the types alone do not make (a bus name, a log level), the
//! nearest key for a misspelt one, and the checks of the machine the config is for, which only
//! `qrpayd check-config` runs (a directory that must exist).

use std::path::Path;

use super::Config;

/// `system`, `session` or a D-Bus address (`unix:path=/run/…`, `tcp:host=…`), else why not.
pub(super) fn check_bus(bus: &str) -> Result<(), String> {
    if matches!(bus, "system" | "session") {
        return Ok(());
    }
    let transports = [
        "unix:",
        "tcp:",
        "nonce-tcp:",
        "unixexec:",
        "launchd:",
        "autolaunch:",
    ];
    if transports.iter().any(|t| bus.starts_with(t)) {
        return Ok(());
    }
    let hint = nearest(bus, &["system", "session"])
        .map(|near| format!("; did you mean {near:?}?"))
        .unwrap_or_default();
    Err(format!(
        "{bus:?} is neither \"system\", \"session\" nor a D-Bus address (unix:path=…){hint}"
    ))
}

/// The log levels `daemon.log_level` takes (or `target=level` directives of them).
const LEVELS: &[&str] = &["error", "warn", "info", "debug", "trace", "off"];

/// A level, or comma-separated `target=level` directives, else why not. A bare word that is
/// no level would be taken by the logger for a target name and silence everything else.
pub(super) fn check_log_level(text: &str) -> Result<(), String> {
    let is_level = |word: &str| LEVELS.contains(&word.trim().to_ascii_lowercase().as_str());
    for directive in text.split(',').map(str::trim) {
        let level = directive
            .rsplit_once('=')
            .map_or(directive, |(_, level)| level);
        if !is_level(level) {
            let hint = nearest(&level.to_ascii_lowercase(), LEVELS)
                .map(|near| format!("; did you mean {near:?}?"))
                .unwrap_or_default();
            return Err(format!(
                "{level:?} is not a level: one of {} (or directives such as \"qrpayd=debug,info\"){hint}",
                LEVELS.join(", ")
            ));
        }
    }
    Ok(())
}

/// A TOML error's message with the nearest key suggested for an unknown one ("unknown field
/// `log_levl`, expected one of `bus`, …").
pub(super) fn with_suggestion(message: &str) -> String {
    let Some(rest) = message.split("unknown field `").nth(1) else {
        return message.to_owned();
    };
    let Some((unknown, expected)) = rest.split_once('`') else {
        return message.to_owned();
    };
    let candidates: Vec<&str> = expected.split('`').skip(1).step_by(2).collect();
    match nearest(unknown, &candidates) {
        Some(near) => format!("{message}\ndid you mean `{near}`?"),
        None => message.to_owned(),
    }
}

/// The candidate nearest `word`, when it is near enough to be a slip (an edit for every three
/// characters, at least two: a swap of two letters is two).
fn nearest<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    let limit = (word.chars().count() / 3).max(2);
    candidates
        .iter()
        .map(|c| (edit_distance(word, c), *c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// Levenshtein's distance, in characters.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut current = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(ca != *cb);
            current.push(substitution.min(previous[j + 1] + 1).min(current[j] + 1));
        }
        previous = current;
    }
    previous[b.len()]
}

/// Where systemd makes the unit's runtime directory (`RuntimeDirectory=qrpayd`) when the
/// service starts: the display frame's default home, absent until then.
const RUNTIME_DIRECTORY: &str = "/run/qrpayd";

/// What is wrong with `config` on this machine: a directory that should exist and does not.
/// The daemon makes the state directory and the runtime directory is systemd's, so only other
/// places are checked.
pub fn machine_problems(config: &Config) -> Vec<String> {
    let mut problems = Vec::new();
    if let Some(display) = &config.display
        && let Some(parent) = display.png_path.parent()
        && !parent.as_os_str().is_empty()
        && !parent.is_dir()
        && parent != Path::new(RUNTIME_DIRECTORY)
        && !parent.starts_with(&config.state_dir)
    {
        problems.push(format!(
            "display.png_path: the directory {} does not exist",
            parent.display()
        ));
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_misspelt_bus_or_level_is_refused_with_the_nearest_word() {
        assert_eq!(check_bus("session"), Ok(()));
        assert_eq!(check_bus("unix:path=/run/bus"), Ok(()));
        let error = check_bus("sesion").expect_err("refused");
        assert!(error.contains("did you mean \"session\""), "{error}");
        assert_eq!(check_log_level("info"), Ok(()));
        assert_eq!(check_log_level("qrpayd=debug,warn"), Ok(()));
        let error = check_log_level("verbose").expect_err("refused");
        assert!(error.contains("\"verbose\" is not a level"), "{error}");
        let error = check_log_level("debgu").expect_err("refused");
        assert!(error.contains("did you mean \"debug\""), "{error}");
    }

    #[test]
    fn an_unknown_key_gets_the_nearest_expected_one_and_only_a_near_one() {
        let message = "unknown field `log_levl`, expected one of `bus`, `state_dir`, `log_level`";
        assert!(with_suggestion(message).ends_with("did you mean `log_level`?"));
        let far = "unknown field `colour`, expected one of `bus`, `state_dir`";
        assert_eq!(with_suggestion(far), far);
        assert_eq!(edit_distance("sesion", "session"), 1);
        assert_eq!(edit_distance("", "abc"), 3);
    }
}
