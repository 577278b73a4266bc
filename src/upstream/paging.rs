//! Pagination: `Link: <…>; rel="next"` headers (Okta, GitHub) and cursors in the body
//! (Okta `_links.next.href`, Graph `@odata.nextLink`, Google `nextPageToken`). A [`Pager`]
//! refuses a `next` that repeats (a provider bug would otherwise page forever), a page whose
//! items were all listed already under a fresh cursor (the same bug, disguised), one that
//! points at another origin (it would receive our credentials), and more pages than a cap.

use std::collections::HashSet;
use std::hash::{Hash, Hasher};

use reqwest::header::HeaderMap;
use url::Url;

use super::client::{Request, Response, Session};
use super::error::UpstreamError;

/// Every `(target, rels)` pair in the `Link` headers. Reads every header line and every
/// comma-separated value in each (Okta sends one header per relation).
pub fn parse_link_headers(headers: &HeaderMap) -> Vec<(String, Vec<String>)> {
    let mut out = Vec::new();
    for v in headers.get_all(reqwest::header::LINK) {
        let Ok(v) = v.to_str() else { continue };
        let mut rest = v;
        while let Some(start) = rest.find('<') {
            let Some(end) = rest[start..].find('>') else {
                break;
            };
            let target = rest[start + 1..start + end].trim().to_string();
            rest = &rest[start + end + 1..];
            // Parameters run until the next link value (a comma followed by '<').
            let params_end = rest.find('<').unwrap_or(rest.len());
            let params = &rest[..params_end];
            let mut rels = Vec::new();
            for p in params.split(';') {
                let p = p.trim().trim_end_matches(',').trim();
                if let Some((k, v)) = p.split_once('=') {
                    if k.trim().eq_ignore_ascii_case("rel") {
                        rels.extend(
                            v.trim()
                                .trim_matches('"')
                                .split_ascii_whitespace()
                                .map(|r| r.to_ascii_lowercase()),
                        );
                    }
                }
            }
            out.push((target, rels));
            rest = &rest[params_end..];
        }
    }
    out
}

/// The `rel="next"` target of a response, resolved against the request URL.
pub fn next_link(headers: &HeaderMap, base: &Url) -> Option<Url> {
    parse_link_headers(headers)
        .into_iter()
        .find(|(_, rels)| rels.iter().any(|r| r == "next"))
        .and_then(|(t, _)| base.join(&t).ok())
}

/// Where the next page is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NextPage {
    /// A URL (absolute or relative to the current page).
    Url(String),
    /// The first request with one query parameter set (Google `pageToken`).
    QueryParam { name: String, value: String },
    /// No more pages.
    Done,
}

/// Reads where the next page is from a page as it arrives (see [`Pager::cursor`]).
pub type CursorReader = fn(&Response) -> Result<NextPage, UpstreamError>;

/// How a [`Pager`] finds the next page.
#[derive(Debug, Clone, Copy)]
pub enum PageMode {
    /// From the `Link` header, automatically.
    LinkHeader,
    /// The caller reads the cursor from the body and calls [`Pager::set_next`].
    Body,
    /// From the body, automatically, with the source's reader.
    Cursor(CursorReader),
}

impl PageMode {
    /// The next page as `resp` names it; `None` when the caller names it.
    fn read(self, resp: &Response) -> Option<Result<NextPage, UpstreamError>> {
        match self {
            PageMode::LinkHeader => Some(Ok(match next_link(&resp.headers, &resp.url) {
                Some(u) => NextPage::Url(u.to_string()),
                None => NextPage::Done,
            })),
            PageMode::Body => None,
            PageMode::Cursor(read) => Some(read(resp)),
        }
    }
}

/// A page and where it says the next one is.
type Fetched = (Response, Option<Result<NextPage, UpstreamError>>);

/// Default cap on pages per listing: 200 users × 10,000 pages = two million users.
pub const DEFAULT_MAX_PAGES: u32 = 10_000;

/// Walks a paginated listing one page at a time, requesting the next page while the caller
/// works on the current one (prefetch, bounded to one page ahead).
///
/// The next page is requested as soon as it is known and the caller has not ruled it out:
/// in `Link` and cursor mode when a page is handed over (unless [`Pager::hold_when`] says to
/// wait for the caller), in body mode when the caller names it with [`Pager::set_next`] — so
/// a caller that reads the cursor, checks the page (loop detection, its own stop rules) and
/// only then maps it overlaps the mapping with the next request. In cursor mode the cursor
/// is read (by the source's [`CursorReader`]) as the page arrives, off the caller's task, so
/// the next request does not wait for the caller to parse the page either. The request goes through the same
/// [`Session`] as any other (pacing, the provider's rate limit and `Retry-After`, budget,
/// concurrency, retries, counting), from a task of its own, so it makes progress while the
/// caller computes. At most one page is ahead: the next one is requested only once the
/// caller has taken the one before. A request ahead is never a request extra:
///
/// - it is one the caller would have made next anyway (its cursor is known, no page cap or
///   [`Pager::stop_after`] limit rules it out, the caller's rule did not hold it);
/// - dropping the pager (an error, the caller stopping, the poll cancelled) cancels it; it
///   is never retried after that;
/// - its error (HTTP status, budget spent, body too large, …) is returned by the
///   [`Pager::next_page`] call that would have made the request, not before.
///
/// [`Pager::on_demand`] turns prefetch off, for streams whose end the caller decides from a
/// page's contents after mapping it. Without a Tokio runtime, pages are fetched on demand.
pub struct Pager {
    first: Request,
    /// The next page's request, known and not yet sent.
    next: Option<Request>,
    /// The next page, requested ahead and not yet taken.
    ahead: Option<Ahead>,
    /// The URL of the page the caller has (relative links resolve against it).
    current_url: Url,
    mode: PageMode,
    seen: HashSet<String>,
    /// Hashes of the item ids listed so far (see [`Pager::note_items`]).
    items: HashSet<u64>,
    /// Pages handed to the caller.
    pages: u32,
    max_pages: u32,
    /// No page after this many is requested ([`Pager::stop_after`]).
    stop_after: Option<u32>,
    prefetch: bool,
    hold: Option<fn(&Response) -> bool>,
    /// The poll's session, for requests ahead (taken from the first `next_page`).
    session: Option<Session<'static>>,
}

impl std::fmt::Debug for Pager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pager")
            .field("endpoint", &self.first.endpoint)
            .field("mode", &self.mode)
            .field("pages", &self.pages)
            .field("ahead", &self.ahead.is_some())
            .field("prefetch", &self.prefetch)
            .finish_non_exhaustive()
    }
}

/// A page requested ahead: the task sending it (aborted when dropped untaken).
struct Ahead {
    url: Url,
    endpoint: String,
    task: tokio::task::JoinHandle<Result<Fetched, UpstreamError>>,
}

impl Drop for Ahead {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Ahead {
    async fn take(mut self) -> Result<Fetched, UpstreamError> {
        match (&mut self.task).await {
            Ok(r) => r,
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(_) => Err(UpstreamError::Transport {
                method: "GET".into(),
                endpoint: self.endpoint.clone(),
                message: "the request was cancelled (the runtime is shutting down)".into(),
            }),
        }
    }
}

impl Pager {
    /// A listing whose pages are linked by `Link: rel="next"`.
    pub fn link(first: Request) -> Pager {
        Pager::new(first, PageMode::LinkHeader)
    }
    /// A listing whose cursor is in the body, named by the caller ([`Pager::set_next`]).
    pub fn body(first: Request) -> Pager {
        Pager::new(first, PageMode::Body)
    }
    /// A listing whose cursor is in the body, read by `read` from each page as it arrives
    /// (the caller may still replace it with [`Pager::set_next`]).
    pub fn cursor(first: Request, read: CursorReader) -> Pager {
        Pager::new(first, PageMode::Cursor(read))
    }

    fn new(first: Request, mode: PageMode) -> Pager {
        let mut seen = HashSet::new();
        seen.insert(first.url.as_str().to_string());
        Pager {
            current_url: first.url.clone(),
            next: Some(first.clone()),
            ahead: None,
            first,
            mode,
            seen,
            items: HashSet::new(),
            pages: 0,
            max_pages: DEFAULT_MAX_PAGES,
            stop_after: None,
            prefetch: true,
            hold: None,
            session: None,
        }
    }

    /// Records the ids of the items on the page just fetched. A page that has items but not
    /// one new id is a provider repeating its data under fresh cursors: it would be followed
    /// for ever (and every copy counted), so it fails with [`UpstreamError::DataLoop`].
    /// Returns how many ids were new.
    pub fn note_items<'i>(
        &mut self,
        ids: impl IntoIterator<Item = &'i str>,
    ) -> Result<usize, UpstreamError> {
        let (mut total, mut new) = (0usize, 0usize);
        for id in ids {
            total += 1;
            let mut h = std::collections::hash_map::DefaultHasher::new();
            id.hash(&mut h);
            if self.items.insert(h.finish()) {
                new += 1;
            }
        }
        if total > 0 && new == 0 {
            return Err(UpstreamError::DataLoop {
                endpoint: self.first.endpoint.clone(),
                page: self.pages,
            });
        }
        Ok(new)
    }

    /// More pages than `max` is an error ([`UpstreamError::TooManyPages`]).
    pub fn with_max_pages(mut self, max: u32) -> Pager {
        self.max_pages = max.max(1);
        self
    }

    /// Reads at most `n` pages: no page after the `n`th is requested, ahead or on demand
    /// ([`Pager::next_page`] then answers `Ok(None)`; [`Pager::pending`] says where the
    /// listing would go on). For a caller that stops at a page count of its own.
    pub fn stop_after(mut self, n: u32) -> Pager {
        self.stop_after = Some(n);
        self
    }

    /// No prefetch: each page is requested when the caller asks for it. For streams whose
    /// end the caller decides from a page's contents after mapping it (an activity log read
    /// back to where the last read began): a page ahead would usually be one too many.
    pub fn on_demand(mut self) -> Pager {
        self.prefetch = false;
        self
    }

    /// `Link` and cursor mode: a page for which `rule` is true does not start the request of
    /// the next one; the caller decides (it may stop on that page, or fetch the rest otherwise).
    pub fn hold_when(mut self, rule: fn(&Response) -> bool) -> Pager {
        self.hold = Some(rule);
        self
    }

    /// Requests ahead may use `s` from now on (otherwise from the first
    /// [`Pager::next_page`]): for a caller that fetched the first page itself.
    pub fn with_session(mut self, s: &Session<'_>) -> Pager {
        self.session = Some(s.detach());
        self
    }

    /// Pages handed to the caller so far.
    pub fn pages(&self) -> u32 {
        self.pages
    }

    /// Whether the next page has been requested ahead (and not yet taken).
    pub fn is_ahead(&self) -> bool {
        self.ahead.is_some()
    }

    /// Where the listing would go on, if it has more pages that were not requested (the
    /// [`Pager::stop_after`] limit, or the caller has not asked yet).
    pub fn pending(&self) -> Option<&Url> {
        self.next.as_ref().map(|r| &r.url)
    }

    /// Whether a page after the `pages`th may be requested (caps and limits).
    fn may_request(&self) -> bool {
        self.pages < self.max_pages && self.stop_after.is_none_or(|n| self.pages < n)
    }

    /// Requests the known next page ahead, if prefetch is on and nothing rules it out.
    fn start_ahead(&mut self) {
        if !self.prefetch || self.ahead.is_some() || !self.may_request() {
            return;
        }
        let (Some(s), Ok(rt)) = (&self.session, tokio::runtime::Handle::try_current()) else {
            return;
        };
        let Some(req) = self.next.take() else {
            return;
        };
        let s = s.clone();
        let mode = self.mode;
        let (url, endpoint) = (req.url.clone(), req.endpoint.clone());
        let task = rt.spawn(async move {
            let resp = s.send(req).await?;
            let next = mode.read(&resp);
            Ok((resp, next))
        });
        self.ahead = Some(Ahead {
            url,
            endpoint,
            task,
        });
    }

    /// The next page; `Ok(None)` when the listing is complete (or at the
    /// [`Pager::stop_after`] limit). A page requested ahead is taken (its error, if it
    /// failed, is returned now); otherwise the page is requested now.
    pub async fn next_page(&mut self, s: &Session<'_>) -> Result<Option<Response>, UpstreamError> {
        if self.prefetch && self.session.is_none() {
            self.session = Some(s.detach());
        }
        let (resp, next) = match self.ahead.take() {
            Some(ahead) => {
                let url = ahead.url.clone();
                let r = ahead.take().await?;
                self.current_url = url;
                r
            }
            None => {
                if self.next.is_none() || self.stop_after.is_some_and(|n| self.pages >= n) {
                    return Ok(None);
                }
                if self.pages >= self.max_pages {
                    return Err(UpstreamError::TooManyPages {
                        endpoint: self.first.endpoint.clone(),
                        max: self.max_pages,
                    });
                }
                let Some(req) = self.next.take() else {
                    return Ok(None);
                };
                let url = req.url.clone();
                let r = s.send(req).await?;
                self.current_url = url;
                let next = self.mode.read(&r);
                (r, next)
            }
        };
        self.pages += 1;
        if let Some(next) = next {
            let hold = self.hold.is_some_and(|rule| rule(&resp));
            self.set_next_inner(next?, !hold)?;
        }
        Ok(Some(resp))
    }

    /// Sets where the next page is (body mode; the other modes do this themselves), and
    /// requests it ahead (see [`Pager`]). Refuses a link that repeats or leaves the origin.
    pub fn set_next(&mut self, next: NextPage) -> Result<(), UpstreamError> {
        self.set_next_inner(next, true)
    }

    fn set_next_inner(&mut self, next: NextPage, start: bool) -> Result<(), UpstreamError> {
        // The caller's word replaces a request ahead (a well-behaved caller names each page
        // once, after taking the one before).
        self.ahead = None;
        let endpoint = self.first.endpoint.clone();
        let url = match next {
            NextPage::Done => {
                self.next = None;
                return Ok(());
            }
            NextPage::Url(u) => self
                .current_url
                .join(&u)
                .map_err(|e| UpstreamError::Decode {
                    endpoint: endpoint.clone(),
                    message: format!("invalid next-page link: {e}"),
                })?,
            NextPage::QueryParam { name, value } => {
                let mut u = self.first.url.clone();
                let pairs: Vec<(String, String)> = u
                    .query_pairs()
                    .filter(|(k, _)| *k != name)
                    .map(|(k, v)| (k.into_owned(), v.into_owned()))
                    .collect();
                u.query_pairs_mut()
                    .clear()
                    .extend_pairs(pairs)
                    .append_pair(&name, &value);
                u
            }
        };
        if url.origin() != self.first.url.origin() {
            self.next = None;
            return Err(UpstreamError::ForeignLink {
                endpoint,
                origin: url.origin().ascii_serialization(),
            });
        }
        if !self.seen.insert(url.as_str().to_string()) {
            self.next = None;
            return Err(UpstreamError::PaginationLoop {
                endpoint,
                page: self.pages,
            });
        }
        let mut req = self.first.clone();
        req.url = url;
        self.next = Some(req);
        if start {
            self.start_ahead();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    #[test]
    fn link_headers_one_per_relation_or_comma_joined() {
        let base = Url::parse("https://x.okta.com/api/v1/users?limit=2").unwrap();
        let mut h = HeaderMap::new();
        h.append(
            "link",
            HeaderValue::from_static("<https://x.okta.com/api/v1/users?limit=2>; rel=\"self\""),
        );
        h.append(
            "link",
            HeaderValue::from_static(
                "<https://x.okta.com/api/v1/users?after=00u2&limit=2>; rel=\"next\"",
            ),
        );
        assert_eq!(
            next_link(&h, &base).unwrap().as_str(),
            "https://x.okta.com/api/v1/users?after=00u2&limit=2"
        );
        let mut h = HeaderMap::new();
        h.insert(
            "link",
            HeaderValue::from_static(
                "</api/v1/users?limit=2>; rel=\"self\", </api/v1/users?after=a,b&limit=2>; rel=next",
            ),
        );
        assert_eq!(
            next_link(&h, &base).unwrap().as_str(),
            "https://x.okta.com/api/v1/users?after=a,b&limit=2"
        );
        let mut h = HeaderMap::new();
        h.insert(
            "link",
            HeaderValue::from_static("<https://x/>; rel=\"self\""),
        );
        assert!(next_link(&h, &base).is_none());
        let mut h = HeaderMap::new();
        h.insert(
            "link",
            HeaderValue::from_static("garbage <unterminated; rel=next"),
        );
        assert!(next_link(&h, &base).is_none());
    }

    fn pager() -> Pager {
        Pager::body(Request::get(
            Url::parse("https://x.okta.com/api/v1/iam/assignees/users?limit=2").unwrap(),
            "/api/v1/iam/assignees/users",
        ))
    }

    #[test]
    fn repeated_next_is_a_loop() {
        let mut p = pager();
        p.set_next(NextPage::Url("/api/v1/iam/assignees/users?after=1".into()))
            .unwrap();
        let e = p
            .set_next(NextPage::Url(
                "https://x.okta.com/api/v1/iam/assignees/users?after=1".into(),
            ))
            .unwrap_err();
        assert!(matches!(e, UpstreamError::PaginationLoop { .. }), "{e}");
        // Pointing back at the first page is a loop too.
        let e = pager()
            .set_next(NextPage::Url(
                "https://x.okta.com/api/v1/iam/assignees/users?limit=2".into(),
            ))
            .unwrap_err();
        assert!(matches!(e, UpstreamError::PaginationLoop { .. }));
    }

    #[test]
    fn a_page_of_items_already_listed_is_a_data_loop() {
        let mut p = pager();
        assert_eq!(p.note_items(["a", "b"]).unwrap(), 2);
        assert_eq!(p.note_items(["b", "c"]).unwrap(), 1);
        assert_eq!(p.note_items([]).unwrap(), 0, "an empty page is no loop");
        let e = p.note_items(["a", "c"]).unwrap_err();
        assert!(matches!(e, UpstreamError::DataLoop { .. }), "{e}");
    }

    #[test]
    fn next_to_another_origin_is_refused() {
        let e = pager()
            .set_next(NextPage::Url("https://evil.example/steal".into()))
            .unwrap_err();
        assert!(matches!(e, UpstreamError::ForeignLink { .. }), "{e}");
        assert!(e.to_string().contains("https://evil.example"));
    }

    #[test]
    fn query_param_cursor_replaces_the_previous_token() {
        let mut p = pager();
        p.set_next(NextPage::QueryParam {
            name: "pageToken".into(),
            value: "t1".into(),
        })
        .unwrap();
        p.set_next(NextPage::QueryParam {
            name: "pageToken".into(),
            value: "t2".into(),
        })
        .unwrap();
        assert_eq!(
            p.next.as_ref().unwrap().url.as_str(),
            "https://x.okta.com/api/v1/iam/assignees/users?limit=2&pageToken=t2"
        );
    }
}
