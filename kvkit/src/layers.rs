//! The layer options of a store URL (`?timeout=2s&retries=3`): which kv-layers to put around
//! the store, read out of the URL before the adapter sees the rest.

use std::sync::Arc;
use std::time::Duration;

use kv_layers::{Chaos, ConcurrencyLimit, LayerExt, Metrics, Retry, Timeout};
use kv_trait::url_config::{parse_duration, parse_rate, parse_whole_number, split_options};
use kv_trait::{KvBackend, KvError};

/// Every layer option, as the URL names it.
pub(crate) const OPTIONS: [&str; 11] = [
    "timeout",
    "retries",
    "retry_budget",
    "concurrency",
    "metrics",
    "chaos_seed",
    "chaos_unavailable",
    "chaos_lost_reply",
    "chaos_latency",
    "chaos_latency_rate",
    "chaos_lagged",
];

/// The layers a URL asks for; none by default.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct LayerOptions {
    timeout: Option<Duration>,
    retries: Option<u32>,
    retry_budget: Option<Duration>,
    concurrency: Option<usize>,
    metrics: Option<String>,
    chaos: Option<ChaosOptions>,
}

#[derive(Debug, Clone, Default, PartialEq)]
struct ChaosOptions {
    seed: u64,
    unavailable: f64,
    lost_reply: f64,
    latency: Duration,
    latency_rate: f64,
    lagged: f64,
}

impl LayerOptions {
    /// Takes the layer options out of `url`: the URL left for the adapter, and the layers.
    pub(crate) fn split(url: &str) -> Result<(String, Self), KvError> {
        let (rest, taken) = split_options(url, &OPTIONS);
        let mut options = Self::default();
        let mut chaos: Option<ChaosOptions> = None;
        for (name, value) in &taken {
            if taken.iter().filter(|(other, _)| other == name).count() > 1 {
                return Err(KvError::InvalidConfig(format!(
                    "URL option `{name}` is given more than once"
                )));
            }
            let (name, value) = (name.as_str(), value.as_str());
            match name {
                "timeout" => options.timeout = Some(parse_duration(name, value)?),
                "retries" => options.retries = Some(parse_whole_number(name, value)?),
                "retry_budget" => options.retry_budget = Some(parse_duration(name, value)?),
                "concurrency" => {
                    let max: usize = parse_whole_number(name, value)?;
                    ConcurrencyLimit::new(max)?;
                    options.concurrency = Some(max);
                }
                "metrics" if value.is_empty() => {
                    return Err(KvError::InvalidConfig(
                        "URL option `metrics` needs the store's name for its `store` label, \
                         e.g. metrics=sessions"
                            .into(),
                    ))
                }
                "metrics" => options.metrics = Some(value.to_owned()),
                _ => {
                    let chaos = chaos.get_or_insert_with(ChaosOptions::default);
                    match name {
                        "chaos_seed" => chaos.seed = parse_whole_number(name, value)?,
                        "chaos_unavailable" => chaos.unavailable = parse_rate(name, value)?,
                        "chaos_lost_reply" => chaos.lost_reply = parse_rate(name, value)?,
                        "chaos_latency" => chaos.latency = parse_duration(name, value)?,
                        "chaos_lagged" => chaos.lagged = parse_rate(name, value)?,
                        _ => chaos.latency_rate = parse_rate(name, value)?,
                    }
                }
            }
        }
        if options.retry_budget.is_some() && options.retries.is_none() {
            return Err(KvError::InvalidConfig(
                "URL option `retry_budget` needs `retries` (how many retries) beside it".into(),
            ));
        }
        if let Some(chaos) = &mut chaos {
            // A latency without its rate delays every call: what `chaos_latency=5ms` means.
            if !chaos.latency.is_zero() && !taken.iter().any(|(n, _)| n == "chaos_latency_rate") {
                chaos.latency_rate = 1.0;
            }
        }
        options.chaos = chaos;
        Ok((rest, options))
    }

    /// `store` with the layers around it: chaos innermost (where the store would fail), then
    /// the concurrency limit, the timeout of each attempt, the retries, and metrics outermost
    /// (what the application sees).
    pub(crate) fn wrap(&self, store: Arc<dyn KvBackend>) -> Result<Arc<dyn KvBackend>, KvError> {
        let mut store = store;
        if let Some(chaos) = &self.chaos {
            let layer = Chaos::new(chaos.seed)
                .unavailable(chaos.unavailable)
                .lost_reply(chaos.lost_reply)
                .latency(chaos.latency_rate, chaos.latency)
                .lagged(chaos.lagged);
            store = Arc::new(store.with(layer));
        }
        if let Some(max) = self.concurrency {
            store = Arc::new(store.with(ConcurrencyLimit::new(max)?));
        }
        if let Some(limit) = self.timeout {
            store = Arc::new(store.with(Timeout::new(limit)));
        }
        if let Some(retries) = self.retries {
            let mut retry = Retry::new(retries);
            if let Some(budget) = self.retry_budget {
                retry = retry.budget(budget);
            }
            store = Arc::new(store.with(retry));
        }
        if let Some(name) = &self.metrics {
            store = Arc::new(store.with(Metrics::new(name.clone())));
        }
        Ok(store)
    }

    /// Whether the URL asked for any layer.
    pub(crate) fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layer_options_leave_the_adapters_options_alone() {
        let (rest, layers) =
            LayerOptions::split("redis://h?timeout=2s&namespace=a&retries=3&metrics=s").unwrap();
        assert_eq!(rest, "redis://h?namespace=a");
        assert_eq!(layers.timeout, Some(Duration::from_secs(2)));
        assert_eq!(layers.retries, Some(3));
        assert_eq!(layers.metrics.as_deref(), Some("s"));
        assert!(layers.chaos.is_none());
        let (rest, layers) = LayerOptions::split("memory://").unwrap();
        assert_eq!(rest, "memory://");
        assert!(layers.is_empty());
        let (_, layers) = LayerOptions::split("memory://?chaos_latency=5ms").unwrap();
        let chaos = layers.chaos.unwrap();
        assert_eq!(
            (chaos.latency, chaos.latency_rate),
            (Duration::from_millis(5), 1.0)
        );
    }

    #[test]
    fn bad_layer_options_say_which_and_why() {
        for (url, says) in [
            ("memory://?timeout=2", "`timeout=2`"),
            ("memory://?retries=-1", "`retries=-1`"),
            ("memory://?retry_budget=1s", "needs `retries`"),
            ("memory://?concurrency=0", "between 1 and"),
            ("memory://?metrics=", "`metrics`"),
            ("memory://?chaos_unavailable=1.5", "`chaos_unavailable=1.5`"),
            ("memory://?timeout=1s&timeout=2s", "more than once"),
        ] {
            let err = LayerOptions::split(url).unwrap_err();
            assert!(matches!(err, KvError::InvalidConfig(_)), "{url}");
            assert!(err.to_string().contains(says), "{url}: {err}");
        }
    }
}
