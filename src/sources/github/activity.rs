//! Last activity from the organisation audit log (GitHub Enterprise Cloud and Server): the
//! newest event per actor, kept between polls. Each poll reads the events newer than the last
//! ones read (newest first, stopping where it joins what it has) and, until the log has been
//! read back to the start of the dormancy window, a bounded number of older pages. Coverage
//! is one gap-free stretch of time; a gap (more new events than the page budget) starts over.

use std::collections::HashMap;
use std::sync::Mutex;

use super::client::{GithubClient, AUDIT_LOG, PER_PAGE};
use super::map::event_time;
use super::wire::AuditEvent;
use crate::model::{Known, Timestamp};
use crate::upstream::{next_link, Pager, Request, Session, UpstreamError};

/// Events appear in the audit log a little late: each read of new events overlaps the last
/// one by this much.
pub const OVERLAP_SECS: i64 = 600;
const DAY: i64 = 86_400;

#[derive(Debug, Clone, Default)]
struct State {
    /// Newest event time (unix s) per lowercased actor login, all within `[tail, head]`.
    newest: HashMap<String, i64>,
    /// Every event from `tail` up to `head` has been read, without a gap.
    head: Option<i64>,
    tail: Option<i64>,
}

/// What one poll's read of the audit log left known.
#[derive(Debug, Clone, Default)]
pub struct Activity {
    newest: HashMap<String, i64>,
    /// Read without a gap back to here (unix s); `None` = nothing read yet.
    covered_since: Option<i64>,
    /// `covered_since` reaches back to the start of the dormancy window.
    complete: bool,
    /// Pages read this poll.
    pub pages: u32,
}

impl Activity {
    /// The account's last activity: its newest event in the log; with the window read in full
    /// and no event, "before the window" (one second before `covered_since`, a lower bound on
    /// its inactivity); otherwise unknown.
    pub fn last(&self, login: &str) -> Known<Timestamp> {
        let at = |t: i64| {
            Timestamp::from_unix_timestamp(t)
                .map(Known::At)
                .unwrap_or_default()
        };
        match self.newest.get(&login.to_ascii_lowercase()) {
            Some(t) => at(*t),
            None if self.complete => self.covered_since.map(|c| at(c - 1)).unwrap_or_default(),
            None => Known::Unknown,
        }
    }

    /// Whether an account without an event is known to have had none since `covered_since`.
    pub fn complete(&self) -> bool {
        self.complete
    }

    pub fn covered_since(&self) -> Option<i64> {
        self.covered_since
    }

    /// No event at all has been read: nothing tells an empty log from one that shows
    /// nothing to this credential, so it is no evidence of inactivity.
    pub fn is_empty(&self) -> bool {
        self.newest.is_empty()
    }
}

/// The audit-log cache of one source.
#[derive(Debug, Default)]
pub struct ActivityCache {
    state: Mutex<State>,
}

/// One walk down a listing (newest first).
#[derive(Debug, Default)]
struct Walk {
    newest: Option<i64>,
    oldest: Option<i64>,
    /// The listing ended, or the walk reached events older than `stop_below`.
    reached: bool,
}

/// Keeps the newer time per actor.
fn merge(into: &mut HashMap<String, i64>, from: HashMap<String, i64>) {
    for (k, t) in from {
        let slot = into.entry(k).or_insert(t);
        *slot = (*slot).max(t);
    }
}

fn day_start(t: i64) -> i64 {
    t.div_euclid(DAY) * DAY
}

fn date(t: i64) -> String {
    Timestamp::from_unix_timestamp(t)
        .map(|d| d.date().to_string())
        .unwrap_or_default()
}

impl ActivityCache {
    /// Reads what is new (and, budget left, what is still missing of the window) and returns
    /// the activity known afterwards. `window_days`: how far back last activity matters.
    pub async fn refresh(
        &self,
        c: &GithubClient,
        s: &Session<'_>,
        now: i64,
        window_days: u32,
        max_pages: u32,
    ) -> Result<Activity, UpstreamError> {
        let window_start = day_start(now - i64::from(window_days) * DAY);
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let mut pages = max_pages;
        match st.head {
            Some(head) => {
                // New events, down to where the last poll's read began (with an overlap).
                let from = head - OVERLAP_SECS;
                let phrase = format!("created:>={}", date(from));
                let mut read = HashMap::new();
                let w = walk(c, s, &phrase, Some(from), None, &mut pages, &mut read).await?;
                if w.reached {
                    merge(&mut st.newest, read);
                    st.head = Some(w.newest.unwrap_or(head).max(head));
                } else {
                    // More new events than the page budget: what was read is a stretch of its
                    // own, with a gap below it; the older stretch is dropped and read again.
                    tracing::warn!(source = %c.name(), pages = max_pages, "github: more new audit-log events than audit_log_pages_per_poll; the audit log is read again back from the newest events");
                    st = State {
                        newest: read,
                        head: Some(w.newest.unwrap_or(now)),
                        tail: Some(w.oldest.unwrap_or(now)),
                    };
                }
            }
            None => first_read(&mut st, c, s, now, window_start, &mut pages).await?,
        }
        // Older events, until the log has been read back to the window's start.
        if let Some(tail) = st.tail.filter(|t| *t > window_start) {
            if pages > 0 {
                let phrase = format!("created:{}..{}", date(window_start), date(tail));
                let w = walk(c, s, &phrase, None, Some(tail), &mut pages, &mut st.newest).await?;
                st.tail = Some(if w.reached {
                    window_start
                } else {
                    w.oldest.unwrap_or(tail).min(tail)
                });
            }
        }
        // Read back past the window: forget actors whose newest event is older than it (for
        // them "no event since the window began" holds), so the cache does not grow forever.
        if st.tail.is_some_and(|t| t < window_start) {
            st.tail = Some(window_start);
            st.newest.retain(|_, t| *t >= window_start);
        }
        let covered_since = st.tail;
        let activity = Activity {
            newest: st.newest.clone(),
            covered_since,
            complete: covered_since.is_some_and(|t| t <= window_start),
            pages: max_pages - pages,
        };
        *self.state.lock().unwrap_or_else(|e| e.into_inner()) = st;
        Ok(activity)
    }
}

/// A first read (or a read after a gap): newest first, back to the window's start if the
/// budget allows.
async fn first_read(
    st: &mut State,
    c: &GithubClient,
    s: &Session<'_>,
    now: i64,
    window_start: i64,
    pages: &mut u32,
) -> Result<(), UpstreamError> {
    let phrase = format!("created:>={}", date(window_start));
    let w = walk(c, s, &phrase, None, None, pages, &mut st.newest).await?;
    st.head = Some(w.newest.unwrap_or(now));
    st.tail = Some(if w.reached {
        window_start
    } else {
        w.oldest.unwrap_or(now)
    });
    Ok(())
}

/// Walks `GET /orgs/{org}/audit-log?phrase=…&order=desc` page by page (Link `after`
/// cursors), recording each actor's newest event. Stops when the listing ends, when a whole
/// page is older than `stop_below` (the events from there on were read before), or when the
/// page budget is spent. Events newer than `skip_above` were read before and are passed over.
async fn walk(
    c: &GithubClient,
    s: &Session<'_>,
    phrase: &str,
    stop_below: Option<i64>,
    skip_above: Option<i64>,
    pages: &mut u32,
    newest: &mut HashMap<String, i64>,
) -> Result<Walk, UpstreamError> {
    let url = c.org_url(
        &["audit-log"],
        &[
            ("phrase", phrase),
            ("include", "web"),
            ("order", "desc"),
            ("per_page", PER_PAGE),
        ],
    );
    // On demand: the walk usually ends on a page older than where the last read began,
    // known only once that page is read, so a page requested ahead would be one too many.
    let mut pager = Pager::link(Request::get(url, AUDIT_LOG)).on_demand();
    let mut w = Walk::default();
    while *pages > 0 {
        let Some(r) = pager.next_page(s).await? else {
            w.reached = true;
            break;
        };
        *pages -= 1;
        let last_page = next_link(&r.headers, &r.url).is_none();
        let events: Vec<AuditEvent> = c.page(&r)?;
        pager.note_items(events.iter().filter_map(|e| e.document_id.as_deref()))?;
        let mut page_newest = None;
        for e in &events {
            let Some(t) = event_time(e) else { continue };
            page_newest = page_newest.max(Some(t));
            if skip_above.is_some_and(|s| t > s) {
                continue;
            }
            w.newest = w.newest.max(Some(t));
            w.oldest = Some(w.oldest.map_or(t, |o| o.min(t)));
            if let Some(actor) = e.actor.as_deref().filter(|a| !a.is_empty()) {
                let slot = newest.entry(actor.to_ascii_lowercase()).or_insert(t);
                *slot = (*slot).max(t);
            }
        }
        // A whole page older than where the last read began: the rest was read before.
        let joined = matches!((stop_below, page_newest), (Some(stop), Some(n)) if n < stop);
        if last_page || joined {
            w.reached = true;
            break;
        }
    }
    Ok(w)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_and_days() {
        assert_eq!(date(0), "1970-01-01");
        assert_eq!(day_start(DAY + 5), DAY);
        assert_eq!(day_start(-5), -DAY);
    }

    #[test]
    fn last_activity_is_an_event_a_lower_bound_or_unknown() {
        let mut a = Activity {
            newest: [("octocat".to_string(), 1_000_000)].into_iter().collect(),
            covered_since: Some(900_000),
            complete: false,
            pages: 0,
        };
        assert_eq!(
            a.last("OctoCat"),
            Known::At(Timestamp::from_unix_timestamp(1_000_000).unwrap())
        );
        assert_eq!(a.last("hubot"), Known::Unknown, "not read back far enough yet");
        a.complete = true;
        assert_eq!(
            a.last("hubot"),
            Known::At(Timestamp::from_unix_timestamp(899_999).unwrap()),
            "no event since the window began"
        );
    }
}
