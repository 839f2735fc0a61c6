//! The credential a git policy source is fetched with: an HTTPS token from an environment variable, or from an AWS
//! Secrets Manager secret. A [`Token`] prints as `***` (`Debug` and `Display`), it is sent only as the password of
//! HTTP basic authentication, and it never enters a URL, a log line, a metric label, an error or the ledger.

use std::fmt;
use std::time::Duration;

use tokio::time::Instant;

use crate::aws::call::{classify, CallError};

/// The variable a token is read from by default.
pub const TOKEN_VARIABLE: &str = "ECS_REBALANCER_POLICY_TOKEN";

/// How long a token read from Secrets Manager is used before it is read again (a rotated token is picked up within
/// this, or at once after a fetch is refused).
pub const SECRET_REREAD: Duration = Duration::from_secs(15 * 60);

/// A secret. Its `Debug` and `Display` print `***`; [`Token::expose`] is the one way to read it.
#[derive(Clone, PartialEq, Eq)]
pub struct Token(String);

impl Token {
    pub fn new(value: impl Into<String>) -> Token {
        Token(value.into())
    }

    /// The secret itself: only for the HTTP authentication of a fetch.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// `text` with every occurrence of the token replaced by `***`: applied to every error text a fetch returns,
    /// in case a server or a library ever echoes it.
    pub fn scrub(&self, text: &str) -> String {
        if self.0.is_empty() {
            text.to_owned()
        } else {
            text.replace(&self.0, "***")
        }
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(***)")
    }
}

impl fmt::Display for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// Where the token comes from.
pub enum Credential {
    /// No token: the repository is public, or reached over `file://`.
    None,
    /// Read once, at start-up, from an environment variable.
    Env(Token),
    /// Read from Secrets Manager (`SecretString`, trimmed), and read again every [`SECRET_REREAD`] and after a
    /// fetch was refused.
    Secret {
        client: aws_sdk_secretsmanager::Client,
        secret_id: String,
        cached: Option<(Token, Instant)>,
    },
}

/// Why the token could not be read. It names the secret, never its value.
#[derive(Debug, thiserror::Error)]
pub enum CredentialError {
    #[error("reading the token from Secrets Manager secret {secret_id:?} failed: {source}")]
    Secret {
        secret_id: String,
        #[source]
        source: CallError,
    },
    #[error("Secrets Manager secret {0:?} has no SecretString (a binary secret is not a token)")]
    NotText(String),
}

impl Credential {
    /// The credential `--policy-token-secret` (when given) or the token variable (when set and not empty) name.
    pub fn from_settings(conf: &aws_config::SdkConfig, secret_id: Option<&str>) -> Credential {
        if let Some(id) = secret_id {
            return Credential::Secret {
                client: aws_sdk_secretsmanager::Client::new(conf),
                secret_id: id.to_owned(),
                cached: None,
            };
        }
        match std::env::var(TOKEN_VARIABLE) {
            Ok(v) if !v.trim().is_empty() => Credential::Env(Token::new(v.trim())),
            _ => Credential::None,
        }
    }

    /// The token to fetch with now.
    pub async fn token(&mut self) -> Result<Option<Token>, CredentialError> {
        match self {
            Credential::None => Ok(None),
            Credential::Env(t) => Ok(Some(t.clone())),
            Credential::Secret {
                client,
                secret_id,
                cached,
            } => {
                if let Some((token, read_at)) = cached {
                    if read_at.elapsed() < SECRET_REREAD {
                        return Ok(Some(token.clone()));
                    }
                }
                let out = client
                    .get_secret_value()
                    .secret_id(secret_id.as_str())
                    .send()
                    .await
                    .map_err(|e| CredentialError::Secret {
                        secret_id: secret_id.clone(),
                        source: classify("GetSecretValue", e),
                    })?;
                let value = out
                    .secret_string()
                    .ok_or_else(|| CredentialError::NotText(secret_id.clone()))?;
                let token = Token::new(value.trim());
                *cached = Some((token.clone(), Instant::now()));
                Ok(Some(token))
            }
        }
    }

    /// Forgets a cached secret, so the next fetch reads it again (after the server refused it: it may have rotated).
    pub fn forget(&mut self) {
        if let Credential::Secret { cached, .. } = self {
            *cached = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_never_prints_and_is_scrubbed_from_text() {
        let t = Token::new("ghp_abc123");
        assert_eq!(format!("{t} {t:?}"), "*** Token(***)");
        assert_eq!(t.scrub("401 for ghp_abc123 at host"), "401 for *** at host");
        assert_eq!(Token::new("").scrub("x"), "x");
    }
}
