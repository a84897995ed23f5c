//! The whole conformance suite against `EtcdBackend`, on a single member and on a cluster of
//! three, one test per check, each in a fresh namespace, the way applications share one
//! cluster; with the `tls` feature, also on a member that speaks only TLS and requires a
//! client certificate.
//!
//! The clusters come from `KV_ETCD_URL` and `KV_ETCD_CLUSTER_URL`, else private ones started
//! for this test binary (see `kv_test_services::etcd`).

mod common;

use kv_conformance::Profile;
use kv_etcd::EtcdBackend;
use kv_test_services::etcd::{EtcdService, HOW_TO_GET_ONE};
use kv_trait::KvError;

async fn fresh_namespace(service: Option<&'static EtcdService>) -> Result<EtcdBackend, KvError> {
    let service = service.ok_or_else(|| {
        KvError::InvalidConfig(format!("no etcd cluster for this test. {HOW_TO_GET_ONE}"))
    })?;
    common::builder(service, "conformance").build().await
}

/// 1 MiB values and 1 ms TTL granularity (the defaults); the cluster's password, if it has
/// one, as a secret that `Debug` must not show.
fn profile(service: Option<&'static EtcdService>) -> Profile {
    service
        .and_then(|service| service.password.clone())
        .into_iter()
        .fold(Profile::default(), Profile::with_secret)
}

mod single_member {
    use super::*;

    kv_conformance::conformance_tests!(
        || fresh_namespace(common::single()),
        profile(common::single())
    );
}

mod three_members {
    use super::*;

    kv_conformance::conformance_tests!(
        || fresh_namespace(common::cluster()),
        profile(common::cluster())
    );
}

#[cfg(feature = "tls")]
mod tls_member {
    use super::*;

    kv_conformance::conformance_tests!(
        || fresh_namespace(kv_test_services::etcd::tls_single()),
        profile(kv_test_services::etcd::tls_single())
    );
}
