//! Prometheus metrics (`GET /metrics`): requests by route and status,
//! queue depth, pass sizes in pairs and tokens, pass and request latency.

use std::sync::atomic::AtomicU64;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct RequestLabels {
    pub(crate) route: String,
    pub(crate) status: u16,
}

pub(crate) struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: Family<RequestLabels, Histogram>,
    pub(crate) queue_depth: Gauge<i64, std::sync::atomic::AtomicI64>,
    batch_pairs: Histogram,
    batch_tokens: Histogram,
    pass_seconds: Histogram,
    pairs: Counter<u64, AtomicU64>,
    dropped: Counter<u64, AtomicU64>,
}

impl Metrics {
    pub(crate) fn new() -> Self {
        let mut registry = Registry::with_prefix("crossrank");
        let requests = Family::<RequestLabels, Counter>::default();
        let latency = Family::<RequestLabels, Histogram>::new_with_constructor(|| Histogram::new(exponential_buckets(0.001, 2.0, 16)));
        let queue_depth = Gauge::default();
        let batch_pairs = Histogram::new(exponential_buckets(1.0, 2.0, 12));
        let batch_tokens = Histogram::new(exponential_buckets(16.0, 2.0, 14));
        let pass_seconds = Histogram::new(exponential_buckets(0.001, 2.0, 16));
        let pairs = Counter::default();
        registry.register("requests", "HTTP requests by route and status", requests.clone());
        registry.register("request_duration_seconds", "HTTP request latency", latency.clone());
        registry.register("queue_depth", "Requests waiting for or in the model worker", queue_depth.clone());
        registry.register("batch_pairs", "Pairs per forward pass", batch_pairs.clone());
        registry.register("batch_tokens", "Tokens per forward pass", batch_tokens.clone());
        registry.register("pass_duration_seconds", "Forward pass latency", pass_seconds.clone());
        registry.register("pairs_scored", "Pairs scored", pairs.clone());
        let dropped = Counter::default();
        registry.register("requests_dropped", "Queued requests dropped because their client went away", dropped.clone());
        Self { registry, requests, latency, queue_depth, batch_pairs, batch_tokens, pass_seconds, pairs, dropped }
    }

    pub(crate) fn observe_request(&self, route: &str, status: u16, took: Duration) {
        let labels = RequestLabels { route: route.to_string(), status };
        self.requests.get_or_create(&labels).inc();
        self.latency.get_or_create(&labels).observe(took.as_secs_f64());
    }

    pub(crate) fn observe_pass(&self, pairs: usize, tokens: usize, took: Duration) {
        self.batch_pairs.observe(pairs as f64);
        self.batch_tokens.observe(tokens as f64);
        self.pass_seconds.observe(took.as_secs_f64());
        self.pairs.inc_by(pairs as u64);
    }

    pub(crate) fn observe_dropped(&self, n: usize) {
        self.dropped.inc_by(n as u64);
    }

    pub(crate) fn render(&self) -> String {
        let mut out = String::new();
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}
