//! One write-back: fetch the branch, look in its history for the commit this change would
//! make (then it is done already), edit the pin in the file, commit on the fetched head, push;
//! when someone else pushed meanwhile, do it all again on the new head.

use crate::pin::{self, PinError};
use crate::trailers::{self, Change};
use git2::build::TreeUpdateBuilder;
use git2::{
    AutotagOption, Cred, CredentialType, ErrorClass, ErrorCode, FetchOptions, FetchPrune, Oid,
    PushOptions, RemoteCallbacks, Repository, Signature,
};
use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// How many commits back from the branch's head ciclo looks for its own earlier commits.
const HISTORY: usize = 2000;
/// Pushes tried before giving up on a branch others keep moving.
const ATTEMPTS: usize = 5;

/// The repository and branch to write to.
pub struct Remote {
    /// `http://` or `https://`, without credentials in it.
    pub url: String,
    /// The branch holding the pin (the one the GitOps controller follows).
    pub branch: String,
    pub credentials: Option<Credentials>,
}

/// HTTP basic credentials (a user and a token, as Flux's `username`/`password` Secret keys).
#[derive(Clone)]
pub struct Credentials {
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &"(redacted)")
            .finish()
    }
}

/// What to write.
pub struct Request {
    /// `<namespace>/<name>`: the trailer naming the deployment.
    pub deployment: String,
    /// The document to edit: its `kind` and `metadata.name`.
    pub kind: String,
    pub name: String,
    /// The file holding it, from the repository's root.
    pub path: String,
    pub change: Change,
    /// The commit message's first line, and its body (the lineage).
    pub subject: String,
    pub body: String,
    /// Commit to this new branch (from `Remote::branch`'s head) for review, instead of to
    /// `Remote::branch`.
    pub review_branch: Option<String>,
    /// The commits' author and committer.
    pub author_name: String,
    pub author_email: String,
}

/// How a write-back ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// A new commit was pushed to `branch`.
    Committed { commit: String, branch: String },
    /// An earlier commit of ciclo's on `branch` made this change already: nothing was
    /// pushed.
    Found { commit: String, branch: String },
    /// The file already pins what the change would (a person did it), a newer version was
    /// promoted already, or the file no longer pins the version a rollback would take out:
    /// nothing was pushed.
    Unneeded { why: String },
}

/// Why a write-back failed. The messages name the repository's URL (never credentials), the
/// branch, the file and its line.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "{url} refused the credentials (HTTP 401/403): the Secret's username and password may not read or push"
    )]
    Unauthorized { url: String },
    #[error("{url}: no branch {branch:?}")]
    NoBranch { url: String, branch: String },
    #[error("{path} is not in {branch} of {url}")]
    NoFile {
        url: String,
        branch: String,
        path: String,
    },
    #[error("{path} in {branch}: {source}")]
    Pin {
        path: String,
        branch: String,
        source: Box<PinError>,
    },
    #[error("{url} refused the push to {branch}: {why}")]
    Refused {
        url: String,
        branch: String,
        why: String,
    },
    #[error("{url}: {branch} moved under each of {ATTEMPTS} pushes (others push to it constantly)")]
    Contended { url: String, branch: String },
    #[error("{url}: {message}")]
    Git { url: String, message: String },
    #[error("the local copy at {dir}: {message}")]
    Cache { dir: PathBuf, message: String },
}

/// One write-back at a time in this process: they share local copies, and are rare.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// Writes `request` back to `remote`, keeping a local bare copy of the repository under
/// `cache` (fetched again each time, so only new objects travel).
pub fn write_back(cache: &Path, remote: &Remote, request: &Request) -> Result<Outcome, Error> {
    write_back_with(cache, remote, request, || {})
}

/// [`write_back`], calling `before_push` between the fetch and the push of each attempt (where
/// a concurrent push by someone else lands; the tests push there).
pub fn write_back_with(
    cache: &Path,
    remote: &Remote,
    request: &Request,
    mut before_push: impl FnMut(),
) -> Result<Outcome, Error> {
    crate::timeouts::set_once();
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let repo = open(cache, &remote.url)?;
    let git = |e: git2::Error| classify(e, remote);
    for _ in 0..ATTEMPTS {
        fetch(&repo, remote, request.review_branch.as_deref())?;
        let head = tracking(&repo, &remote.branch)?.ok_or_else(|| Error::NoBranch {
            url: remote.url.clone(),
            branch: remote.branch.clone(),
        })?;
        if let Some(found) = earlier(&repo, head, request, &remote.branch).map_err(git)? {
            return Ok(found);
        }
        if let Some(review) = &request.review_branch
            && let Some(tip) = tracking(&repo, review)?
        {
            return Ok(Outcome::Found {
                commit: tip.to_string(),
                branch: review.clone(),
            });
        }
        let head_commit = repo.find_commit(head).map_err(git)?;
        let tree = head_commit.tree().map_err(git)?;
        let no_file = || Error::NoFile {
            url: remote.url.clone(),
            branch: remote.branch.clone(),
            path: request.path.clone(),
        };
        let entry = tree
            .get_path(Path::new(&request.path))
            .map_err(|_| no_file())?;
        let blob = repo.find_blob(entry.id()).map_err(|_| no_file())?;
        let text = std::str::from_utf8(blob.content()).map_err(|_| Error::Pin {
            path: request.path.clone(),
            branch: remote.branch.clone(),
            source: Box::new(PinError::Yaml {
                line: 1,
                col: 1,
                message: "not UTF-8 text".into(),
            }),
        })?;
        let pin = pin::find(text, &request.kind, &request.name).map_err(|source| Error::Pin {
            path: request.path.clone(),
            branch: remote.branch.clone(),
            source: Box::new(source),
        })?;
        match request.change {
            Change::Promote { to, .. } if pin.version >= to => {
                return Ok(Outcome::Unneeded {
                    why: format!(
                        "{} in {} pins version {} already",
                        request.path, remote.branch, pin.version
                    ),
                });
            }
            Change::RollBack { failed, .. } if pin.version != failed => {
                return Ok(Outcome::Unneeded {
                    why: format!(
                        "{} in {} pins version {}, no longer the failed version {failed}",
                        request.path, remote.branch, pin.version
                    ),
                });
            }
            _ => {}
        }
        let edited = pin::set(text, &pin, request.change.pins());
        let new_blob = repo.blob(edited.as_bytes()).map_err(git)?;
        let new_tree = TreeUpdateBuilder::new()
            .upsert(
                request.path.as_str(),
                new_blob,
                if entry.filemode() == i32::from(git2::FileMode::BlobExecutable) {
                    git2::FileMode::BlobExecutable
                } else {
                    git2::FileMode::Blob
                },
            )
            .create_updated(&repo, &tree)
            .map_err(git)?;
        let new_tree = repo.find_tree(new_tree).map_err(git)?;
        let signature = Signature::now(&request.author_name, &request.author_email).map_err(git)?;
        let message = trailers::message(
            &request.subject,
            &request.body,
            &request.deployment,
            request.change,
        );
        let commit = repo
            .commit(
                None,
                &signature,
                &signature,
                &message,
                &new_tree,
                &[&head_commit],
            )
            .map_err(git)?;
        before_push();
        let target = request.review_branch.as_ref().unwrap_or(&remote.branch);
        match push(&repo, remote, commit, target) {
            Ok(()) => {
                return Ok(Outcome::Committed {
                    commit: commit.to_string(),
                    branch: target.clone(),
                });
            }
            Err(Pushed::Moved(why)) => {
                tracing::info!(url = %remote.url, branch = %target, %why, "the branch moved: writing back again on its new head");
            }
            Err(Pushed::Failed(e)) => return Err(e),
        }
    }
    Err(Error::Contended {
        url: remote.url.clone(),
        branch: request
            .review_branch
            .clone()
            .unwrap_or(remote.branch.clone()),
    })
}

/// The local bare copy of `url` under `cache`, made on first use.
fn open(cache: &Path, url: &str) -> Result<Repository, Error> {
    let dir = cache.join(local_name(url));
    let cached = |e: git2::Error| Error::Cache {
        dir: dir.clone(),
        message: e.message().to_string(),
    };
    match Repository::open_bare(&dir) {
        Ok(repo) => Ok(repo),
        Err(_) => {
            // A copy left half-made by a crash is made again.
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).map_err(|e| Error::Cache {
                dir: dir.clone(),
                message: e.to_string(),
            })?;
            Repository::init_bare(&dir).map_err(cached)
        }
    }
}

/// A directory name for `url`: readable, and distinct for distinct URLs.
fn local_name(url: &str) -> String {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    url.hash(&mut hasher);
    let readable: String = url
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .take(64)
        .collect();
    format!("{readable}-{:016x}.git", hasher.finish())
}

/// Fetches `branch` (and `review`, if it exists) into `refs/remotes/origin/`; a branch gone
/// from the server is gone here too.
fn fetch(repo: &Repository, remote: &Remote, review: Option<&str>) -> Result<(), Error> {
    let mut origin = repo
        .remote_anonymous(&remote.url)
        .map_err(|e| classify(e, remote))?;
    let mut specs = vec![spec(&remote.branch)];
    specs.extend(review.map(spec));
    let mut options = FetchOptions::new();
    options
        .remote_callbacks(callbacks(remote.credentials.as_ref()))
        .download_tags(AutotagOption::None)
        .prune(FetchPrune::On);
    origin
        .fetch(&specs, Some(&mut options), None)
        .map_err(|e| classify(e, remote))?;
    // An anonymous remote's fetch does not prune: drop the tracking refs the server no
    // longer advertises.
    let advertised: Vec<String> = origin
        .list()
        .map_err(|e| classify(e, remote))?
        .iter()
        .map(|h| h.name().to_string())
        .collect();
    for branch in std::iter::once(remote.branch.as_str()).chain(review) {
        if !advertised.contains(&format!("refs/heads/{branch}"))
            && let Ok(mut r) = repo.find_reference(&tracking_ref(branch))
        {
            let _ = r.delete();
        }
    }
    Ok(())
}

fn spec(branch: &str) -> String {
    format!("+refs/heads/{branch}:{}", tracking_ref(branch))
}

fn tracking_ref(branch: &str) -> String {
    format!("refs/remotes/origin/{branch}")
}

/// The commit `branch` was at when last fetched.
fn tracking(repo: &Repository, branch: &str) -> Result<Option<Oid>, Error> {
    Ok(repo
        .find_reference(&tracking_ref(branch))
        .ok()
        .and_then(|r| r.target()))
}

/// A commit of ciclo's in `head`'s history that made `request.change`, or promoted a newer
/// version (then the change is moot), newest first.
fn earlier(
    repo: &Repository,
    head: Oid,
    request: &Request,
    branch: &str,
) -> Result<Option<Outcome>, git2::Error> {
    let mut walk = repo.revwalk()?;
    walk.push(head)?;
    for oid in walk.take(HISTORY) {
        let oid = oid?;
        let commit = repo.find_commit(oid)?;
        let (promoted, rolled_back) =
            trailers::recorded(commit.message().unwrap_or_default(), &request.deployment);
        let found = || Outcome::Found {
            commit: oid.to_string(),
            branch: branch.to_string(),
        };
        match (request.change, promoted, rolled_back) {
            (Change::Promote { to, .. }, Some(p), _) if p == to => return Ok(Some(found())),
            (Change::Promote { to, .. }, Some(p), _) if p > to => {
                return Ok(Some(Outcome::Unneeded {
                    why: format!(
                        "version {p} was promoted already (commit {oid} on {branch}), newer than {to}"
                    ),
                }));
            }
            (Change::RollBack { failed, .. }, _, Some(r)) if r == failed => {
                return Ok(Some(found()));
            }
            _ => {}
        }
    }
    Ok(None)
}

/// Why a push did not land.
enum Pushed {
    /// The branch moved since it was fetched: try again on its new head.
    Moved(String),
    Failed(Error),
}

/// Pushes `commit` to `branch` (a fast-forward: never forced).
fn push(repo: &Repository, remote: &Remote, commit: Oid, branch: &str) -> Result<(), Pushed> {
    let failed = |e: git2::Error| Pushed::Failed(classify(e, remote));
    repo.reference("refs/ciclo/outgoing", commit, true, "ciclo write-back")
        .map_err(failed)?;
    let mut origin = repo.remote_anonymous(&remote.url).map_err(failed)?;
    let refused: RefCell<Option<String>> = RefCell::new(None);
    let pushed = {
        let mut callbacks = callbacks(remote.credentials.as_ref());
        callbacks.push_update_reference(|_, status| {
            if let Some(why) = status {
                *refused.borrow_mut() = Some(why.to_string());
            }
            Ok(())
        });
        let mut options = PushOptions::new();
        options.remote_callbacks(callbacks);
        origin.push(
            &[format!("refs/ciclo/outgoing:refs/heads/{branch}")],
            Some(&mut options),
        )
    };
    match pushed {
        Err(e) if e.code() == ErrorCode::NotFastForward => Err(Pushed::Moved(e.message().into())),
        Err(e) => Err(failed(e)),
        Ok(()) => match refused.into_inner() {
            None => Ok(()),
            // The server checks the branch is still where the push found it (a lock on the
            // ref, the old id in the command): another push landed in between.
            Some(why) if is_moved(&why) => Err(Pushed::Moved(why)),
            Some(why) => Err(Pushed::Failed(Error::Refused {
                url: remote.url.clone(),
                branch: branch.to_string(),
                why,
            })),
        },
    }
}

/// Whether a server's refusal of a ref update means the ref moved meanwhile.
fn is_moved(why: &str) -> bool {
    [
        "fetch first",
        "non-fast-forward",
        "failed to lock",
        "stale info",
        "cannot lock ref",
    ]
    .iter()
    .any(|m| why.contains(m))
}

/// HTTP basic authentication from `credentials`, offered once: libgit2 asks again after a 401,
/// and the same answer would only loop.
fn callbacks(credentials: Option<&Credentials>) -> RemoteCallbacks<'_> {
    let mut callbacks = RemoteCallbacks::new();
    let mut offered = false;
    callbacks.credentials(move |_url, _user, allowed| match credentials {
        Some(c) if !offered && allowed.contains(CredentialType::USER_PASS_PLAINTEXT) => {
            offered = true;
            Cred::userpass_plaintext(&c.username, &c.password)
        }
        _ => Err(git2::Error::new(
            ErrorCode::Auth,
            ErrorClass::Http,
            "authentication required",
        )),
    });
    callbacks
}

fn classify(e: git2::Error, remote: &Remote) -> Error {
    if e.code() == ErrorCode::Auth || e.message().contains("status code: 401") {
        return Error::Unauthorized {
            url: remote.url.clone(),
        };
    }
    Error::Git {
        url: remote.url.clone(),
        message: e.message().to_string(),
    }
}
