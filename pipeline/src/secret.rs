//! Credentials that never reach a log.
//!
//! Every password a service takes (Kafka SASL, registry basic auth, the
//! password inside a database URL) is held in a [`Secret`] or a [`SecretUrl`]:
//! `Debug` and `Display` mask it, so deriving `Debug` on an args struct or
//! logging it with `?config` cannot leak it, and the clear text is only
//! reachable through an explicit [`Secret::expose`] at the one place that hands
//! it to a client library.
//!
//! [`mask_url`] is the single masker for connection strings: URLs with
//! userinfo (`postgres://u:pw@h/db`), URL query parameters
//! (`?password=pw`), and libpq/ODBC-style key=value strings
//! (`host=h password=pw`, `Password=pw;Host=h`).

use std::convert::Infallible;
use std::fmt;
use std::str::FromStr;

/// What a masked secret looks like.
pub const MASK: &str = "***";

/// A password or token. `Debug`/`Display` print `***`; [`Secret::expose`]
/// returns the clear text.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The clear text: only for handing to the client that needs it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret({MASK})")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(MASK)
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Self(value)
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Self {
        Self(value.to_owned())
    }
}

impl FromStr for Secret {
    type Err = Infallible;
    fn from_str(s: &str) -> Result<Self, Infallible> {
        Ok(Self(s.to_owned()))
    }
}

/// A connection string (URL or key=value) that may carry a password.
/// `Debug`/`Display` print it through [`mask_url`]; [`SecretUrl::expose`]
/// returns it whole.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct SecretUrl(String);

impl SecretUrl {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The clear text: only for handing to the client that connects.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The string with any password masked (what `Display` prints).
    pub fn masked(&self) -> String {
        mask_url(&self.0)
    }
}

impl fmt::Debug for SecretUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.masked())
    }
}

impl fmt::Display for SecretUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.masked())
    }
}

impl From<String> for SecretUrl {
    fn from(value: String) -> Self {
        Self(value)
    }
}

impl From<&str> for SecretUrl {
    fn from(value: &str) -> Self {
        Self(value.to_owned())
    }
}

impl FromStr for SecretUrl {
    type Err = Infallible;
    fn from_str(s: &str) -> Result<Self, Infallible> {
        Ok(Self(s.to_owned()))
    }
}

/// Keys whose values are secrets in query strings and key=value strings.
fn is_secret_key(key: &str) -> bool {
    let key = key.trim().to_ascii_lowercase();
    key.contains("password") || key == "pwd" || key == "pass" || key.contains("secret")
}

/// `text` with every password replaced by `***`: the userinfo password of a
/// URL (`scheme://user:pw@host`), password-like query parameters
/// (`?password=pw`), and password-like keys of a key=value connection string
/// (`host=h password=pw`, quoted values included, `;` or space separated).
pub fn mask_url(text: &str) -> String {
    match text.split_once("://") {
        Some((scheme, rest)) if !scheme.is_empty() && !scheme.contains(char::is_whitespace) => {
            format!("{scheme}://{}", mask_url_rest(rest))
        }
        _ => mask_key_values(text),
    }
}

/// The password in the userinfo of `scheme://user:password@host...`, if any.
pub fn url_password(url: &str) -> Option<&str> {
    let (_, rest) = url.split_once("://")?;
    let authority = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
    let (userinfo, _) = authority.rsplit_once('@')?;
    userinfo.split_once(':').map(|(_, password)| password)
}

/// The part of a URL after `scheme://`.
fn mask_url_rest(rest: &str) -> String {
    // The userinfo ends at the LAST `@` before the path: a password may hold
    // an unencoded `@`, a host never does.
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let authority = match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{user}:{MASK}@{host}"),
            None => format!("{userinfo}@{host}"),
        },
        None => authority.to_owned(),
    };
    let tail = match tail.split_once('?') {
        Some((path, query)) => {
            let (query, fragment) = match query.split_once('#') {
                Some((q, f)) => (q, Some(f)),
                None => (query, None),
            };
            let query: Vec<String> = query
                .split('&')
                .map(|pair| match pair.split_once('=') {
                    Some((k, v)) if is_secret_key(k) && !v.is_empty() => format!("{k}={MASK}"),
                    _ => pair.to_owned(),
                })
                .collect();
            let mut out = format!("{path}?{}", query.join("&"));
            if let Some(f) = fragment {
                out.push('#');
                out.push_str(f);
            }
            out
        }
        None => tail.to_owned(),
    };
    format!("{authority}{tail}")
}

/// libpq (`k=v k='v w'`, spaces allowed around `=`) and ODBC/ADO
/// (`k=v;k=v`) connection strings.
fn mask_key_values(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        out.push(c);
        if c != '=' {
            continue;
        }
        // The key is the last word before `=`.
        let key = text[..i]
            .trim_end()
            .rsplit(|c: char| c.is_whitespace() || c == ';')
            .next()
            .unwrap_or("");
        while let Some(&(_, ' ')) = chars.peek() {
            out.push(' ');
            chars.next();
        }
        let mut value = String::new();
        let quote = match chars.peek() {
            Some(&(_, q @ ('\'' | '"'))) => {
                chars.next();
                value.push(q);
                Some(q)
            }
            _ => None,
        };
        while let Some(&(_, v)) = chars.peek() {
            if quote.is_none() && (v.is_whitespace() || v == ';') {
                break;
            }
            value.push(v);
            chars.next();
            if v == '\\' {
                if let Some((_, escaped)) = chars.next() {
                    value.push(escaped);
                }
            } else if Some(v) == quote && value.len() > 1 {
                break;
            }
        }
        if is_secret_key(key) && !value.is_empty() {
            out.push_str(MASK);
        } else {
            out.push_str(&value);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_masks_debug_and_display_and_exposes_on_request() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s}"), "***");
        assert_eq!(format!("{s:?}"), "Secret(***)");
        assert_eq!(format!("{:?}", Some(s.clone())), "Some(Secret(***))");
        assert_eq!(s.expose(), "hunter2");
        assert_eq!("x".parse::<Secret>().unwrap().expose(), "x");
    }

    #[test]
    fn secret_url_masks_only_the_password() {
        let u = SecretUrl::new("postgres://app:hunter2@db:5432/shop");
        assert_eq!(u.to_string(), "postgres://app:***@db:5432/shop");
        assert_eq!(format!("{u:?}"), "\"postgres://app:***@db:5432/shop\"");
        assert_eq!(u.expose(), "postgres://app:hunter2@db:5432/shop");
    }

    #[test]
    fn urls_with_userinfo() {
        for (url, masked) in [
            ("postgres://u:secret@h:5/db", "postgres://u:***@h:5/db"),
            ("postgres://u@h/db", "postgres://u@h/db"),
            ("postgres://h/db", "postgres://h/db"),
            (
                "http://u:p%40ss@registry:8081",
                "http://u:***@registry:8081",
            ),
            // An unencoded `@` in the password: everything up to the last one.
            (
                "mysql://root:a@b@127.0.0.1:3306",
                "mysql://root:***@127.0.0.1:3306",
            ),
            ("mysql://:pw@h", "mysql://:***@h"),
            (
                "http://u:pw@h/path?x=1#frag",
                "http://u:***@h/path?x=1#frag",
            ),
        ] {
            assert_eq!(mask_url(url), masked, "{url}");
        }
    }

    #[test]
    fn url_passwords_are_found() {
        assert_eq!(url_password("http://u:p@w@h:1/x"), Some("p@w"));
        assert_eq!(url_password("http://u@h:1/x"), None);
        assert_eq!(url_password("http://h/a@b"), None);
    }

    #[test]
    fn url_query_passwords() {
        assert_eq!(
            mask_url("postgres://h/db?user=u&password=pw&sslmode=require"),
            "postgres://h/db?user=u&password=***&sslmode=require"
        );
        assert_eq!(
            mask_url("postgresql:///db?host=/run&sslpassword=k#x"),
            "postgresql:///db?host=/run&sslpassword=***#x"
        );
    }

    #[test]
    fn key_value_connection_strings() {
        for (text, masked) in [
            (
                "host=h user=u password=pw dbname=d",
                "host=h user=u password=*** dbname=d",
            ),
            (
                "host=h password='p w\\' x' dbname=d",
                "host=h password=*** dbname=d",
            ),
            ("password = pw host=h", "password = *** host=h"),
            (
                "Server=h;User Id=u;Password=pw;Database=d",
                "Server=h;User Id=u;Password=***;Database=d",
            ),
            ("host=h PWD=pw", "host=h PWD=***"),
            ("host=h password=", "host=h password="),
            ("plain text", "plain text"),
        ] {
            assert_eq!(mask_url(text), masked, "{text}");
        }
    }
}
