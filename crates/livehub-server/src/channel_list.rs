//! The value of a `channel=` query parameter (SSE, long polling): one name or pattern, or several
//! separated by commas. Names may hold commas too, so `\,` is a literal comma and `\\` a literal
//! backslash; repeating the parameter needs no escaping at all.

use crate::error::ApiError;

/// Splits `value` at its unescaped commas and unescapes each item; empty items are skipped, so
/// `a,,b,` is `a` and `b`. A backslash before anything but `,` or `\` is an error.
pub(crate) fn split(value: &str) -> Result<Vec<String>, ApiError> {
    // The common case, one plain name, is the value itself.
    if !value.contains([',', '\\']) {
        return Ok(if value.is_empty() { Vec::new() } else { vec![value.to_owned()] });
    }
    let mut names = Vec::new();
    let mut current = String::new();
    let mut chars = value.chars();
    while let Some(c) = chars.next() {
        match c {
            ',' => {
                if !current.is_empty() {
                    names.push(std::mem::take(&mut current));
                }
            }
            '\\' => match chars.next() {
                Some(escaped @ (',' | '\\')) => current.push(escaped),
                _ => {
                    return Err(ApiError::bad_request(
                        "in a channel list, a backslash must be followed by ',' or '\\'",
                    ))
                }
            },
            c => current.push(c),
        }
    }
    if !current.is_empty() {
        names.push(current);
    }
    Ok(names)
}

/// Joins names into one `channel=` value, escaping each: what clients do.
#[cfg(test)]
pub(crate) fn join<'a>(names: impl IntoIterator<Item = &'a str>) -> String {
    let escaped: Vec<String> =
        names.into_iter().map(|n| n.replace('\\', "\\\\").replace(',', "\\,")).collect();
    escaped.join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_at_unescaped_commas() {
        let table: &[(&str, &[&str])] = &[
            ("", &[]),
            ("a", &["a"]),
            ("a,b", &["a", "b"]),
            (",a,,b,", &["a", "b"]),
            ("a/b\\,c", &["a/b,c"]),
            ("a\\,,b", &["a,", "b"]),
            ("back\\\\slash,x", &["back\\slash", "x"]),
            ("\\\\,\\,", &["\\", ","]),
            ("x y,é/ü", &["x y", "é/ü"]),
            ("stocks/+,metrics/#", &["stocks/+", "metrics/#"]),
        ];
        for (value, want) in table {
            let got = split(value).unwrap_or_else(|e| panic!("{value:?}: {e:?}"));
            assert_eq!(got, *want, "{value:?}");
        }
    }

    #[test]
    fn a_stray_backslash_is_an_error() {
        for bad in ["a\\", "a\\b", "\\n", "a,\\"] {
            assert!(split(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn join_is_the_inverse() {
        let names = ["a,b", "c\\", "\\,", "plain", "x y"];
        assert_eq!(split(&join(names)).expect("splits"), names);
    }
}
