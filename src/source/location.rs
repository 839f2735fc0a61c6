//! Where the policies come from, as `--policy` (or `ECS_REBALANCER_POLICY`) names it: a plain path, or a git source
//! `git+https://host/org/repo.git?ref=main&path=policies/` (`git+http://…`, `git+file:///srv/policies.git`).

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

/// A policy source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// A file or a folder on this machine, re-read when it changes.
    Path(PathBuf),
    /// A branch (or any ref) of a git repository, fetched on start and every `--policy-poll`.
    Git(GitLocation),
}

/// A git source. It never holds a credential: the URL may name a user, never a password (a token comes from the
/// environment or from Secrets Manager, see `source::credential`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GitLocation {
    /// What git fetches from: `https://…`, `http://…` or `file://…`.
    pub url: String,
    /// The user the URL names (`https://user@host/…`), the HTTP user a token is sent as.
    pub user: Option<String>,
    /// The ref to follow (`main`, `refs/heads/main`, a tag); `None`: the remote's HEAD.
    pub reference: Option<String>,
    /// The folder (or file) inside the repository that holds the policies, without leading or trailing `/`; empty:
    /// the root.
    pub path: String,
}

/// Why a `--policy` value is not a source. It never repeats a password the value held.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("--policy {shown}: {why}")]
pub struct LocationError {
    shown: String,
    why: String,
}

impl FromStr for Location {
    type Err = LocationError;

    fn from_str(s: &str) -> Result<Location, LocationError> {
        match s.strip_prefix("git+") {
            Some(rest) => GitLocation::parse(rest)
                .map(Location::Git)
                .map_err(|why| LocationError {
                    shown: redact_password(s),
                    why,
                }),
            None => Ok(Location::Path(PathBuf::from(s))),
        }
    }
}

impl GitLocation {
    fn parse(rest: &str) -> Result<GitLocation, String> {
        let (url, query) = rest.split_once('?').unwrap_or((rest, ""));
        let Some((scheme, after)) = url.split_once("://") else {
            return Err("a git source is git+https://, git+http:// or git+file:// followed by the repository".into());
        };
        if !matches!(scheme, "https" | "http" | "file") {
            return Err(format!(
                "unsupported scheme {scheme:?}: use git+https://, git+http:// or git+file://"
            ));
        }
        let authority = after.split('/').next().unwrap_or("");
        let user = match authority.rsplit_once('@') {
            Some((userinfo, _)) if userinfo.contains(':') => {
                return Err(
                    "the URL holds a password; give the token through ECS_REBALANCER_POLICY_TOKEN or \
                     --policy-token-secret instead, so it never appears in logs or the ledger"
                        .into(),
                )
            }
            Some((userinfo, _)) => Some(userinfo.to_owned()),
            None => None,
        };
        if after.len() <= authority.len() + 1 && scheme != "file" {
            return Err("the URL names no repository".into());
        }
        let mut reference = None;
        let mut path = String::new();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            match key {
                "ref" if !value.is_empty() => reference = Some(value.to_owned()),
                "ref" => return Err("ref= is empty; leave it out to follow the remote's HEAD".into()),
                "path" => path = value.trim_matches('/').to_owned(),
                other => {
                    return Err(format!(
                        "unknown parameter {other:?}: a git source takes ref= and path="
                    ))
                }
            }
        }
        if path.split('/').any(|part| part == ".." || part == ".") {
            return Err(format!(
                "path={path:?} must name a folder inside the repository, without . or .."
            ));
        }
        Ok(GitLocation {
            url: url.to_owned(),
            user,
            reference,
            path,
        })
    }

    /// Whether a credential may be sent to this URL: over https, or over http to this machine only (127.0.0.1,
    /// `::1`, `localhost`), never in clear text across a network.
    pub fn may_carry_credentials(&self) -> bool {
        let Some(rest) = self.url.strip_prefix("http://") else {
            return true; // https, or file:// (which sends nothing)
        };
        let authority = rest.split('/').next().unwrap_or("");
        let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
        let host = match host_port.strip_prefix('[') {
            Some(v6) => v6.split(']').next().unwrap_or(""),
            None => host_port.split(':').next().unwrap_or(""),
        };
        matches!(host, "127.0.0.1" | "::1" | "localhost")
    }

    /// The refspec that fetches the followed ref into `local`, forced: a rewritten branch is followed too.
    pub fn refspec(&self, local: &str) -> String {
        format!("+{}:{local}", self.reference.as_deref().unwrap_or("HEAD"))
    }
}

impl fmt::Display for GitLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "git+{}", self.url)?;
        let mut sep = '?';
        if let Some(r) = &self.reference {
            write!(f, "{sep}ref={r}")?;
            sep = '&';
        }
        if !self.path.is_empty() {
            write!(f, "{sep}path={}", self.path)?;
        }
        Ok(())
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::Path(p) => write!(f, "{}", p.display()),
            Location::Git(g) => g.fmt(f),
        }
    }
}

/// `s` with the password of a `scheme://user:password@host` URL replaced by `***`.
fn redact_password(s: &str) -> String {
    let Some((scheme, after)) = s.split_once("://") else {
        return s.to_owned();
    };
    let authority_end = after.find('/').unwrap_or(after.len());
    let (authority, rest) = after.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((userinfo, host)) if userinfo.contains(':') => {
            let user = userinfo.split(':').next().unwrap_or("");
            format!("{scheme}://{user}:***@{host}{rest}")
        }
        _ => s.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn git(s: &str) -> GitLocation {
        match s.parse::<Location>() {
            Ok(Location::Git(g)) => g,
            other => panic!("{s}: {other:?}"),
        }
    }

    #[test]
    fn the_documented_forms_parse_and_print_back() {
        let g = git("git+https://host/org/repo.git?ref=main&path=policies/");
        assert_eq!(g.url, "https://host/org/repo.git");
        assert_eq!(g.reference.as_deref(), Some("main"));
        assert_eq!(g.path, "policies");
        assert_eq!(g.to_string(), "git+https://host/org/repo.git?ref=main&path=policies");
        assert_eq!(g.refspec("refs/policy/tip"), "+main:refs/policy/tip");

        let g = git("git+file:///srv/policies.git?ref=main");
        assert_eq!((g.url.as_str(), g.path.as_str()), ("file:///srv/policies.git", ""));
        let g = git("git+http://127.0.0.1:8080/p.git");
        assert_eq!(g.reference, None, "the remote's HEAD");
        assert_eq!(g.refspec("refs/policy/tip"), "+HEAD:refs/policy/tip");
        let g = git("git+https://bot@host/org/repo.git");
        assert_eq!(g.user.as_deref(), Some("bot"));
        assert!(g.may_carry_credentials());
        assert!(!git("git+http://host/repo.git").may_carry_credentials());
        assert!(git("git+http://127.0.0.1:8080/repo.git").may_carry_credentials());
        assert!(git("git+http://[::1]:8080/repo.git").may_carry_credentials());
        assert_eq!("policies/".parse::<Location>(), Ok(Location::Path("policies/".into())));
    }

    #[test]
    fn a_password_in_the_url_is_refused_without_being_repeated() {
        let e = "git+https://bot:s3cr3t@host/org/repo.git?ref=main"
            .parse::<Location>()
            .unwrap_err();
        let text = e.to_string();
        assert!(!text.contains("s3cr3t"), "{text}");
        assert!(
            text.contains("bot:***@host") && text.contains("ECS_REBALANCER_POLICY_TOKEN"),
            "{text}"
        );
    }

    #[test]
    fn bad_sources_say_what_is_wrong() {
        for (s, says) in [
            ("git+ssh://host/repo.git", "unsupported scheme"),
            ("git+host/repo.git", "git+https://"),
            ("git+https://host/repo.git?branch=main", "unknown parameter \"branch\""),
            ("git+https://host/repo.git?ref=", "ref= is empty"),
            ("git+https://host/repo.git?path=../etc", "without . or .."),
            ("git+https://host", "no repository"),
        ] {
            let e = s.parse::<Location>().unwrap_err().to_string();
            assert!(e.contains(says), "{s}: {e}");
        }
    }
}
