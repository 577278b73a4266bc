//! The base every provider mock is built on: an axum router served on 127.0.0.1:0 behind a
//! layer that logs every request (method, path, query, status), counts the tokens a token
//! endpoint issued, and plays a scripted fault queue per path (429 with `Retry-After`, 5xx,
//! 401/403 with a body, truncated body, malformed JSON, an HTML page, a cursor loop, a data
//! loop, a hang, a slow drip, a huge streamed body, an off-host redirect).
//! Provider mocks (tests/support/*_mock.rs) serve the documented shapes; this serves the faults.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, Uri};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Router;

/// One request as the mock saw it. Credentials are never kept: only whether some were sent.
#[derive(Debug, Clone)]
pub struct Logged {
    pub method: String,
    pub path: String,
    pub query: String,
    pub status: u16,
    pub authenticated: bool,
}

impl Logged {
    /// The value of query parameter `name`, if sent.
    pub fn param(&self, name: &str) -> Option<String> {
        url::form_urlencoded::parse(self.query.as_bytes())
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    }
}

/// A scripted failure of one request.
#[derive(Debug, Clone)]
pub enum Fault {
    /// This status with this body (and headers), e.g. a 401 with the provider's error body.
    Status {
        status: u16,
        body: String,
        headers: Vec<(String, String)>,
    },
    /// 429 with `Retry-After: <seconds>` and a small JSON body.
    TooManyRequests { retry_after: u64 },
    /// 200 whose body stops half-way (the connection drops).
    Truncated,
    /// 200 `application/json` that is not JSON.
    Malformed,
    /// 200 `text/html` (a proxy's or a login page).
    Html,
    /// Serves the previous request to the same path instead (its cursor again): a provider
    /// whose `next` leads back where the listing was.
    RepeatPrevious,
    /// Waits this long, then answers normally.
    Hang(Duration),
    /// 200 whose body comes one byte every this long, for ever.
    Drip(Duration),
    /// 200 streaming this many bytes (spaces: never valid JSON), 64 KiB at a time so the mock
    /// holds no more than one chunk; `announced` sends `Content-Length`, else it is chunked.
    Huge { bytes: u64, announced: bool },
    /// The previous page of the same listing's items under this request's cursor: the
    /// request is served as usual, then every array in its JSON body (the whole body, if it
    /// is one) is replaced by the same array of the last page served for this path whose
    /// query differs only in its paging parameters (`after`, `$skiptoken`, `pageToken`,
    /// `page`, `before`). A provider repeating its data under fresh cursors. Waits for a
    /// request that has such a previous page, served after the fault was scripted.
    RepeatItems,
    /// A redirect to another host (it would receive the credentials if followed).
    RedirectOffHost,
}

impl Fault {
    /// A status with a JSON body.
    pub fn status(status: u16, body: serde_json::Value) -> Fault {
        Fault::Status {
            status,
            body: body.to_string(),
            headers: vec![("content-type".into(), "application/json".into())],
        }
    }

    fn response(&self) -> Response {
        match self {
            Fault::Status {
                status,
                body,
                headers,
            } => {
                let mut r = Response::new(Body::from(body.clone()));
                *r.status_mut() = StatusCode::from_u16(*status).unwrap_or(StatusCode::IM_A_TEAPOT);
                for (k, v) in headers {
                    if let (Ok(k), Ok(v)) = (
                        axum::http::HeaderName::try_from(k.as_str()),
                        HeaderValue::try_from(v.as_str()),
                    ) {
                        r.headers_mut().insert(k, v);
                    }
                }
                r
            }
            Fault::TooManyRequests { retry_after } => (
                StatusCode::TOO_MANY_REQUESTS,
                [
                    ("retry-after", retry_after.to_string()),
                    ("content-type", "application/json".to_string()),
                ],
                r#"{"error":"too many requests"}"#,
            )
                .into_response(),
            Fault::Truncated => {
                let s = futures_util::stream::unfold(0, |state| async move {
                    match state {
                        0 => Some((Ok::<_, std::io::Error>(b"[{\"id\":\"tru".to_vec()), 1)),
                        1 => {
                            tokio::time::sleep(Duration::from_millis(5)).await;
                            Some((Err(std::io::Error::other("connection dropped")), 2))
                        }
                        _ => None,
                    }
                });
                (
                    StatusCode::OK,
                    [("content-type", "application/json")],
                    Body::from_stream(s),
                )
                    .into_response()
            }
            Fault::Malformed => (
                StatusCode::OK,
                [("content-type", "application/json")],
                "{\"value\": [ {\"id\": ",
            )
                .into_response(),
            Fault::Html => (
                StatusCode::OK,
                [("content-type", "text/html; charset=utf-8")],
                "<!doctype html><html><body>Sign in to continue</body></html>",
            )
                .into_response(),
            Fault::Drip(every) => {
                let every = *every;
                let s = futures_util::stream::unfold(0u64, move |n| async move {
                    tokio::time::sleep(every).await;
                    let b = if n == 0 { b"[".to_vec() } else { b" ".to_vec() };
                    Some((Ok::<_, std::io::Error>(b), n + 1))
                });
                (
                    StatusCode::OK,
                    [("content-type", "application/json")],
                    Body::from_stream(s),
                )
                    .into_response()
            }
            Fault::Huge {
                bytes: len,
                announced,
            } => {
                let (len, announced) = (*len, *announced);
                let chunk = vec![b' '; 64 << 10];
                let s = futures_util::stream::unfold(0u64, move |sent| {
                    let chunk = chunk.clone();
                    async move {
                        (sent < len).then(|| {
                            let n = (len - sent).min(chunk.len() as u64) as usize;
                            (
                                Ok::<_, std::io::Error>(chunk[..n].to_vec()),
                                sent + n as u64,
                            )
                        })
                    }
                });
                let mut r = (
                    StatusCode::OK,
                    [("content-type", "application/json")],
                    Body::from_stream(s),
                )
                    .into_response();
                if announced {
                    r.headers_mut()
                        .insert("content-length", HeaderValue::from(len));
                }
                r
            }
            Fault::RedirectOffHost => (
                StatusCode::FOUND,
                [("location", "http://203.0.113.9/collect-credentials")],
                "",
            )
                .into_response(),
            Fault::RepeatPrevious | Fault::Hang(_) | Fault::RepeatItems => {
                StatusCode::INTERNAL_SERVER_ERROR.into_response()
            }
        }
    }
}

struct Scripted {
    /// Matching requests to let through before this fault fires.
    skip: usize,
    fault: Fault,
    /// The request log's length when the fault was scripted.
    since: usize,
}

#[derive(Default)]
struct Inner {
    log: Mutex<Vec<Logged>>,
    /// Path (exact, or a prefix ending in `*`) → faults, in order.
    faults: Mutex<Vec<(String, VecDeque<Scripted>)>>,
    token_path: Mutex<Option<String>>,
    /// The provider's router without this layer, to serve a [`Fault::RepeatItems`]'s
    /// previous page.
    router: std::sync::OnceLock<Router>,
}

/// Query parameters the provider mocks page with.
const PAGING: [&str; 5] = ["after", "$skiptoken", "pageToken", "page", "before"];

fn listing_params(query: &str) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = url::form_urlencoded::parse(query.as_bytes())
        .filter(|(k, _)| !PAGING.contains(&k.as_ref()))
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    v.sort();
    v
}

/// Every array of `current` replaced by `previous`'s array under the same key (or the whole
/// body, if both are arrays).
fn splice_items(current: &[u8], previous: &[u8]) -> Option<Vec<u8>> {
    use serde_json::Value;
    let (mut c, p) = (
        serde_json::from_slice::<Value>(current).ok()?,
        serde_json::from_slice::<Value>(previous).ok()?,
    );
    match (&mut c, &p) {
        (Value::Array(_), Value::Array(_)) => c = p,
        (Value::Object(cm), Value::Object(pm)) => {
            for (k, v) in cm.iter_mut() {
                if let (Value::Array(_), Some(pv @ Value::Array(_))) = (&*v, pm.get(k)) {
                    *v = pv.clone();
                }
            }
        }
        _ => return None,
    }
    serde_json::to_vec(&c).ok()
}

fn matches(pattern: &str, path: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => path.starts_with(prefix),
        None => pattern == path,
    }
}

impl Inner {
    fn take_fault(&self, path: &str) -> Option<(Fault, usize)> {
        let mut f = self.faults.lock().unwrap();
        for (pattern, queue) in f.iter_mut() {
            if !matches(pattern, path) {
                continue;
            }
            let Some(first) = queue.front_mut() else {
                continue;
            };
            if first.skip > 0 {
                first.skip -= 1;
                return None;
            }
            return queue.pop_front().map(|s| (s.fault, s.since));
        }
        None
    }

    /// Puts `fault` back at the head of `path`'s queue (it did not apply to this request).
    fn requeue(&self, path: &str, fault: Fault, since: usize) {
        let mut f = self.faults.lock().unwrap();
        let s = Scripted {
            skip: 0,
            fault,
            since,
        };
        match f.iter_mut().find(|(p, _)| matches(p, path)) {
            Some((_, q)) => q.push_front(s),
            None => f.push((path.to_string(), VecDeque::from([s]))),
        }
    }

    /// The last successful request to `path` since log entry `since` that lists the same
    /// thing as `query` (same parameters but the paging ones) at another page.
    fn previous_page(&self, path: &str, query: &str, since: usize) -> Option<String> {
        let want = listing_params(query);
        let log = self.log.lock().unwrap();
        log.get(since..)
            .unwrap_or_default()
            .iter()
            .rev()
            .find(|l| {
                l.path == path
                    && l.status < 300
                    && l.query != query
                    && listing_params(&l.query) == want
            })
            .map(|l| format!("{}?{}", l.path, l.query))
    }

    fn previous(&self, path: &str) -> Option<String> {
        self.log
            .lock()
            .unwrap()
            .iter()
            .rev()
            .find(|l| l.path == path)
            .map(|l| {
                if l.query.is_empty() {
                    l.path.clone()
                } else {
                    format!("{}?{}", l.path, l.query)
                }
            })
    }
}

/// Serves a [`Fault::RepeatItems`]: `req` as usual, its arrays replaced by the previous
/// page's; without a previous page, the request as usual and the fault put back.
async fn repeat_items(
    inner: Arc<Inner>,
    req: Request,
    next: Next,
    path: &str,
    query: &str,
    since: usize,
) -> Response {
    let Some(prev) = inner.previous_page(path, query, since) else {
        inner.requeue(path, Fault::RepeatItems, since);
        return next.run(req).await;
    };
    let mut again = Request::new(Body::empty());
    *again.method_mut() = req.method().clone();
    *again.headers_mut() = req.headers().clone();
    *again.uri_mut() = prev.parse().unwrap();
    let router = inner.router.get().expect("router set at start").clone();
    let old = tower::ServiceExt::oneshot(router, again).await.unwrap();
    let old = axum::body::to_bytes(old.into_body(), usize::MAX)
        .await
        .unwrap();
    let (mut parts, body) = next.run(req).await.into_parts();
    let body = axum::body::to_bytes(body, usize::MAX).await.unwrap();
    let spliced = splice_items(&body, &old).expect("a JSON page to splice");
    parts.headers.remove("content-length");
    Response::from_parts(parts, Body::from(spliced))
}

async fn layer(State(inner): State<Arc<Inner>>, mut req: Request, next: Next) -> Response {
    let method = req.method().to_string();
    let path = req.uri().path().to_string();
    let query = req.uri().query().unwrap_or("").to_string();
    let authenticated = req.headers().contains_key("authorization");
    let resp = match inner.take_fault(&path) {
        Some((Fault::RepeatPrevious, _)) => {
            if let Some(prev) = inner.previous(&path) {
                if let Ok(u) = prev.parse::<Uri>() {
                    *req.uri_mut() = u;
                }
            }
            next.run(req).await
        }
        // Boxed: the layer's future stays small (the server polls it deep in its stack).
        Some((Fault::RepeatItems, since)) => {
            Box::pin(repeat_items(inner.clone(), req, next, &path, &query, since)).await
        }
        Some((Fault::Hang(d), _)) => {
            tokio::time::sleep(d).await;
            next.run(req).await
        }
        Some((f, _)) => f.response(),
        None => next.run(req).await,
    };
    inner.log.lock().unwrap().push(Logged {
        method,
        path,
        query,
        status: resp.status().as_u16(),
        authenticated,
    });
    resp
}

/// A mock provider on 127.0.0.1:0. Clones share the log and the fault queue.
#[derive(Clone)]
pub struct MockServer {
    /// `http://127.0.0.1:PORT`, no trailing slash.
    pub url: String,
    inner: Arc<Inner>,
}

impl MockServer {
    /// Serves `router` behind the logging and fault layer.
    pub async fn start(router: Router) -> MockServer {
        MockServer::start_with(|_| router).await
    }

    /// As [`MockServer::start`], for a router that needs its own base URL (to build `next`
    /// links): `make` receives it.
    pub async fn start_with(make: impl FnOnce(&str) -> Router) -> MockServer {
        let inner = Arc::new(Inner::default());
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", l.local_addr().unwrap());
        let router = make(&url);
        let _ = inner.router.set(router.clone());
        let app = router.layer(axum::middleware::from_fn_with_state(inner.clone(), layer));
        tokio::spawn(async move {
            let _ = axum::serve(l, app).await;
        });
        MockServer { url, inner }
    }

    /// Scripts `fault` for the next request to `path` (exact, or a prefix ending in `*`).
    pub fn fault(&self, path: &str, fault: Fault) {
        self.fault_after(path, 0, fault);
    }

    /// Scripts `fault` for a request to `path` after `skip` requests to it went through.
    pub fn fault_after(&self, path: &str, skip: usize, fault: Fault) {
        let since = self.total();
        let mut f = self.inner.faults.lock().unwrap();
        let s = Scripted { skip, fault, since };
        match f.iter_mut().find(|(p, _)| p == path) {
            Some((_, q)) => q.push_back(s),
            None => f.push((path.to_string(), VecDeque::from([s]))),
        }
    }

    /// Scripts `fault` for the next `n` requests to `path`: a storm.
    pub fn fault_n(&self, path: &str, n: usize, fault: Fault) {
        for _ in 0..n {
            self.fault(path, fault.clone());
        }
    }

    /// Drops every fault not yet played.
    pub fn clear_faults(&self) {
        self.inner.faults.lock().unwrap().clear();
    }

    /// Names the token endpoint, for [`MockServer::tokens_issued`].
    pub fn set_token_path(&self, path: &str) {
        *self.inner.token_path.lock().unwrap() = Some(path.to_string());
    }

    /// The token endpoint's path, if the provider has one.
    pub fn token_path(&self) -> Option<String> {
        self.inner.token_path.lock().unwrap().clone()
    }

    /// Successful answers of the token endpoint.
    pub fn tokens_issued(&self) -> usize {
        let p = self.inner.token_path.lock().unwrap().clone();
        match p {
            Some(p) => self
                .requests()
                .iter()
                .filter(|l| l.path == p && l.status < 300)
                .count(),
            None => 0,
        }
    }

    pub fn requests(&self) -> Vec<Logged> {
        self.inner.log.lock().unwrap().clone()
    }

    /// Requests to `path` (exact, or a prefix ending in `*`).
    pub fn hits(&self, path: &str) -> usize {
        self.requests()
            .iter()
            .filter(|l| matches(path, &l.path))
            .count()
    }

    /// Every request so far.
    pub fn total(&self) -> usize {
        self.inner.log.lock().unwrap().len()
    }

    /// Requests by path, for assertions on what a poll cost.
    pub fn by_path(&self) -> HashMap<String, usize> {
        let mut m = HashMap::new();
        for l in self.requests() {
            *m.entry(l.path).or_default() += 1;
        }
        m
    }
}
