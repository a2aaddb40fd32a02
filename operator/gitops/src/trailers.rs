//! What ciclo's own commits say in their trailers (the `Key: value` lines that end a commit
//! message, as `Signed-off-by`): which ModelDeployment and which version they pin. The branch's
//! history is the record of what was written back, so a restarted operator finds the commit it
//! pushed before it died instead of pushing a second one, and a version a person reverted is
//! not promoted again.

/// The ModelDeployment a commit is about, as `<namespace>/<name>`.
pub const DEPLOYMENT: &str = "Ciclo-Deployment";
/// The version a promotion commit pins.
pub const PROMOTED: &str = "Ciclo-Promoted-Version";
/// The version a rollback commit takes back out (it pins the one serving before it).
pub const ROLLED_BACK: &str = "Ciclo-Rolled-Back-Version";

/// What a commit wrote back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// Pin `to`, newer than the `from` pinned so far.
    Promote { from: i64, to: i64 },
    /// The pinned `failed` version did not pass its analysis: pin `to`, which serves on.
    RollBack { failed: i64, to: i64 },
}

impl Change {
    /// The version the commit pins.
    pub fn pins(self) -> i64 {
        match self {
            Change::Promote { to, .. } | Change::RollBack { to, .. } => to,
        }
    }
}

/// A commit message: `subject`, `body`, then the trailers naming `deployment` and `change`.
pub fn message(subject: &str, body: &str, deployment: &str, change: Change) -> String {
    let (key, version) = match change {
        Change::Promote { to, .. } => (PROMOTED, to),
        Change::RollBack { failed, .. } => (ROLLED_BACK, failed),
    };
    let body = body.trim();
    let mut message = format!("{}\n\n", subject.trim());
    if !body.is_empty() {
        message.push_str(body);
        message.push_str("\n\n");
    }
    message.push_str(&format!("{DEPLOYMENT}: {deployment}\n{key}: {version}\n"));
    message
}

/// What one commit's trailers record for `deployment`: `(promoted, rolled back)` versions.
pub fn recorded(message: &str, deployment: &str) -> (Option<i64>, Option<i64>) {
    let Ok(trailers) = git2::message_trailers_strs(message) else {
        return (None, None);
    };
    let mut ours = false;
    let (mut promoted, mut rolled_back) = (None, None);
    for (key, value) in trailers.iter() {
        let value = value.trim();
        match key {
            DEPLOYMENT => ours |= value == deployment,
            PROMOTED => promoted = value.parse().ok(),
            ROLLED_BACK => rolled_back = value.parse().ok(),
            _ => {}
        }
    }
    if ours {
        (promoted, rolled_back)
    } else {
        (None, None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_reads_back_for_its_deployment_only() {
        let m = message(
            "Promote iris to version 4",
            "Trained by iris/run-7 on dataset iris@blake3:ab.\n\nMetrics: accuracy=0.97",
            "ml/web",
            Change::Promote { from: 3, to: 4 },
        );
        assert!(
            m.starts_with("Promote iris to version 4\n\nTrained by"),
            "{m}"
        );
        assert_eq!(recorded(&m, "ml/web"), (Some(4), None));
        assert_eq!(recorded(&m, "ml/api"), (None, None));
        let r = message(
            "Roll back",
            "",
            "ml/web",
            Change::RollBack { failed: 4, to: 3 },
        );
        assert_eq!(recorded(&r, "ml/web"), (None, Some(4)));
    }

    #[test]
    fn a_revert_of_a_promotion_records_nothing_new() {
        // `git revert` writes its own message: the promotion's trailers stay in the reverted
        // commit only.
        let revert = "Revert \"Promote iris to version 4\"\n\nThis reverts commit 0123abcd.\n";
        assert_eq!(recorded(revert, "ml/web"), (None, None));
        let by_hand = "serve 5\n\nCiclo-Deployment: ml/web-2\nCiclo-Promoted-Version: 5\n";
        assert_eq!(recorded(by_hand, "ml/web"), (None, None));
    }
}
