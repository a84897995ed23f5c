//! `memory://` and `memory://NAME`: kv-memory stores, private or shared within the process.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock, PoisonError};

use kv_memory::MemoryBackend;
use kv_trait::url_config::StoreUrl;
use kv_trait::KvError;

use super::{opened, Adapter, Opened};

pub(super) const ADAPTER: Adapter = Adapter {
    scheme: "memory",
    validate: |url| store_name(url).map(drop),
    open: |url, namespace| Box::pin(async move { open(&url, &namespace) }),
    shared: |url| store_name(url).is_ok_and(|name| name.is_some()),
};

fn open(url: &str, namespace: &str) -> Result<Opened, KvError> {
    let store = named_store(store_name(url)?.as_deref()).namespace(namespace);
    Ok(opened(store))
}

/// The store name of a `memory://NAME` URL (`None` for `memory://`).
fn store_name(url: &str) -> Result<Option<String>, KvError> {
    let mut parsed = StoreUrl::parse(url, "memory")?;
    parsed.take("namespace");
    let name = parsed
        .location()
        .strip_prefix("//")
        .map(str::to_owned)
        .ok_or_else(|| {
            KvError::InvalidConfig(format!("expected memory:// or memory://NAME, not `{url}`"))
        })?;
    if name.contains('/') {
        return Err(KvError::InvalidConfig(format!(
            "memory:// URLs name a store, not a path: `{url}`"
        )));
    }
    parsed.finish(&["namespace"])?;
    Ok((!name.is_empty()).then_some(name))
}

/// A new store when unnamed, else the process's store of that name (made on first use).
fn named_store(name: Option<&str>) -> MemoryBackend {
    static NAMED: OnceLock<Mutex<HashMap<String, MemoryBackend>>> = OnceLock::new();
    let Some(name) = name else {
        return MemoryBackend::new();
    };
    let mut named = NAMED
        .get_or_init(Mutex::default)
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    named.entry(name.to_owned()).or_default().clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_take_a_name_and_a_namespace_only() {
        assert_eq!(store_name("memory://").unwrap(), None);
        assert_eq!(
            store_name("memory://cache?namespace=x").unwrap().as_deref(),
            Some("cache")
        );
        assert!(store_name("memory://cache?size=3").is_err());
        assert!(store_name("memory://cache/path").is_err());
    }
}
