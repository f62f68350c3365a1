//! End-to-end: versions and the `live` alias. Each deploy that changes something
//! publishes a version of every function and moves `live`; everything invokes `live`;
//! `pipeline rollback` moves it back, and the pipeline then runs the earlier release.

// Test code: a failed expectation is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use anyhow::Result;
use integration_tests::{jpeg_with_orientation_6, run_cli, try_cli, TestPipeline};
use pipeline_aws::deploy::FUNCTIONS;
use pipeline_aws::releases::release_of;
use pipeline_core::report::ObjectStatus;

fn sizes(n: &str) -> Vec<(String, String)> {
    vec![("ThumbnailSizes".into(), n.into())]
}

/// The live version of every function.
async fn live_versions(p: &TestPipeline) -> Result<Vec<(String, u64)>> {
    let mut out = Vec::new();
    for (short, name) in &p.local.stack.functions {
        let release = release_of(&p.local.clients.lambda, name).await?;
        out.push((short.clone(), release.live));
    }
    Ok(out)
}

fn all_at(versions: &[(String, u64)], n: u64) -> bool {
    versions.len() == FUNCTIONS.len() && versions.iter().all(|(_, v)| *v == n)
}

/// The thumbnail sizes the manifest of `key` lists.
async fn thumbnail_sizes(p: &TestPipeline, key: &str) -> Result<Vec<u32>> {
    Ok(p.manifest(key)
        .await?
        .outputs
        .iter()
        .map(|t| t.size)
        .collect())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn releases_each_deploy_publishes_and_rollback_runs_the_previous_release() -> Result<()> {
    let stack = "releases";
    let mut p = TestPipeline::start_with_parameters(stack, sizes("64")).await?;
    let first = live_versions(&p).await?;
    assert!(all_at(&first, 1), "{first:?}");

    // A deploy that changes a setting: version 2 everywhere, and the pipeline uses it.
    p.redeploy(sizes("96")).await?;
    let second = live_versions(&p).await?;
    assert!(all_at(&second, 2), "{second:?}");
    p.upload("r/new.jpg", jpeg_with_orientation_6(300, 200)?)
        .await?;
    let runs = p.settle(1).await?;
    assert_eq!(runs[0].status, ObjectStatus::Processed);
    assert_eq!(thumbnail_sizes(&p, "r/new.jpg").await?, vec![96]);

    // The same deploy again changes nothing and publishes nothing.
    p.redeploy(sizes("96")).await?;
    assert_eq!(live_versions(&p).await?, second);

    let listed = run_cli(&p, &["releases", "--stack", stack])?;
    assert_eq!(
        listed.matches("live=2").count(),
        FUNCTIONS.len(),
        "{listed}"
    );
    assert!(listed.contains("versions 1,2"), "{listed}");

    // Roll every function back: the next object is processed by release 1.
    let rolled = run_cli(&p, &["rollback", "--stack", stack])?;
    assert_eq!(
        rolled.matches("live 2 -> 1").count(),
        FUNCTIONS.len(),
        "{rolled}"
    );
    assert!(all_at(&live_versions(&p).await?, 1));
    p.upload("r/old.jpg", jpeg_with_orientation_6(300, 200)?)
        .await?;
    let runs = p.settle(2).await?;
    assert!(runs.iter().all(|r| r.status == ObjectStatus::Processed));
    assert_eq!(thumbnail_sizes(&p, "r/old.jpg").await?, vec![64]);

    // Nothing before version 1: a clear error and a failing exit, the alias unchanged.
    let again = try_cli(
        &p,
        &["rollback", "--stack", stack, "--function", "transform"],
    )?;
    assert!(!again.success, "{again:?}");
    assert!(
        again.stderr.contains("nothing to roll back to"),
        "{again:?}"
    );
    // Forward again to an explicit version.
    let forward = run_cli(
        &p,
        &[
            "rollback",
            "--stack",
            stack,
            "--function",
            "transform",
            "--to",
            "2",
        ],
    )?;
    assert!(forward.contains("live 1 -> 2"), "{forward}");
    Ok(())
}
