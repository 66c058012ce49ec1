//! The pageview event: JSON on topic `pageviews`, key = the viewer's user id as text.
//!
//! Same shape as the original demo's load generator wrote, so dashboards and
//! queries written for it keep working:
//! `{"user_id": 3290, "url": "/products/257", "channel": "social", "received_at": 1634651213}`
//! with `received_at` in Unix seconds.

use serde::{Deserialize, Serialize};

/// The topic the demo's pageviews go to.
pub const PAGEVIEWS_TOPIC: &str = "pageviews";

/// The five acquisition channels of the original demo.
pub const CHANNELS: [&str; 5] = [
    "organic search",
    "paid search",
    "referral",
    "social",
    "display",
];

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pageview {
    pub user_id: u64,
    pub url: String,
    pub channel: String,
    /// Unix seconds.
    pub received_at: i64,
}

/// What a pageview looked at, parsed from its URL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PageviewTarget {
    Product(u64),
    Profile(u64),
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PageviewError {
    #[error("pageview url {0:?} is neither /products/<id> nor /profiles/<id>")]
    UnknownUrl(String),
}

impl Pageview {
    /// The Kafka key: the viewer's user id as decimal text.
    pub fn key(&self) -> String {
        self.user_id.to_string()
    }

    pub fn target(&self) -> Result<PageviewTarget, PageviewError> {
        let unknown = || PageviewError::UnknownUrl(self.url.clone());
        let (kind, id) = self
            .url
            .strip_prefix('/')
            .and_then(|rest| rest.split_once('/'))
            .ok_or_else(unknown)?;
        let id: u64 = id.parse().map_err(|_| unknown())?;
        match kind {
            "products" => Ok(PageviewTarget::Product(id)),
            "profiles" => Ok(PageviewTarget::Profile(id)),
            _ => Err(unknown()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_shape_matches_the_original_demo() {
        let pv = Pageview {
            user_id: 3290,
            url: "/products/257".into(),
            channel: "social".into(),
            received_at: 1634651213,
        };
        assert_eq!(
            serde_json::to_string(&pv).unwrap(),
            r#"{"user_id":3290,"url":"/products/257","channel":"social","received_at":1634651213}"#
        );
        assert_eq!(pv.key(), "3290");
        assert_eq!(pv.target(), Ok(PageviewTarget::Product(257)));
    }

    #[test]
    fn targets_are_parsed_strictly() {
        let mut pv = Pageview {
            user_id: 1,
            url: "/profiles/12".into(),
            channel: "display".into(),
            received_at: 0,
        };
        assert_eq!(pv.target(), Ok(PageviewTarget::Profile(12)));
        for bad in [
            "/products/",
            "/products/x",
            "/cart/1",
            "products/1",
            "/products/1/2",
        ] {
            pv.url = bad.into();
            assert!(pv.target().is_err(), "{bad} should not parse");
        }
    }
}
