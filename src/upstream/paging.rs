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

/// How a [`Pager`] finds the next page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PageMode {
    /// From the `Link` header, automatically.
    LinkHeader,
    /// The caller reads the cursor from the body and calls [`Pager::set_next`].
    Body,
}

/// Default cap on pages per listing: 200 users × 10,000 pages = two million users.
pub const DEFAULT_MAX_PAGES: u32 = 10_000;

/// Walks a paginated listing one page at a time.
#[derive(Debug)]
pub struct Pager {
    first: Request,
    next: Option<Request>,
    current_url: Url,
    mode: PageMode,
    seen: HashSet<String>,
    /// Hashes of the item ids listed so far (see [`Pager::note_items`]).
    items: HashSet<u64>,
    pages: u32,
    max_pages: u32,
}

impl Pager {
    /// A listing whose pages are linked by `Link: rel="next"`.
    pub fn link(first: Request) -> Pager {
        Pager::new(first, PageMode::LinkHeader)
    }
    /// A listing whose cursor is in the body.
    pub fn body(first: Request) -> Pager {
        Pager::new(first, PageMode::Body)
    }

    fn new(first: Request, mode: PageMode) -> Pager {
        let mut seen = HashSet::new();
        seen.insert(first.url.as_str().to_string());
        Pager {
            current_url: first.url.clone(),
            next: Some(first.clone()),
            first,
            mode,
            seen,
            items: HashSet::new(),
            pages: 0,
            max_pages: DEFAULT_MAX_PAGES,
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

    pub fn with_max_pages(mut self, max: u32) -> Pager {
        self.max_pages = max.max(1);
        self
    }

    /// Pages fetched so far.
    pub fn pages(&self) -> u32 {
        self.pages
    }

    /// Fetches the next page; `Ok(None)` when the listing is complete.
    pub async fn next_page(&mut self, s: &Session<'_>) -> Result<Option<Response>, UpstreamError> {
        let Some(req) = self.next.take() else {
            return Ok(None);
        };
        if self.pages >= self.max_pages {
            return Err(UpstreamError::TooManyPages {
                endpoint: req.endpoint.clone(),
                max: self.max_pages,
            });
        }
        self.current_url = req.url.clone();
        let resp = s.send(req).await?;
        self.pages += 1;
        if self.mode == PageMode::LinkHeader {
            match next_link(&resp.headers, &resp.url) {
                Some(u) => self.set_next(NextPage::Url(u.to_string()))?,
                None => self.set_next(NextPage::Done)?,
            }
        }
        Ok(Some(resp))
    }

    /// Sets where the next page is (body cursors; the Link mode does this itself).
    pub fn set_next(&mut self, next: NextPage) -> Result<(), UpstreamError> {
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
            return Err(UpstreamError::ForeignLink {
                endpoint,
                origin: url.origin().ascii_serialization(),
            });
        }
        if !self.seen.insert(url.as_str().to_string()) {
            return Err(UpstreamError::PaginationLoop {
                endpoint,
                page: self.pages,
            });
        }
        let mut req = self.first.clone();
        req.url = url;
        self.next = Some(req);
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
