//! Pageviews to Kafka: the original demo's JSON, keyed by the viewer's user id,
//! through one batching producer shared by every stream, paced by token buckets.
//!
//! Invariants:
//! - Every pageview handed to [`PageviewSink::send`] is either accepted by the
//!   producer (then counted as sent, and later as delivered or failed by the
//!   delivery callback) or the call returns an error; a full producer queue
//!   makes the sender wait, it never drops the event.
//! - Events are produced without one await per message: the producer batches
//!   (linger, lz4) on its own thread, and the rate limiter is asked for tokens in
//!   chunks of a few milliseconds' worth, so high rates stay cheap and exact.
//! - With --uniform, event contents are a function of `--seed` (only
//!   `received_at` reads the clock); shoppers' sessions also depend on when
//!   purchases end them (see [`crate::shoppers`]).

use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fake::rand::rngs::StdRng;
use fake::rand::seq::IndexedRandom;
use fake::rand::Rng;
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use pipeline::kafka::KafkaArgs;
use pipeline::pageview::{Pageview, CHANNELS};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::ClientContext;
use tokio_util::sync::CancellationToken;

use crate::config::Rate;
use crate::seed::Catalog;
use crate::shoppers::{Sessions, Shoppers};
use crate::stats::Counters;
use crate::Error;

/// Unix seconds now, as the original's `received_at`.
pub fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn channel<R: Rng + ?Sized>(rng: &mut R) -> &'static str {
    CHANNELS.choose(rng).copied().unwrap_or(CHANNELS[0])
}

/// A random pageview: a random user looking at a random product or a random
/// user's profile, with equal odds, from a random channel.
pub fn random_pageview<R: Rng + ?Sized>(
    rng: &mut R,
    catalog: &Catalog,
    received_at: i64,
) -> Pageview {
    let user_id = catalog.random_user(rng);
    let url = if rng.random_bool(0.5) {
        format!("/products/{}", catalog.random_item(rng).id)
    } else {
        format!("/profiles/{}", catalog.random_user(rng))
    };
    Pageview {
        user_id,
        url,
        channel: channel(rng).to_owned(),
        received_at,
    }
}

/// The purchaser's own view of the product bought.
pub fn purchase_pageview<R: Rng + ?Sized>(
    rng: &mut R,
    user_id: u64,
    item_id: u64,
    received_at: i64,
) -> Pageview {
    Pageview {
        user_id,
        url: format!("/products/{item_id}"),
        channel: channel(rng).to_owned(),
        received_at,
    }
}

/// Counts acknowledgements and failures as Kafka reports them, and turns
/// librdkafka's per-broker error stream into one warning per outage minute.
#[derive(Debug)]
pub struct DeliveryCounter {
    counters: Arc<Counters>,
    last_error_log: std::sync::Mutex<Option<std::time::Instant>>,
    /// Wakes the delivery thread (`pipeline::kafka::spawn_delivery_thread`).
    wake: pipeline::kafka::DeliveryWaker,
}

impl pipeline::kafka::DeliveryWake for DeliveryCounter {
    fn delivery_wake(&self) -> &pipeline::kafka::DeliveryWaker {
        &self.wake
    }
}

impl ClientContext for DeliveryCounter {
    fn log(&self, level: rdkafka::config::RDKafkaLogLevel, fac: &str, message: &str) {
        // Errors also arrive through `error` below, which rate-limits them.
        tracing::debug!(?level, fac, message, "librdkafka");
    }

    fn error(&self, error: KafkaError, reason: &str) {
        self.counters.add(&self.counters.kafka_errors, 1);
        let mut last = self
            .last_error_log
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if last.is_none_or(|t| t.elapsed() >= Duration::from_secs(60)) {
            *last = Some(std::time::Instant::now());
            tracing::warn!(%error, reason, "Kafka trouble; the producer keeps retrying (pageviews wait, none are dropped)");
        }
    }
}

impl ProducerContext for DeliveryCounter {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        match result {
            Ok(_) => self.counters.add(&self.counters.delivered, 1),
            Err((error, _)) => {
                self.counters.add(&self.counters.delivery_failures, 1);
                tracing::warn!(%error, "Kafka refused a pageview after retries");
            }
        }
    }
}

/// Which counter a sent pageview goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PageviewKind {
    Random,
    Purchase,
}

/// The shared producer for pageviews.
pub struct PageviewSink {
    /// Its delivery reports are served by `pipeline::kafka::spawn_delivery_thread`,
    /// woken only by them (rdkafka's `ThreadedProducer` spins ~1% of a core
    /// polling them).
    producer: Arc<BaseProducer<DeliveryCounter>>,
    topic: String,
    counters: Arc<Counters>,
}

impl std::fmt::Debug for PageviewSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PageviewSink")
            .field("topic", &self.topic)
            .finish()
    }
}

impl PageviewSink {
    pub fn new(kafka: &KafkaArgs, topic: &str, counters: Arc<Counters>) -> Result<Self, Error> {
        // Durable: outages shorter than five minutes are ridden out by the
        // producer's own retries, and idempotence keeps those retries from
        // writing a pageview twice, so the topic holds exactly the count
        // loadgen reports. Bulk batching is what makes hundreds of thousands
        // of events per second cheap.
        let mut config = kafka.durable_producer();
        let producer = pipeline::kafka::bulk_batching(&mut config)
            .create_with_context(DeliveryCounter {
                counters: counters.clone(),
                last_error_log: Default::default(),
                wake: Default::default(),
            })
            .map_err(|e| Error::KafkaRefused(format!("cannot create the producer: {e}")))?;
        let producer = Arc::new(producer);
        pipeline::kafka::spawn_delivery_thread(&producer, "loadgen-delivery")
            .map_err(|e| Error::KafkaRefused(format!("cannot start the delivery thread: {e}")))?;
        Ok(PageviewSink {
            producer,
            topic: topic.to_owned(),
            counters,
        })
    }

    /// Asks the cluster for the topic's metadata: proves a broker answers.
    pub async fn probe(self: &Arc<Self>, timeout: Duration) -> Result<(), String> {
        let me = self.clone();
        tokio::task::spawn_blocking(move || {
            me.producer
                .client()
                .fetch_metadata(Some(&me.topic), timeout)
                .map(|_| ())
                .map_err(|e| e.to_string())
        })
        .await
        .map_err(|e| e.to_string())?
    }

    /// Hands one pageview to the producer, waiting while its queue is full.
    pub async fn send(&self, pv: &Pageview, kind: PageviewKind) -> Result<(), Error> {
        let key = pv.user_id.to_string();
        let payload = serde_json::to_vec(pv).map_err(|e| Error::KafkaRefused(e.to_string()))?;
        loop {
            let record = BaseRecord::to(&self.topic).key(&key).payload(&payload);
            match self.producer.send(record) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                    // The broker is slow or away: wait for deliveries to drain
                    // the queue instead of dropping the event.
                    self.counters.add(&self.counters.kafka_queue_full, 1);
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
                Err((e, _)) => {
                    return Err(Error::KafkaRefused(format!(
                        "cannot produce to {}: {e}",
                        self.topic
                    )))
                }
            }
        }
        let counter = match kind {
            PageviewKind::Random => &self.counters.pageviews,
            PageviewKind::Purchase => &self.counters.purchase_pageviews,
        };
        self.counters.add(counter, 1);
        Ok(())
    }

    /// Waits until every pageview sent is acknowledged or failed, or `timeout`.
    /// Returns how many are still in flight.
    pub async fn flush(self: Arc<Self>, timeout: Duration) -> i32 {
        tokio::task::spawn_blocking(move || {
            let _ = self.producer.flush(timeout);
            self.producer.in_flight_count()
        })
        .await
        .unwrap_or(-1)
    }
}

/// A token bucket for one stream, asked in chunks at high rates.
#[derive(Debug)]
pub struct Pacer {
    limiter: Option<DefaultDirectRateLimiter>,
    chunk: u32,
}

impl Pacer {
    /// `None` rate = unlimited. Chunks are ~5 ms of traffic. The bucket holds
    /// a second's worth (at least 2 tokens), so a stall of up to a second (a
    /// slow commit, a busy machine) is caught up and the average rate holds;
    /// it starts empty, so a run never opens with a burst.
    pub fn new(rate: Option<f64>) -> Self {
        match rate {
            None => Pacer {
                limiter: None,
                chunk: 1000,
            },
            Some(r) => {
                let r = r.max(1e-6);
                let chunk = ((r * 0.005).ceil() as u32).clamp(1, 5000);
                let burst = (r.ceil().min(f64::from(u32::MAX)) as u32).max(chunk).max(2);
                let period = Duration::from_secs_f64(1.0 / r).max(Duration::from_nanos(1));
                let quota = Quota::with_period(period)
                    .unwrap_or_else(|| Quota::per_second(NonZeroU32::MIN))
                    .allow_burst(NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN));
                let limiter = RateLimiter::direct(quota);
                // A new bucket starts full; empty it so a run does not open
                // with a burst above the target rate.
                if let Some(b) = NonZeroU32::new(burst) {
                    let _ = limiter.check_n(b);
                }
                Pacer {
                    limiter: Some(limiter),
                    chunk,
                }
            }
        }
    }

    pub fn chunk(&self) -> u32 {
        self.chunk
    }

    /// Waits for `n` (<= chunk) tokens.
    pub async fn acquire(&self, n: u32) {
        if let (Some(l), Some(n)) = (&self.limiter, NonZeroU32::new(n)) {
            // n never exceeds the burst (chunk <= burst), so this cannot fail.
            let _ = l.until_n_ready(n).await;
        }
    }
}

/// The original's swing: mean * (75 + 50 sin(2 pi t / period)) / 75, with t
/// in Unix seconds like the original's `sin(time/1000)`.
pub fn oscillating_rate(mean: f64, period: Duration, unix_secs: f64) -> f64 {
    let phase = std::f64::consts::TAU * unix_secs / period.as_secs_f64();
    mean * (75.0 + 50.0 * phase.sin()) / 75.0
}

/// Settings of the rate-limited pageview stream.
#[derive(Debug, Clone)]
pub struct PageviewStream {
    pub rate: Rate,
    pub oscillate: Option<Duration>,
    pub max: Option<u64>,
}

/// Who the pageviews come from: shoppers' sessions, or uniformly random users
/// (--uniform, the original's).
#[derive(Debug)]
pub enum Browsing {
    Sessions(Arc<Shoppers>, Sessions),
    Uniform(Arc<Catalog>),
}

impl Browsing {
    fn next(&mut self, rng: &mut StdRng, received_at: i64) -> Pageview {
        match self {
            Browsing::Sessions(shoppers, sessions) => sessions.next(shoppers, rng, received_at),
            Browsing::Uniform(catalog) => random_pageview(rng, catalog, received_at),
        }
    }
}

/// Sends pageviews at the configured rate until cancelled or `max`.
/// `target_milli` publishes the current target (millievents/s) for live stats.
pub async fn run_stream(
    stream: PageviewStream,
    sink: Arc<PageviewSink>,
    mut browsing: Browsing,
    mut rng: StdRng,
    target_milli: Arc<AtomicU64>,
    cancel: CancellationToken,
) -> Result<(), Error> {
    if stream.rate.is_off() {
        return Ok(());
    }
    let mut sent: u64 = 0;
    let current_rate = || -> Option<f64> {
        match (stream.rate, stream.oscillate) {
            (Rate::Max, _) => None,
            (Rate::PerSec(r), None) => Some(r),
            (Rate::PerSec(r), Some(period)) => {
                let t = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map(|d| d.as_secs_f64())
                    .unwrap_or(0.0);
                Some(oscillating_rate(r, period, t))
            }
        }
    };
    // With --oscillate the bucket is rebuilt with the new rate at this step:
    // fine enough for a sine of period minutes to hours.
    let step = stream
        .oscillate
        .map(|p| (p / 200).clamp(Duration::from_millis(100), Duration::from_secs(10)));
    let publish = |r: Option<f64>| {
        target_milli.store(
            r.map(|r| (r * 1000.0) as u64).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        )
    };
    let mut rate = current_rate();
    publish(rate);
    let mut pacer = Pacer::new(rate);
    let mut rebuilt_at = tokio::time::Instant::now();
    loop {
        if let Some(step) = step {
            if rebuilt_at.elapsed() >= step {
                rate = current_rate();
                publish(rate);
                pacer = Pacer::new(rate);
                rebuilt_at = tokio::time::Instant::now();
            }
        }
        let mut n = pacer.chunk() as u64;
        if let Some(max) = stream.max {
            n = n.min(max - sent);
            if n == 0 {
                return Ok(());
            }
        }
        tokio::select! {
            biased;
            _ = cancel.cancelled() => return Ok(()),
            _ = pacer.acquire(n as u32) => {}
        }
        let now = unix_now();
        if let Browsing::Sessions(shoppers, sessions) = &mut browsing {
            sessions.absorb_checkouts(shoppers);
        }
        for _ in 0..n {
            let pv = browsing.next(&mut rng, now);
            sink.send(&pv, PageviewKind::Random).await?;
        }
        sent += n;
        if stream.rate == Rate::Max {
            // Unlimited: let the other tasks (purchases, stats) run.
            tokio::task::yield_now().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::seed::CatalogItem;
    use fake::rand::SeedableRng;

    fn catalog() -> Catalog {
        Catalog {
            items: (1..=20)
                .map(|id| CatalogItem {
                    id,
                    price_cents: 500,
                })
                .collect(),
            users: (1..=50).map(|id| (id, false)).collect(),
            low_stock: Vec::new(),
        }
    }

    #[test]
    fn random_pageviews_name_existing_ids_and_known_channels() {
        let c = catalog();
        let mut rng = StdRng::seed_from_u64(1);
        let (mut products, mut profiles) = (0, 0);
        for _ in 0..2000 {
            let pv = random_pageview(&mut rng, &c, 1_700_000_000);
            assert!((1..=50).contains(&pv.user_id), "{pv:?}");
            assert!(CHANNELS.contains(&pv.channel.as_str()), "{pv:?}");
            match pv.target().expect("url parses") {
                pipeline::pageview::PageviewTarget::Product(id) => {
                    assert!((1..=20).contains(&id));
                    products += 1;
                }
                pipeline::pageview::PageviewTarget::Profile(id) => {
                    assert!((1..=50).contains(&id));
                    profiles += 1;
                }
            }
        }
        // Equal odds of product and profile pages.
        assert!((850..1150).contains(&products), "{products} vs {profiles}");
    }

    #[test]
    fn pageview_json_and_key_are_the_originals() {
        let mut rng = StdRng::seed_from_u64(2);
        let pv = purchase_pageview(&mut rng, 3290, 257, 1634651213);
        let json: serde_json::Value = serde_json::to_value(&pv).unwrap();
        let obj = json.as_object().unwrap();
        let mut keys: Vec<_> = obj.keys().cloned().collect();
        keys.sort();
        assert_eq!(keys, ["channel", "received_at", "url", "user_id"]);
        assert_eq!(obj["user_id"], 3290);
        assert_eq!(obj["url"], "/products/257");
        assert_eq!(obj["received_at"], 1634651213);
        assert_eq!(pv.key(), "3290");
    }

    #[test]
    fn oscillation_swings_between_a_third_and_five_thirds() {
        let p = Duration::from_secs(6283);
        let samples: Vec<f64> = (0..6283)
            .map(|t| oscillating_rate(750.0, p, t as f64))
            .collect();
        let max = samples.iter().cloned().fold(f64::MIN, f64::max);
        let min = samples.iter().cloned().fold(f64::MAX, f64::min);
        assert!(
            (max - 1250.0).abs() < 1.0 && (min - 250.0).abs() < 1.0,
            "{min}..{max}"
        );
        let mean = samples.iter().sum::<f64>() / samples.len() as f64;
        assert!((mean - 750.0).abs() < 1.0, "{mean}");
    }

    #[test]
    fn pacer_chunks_grow_with_the_rate() {
        assert_eq!(Pacer::new(Some(10.0)).chunk(), 1);
        assert_eq!(Pacer::new(Some(75_000.0)).chunk(), 375);
        assert!(Pacer::new(None).limiter.is_none());
    }
}
