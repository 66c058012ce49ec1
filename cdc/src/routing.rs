//! Kafka Connect's `RegexRouter` transform
//! (`transforms.<name>.type=org.apache.kafka.connect.transforms.RegexRouter`),
//! the transform Debezium users put on the connector to rename its topics:
//! drop the `topic.prefix`, merge shards (`shop_\d+` into one topic), or add
//! an environment suffix.
//!
//! As in Connect, it applies to every record the connector writes: change
//! events and their tombstones, schema changes, heartbeats and transaction
//! metadata. A topic the regex matches as a whole becomes the replacement;
//! any other topic is left alone. The value and key schemas keep their names
//! (`<prefix>.<db>.<table>.Value` ...); only the topic, and with Confluent's
//! default `TopicNameStrategy` the subjects `<topic>-key` / `<topic>-value`,
//! change. Topics merged into one share those subjects, as under Connect.
//!
//! The regex is Java's in Connect and Rust's `regex` crate here: the two
//! agree on everything topic patterns use (classes, groups, quantifiers,
//! alternation, escapes); look-around and back-references do not compile
//! and are refused at start. The replacement follows Java's
//! `Matcher.replaceFirst` rules exactly: `$n` (the longest group number
//! that exists), `${name}`, and `\` before a character to take it
//! literally; a group that did not take part adds nothing.

use std::borrow::Cow;

use regex::{Captures, Regex};

/// One piece of a parsed replacement.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Text(String),
    Group(usize),
    Named(String),
}

/// A configured `RegexRouter`.
#[derive(Debug, Clone)]
pub struct RegexRouter {
    regex: Regex,
    /// As written, for logs.
    pub pattern: String,
    pub replacement: String,
    pieces: Vec<Piece>,
}

impl RegexRouter {
    /// The class name `transforms.<name>.type` names.
    pub const TYPE: &'static str = "org.apache.kafka.connect.transforms.RegexRouter";

    /// Compiles `regex` (matched against the whole topic) and parses
    /// `replacement`; the error says what is wrong with which of the two.
    pub fn new(regex: &str, replacement: &str) -> Result<Self, RouterError> {
        let compiled = Regex::new(&format!("^(?:{regex})$")).map_err(|e| RouterError::Regex {
            reason: match e {
                regex::Error::Syntax(s) => s.lines().last().unwrap_or_default().to_owned(),
                other => other.to_string(),
            },
        })?;
        let pieces = parse_replacement(replacement, &compiled)?;
        Ok(Self {
            regex: compiled,
            pattern: regex.to_owned(),
            replacement: replacement.to_owned(),
            pieces,
        })
    }

    /// The topic a record for `topic` goes to.
    pub fn route<'a>(&self, topic: &'a str) -> Cow<'a, str> {
        match self.regex.captures(topic) {
            Some(caps) => Cow::Owned(self.expand(&caps)),
            None => Cow::Borrowed(topic),
        }
    }

    fn expand(&self, caps: &Captures<'_>) -> String {
        let mut out = String::new();
        for piece in &self.pieces {
            match piece {
                Piece::Text(text) => out.push_str(text),
                Piece::Group(n) => out.push_str(caps.get(*n).map_or("", |m| m.as_str())),
                Piece::Named(name) => out.push_str(caps.name(name).map_or("", |m| m.as_str())),
            }
        }
        out
    }
}

/// Applies routers in the order `transforms` lists them.
pub fn route_all<'a>(routers: &[RegexRouter], topic: &'a str) -> Cow<'a, str> {
    let mut out = Cow::Borrowed(topic);
    for router in routers {
        let routed = match router.route(&out) {
            Cow::Owned(routed) => Some(routed),
            Cow::Borrowed(_) => None,
        };
        if let Some(routed) = routed {
            out = Cow::Owned(routed);
        }
    }
    out
}

/// Why a `RegexRouter` setting is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RouterError {
    #[error(
        "{reason} (cdc's regexes have no look-around or back-references; the rest of Java's \
         syntax topic patterns use is the same)"
    )]
    Regex { reason: String },
    #[error("{0}")]
    Replacement(String),
}

/// Java's `Matcher.appendExpandedReplacement`, checked against `regex`.
fn parse_replacement(replacement: &str, regex: &Regex) -> Result<Vec<Piece>, RouterError> {
    let groups = regex.captures_len() - 1;
    let bad = |what: String| Err(RouterError::Replacement(what));
    let mut pieces = Vec::new();
    let mut text = String::new();
    let mut chars = replacement.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some(escaped) => text.push(escaped),
                None => return bad("character to be escaped is missing (a \\ at the end)".into()),
            },
            '$' => {
                if !text.is_empty() {
                    pieces.push(Piece::Text(std::mem::take(&mut text)));
                }
                match chars.next() {
                    Some('{') => {
                        let mut name = String::new();
                        loop {
                            match chars.next() {
                                Some('}') => break,
                                Some(c) if c.is_ascii_alphanumeric() => name.push(c),
                                _ => {
                                    return bad(format!(
                                    "${{{name}: a group name is letters and digits, closed by }}"
                                ))
                                }
                            }
                        }
                        if !name.starts_with(|c: char| c.is_ascii_alphabetic()) {
                            return bad(format!("${{{name}}}: a group name starts with a letter"));
                        }
                        if !regex.capture_names().flatten().any(|n| n == name) {
                            return bad(format!("${{{name}}}: the regex has no group <{name}>"));
                        }
                        pieces.push(Piece::Named(name));
                    }
                    Some(d) if d.is_ascii_digit() => {
                        let mut n = d.to_digit(10).unwrap_or_default() as usize;
                        if n > groups {
                            return bad(format!("${n}: the regex has {groups} groups"));
                        }
                        // Java takes further digits while the number stays
                        // a group that exists: with 2 groups `$12` is group
                        // 1 and then "2".
                        while let Some(next) = chars.peek().and_then(|c| c.to_digit(10)) {
                            let longer = n * 10 + next as usize;
                            if longer > groups {
                                break;
                            }
                            n = longer;
                            chars.next();
                        }
                        pieces.push(Piece::Group(n));
                    }
                    _ => {
                        return bad(
                            "a $ must be followed by a group number or {name}; write \\$ for \
                             a literal $"
                                .into(),
                        )
                    }
                }
            }
            c => text.push(c),
        }
    }
    if !text.is_empty() {
        pieces.push(Piece::Text(text));
    }
    Ok(pieces)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_topic_matches_are_replaced_and_others_kept() {
        let r = RegexRouter::new(r"([^.]+)\.([^.]+)\.([^.]+)", "$3").unwrap();
        assert_eq!(r.route("mysql.shop.users"), "users");
        // Not a whole match: unchanged (the schema-change topic `mysql`).
        assert_eq!(r.route("mysql"), "mysql");
        assert!(matches!(r.route("mysql"), Cow::Borrowed(_)));
        let shards = RegexRouter::new(r"mysql\.shop_\d+\.(.*)", "mysql.shop.$1").unwrap();
        assert_eq!(shards.route("mysql.shop_07.orders"), "mysql.shop.orders");
        // Anchored at both ends, as Java's `matches()`.
        assert_eq!(
            shards.route("x.mysql.shop_07.orders"),
            "x.mysql.shop_07.orders"
        );
    }

    #[test]
    fn replacements_follow_javas_rules() {
        let two = RegexRouter::new(r"(a)(b)", "$12-${x}").unwrap_err();
        assert_eq!(
            two,
            RouterError::Replacement("${x}: the regex has no group <x>".into())
        );
        // `$12` with two groups: group 1, then "2".
        let r = RegexRouter::new(r"(a)(b)", r"$12\$\\$2").unwrap();
        assert_eq!(r.route("ab"), r"a2$\b");
        let named = RegexRouter::new(r"(?<db>[^.]+)\.(x)?(.+)", "${db}_$2$3").unwrap();
        // Group 2 did not take part: nothing.
        assert_eq!(named.route("shop.users"), "shop_users");
        let twelve = RegexRouter::new("(a)(b)(c)(d)(e)(f)(g)(h)(i)(j)(k)(l)", "$12$1").unwrap();
        assert_eq!(twelve.route("abcdefghijkl"), "la");
        for (replacement, error) in [
            ("$", "a $ must be followed"),
            ("$x", "a $ must be followed"),
            ("$3", "$3: the regex has 2 groups"),
            ("a\\", "a \\ at the end"),
            ("${a", "closed by }"),
            ("${1a}", "starts with a letter"),
        ] {
            let err = RegexRouter::new(r"(a)(b)", replacement).unwrap_err();
            assert!(err.to_string().contains(error), "{replacement}: {err}");
        }
        let err = RegexRouter::new(r"(?=a)b", "x").unwrap_err();
        assert!(err.to_string().contains("look-around"), "{err}");
    }

    #[test]
    fn routers_apply_in_order() {
        let drop_prefix = RegexRouter::new(r"mysql\.(.*)", "$1").unwrap();
        let suffix = RegexRouter::new(r"(shop\..*)", "$1.v2").unwrap();
        let routers = [drop_prefix, suffix];
        assert_eq!(route_all(&routers, "mysql.shop.users"), "shop.users.v2");
        assert_eq!(route_all(&routers, "other"), "other");
        assert_eq!(route_all(&[], "mysql.shop.users"), "mysql.shop.users");
    }
}
