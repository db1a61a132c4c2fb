//! The values `serve` reads from flags and `LIVEHUB_*` variables, parsed leniently (the usual
//! boolean spellings, host names, spaces after commas) and refused with a sentence that names
//! the flag or the variable the value came from.

use std::net::SocketAddr;
use std::str::FromStr;

use tracing_subscriber::EnvFilter;

use crate::failure::Failure;

/// `1`/`0`, `true`/`false`, `yes`/`no`, `on`/`off`, in any case.
pub(crate) fn parse_bool(text: &str) -> Option<bool> {
    match text.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" | "y" | "t" => Some(true),
        "0" | "false" | "no" | "off" | "n" | "f" => Some(false),
        _ => None,
    }
}

/// The variable `name`, or `None` when it is unset or empty.
pub(crate) fn env_text(name: &str) -> Result<Option<String>, Failure> {
    match std::env::var(name) {
        Ok(value) if value.trim().is_empty() => Ok(None),
        Ok(value) => Ok(Some(value)),
        Err(std::env::VarError::NotPresent) => Ok(None),
        Err(std::env::VarError::NotUnicode(_)) => Err(Failure::usage(format!("{name} is not valid UTF-8"))),
    }
}

/// The boolean variable `name`; unset or empty is `None`.
pub(crate) fn env_bool(name: &str) -> Result<Option<bool>, Failure> {
    env_text(name)?.map_or(Ok(None), |value| {
        parse_bool(&value).map(Some).ok_or_else(|| {
            Failure::usage(format!(
                "{name}={value:?} is not a boolean; use 1 or 0 (also true/false, yes/no, on/off)"
            ))
        })
    })
}

/// The variable `name` parsed as `what` (such as "a whole number"); unset or empty is `None`.
pub(crate) fn env_parse<T: FromStr>(name: &str, what: &str) -> Result<Option<T>, Failure> {
    env_text(name)?.map_or(Ok(None), |value| {
        value.trim().parse().map(Some).map_err(|_| Failure::usage(format!("{name}={value:?} is not {what}")))
    })
}

/// The variable `name` through `parse`, whose error is prefixed with the variable.
pub(crate) fn env_with<T>(
    name: &str,
    parse: impl FnOnce(&str) -> Result<T, String>,
) -> Result<Option<T>, Failure> {
    env_text(name)?.map_or(Ok(None), |value| {
        parse(&value).map(Some).map_err(|why| Failure::usage(format!("{name}={value:?}: {why}")))
    })
}

/// An address to listen on: `127.0.0.1:8080`, `[::1]:8080`, or a host name such as
/// `localhost:8080`, resolved now (as the `listen` setting of the file is).
pub(crate) fn listen_address(text: &str) -> Result<SocketAddr, String> {
    livehub_server::listen_address(text)
}

/// A transport `serve` can switch off.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Transport {
    /// `/ws`.
    Websocket,
    /// `/sse`.
    Sse,
    /// `/poll`.
    LongPolling,
    /// The read endpoints under `/api/channels`.
    Polling,
}

/// The names `--disable` takes, as the error message lists them.
const TRANSPORT_NAMES: &str = "websocket, sse, long-polling, polling";

/// A comma-separated list of transports, such as `websocket, sse`: spaces and empty items are
/// ignored, names in any case, with `-` or `_`.
pub(crate) fn transports(text: &str) -> Result<Vec<Transport>, String> {
    let mut list = Vec::new();
    for item in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let transport = match item.to_ascii_lowercase().replace('_', "-").as_str() {
            "websocket" | "ws" => Transport::Websocket,
            "sse" => Transport::Sse,
            "long-polling" | "longpolling" => Transport::LongPolling,
            "polling" => Transport::Polling,
            _ => return Err(format!("{item:?} is not a transport; use any of {TRANSPORT_NAMES}")),
        };
        list.push(transport);
    }
    Ok(list)
}

/// A log filter in `RUST_LOG` syntax where every directive names a level: `info`,
/// `livehub=debug,tower_http=warn`. A bare word that is not a level is refused: tracing would
/// take it for a target and log nothing else, not even the listening line.
pub(crate) fn log_filter(text: &str) -> Result<EnvFilter, String> {
    for directive in text.split(',').map(str::trim).filter(|d| !d.is_empty()) {
        let level = directive.rsplit_once('=').map_or(directive, |(_, level)| level);
        if tracing_subscriber::filter::LevelFilter::from_str(level.trim()).is_err() {
            return Err(format!(
                "{directive:?} names no level; use error, warn, info, debug, trace or off, or TARGET=LEVEL"
            ));
        }
    }
    EnvFilter::try_new(text).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn booleans_take_the_usual_spellings() {
        for yes in ["1", "true", "TRUE", "yes", "Yes", "on", "ON", " y "] {
            assert_eq!(parse_bool(yes), Some(true), "{yes}");
        }
        for no in ["0", "false", "False", "no", "NO", "off", "Off", "n"] {
            assert_eq!(parse_bool(no), Some(false), "{no}");
        }
        for wrong in ["", "2", "yess", "enabled", "-1"] {
            assert_eq!(parse_bool(wrong), None, "{wrong}");
        }
    }

    #[test]
    fn transports_take_spaces_and_any_case() {
        use Transport::*;
        assert_eq!(transports("websocket, sse"), Ok(vec![Websocket, Sse]));
        assert_eq!(transports(" Long_Polling ,polling,"), Ok(vec![LongPolling, Polling]));
        assert_eq!(transports(""), Ok(vec![]));
        let wrong = transports("websocket, mqtt").expect_err("unknown");
        assert!(wrong.contains("\"mqtt\"") && wrong.contains(TRANSPORT_NAMES), "{wrong}");
    }

    #[test]
    fn log_filters_must_name_levels() {
        for good in ["info", "WARN", "livehub=debug,tower_http=warn", "off", "livehub_server::poll=trace"] {
            assert!(log_filter(good).is_ok(), "{good}");
        }
        for bad in ["verbose", "livehub", "livehub=loud", "info,chatty"] {
            assert!(log_filter(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn variables_are_named_in_errors() {
        // Names no other test or process in this binary uses.
        std::env::set_var("LIVEHUB_TEST_SETTINGS_BOOL", "maybe");
        let error = env_bool("LIVEHUB_TEST_SETTINGS_BOOL").expect_err("not a boolean").to_string();
        assert!(error.starts_with("LIVEHUB_TEST_SETTINGS_BOOL=\"maybe\""), "{error}");
        std::env::set_var("LIVEHUB_TEST_SETTINGS_BOOL", "Yes");
        assert_eq!(env_bool("LIVEHUB_TEST_SETTINGS_BOOL").expect("yes"), Some(true));
        std::env::set_var("LIVEHUB_TEST_SETTINGS_NUMBER", "ten");
        let error = env_parse::<usize>("LIVEHUB_TEST_SETTINGS_NUMBER", "a whole number")
            .expect_err("not a number")
            .to_string();
        assert_eq!(error, "LIVEHUB_TEST_SETTINGS_NUMBER=\"ten\" is not a whole number");
        std::env::set_var("LIVEHUB_TEST_SETTINGS_NUMBER", "");
        assert_eq!(
            env_parse::<usize>("LIVEHUB_TEST_SETTINGS_NUMBER", "a whole number").expect("unset"),
            None
        );
    }
}
