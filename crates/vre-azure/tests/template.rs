//! The spec `vre init azure DIR` writes (the provider's template in a vre.toml)
//! passes the registry's validation, the provider table included; without
//! credentials, building the provider names the missing variable; a typo in
//! the `[azure]` table is reported with its line.

use std::sync::Arc;

use vre_azure::AzureFactory;
use vre_testkit::template::{assert_table_typo_is_located, assert_template_validates_and_asks_for};

#[tokio::test]
async fn the_init_template_validates_and_asks_for_credentials() {
    assert_template_validates_and_asks_for(Arc::new(AzureFactory), "AZURE_TENANT_ID").await;
}

#[test]
fn a_typo_in_the_provider_table_is_located() {
    assert_table_typo_is_located(Arc::new(AzureFactory));
}
