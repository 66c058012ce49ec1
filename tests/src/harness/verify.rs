//! The end-to-end check: once the traffic has stopped, analytics' outputs
//! equal the ground truth and analytics has consumed every input to its end.
//!
//! Invariant: "quiet" is decided by data, never by a pause: the outputs match
//! AND the offsets analytics stored equal the end of every input topic (read
//! back to partition EOF), so no record that could still change an output is
//! left; then the outputs are read once more and must still match.

use std::time::{Duration, Instant};

use super::process::Process;
use super::table::Table;
use super::topics::{read_to_end, TopicContents};
use super::truth::{actual, differences, expected, stored_offsets, summary, Source};
use super::world::World;

/// What a verified run consisted of.
#[derive(Debug)]
pub struct Verified {
    pub source: Source,
    pub outputs: Vec<Table>,
}

/// Polls until analytics' outputs equal the ground truth and it has consumed
/// every input topic to its end, then checks the dead-letter topic is empty.
/// `running` are the services that must stay up meanwhile (cdc, analytics).
///
/// # Panics
/// On timeout, with the diff of every output that differs and the offsets
/// analytics is missing; when a service died; when records were dead-lettered.
pub async fn assert_outputs_match(
    world: &World,
    running: &mut [&mut Process],
    timeout: Duration,
) -> Verified {
    let kafka = world.stack.kafka();
    let read_timeout = Duration::from_secs(60);
    let pageviews = read_to_end(&kafka, &world.pageviews_topic, read_timeout).await;
    let mut mysql = world.mysql().await;
    let source = Source::read(&mut mysql, &pageviews).await;
    mysql.disconnect().await.ok();
    eprintln!(
        "e2e: ground truth from {} items, {} users, {} purchases, {} pageviews",
        source.items.len(),
        source.users.len(),
        source.purchases.len(),
        source.pageviews.len()
    );

    let mut client = world.postgres().await;
    let started = Instant::now();
    let deadline = started + timeout;
    loop {
        for service in running.iter_mut() {
            service.assert_running();
        }
        match check(world, &mut client, &source, &pageviews).await {
            Ok(outputs) => {
                eprintln!(
                    "e2e: outputs equal the ground truth after {:.1}s: {}",
                    started.elapsed().as_secs_f64(),
                    summary(&outputs)
                );
                assert_no_dead_letters(world).await;
                return Verified { source, outputs };
            }
            Err(problem) if Instant::now() >= deadline => panic!(
                "analytics did not converge to the ground truth within {timeout:?}:\n{problem}"
            ),
            Err(_) => {}
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// One comparison: `Ok` with the outputs when everything matches and every
/// input was consumed to its end; `Err` says what does not.
async fn check(
    world: &World,
    client: &mut tokio_postgres::Client,
    source: &Source,
    pageviews: &TopicContents,
) -> Result<Vec<Table>, String> {
    let shape = expected(source, 0.0, world.low_stock_threshold);
    let (now, outputs) = actual(client, &shape)
        .await
        .map_err(|e| format!("cannot read analytics' outputs yet: {e}"))?;
    let truth = expected(source, now, world.low_stock_threshold);
    let diffs = differences(&truth, &outputs);
    if !diffs.is_empty() {
        return Err(diffs.join("\n"));
    }

    // Equal now; also every input consumed, so nothing can still change them.
    let kafka = world.stack.kafka();
    let mut ends = vec![pageviews.clone()];
    for table in ["users", "items", "purchases"] {
        ends.push(read_to_end(&kafka, &world.cdc_topic(table), Duration::from_secs(30)).await);
    }
    let stored = stored_offsets(client, &world.group_id)
        .await
        .map_err(|e| format!("cannot read consumer_offsets: {e}"))?;
    let mut behind = Vec::new();
    for topic in &ends {
        for (partition, end) in &topic.next_offsets {
            let at = stored.get(&(topic.topic.clone(), *partition)).copied();
            if at != Some(*end) && !(at.is_none() && *end == 0) {
                behind.push(format!(
                    "{}/{partition}: stored next offset {at:?}, topic ends at {end}",
                    topic.topic
                ));
            }
        }
    }
    if !behind.is_empty() {
        return Err(format!(
            "outputs match but analytics has not consumed every input to its end:\n  {}",
            behind.join("\n  ")
        ));
    }
    let (now, again) = actual(client, &truth)
        .await
        .map_err(|e| format!("cannot read analytics' outputs: {e}"))?;
    let diffs = differences(&expected(source, now, world.low_stock_threshold), &again);
    if diffs.is_empty() {
        Ok(again)
    } else {
        Err(format!(
            "outputs changed after every input was consumed:\n{}",
            diffs.join("\n")
        ))
    }
}

async fn assert_no_dead_letters(world: &World) {
    let dead = read_to_end(
        &world.stack.kafka(),
        &world.dead_letter_topic,
        Duration::from_secs(30),
    )
    .await;
    if let Some(first) = dead.records.first() {
        panic!(
            "analytics dead-lettered {} records; the first: key {:?}, value {:?}",
            dead.records.len(),
            first.key.as_deref().map(String::from_utf8_lossy),
            first
                .payload
                .as_deref()
                .map(|p| String::from_utf8_lossy(&p[..p.len().min(300)]).into_owned())
        );
    }
}

/// The totals loadgen printed when it stopped (its last report in `log`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoadgenTotals {
    pub purchases: u64,
    pub hard_deletes: u64,
    pub pageviews_delivered: u64,
}

/// Parses loadgen's final report: `  mysql  purchases N (...); ... hard deletes
/// N, ...` and `  kafka  pageviews delivered N = ...`.
pub fn loadgen_totals(log: &str) -> Option<LoadgenTotals> {
    let number_after = |line: &str, label: &str| -> Option<u64> {
        let rest = &line[line.find(label)? + label.len()..];
        let digits: String = rest
            .trim_start()
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        digits.parse().ok()
    };
    let mysql = log
        .lines()
        .rev()
        .find(|l| l.starts_with("  mysql  purchases "))?;
    let kafka = log
        .lines()
        .rev()
        .find(|l| l.starts_with("  kafka  pageviews delivered "))?;
    Some(LoadgenTotals {
        purchases: number_after(mysql, "purchases")?,
        hard_deletes: number_after(mysql, "hard deletes")?,
        pageviews_delivered: number_after(kafka, "pageviews delivered")?,
    })
}

/// The ground truth's raw data is exactly what loadgen says it committed to
/// MySQL and Kafka acknowledged: no pageview lost or duplicated on the way to
/// the topic, no purchase missing.
///
/// # Panics
/// When loadgen printed no totals, or they disagree with the data read back.
pub fn assert_source_matches_loadgen(source: &Source, loadgen_log: &str) {
    let totals = loadgen_totals(loadgen_log).unwrap_or_else(|| {
        panic!(
            "loadgen printed no totals (`  mysql  purchases N ...` and `  kafka  pageviews delivered N ...`); its log ends:\n{}",
            super::process::tail(loadgen_log, 20)
        )
    });
    assert_eq!(
        source.pageviews.len() as u64,
        totals.pageviews_delivered,
        "pageviews read back from the topic vs delivered by loadgen ({totals:?})"
    );
    assert_eq!(
        source.purchases.len() as u64,
        totals.purchases - totals.hard_deletes,
        "purchase rows in MySQL vs loadgen's purchases minus hard deletes ({totals:?})"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loadgen_totals_are_read_from_its_last_report() {
        let log = "\
[ 2s] purchases 50.0/s (target 50.0) total 99 | pageviews 497.7/s
totals after 12.1s, producer flushed in 0.1s (seed 7):
  mysql  purchases 600 (49.8/s); completions 56, soft deletes 21, hard deletes 30, restocks 27, vip upgrades 23, email changes 31; skipped 110 (nothing eligible), no-ops 0; retries 0
  kafka  pageviews delivered 6600 = 6000 rate-limited (497.7/s) + 600 purchasers'; failed 0, undelivered 0; queue-full waits 0, client errors 0
";
        assert_eq!(
            loadgen_totals(log),
            Some(LoadgenTotals {
                purchases: 600,
                hard_deletes: 30,
                pageviews_delivered: 6600
            })
        );
        assert_eq!(loadgen_totals("no report"), None);
    }
}
