//! Fetching a git policy source with gitoxide (`gix`): a bare repository in a private temporary folder, one forced
//! fetch of the followed ref per poll, and the policy files read straight from the commit's tree. There is no working
//! tree, nothing to check out, merge or clean: a rewritten branch (a force-push) is followed like any other change.
//!
//! Blocking: callers run [`Fetcher::fetch`] on a blocking thread.

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;

use gix::bstr::ByteSlice as _;

use super::credential::Token;
use super::location::GitLocation;
use crate::policy::{self, Diagnostic, Diagnostics, PolicyFile, MAX_FILE_BYTES};

/// Where the followed ref is fetched to in the private repository.
const LOCAL_REF: &str = "refs/policy/tip";

/// A commit of the source and the policy files in it (or why they cannot be read: a revision with no policy folder
/// is an invalid revision, not a failed fetch).
#[derive(Debug, Clone)]
pub struct Fetched {
    /// The commit id, 40 hex digits.
    pub commit: String,
    pub files: Result<Vec<PolicyFile>, Diagnostics>,
}

/// Why a fetch gave no commit: the network, the server, authentication, or a ref that is not there. Its text never
/// holds the token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("fetching {source_name} failed: {why}")]
pub struct FetchError {
    source_name: String,
    why: String,
    /// The server refused the credentials (or asked for some and none were given).
    pub auth: bool,
}

/// A git source's private repository.
pub struct Fetcher {
    location: GitLocation,
    dir: tempfile::TempDir,
}

impl Fetcher {
    /// Makes the private bare repository (removed when the fetcher is dropped).
    pub fn new(location: GitLocation) -> std::io::Result<Fetcher> {
        let dir = tempfile::Builder::new().prefix("ecs-rebalancer-policy-").tempdir()?;
        gix::init_bare(dir.path()).map_err(std::io::Error::other)?;
        Ok(Fetcher { location, dir })
    }

    pub fn location(&self) -> &GitLocation {
        &self.location
    }

    /// Fetches the followed ref and reads the policy files of the commit it points at. `stop` interrupts a fetch
    /// under way (a fetch that took too long).
    pub fn fetch(&self, token: Option<&Token>, stop: &AtomicBool) -> Result<Fetched, FetchError> {
        let fail = |why: String, auth: bool| FetchError {
            source_name: self.location.to_string(),
            why: token.map_or_else(|| why.clone(), |t| t.scrub(&why)),
            auth,
        };
        let (repo, commit) = self.fetch_commit(token, stop).map_err(|e| {
            let text = format!("{e:#}");
            let auth = is_auth_failure(&text);
            fail(text, auth)
        })?;
        let files = read_tree(&repo, commit, &self.location.path);
        Ok(Fetched {
            commit: commit.to_string(),
            files,
        })
    }

    /// The repository, with no configuration but its own: no global or system settings, no credential helpers, no
    /// prompts.
    fn open(&self) -> anyhow::Result<gix::Repository> {
        Ok(gix::open_opts(self.dir.path(), gix::open::Options::isolated())?)
    }

    /// Fetches the followed ref: the repository, and the commit the ref points at.
    fn fetch_commit(
        &self,
        token: Option<&Token>,
        stop: &AtomicBool,
    ) -> anyhow::Result<(gix::Repository, gix::ObjectId)> {
        let repo = self.open()?;
        let spec = self.location.refspec(LOCAL_REF);
        let remote = repo
            .remote_at(self.location.url.as_str())?
            .with_refspecs(Some(spec.as_str()), gix::remote::Direction::Fetch)?;
        let user = self
            .location
            .user
            .clone()
            .unwrap_or_else(|| "x-access-token".to_owned());
        let token = token.cloned();
        let connection = remote
            .connect(gix::remote::Direction::Fetch)?
            .with_credentials(move |action| match (action, &token) {
                (gix::credentials::helper::Action::Get(context), Some(token)) => {
                    Ok(Some(gix::credentials::protocol::Outcome {
                        credentials: gix::sec::identity::Credentials::UsernamePassword {
                            username: user.clone(),
                            password: token.expose().to_owned(),
                            oauth_refresh_token: None,
                        },
                        next: context.into(),
                    }))
                }
                // No token: gix reports that the server wants credentials.
                _ => Ok(None),
            });
        let outcome = connection
            .prepare_fetch(gix::progress::Discard, Default::default())?
            .receive(gix::progress::Discard, stop)?;
        let mut tips = outcome.ref_map.mappings.iter().filter_map(|m| m.remote.as_id());
        let wanted = self.location.reference.as_deref().unwrap_or("HEAD");
        let Some(tip) = tips.next() else {
            anyhow::bail!("the remote has no ref {wanted:?}");
        };
        if tips.next().is_some() {
            anyhow::bail!("ref {wanted:?} matches more than one ref on the remote; name it in full (refs/heads/…)");
        }
        let commit = repo.find_object(tip)?.peel_to_commit()?.id;
        Ok((repo, commit))
    }
}

/// Whether a fetch failed on authentication (so a token read from Secrets Manager is read again).
fn is_auth_failure(text: &str) -> bool {
    let lower = text.to_ascii_lowercase();
    ["401", "403", "authentication", "credentials", "unauthorized"]
        .iter()
        .any(|needle| lower.contains(needle))
}

/// The policy files under `path` in `commit`'s tree, as `load_paths` would find them in a folder (or the one file
/// `path` names), each named by its path inside the repository.
fn read_tree(repo: &gix::Repository, commit: gix::ObjectId, path: &str) -> Result<Vec<PolicyFile>, Diagnostics> {
    let shown = if path.is_empty() {
        "/".to_owned()
    } else {
        path.to_owned()
    };
    let fail = |message: String| {
        Diagnostics(vec![Diagnostic {
            file: PathBuf::from(&shown),
            pos: None,
            message,
        }])
    };
    let tree = (|| -> anyhow::Result<gix::Tree<'_>> { Ok(repo.find_object(commit)?.peel_to_commit()?.tree()?) })()
        .map_err(|e| fail(format!("cannot read commit {commit}: {e}")))?;
    let entry_id = if path.is_empty() {
        tree.id
    } else {
        match tree.lookup_entry_by_path(path) {
            Ok(Some(entry)) => {
                if entry.mode().is_blob() {
                    let file = read_blob(repo, entry.object_id(), PathBuf::from(path));
                    return file.map(|f| vec![f]).map_err(|d| Diagnostics(vec![d]));
                }
                entry.object_id()
            }
            Ok(None) => return Err(fail(format!("no such folder or file at commit {commit}"))),
            Err(e) => return Err(fail(format!("cannot read the tree of commit {commit}: {e}"))),
        }
    };
    let folder = (|| -> anyhow::Result<gix::Tree<'_>> { Ok(repo.find_object(entry_id)?.peel_to_tree()?) })()
        .map_err(|e| fail(format!("cannot read the folder at commit {commit}: {e}")))?;
    let mut recorder = gix::traverse::tree::Recorder::default();
    folder
        .traverse()
        .breadthfirst(&mut recorder)
        .map_err(|e| fail(format!("cannot list the folder at commit {commit}: {e}")))?;
    let mut files = Vec::new();
    let mut diagnostics = Vec::new();
    let prefix = if path.is_empty() {
        String::new()
    } else {
        format!("{path}/")
    };
    for entry in recorder.records {
        let relative = entry.filepath.to_str_lossy().into_owned();
        let hidden = relative.split('/').any(|part| part.starts_with('.'));
        let name = relative.rsplit('/').next().unwrap_or("");
        if !entry.mode.is_blob() || hidden || !policy::is_policy_file_name(name) {
            continue;
        }
        match read_blob(repo, entry.oid, PathBuf::from(format!("{prefix}{relative}"))) {
            Ok(f) => files.push(f),
            Err(d) => diagnostics.push(d),
        }
    }
    if !diagnostics.is_empty() {
        return Err(Diagnostics(diagnostics));
    }
    if files.is_empty() {
        return Err(fail(format!(
            "no *.yaml or *.yml policy files in this folder at commit {commit}"
        )));
    }
    files.sort();
    Ok(files)
}

fn read_blob(repo: &gix::Repository, id: gix::ObjectId, path: PathBuf) -> Result<PolicyFile, Diagnostic> {
    let fail = |message: String| Diagnostic {
        file: path.clone(),
        pos: None,
        message,
    };
    let object = repo.find_object(id).map_err(|e| fail(format!("cannot read: {e}")))?;
    if object.data.len() as u64 > MAX_FILE_BYTES {
        return Err(fail(format!(
            "{} bytes is more than a policy file may hold ({MAX_FILE_BYTES})",
            object.data.len()
        )));
    }
    let text = policy::decode(&path, object.data.clone())?;
    Ok(PolicyFile { path, text })
}
