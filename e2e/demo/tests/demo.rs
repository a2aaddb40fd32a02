//! What `make demo` shows, proven: the same scenario (crate `ciclo_demo`), in a namespace and
//! bucket of its own, with every claim the demo prints checked.

mod browser;

use ciclo_demo::cycle::{Cycle, Source, is_blessed, metric};
use ciclo_demo::scenario::{self, Narrator};
use ciclo_e2e::resources::restricted_namespace;
use std::time::Duration;

/// Prints the steps into the test's output, for when it fails.
struct Log;

impl Narrator for Log {
    fn step(&mut self, since: Duration, what: &str) {
        eprintln!("{:>6.1} s  {what}", since.as_secs_f64());
    }
    fn note(&mut self, text: &str) {
        eprintln!("          {text}");
    }
}

#[tokio::test]
#[ignore = "needs the local cluster and the S3 server: make e2e"]
async fn three_iterations_of_the_cycle_run_by_themselves_the_third_from_production_and_a_broken_batch_stops_at_the_dataset()
 {
    let (client, ns) = restricted_namespace("demo").await;
    let bucket = ciclo_e2e::s3::new_bucket(&ns.name).await;
    let cycle = Cycle::new(client, &ns.name, &bucket);
    let outcome = scenario::run(&cycle, &mut Log).await.unwrap();
    check(&outcome);
    // What the demo made, as `ciclo ui` shows it in a real browser.
    browser::tour::tour(&cycle).await;
}

/// `make demo GITOPS=1`: the same scenario with the resources committed to the team's
/// repository and applied by Flux, the ModelDeployment pinning its version in git: versions
/// 2 and 3 are promoted by one commit of ciclo's each, which Flux applies.
#[tokio::test]
#[ignore = "needs the local cluster, the S3 server and Flux: make e2e"]
async fn the_same_three_iterations_run_from_git_each_promotion_a_commit_flux_applies() {
    let (client, ns) = restricted_namespace("demo-git").await;
    let bucket = ciclo_e2e::s3::new_bucket(&ns.name).await;
    let cycle = Cycle::new(client, &ns.name, &bucket).through_git();
    let outcome = scenario::run(&cycle, &mut Log).await.unwrap();
    check(&outcome);
    let Source::Git(repo) = &cycle.source else {
        unreachable!()
    };
    let messages = repo.messages("main");
    for version in [2, 3] {
        let trailers = format!(
            "Ciclo-Deployment: {}/wdbc\nCiclo-Promoted-Version: {version}",
            ns.name
        );
        let commits: Vec<_> = messages
            .iter()
            .filter(|(_, m)| m.ends_with(&trailers))
            .collect();
        assert_eq!(commits.len(), 1, "one promotion of {version}: {messages:?}");
        assert!(
            commits[0]
                .1
                .starts_with(&format!("Promote wdbc to version {version}")),
            "{commits:?}"
        );
    }
    // Version 1 was pinned by the team's first commit; nothing else was committed.
    assert_eq!(messages.len(), 3, "{messages:?}");
    let deployment = cycle.deployment().await;
    assert_eq!(deployment["writeBack"]["version"], 3, "{deployment}");
    assert_eq!(
        deployment["writeBack"]["commit"],
        messages[0].0.as_str(),
        "{deployment}"
    );
}

/// Every claim the demo prints.
fn check(outcome: &scenario::Outcome) {
    let [first, second, third] = &outcome.iterations[..] else {
        panic!("three iterations: {outcome:?}")
    };
    // More data, a better model: version 2 was judged against version 1 and beat it.
    assert!(is_blessed(&first.model_version) && is_blessed(&second.model_version));
    assert_eq!(
        second.model_version["status"]["gates"]
            .as_array()
            .unwrap()
            .iter()
            .find(|g| g["metric"] == "roc_auc")
            .unwrap()["baselineVersion"],
        1,
        "{}",
        second.model_version
    );
    let auc = |it: &scenario::Iteration| metric(&it.model_version, "roc_auc").unwrap();
    assert!(
        auc(second) > auc(first),
        "{} vs {}",
        auc(second),
        auc(first)
    );
    assert_eq!(first.dataset_version["rows"], 190);
    assert_eq!(second.dataset_version["rows"], 380);
    assert_eq!(
        second.model_version["spec"]["lineage"]["dataset"]["version"],
        second.dataset_version["id"]
    );

    // The served models answer about rows they never saw, mostly right.
    for it in [first, second] {
        let right = it.predictions.iter().filter(|(p, t)| p == t).count();
        assert!(right >= 6, "{:?}", it.predictions);
    }

    // Version 2 went through a canary, under load, without a failed request, and both
    // versions answered.
    assert!(
        second.rollout.iter().any(|s| s.contains("version 2 at")),
        "{:?}",
        second.rollout
    );
    let load = second.load.as_ref().unwrap();
    assert!(load.failed.is_empty(), "{:?}", load.failed);
    assert!(load.answered.get("1").is_some_and(|&c| c > 0), "{load:?}");
    assert!(load.answered.get("2").is_some_and(|&c| c > 0), "{load:?}");
    assert!(second.latency() > Duration::ZERO);

    // The broken batch: rejected, naming its column, and nothing downstream moved.
    let r = &outcome.rejection;
    assert_eq!(r.dataset_version["verdict"], "Rejected");
    assert!(
        r.dataset_version["reasons"]
            .to_string()
            .contains("mean_radius"),
        "{}",
        r.dataset_version
    );
    assert_eq!(r.model_versions_after, r.model_versions_before);
    assert_eq!(r.last_model_version_after, Some(2));
    assert_eq!(r.serving_after, Some(2));

    // The lineage of the serving version leads back to its data.
    let version = second.dataset_version["id"].as_str().unwrap();
    assert!(outcome.lineage.contains(version), "{}", outcome.lineage);

    // Iteration 3, from production: the skew names the texture features and only them.
    let skew = &outcome.skew["skew"];
    assert_eq!(skew["skewed"], true, "{skew}");
    let limit = 1.0;
    let over: Vec<&str> = skew["features"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["distance"].as_f64().unwrap() > limit)
        .map(|f| f["feature"].as_str().unwrap())
        .collect();
    assert!(over.contains(&"mean_texture"), "{skew}");
    assert!(over.iter().all(|f| f.contains("texture")), "{skew}");
    // The labelled shifted rows, answered by version 2, became the production Dataset's
    // version, and version 3 was trained on it, blessed, and canaried in under the shifted
    // load with no failed request.
    let v = &third.dataset_version;
    assert_eq!(v["rows"], 189, "batch-3's rows, labelled: {v}");
    assert_eq!(v["capturedFrom"]["modelDeployment"], "wdbc", "{v}");
    assert_eq!(
        v["capturedFrom"]["modelVersions"],
        serde_json::json!(["2"]),
        "{v}"
    );
    let lineage = &third.model_version["spec"]["lineage"]["dataset"];
    assert_eq!(lineage["name"], "wdbc-production");
    assert_eq!(lineage["version"], v["id"]);
    assert!(is_blessed(&third.model_version));
    assert!(
        third.rollout.iter().any(|s| s.contains("version 3 at")),
        "{:?}",
        third.rollout
    );
    let load = third.load.as_ref().unwrap();
    assert!(load.failed.is_empty(), "{:?}", load.failed);
    assert!(load.answered.get("3").is_some_and(|&c| c > 0), "{load:?}");
    let right = third.predictions.iter().filter(|(p, t)| p == t).count();
    assert!(right >= 6, "{:?}", third.predictions);
    assert!(
        outcome
            .production_lineage
            .contains("captured   by ModelDeployment wdbc, answered by version 2"),
        "{}",
        outcome.production_lineage
    );
}
