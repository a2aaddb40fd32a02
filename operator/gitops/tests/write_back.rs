//! Write-back against real repositories: a bare repository on disk as the team's server
//! (libgit2's local transport; the e2e suite pushes over HTTP to `git http-backend`), checked
//! with the `git` command a team uses.

use ciclo_gitops::{Change, Error, Outcome, Remote, Request, write_back, write_back_with};
use std::path::Path;
use std::process::Command;

const DEPLOYMENT_YAML: &str = "# the web team's model\napiVersion: ciclo.dev/v1alpha1\nkind: ModelDeployment\nmetadata:\n  name: web\nspec:\n  model:\n    name: iris\n    version: 3   # pinned by ciclo's write-back\n  replicas: 2\n";

fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args(["-c", "user.name=Team", "-c", "user.email=team@example.com"])
        .args(args)
        .current_dir(dir)
        .output()
        .expect("git runs");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A team repository: a bare "server" and a working clone with the deployment committed.
struct Team {
    _dir: tempfile::TempDir,
    server: std::path::PathBuf,
    work: std::path::PathBuf,
    cache: std::path::PathBuf,
}

impl Team {
    fn new() -> Team {
        let dir = tempfile::tempdir().unwrap();
        let server = dir.path().join("team.git");
        let work = dir.path().join("work");
        let cache = dir.path().join("cache");
        git(
            dir.path(),
            &["init", "-q", "--bare", "-b", "main", "team.git"],
        );
        git(dir.path(), &["init", "-q", "-b", "main", "work"]);
        std::fs::create_dir_all(work.join("deploy")).unwrap();
        std::fs::write(work.join("deploy/web.yaml"), DEPLOYMENT_YAML).unwrap();
        std::fs::write(work.join("README"), "team\n").unwrap();
        git(&work, &["add", "-A"]);
        git(&work, &["commit", "-q", "-m", "serve iris 3"]);
        git(
            &work,
            &["remote", "add", "origin", server.to_str().unwrap()],
        );
        git(&work, &["push", "-q", "origin", "main"]);
        Team {
            _dir: dir,
            server,
            work,
            cache,
        }
    }

    fn remote(&self) -> Remote {
        Remote {
            url: self.server.to_string_lossy().into_owned(),
            branch: "main".into(),
            credentials: None,
        }
    }

    fn pull(&self) {
        git(&self.work, &["pull", "-q", "--ff-only", "origin", "main"]);
    }

    fn commits(&self, branch: &str) -> usize {
        git(&self.server, &["rev-list", "--count", branch])
            .parse()
            .unwrap()
    }

    fn file(&self, branch: &str) -> String {
        git(
            &self.server,
            &["show", &format!("{branch}:deploy/web.yaml")],
        )
    }
}

fn request(change: Change) -> Request {
    Request {
        deployment: "ml/web".into(),
        kind: "ModelDeployment".into(),
        name: "web".into(),
        path: "deploy/web.yaml".into(),
        change,
        subject: format!("Promote iris to version {}", change.pins()),
        body: "Trained by TrainingRun iris (run r-4) on dataset iris@blake3:ab12.\nMetrics: accuracy=0.97".into(),
        review_branch: None,
        author_name: "ciclo".into(),
        author_email: "ciclo@ciclo.dev".into(),
    }
}

const PROMOTE_4: Change = Change::Promote { from: 3, to: 4 };

#[test]
fn a_promotion_is_one_commit_changing_only_the_pin_and_a_second_call_finds_it() {
    let team = Team::new();
    let out = write_back(&team.cache, &team.remote(), &request(PROMOTE_4)).unwrap();
    let Outcome::Committed { commit, branch } = &out else {
        panic!("{out:?}")
    };
    assert_eq!(branch, "main");
    assert_eq!(&git(&team.server, &["rev-parse", "main"]), commit);
    assert_eq!(
        team.file("main"),
        DEPLOYMENT_YAML
            .replace("version: 3   #", "version: 4   #")
            .trim()
    );
    let log = git(
        &team.server,
        &["log", "-1", "--format=%an <%ae>%n%B", "main"],
    );
    assert!(log.starts_with("ciclo <ciclo@ciclo.dev>\nPromote iris to version 4\n"));
    assert!(log.contains("dataset iris@blake3:ab12"), "{log}");
    let trailers = git(
        &team.server,
        &["log", "-1", "--format=%(trailers:only,unfold)", "main"],
    );
    assert_eq!(
        trailers,
        "Ciclo-Deployment: ml/web\nCiclo-Promoted-Version: 4"
    );

    // The operator restarted and does not know it pushed: the history tells it.
    let again = write_back(&team.cache, &team.remote(), &request(PROMOTE_4)).unwrap();
    assert_eq!(
        again,
        Outcome::Found {
            commit: commit.clone(),
            branch: "main".into()
        }
    );
    // A fresh local copy (a new pod) finds it the same way.
    let fresh = tempfile::tempdir().unwrap();
    assert!(matches!(
        write_back(fresh.path(), &team.remote(), &request(PROMOTE_4)).unwrap(),
        Outcome::Found { .. }
    ));
    assert_eq!(team.commits("main"), 2);
}

#[test]
fn a_reverted_promotion_is_not_made_again_and_a_newer_version_still_is() {
    let team = Team::new();
    let Outcome::Committed { commit, .. } =
        write_back(&team.cache, &team.remote(), &request(PROMOTE_4)).unwrap()
    else {
        panic!("not committed")
    };
    team.pull();
    git(&team.work, &["revert", "--no-edit", &commit]);
    git(&team.work, &["push", "-q", "origin", "main"]);
    assert!(team.file("main").contains("version: 3 "));
    assert!(matches!(
        write_back(&team.cache, &team.remote(), &request(PROMOTE_4)).unwrap(),
        Outcome::Found { .. }
    ));
    assert!(
        team.file("main").contains("version: 3 "),
        "the revert stands"
    );
    let five = Change::Promote { from: 3, to: 5 };
    assert!(matches!(
        write_back(&team.cache, &team.remote(), &request(five)).unwrap(),
        Outcome::Committed { .. }
    ));
    assert!(team.file("main").contains("version: 5 "));
    // Version 4 is older than a promotion in the history: moot, whatever the file pins.
    let out = write_back(&team.cache, &team.remote(), &request(PROMOTE_4)).unwrap();
    assert!(
        matches!(&out, Outcome::Unneeded { why } if why.contains("version 5 was promoted already")),
        "{out:?}"
    );
}

#[test]
fn a_push_that_lost_a_race_is_made_again_on_the_new_head() {
    let team = Team::new();
    let mut pushes = 0;
    let out = write_back_with(&team.cache, &team.remote(), &request(PROMOTE_4), || {
        // The team pushes between ciclo's fetch and its push, once.
        if pushes == 0 {
            std::fs::write(team.work.join("README"), "team, edited\n").unwrap();
            git(&team.work, &["commit", "-q", "-am", "readme"]);
            git(&team.work, &["push", "-q", "origin", "main"]);
        }
        pushes += 1;
    })
    .unwrap();
    assert_eq!(pushes, 2, "{out:?}");
    assert_eq!(team.commits("main"), 3);
    assert!(team.file("main").contains("version: 4 "));
    let readme = git(&team.server, &["show", "main:README"]);
    assert_eq!(readme, "team, edited", "the team's commit is kept");
    assert_eq!(
        git(&team.server, &["log", "-1", "--format=%s", "main~1"]),
        "readme"
    );
}

#[test]
fn a_rollback_pins_the_version_serving_before_once() {
    let team = Team::new();
    let back = Change::RollBack { failed: 3, to: 2 };
    let mut req = request(back);
    req.subject = "Roll back iris to version 2".into();
    assert!(matches!(
        write_back(&team.cache, &team.remote(), &req).unwrap(),
        Outcome::Committed { .. }
    ));
    assert!(team.file("main").contains("version: 2 "));
    assert!(matches!(
        write_back(&team.cache, &team.remote(), &req).unwrap(),
        Outcome::Found { .. }
    ));
    assert_eq!(team.commits("main"), 2);
}

#[test]
fn a_pin_a_person_already_moved_needs_no_commit() {
    let team = Team::new();
    std::fs::write(
        team.work.join("deploy/web.yaml"),
        DEPLOYMENT_YAML.replace("version: 3", "version: 6"),
    )
    .unwrap();
    git(&team.work, &["commit", "-q", "-am", "serve 6"]);
    git(&team.work, &["push", "-q", "origin", "main"]);
    let out = write_back(&team.cache, &team.remote(), &request(PROMOTE_4)).unwrap();
    assert!(
        matches!(&out, Outcome::Unneeded { why } if why.contains("pins version 6")),
        "{out:?}"
    );
    let back = Change::RollBack { failed: 4, to: 3 };
    assert!(matches!(
        write_back(&team.cache, &team.remote(), &request(back)).unwrap(),
        Outcome::Unneeded { .. }
    ));
    assert_eq!(team.commits("main"), 2);
}

#[test]
fn with_review_the_promotion_goes_to_its_own_branch_and_main_is_untouched() {
    let team = Team::new();
    let mut req = request(PROMOTE_4);
    req.review_branch = Some("ciclo/web-v4".into());
    let out = write_back(&team.cache, &team.remote(), &req).unwrap();
    assert!(
        matches!(&out, Outcome::Committed { branch, .. } if branch == "ciclo/web-v4"),
        "{out:?}"
    );
    assert!(team.file("main").contains("version: 3 "));
    assert!(team.file("ciclo/web-v4").contains("version: 4 "));
    assert_eq!(
        git(&team.server, &["rev-parse", "ciclo/web-v4~1"]),
        git(&team.server, &["rev-parse", "main"])
    );
    assert!(matches!(
        write_back(&team.cache, &team.remote(), &req).unwrap(),
        Outcome::Found { branch, .. } if branch == "ciclo/web-v4"
    ));
    // Merged (as a pull request would be): main has the promotion, and it is found there.
    git(
        &team.server,
        &["update-ref", "refs/heads/main", "refs/heads/ciclo/web-v4"],
    );
    git(
        &team.server,
        &["update-ref", "-d", "refs/heads/ciclo/web-v4"],
    );
    assert!(matches!(
        write_back(&team.cache, &team.remote(), &req).unwrap(),
        Outcome::Found { branch, .. } if branch == "main"
    ));
}

#[test]
fn what_cannot_be_written_back_is_named() {
    let team = Team::new();
    let mut req = request(PROMOTE_4);
    req.path = "deploy/missing.yaml".into();
    let e = write_back(&team.cache, &team.remote(), &req).unwrap_err();
    assert!(matches!(e, Error::NoFile { .. }), "{e}");
    assert!(e.to_string().contains("deploy/missing.yaml is not in main"));

    let mut req = request(PROMOTE_4);
    req.name = "api".into();
    let e = write_back(&team.cache, &team.remote(), &req).unwrap_err();
    assert_eq!(
        e.to_string(),
        "deploy/web.yaml in main: no ModelDeployment named \"api\" in it"
    );

    let mut remote = team.remote();
    remote.branch = "production".into();
    let e = write_back(&team.cache, &remote, &request(PROMOTE_4)).unwrap_err();
    assert!(matches!(e, Error::NoBranch { .. }), "{e}");
    assert_eq!(team.commits("main"), 1);
}

#[test]
fn a_review_branch_deleted_unmerged_is_forgotten_and_the_promotion_offered_again() {
    let team = Team::new();
    let mut req = request(PROMOTE_4);
    req.review_branch = Some("ciclo/web-v4".into());
    assert!(matches!(
        write_back(&team.cache, &team.remote(), &req).unwrap(),
        Outcome::Committed { .. }
    ));
    // Turned down: a person deletes the branch without merging it.
    git(
        &team.server,
        &["update-ref", "-d", "refs/heads/ciclo/web-v4"],
    );
    let out = write_back(&team.cache, &team.remote(), &req).unwrap();
    assert!(
        matches!(&out, Outcome::Committed { branch, .. } if branch == "ciclo/web-v4"),
        "{out:?}"
    );
    assert!(team.file("main").contains("version: 3 "));
}
