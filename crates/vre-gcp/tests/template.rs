//! The spec `vre init gcp DIR` writes (the provider's template in a vre.toml)
//! passes the registry's validation, the provider table included; without
//! credentials, building the provider names the missing variable; a typo in
//! the `[gcp]` table is reported with its line.

use std::sync::Arc;

use vre_gcp::GcpFactory;
use vre_testkit::template::{assert_table_typo_is_located, assert_template_validates_and_asks_for};

#[tokio::test]
async fn the_init_template_validates_and_asks_for_credentials() {
    assert_template_validates_and_asks_for(Arc::new(GcpFactory), "GOOGLE_APPLICATION_CREDENTIALS").await;
}

#[test]
fn a_typo_in_the_provider_table_is_located() {
    assert_table_typo_is_located(Arc::new(GcpFactory));
}
