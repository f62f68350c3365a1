//! End-to-end: the SAM form of the stack (`infra/sam/template.yaml`, generated from the
//! plain template) deploys through the SAM transform and runs the same pipeline: the
//! functions are published behind `live` by `AutoPublishAlias`, the state machine calls
//! the aliases, an upload ends processed with its catalog entry.

// Test code: a failed expectation is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use anyhow::Result;
use integration_tests::{jpeg_with_orientation_6, TestPipeline};
use pipeline_aws::catalog::DynamoCatalog;
use pipeline_aws::releases::release_of;
use pipeline_core::catalog::CatalogStatus;
use pipeline_core::report::ObjectStatus;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sam_form_deploys_through_the_transform_and_processes_an_upload() -> Result<()> {
    let p = TestPipeline::start_sam("sam-form").await?;
    for (short, name) in &p.local.stack.functions {
        let release = release_of(&p.local.clients.lambda, name).await?;
        assert!(
            release.versions.iter().any(|v| v.version == release.live),
            "{short}: live must point at a published version: {release:?}"
        );
    }
    let definition = p
        .executions
        .definition(&p.local.stack.state_machine_arn)
        .await
        .map_err(anyhow::Error::msg)?;
    assert_eq!(
        definition.matches(":live\"").count(),
        4,
        "the four Task states call the live aliases: {definition}"
    );

    p.upload("sam/a.jpg", jpeg_with_orientation_6(160, 120)?)
        .await?;
    let runs = p.settle(1).await?;
    assert_eq!(runs[0].status, ObjectStatus::Processed);
    let manifest = p.manifest("sam/a.jpg").await?;
    assert_eq!(manifest.outputs.len(), 2);
    let catalog = DynamoCatalog::new(
        p.local.clients.dynamodb.clone(),
        &p.local.stack.catalog_table,
    );
    let (versions, _) = catalog.versions("sam/a.jpg").await?;
    assert_eq!(versions[0].status, CatalogStatus::Processed);
    Ok(())
}
