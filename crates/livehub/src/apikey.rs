//! `livehub apikey`: makes an API key for a publisher, with the `[[auth.api_keys]]` entry that
//! lets the server recognise it by its SHA-256, or hashes an existing key.

use std::fmt::Write as _;

use anyhow::{bail, Context};
use clap::Args;
use livehub_auth::{
    generate_api_key, hash_api_key, ApiKeyConfig, AuthConfig, Authenticator, MAX_API_KEY_LEN,
};

use crate::failure;

/// Arguments of `apikey`.
#[derive(Args)]
pub(crate) struct ApiKeyArgs {
    /// Name of the key in the server's config and logs; unique per server.
    #[arg(long, required_unless_present = "hash")]
    name: Option<String>,
    /// Channel pattern the key may publish to; repeatable.
    #[arg(long = "publish", value_name = "PATTERN")]
    publish: Vec<String>,
    /// Channel pattern the key may subscribe to and read the history of; repeatable.
    #[arg(long = "subscribe", value_name = "PATTERN")]
    subscribe: Vec<String>,
    /// Let the key use the admin API.
    #[arg(long)]
    admin: bool,
    /// Print only the SHA-256 (hex) of an existing key, for its `sha256` entry; `-` reads the
    /// key from standard input, which keeps it out of the shell history.
    #[arg(long, value_name = "KEY", conflicts_with_all = ["name", "publish", "subscribe", "admin"])]
    hash: Option<String>,
}

/// Generates a key and prints it with its config entry, or prints the hash of `--hash`.
pub(crate) fn run(args: ApiKeyArgs) -> anyhow::Result<()> {
    if let Some(key) = args.hash {
        return failure::print_line(&hash_api_key(&key_to_hash(key)?));
    }
    let Some(name) = args.name else { bail!("--name is required") };
    let key = generate_api_key();
    let entry = ApiKeyConfig {
        name,
        sha256: hash_api_key(&key),
        publish: args.publish,
        subscribe: args.subscribe,
        admin: args.admin,
    };
    // Validated exactly as the server will, so that a typo in a pattern shows up now rather
    // than when the server refuses to start.
    Authenticator::new(&AuthConfig { api_keys: vec![entry.clone()], ..AuthConfig::default() })
        .context("the key's settings are invalid")?;
    if entry.publish.is_empty() && entry.subscribe.is_empty() && !entry.admin {
        eprintln!(
            "livehub apikey: warning: without --publish, --subscribe or --admin, the key grants nothing"
        );
    }
    failure::print_text(&format!(
        "key:    {key}  (give this to the publisher; it is shown only once and stored nowhere)\n\
         config: add this to the server's livehub.toml:\n\n{}",
        config_entry(&entry)
    ))
}

/// The key to hash: the argument, or standard input without its final line break for `-`.
fn key_to_hash(arg: String) -> anyhow::Result<String> {
    let key = if arg == "-" {
        let input = std::io::read_to_string(std::io::stdin()).context("reading standard input")?;
        input.trim_end_matches(['\r', '\n']).to_owned()
    } else {
        arg
    };
    if key.is_empty() {
        bail!("the key is empty");
    }
    if key.len() > MAX_API_KEY_LEN {
        bail!("the server never accepts keys longer than {MAX_API_KEY_LEN} bytes");
    }
    Ok(key)
}

/// The `[[auth.api_keys]]` TOML entry for `entry`.
fn config_entry(entry: &ApiKeyConfig) -> String {
    let mut out = String::from("[[auth.api_keys]]\n");
    // Writing to a String cannot fail.
    let _ = writeln!(out, "name = {}", toml_string(&entry.name));
    let _ = writeln!(out, "sha256 = {}", toml_string(&entry.sha256));
    for (field, patterns) in [("publish", &entry.publish), ("subscribe", &entry.subscribe)] {
        if !patterns.is_empty() {
            let items: Vec<String> = patterns.iter().map(|p| toml_string(p)).collect();
            let _ = writeln!(out, "{field} = [{}]", items.join(", "));
        }
    }
    if entry.admin {
        out.push_str("admin = true\n");
    }
    out
}

/// `text` as a TOML basic string.
fn toml_string(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04X}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_entry_is_toml_for_the_auth_section() {
        let entry = ApiKeyConfig {
            name: "odd \"name\"\\\u{7f}\n".into(),
            sha256: hash_api_key("k"),
            publish: vec!["sensors/#".into(), "x/+".into()],
            subscribe: vec!["sensors/#".into()],
            admin: true,
        };
        let parsed = livehub_server::Config::from_toml(&config_entry(&entry)).expect("valid TOML");
        assert_eq!(parsed.auth.api_keys, [entry]);
    }

    #[test]
    fn empty_lists_and_flags_are_left_out() {
        let entry = ApiKeyConfig {
            name: "n".into(),
            sha256: hash_api_key("k"),
            publish: vec![],
            subscribe: vec![],
            admin: false,
        };
        let text = config_entry(&entry);
        assert_eq!(text.lines().count(), 3, "{text}");
        assert_eq!(livehub_server::Config::from_toml(&text).expect("valid").auth.api_keys, [entry]);
    }

    #[test]
    fn refuses_keys_the_server_never_accepts() {
        assert!(key_to_hash(String::new()).is_err());
        assert!(key_to_hash("k".repeat(MAX_API_KEY_LEN + 1)).is_err());
        assert_eq!(key_to_hash("lh_x".into()).expect("ok"), "lh_x");
    }
}
