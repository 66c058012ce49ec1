//! How to reach the Confluent-compatible schema registry.

/// Schema registry location and credentials. Flatten into a service's clap config.
#[derive(clap::Args, Debug, Clone)]
pub struct RegistryArgs {
    /// Base URL of the registry (Confluent REST API).
    #[arg(
        long = "schema-registry-url",
        env = "SCHEMA_REGISTRY_URL",
        default_value = "http://127.0.0.1:8081"
    )]
    pub url: String,
    /// Basic auth as `user:password` (Confluent's `basic.auth.user.info`).
    #[arg(
        long = "schema-registry-basic-auth-user-info",
        env = "SCHEMA_REGISTRY_BASIC_AUTH_USER_INFO",
        hide_env_values = true
    )]
    pub basic_auth_user_info: Option<String>,
}

impl RegistryArgs {
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            basic_auth_user_info: None,
        }
    }

    /// `(user, password)` when basic auth is configured.
    pub fn basic_auth(&self) -> Option<(String, Option<String>)> {
        let info = self.basic_auth_user_info.as_ref().filter(|i| !i.is_empty());
        info.map(|info| match info.split_once(':') {
            Some((user, password)) => (user.to_owned(), Some(password.to_owned())),
            None => (info.clone(), None),
        })
    }

    /// One line describing where the client connects, with secrets masked.
    pub fn describe(&self) -> String {
        match self.basic_auth() {
            Some((user, _)) => format!("schema-registry={} user={user} password=***", self.url),
            None => format!("schema-registry={}", self.url),
        }
    }
}
