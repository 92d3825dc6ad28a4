//! Time in tests: the "now" that test data is placed around, and the deadline by which every
//! wait of a test gives up.
//!
//! cargo-nextest kills a test that runs past its limit (`.config/nextest.toml`), and a killed
//! test prints none of its own diagnostics. Under nextest each wait therefore ends by the
//! test's deadline as well as by its own limit: [`DEFAULT_BUDGET`] from the test's first wait,
//! or what the test sets with [`set_budget`], always shorter than the runner's limit, so that
//! a test that fails says why and shows its logs. Under plain `cargo test`, which kills
//! nothing, only each wait's own limit applies.

use std::cell::Cell;
use std::time::{Duration, Instant, SystemTime};

/// A test's whole time, unless it sets its own: nextest's default limit (180s) less a margin
/// for stopping what the test started and printing its report.
pub const DEFAULT_BUDGET: Duration = Duration::from_secs(150);

thread_local! {
    // Tests run one per thread under `cargo test` and one per process under nextest.
    static TEST_DEADLINE: Cell<Option<Instant>> = const { Cell::new(None) };
}

/// Gives the calling test `total` from now for all its waits under nextest (the long
/// end-to-end tests whose nextest limit is longer than the default).
pub fn set_budget(total: Duration) {
    if under_nextest() {
        TEST_DEADLINE.with(|d| d.set(Some(Instant::now() + total)));
    }
}

/// Whether the test runs under cargo-nextest, which sets `NEXTEST_RUN_ID` for every test.
fn under_nextest() -> bool {
    std::env::var_os("NEXTEST_RUN_ID").is_some()
}

/// The test's deadline, starting its default budget on first use; none (a year) outside
/// nextest.
pub fn test_deadline() -> Instant {
    TEST_DEADLINE.with(|d| {
        if let Some(deadline) = d.get() {
            return deadline;
        }
        let budget = if under_nextest() {
            DEFAULT_BUDGET
        } else {
            Duration::from_secs(365 * 24 * 3600)
        };
        let deadline = Instant::now() + budget;
        d.set(Some(deadline));
        deadline
    })
}

/// When a wait of `limit` starting now gives up: after `limit`, or at the test's deadline if
/// that comes first.
pub fn deadline_after(limit: Duration) -> Instant {
    (Instant::now() + limit).min(test_deadline())
}

/// Why a wait gave up, for its message: its own limit, or the test's budget.
pub fn gave_up(limit: Duration, deadline: Instant) -> String {
    if deadline < test_deadline() {
        format!("within {limit:?}")
    } else {
        "within the test's time budget (see crates/testkit/src/time.rs)".to_string()
    }
}

/// "Now" for data that a test places in time, in Unix seconds: the clock, or
/// `RTHANOS_TEST_NOW` to run the test as on another date, an RFC 3339 time or an offset
/// from the clock (`-9d`). Any phase of the calendar's 14-day cycles is within two weeks back;
/// the components under test still judge ages by the clock (retention, consistency delays,
/// Prometheus's head), so the time must lie in the last two weeks.
///
/// # Panics
/// When `RTHANOS_TEST_NOW` does not parse or lies outside the last two weeks.
pub fn test_now_s() -> i64 {
    let clock = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    let Ok(value) = std::env::var("RTHANOS_TEST_NOW") else {
        return clock / 1000;
    };
    let now = value
        .parse::<rthanos_model::TimeOrDuration>()
        .unwrap_or_else(|e| panic!("RTHANOS_TEST_NOW={value}: {e}"))
        .resolve(clock);
    const TWO_WEEKS: i64 = 14 * 24 * 3_600_000;
    assert!(
        now <= clock && now >= clock - TWO_WEEKS,
        "RTHANOS_TEST_NOW={value}: must lie within the last two weeks"
    );
    now.div_euclid(1000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_end_by_the_test_deadline() {
        TEST_DEADLINE.with(|d| d.set(Some(Instant::now() + Duration::from_secs(5))));
        let deadline = deadline_after(Duration::from_secs(60));
        assert!(deadline <= Instant::now() + Duration::from_secs(5));
        assert!(gave_up(Duration::from_secs(60), deadline).contains("budget"));
        let short = deadline_after(Duration::from_secs(1));
        assert_eq!(gave_up(Duration::from_secs(1), short), "within 1s");
    }
}
