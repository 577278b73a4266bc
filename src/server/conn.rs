//! The listener's connection handling, the same for plain HTTP and TLS: a cap on open
//! connections (at the cap, the connection that has waited longest for a request is closed
//! to make room; when all are busy the new one is refused), a header-read timeout that also
//! covers the TLS handshake, an idle keep-alive timeout, graceful shutdown, and the counters
//! behind the `identity_posture_http_*` metrics. Every request carries the peer address as
//! axum's `ConnectInfo<SocketAddr>` (the admin endpoints answer loopback callers).

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use axum::body::Body;
use axum::Router;
use bytes::Bytes;
use http_body::Frame;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tokio::sync::{watch, Notify};
use tokio::task::JoinSet;
use tower_service::Service;

use crate::config::ConnLimits;

/// How long in-flight responses may take to finish after shutdown begins.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

/// At most one "limit reached" or "accept failed" log line per this interval.
const LOG_EVERY: Duration = Duration::from_secs(10);

/// Counters for `/metrics`, shared by the listener and the auth layer. Rendered at scrape
/// time (they change between polls), like the `process_*` metrics.
#[derive(Default)]
pub struct HttpStats {
    open: AtomicU64,
    max: AtomicU64,
    rejected: AtomicU64,
    header_timeouts: AtomicU64,
    idle_timeouts: AtomicU64,
    evicted: AtomicU64,
    /// Basic-auth requests answered 503 because every password check slot was busy.
    pub auth_throttled: AtomicU64,
    /// Requests refused (401) for wrong or missing basic-auth credentials.
    pub auth_failures: AtomicU64,
}

impl HttpStats {
    pub fn open_connections(&self) -> u64 {
        self.open.load(Ordering::Relaxed)
    }
    pub fn rejected(&self) -> u64 {
        self.rejected.load(Ordering::Relaxed)
    }
    /// Closed by the server: (header-read timeouts, idle timeouts, evictions at the cap).
    pub fn closed(&self) -> (u64, u64, u64) {
        (
            self.header_timeouts.load(Ordering::Relaxed),
            self.idle_timeouts.load(Ordering::Relaxed),
            self.evicted.load(Ordering::Relaxed),
        )
    }

    /// Exposition text for the listener and auth counters.
    pub fn render(&self) -> Vec<u8> {
        let g = |n: &AtomicU64| n.load(Ordering::Relaxed);
        let mut s = String::with_capacity(1536);
        let mut fam = |name: &str, kind: &str, help: &str, samples: &[(&str, u64)]| {
            s.push_str(&format!("# HELP {name} {help}\n# TYPE {name} {kind}\n"));
            for (labels, v) in samples {
                s.push_str(&format!("{name}{labels} {v}\n"));
            }
        };
        fam(
            "identity_posture_http_connections",
            "gauge",
            "Open HTTP connections to this exporter's listener (current, not from the poll).",
            &[("", g(&self.open))],
        );
        fam(
            "identity_posture_http_connections_max",
            "gauge",
            "The connection cap (server.max_connections).",
            &[("", g(&self.max))],
        );
        fam(
            "identity_posture_http_connections_rejected_total",
            "counter",
            "Connections refused at the cap because every open connection was busy with a request.",
            &[("", g(&self.rejected))],
        );
        fam(
            "identity_posture_http_connections_closed_total",
            "counter",
            "Connections closed by the exporter: header_timeout (no complete request headers within server.header_read_timeout), idle_timeout (keep-alive idle longer than server.idle_timeout), evicted (longest-waiting connection closed to make room at the cap).",
            &[
                ("{reason=\"header_timeout\"}", g(&self.header_timeouts)),
                ("{reason=\"idle_timeout\"}", g(&self.idle_timeouts)),
                ("{reason=\"evicted\"}", g(&self.evicted)),
            ],
        );
        fam(
            "identity_posture_http_auth_throttled_total",
            "counter",
            "Basic-auth requests answered 503 because every bcrypt check slot was busy.",
            &[("", g(&self.auth_throttled))],
        );
        fam(
            "identity_posture_http_auth_failures_total",
            "counter",
            "Requests refused with 401 for missing or wrong basic-auth credentials.",
            &[("", g(&self.auth_failures))],
        );
        s.into_bytes()
    }
}

/// Logs at most once per [`LOG_EVERY`], saying how many events it stood for.
struct RateLimitedLog {
    last: Option<Instant>,
    suppressed: u64,
}

impl RateLimitedLog {
    fn hit(&mut self) -> Option<u64> {
        let now = Instant::now();
        if self.last.is_some_and(|l| now.duration_since(l) < LOG_EVERY) {
            self.suppressed += 1;
            return None;
        }
        self.last = Some(now);
        Some(std::mem::take(&mut self.suppressed) + 1)
    }
}

/// What the listener knows about one connection, shared with its task.
struct ConnShared {
    /// Requests whose response has not been fully handed to the connection yet.
    busy: AtomicU32,
    /// A response has been sent: waiting without bytes is keep-alive idleness from then on.
    served: AtomicBool,
    /// Bytes of a new request have arrived (the header clock runs).
    partial: AtomicBool,
    /// Milliseconds since the listener's epoch at the last change of state (accepted, first
    /// byte of a request, response finished).
    since_ms: AtomicU64,
    /// Told to close (evicted at the cap).
    evict: Notify,
    /// The state changed (response finished, request begun): the watchdog recomputes.
    changed: Notify,
    /// The client's address (eviction prefers the address holding the most connections).
    ip: IpAddr,
}

impl ConnShared {
    fn new(now_ms: u64, ip: IpAddr) -> ConnShared {
        ConnShared {
            busy: AtomicU32::new(0),
            served: AtomicBool::new(false),
            partial: AtomicBool::new(false),
            since_ms: AtomicU64::new(now_ms),
            evict: Notify::new(),
            changed: Notify::new(),
            ip,
        }
    }

    /// When the connection must be closed unless something happens, and why; `None` while
    /// a request is in flight.
    fn deadline(&self, epoch: Instant, limits: &ConnLimits) -> Option<(Instant, Closed)> {
        if self.busy.load(Ordering::Acquire) > 0 {
            return None;
        }
        let since = epoch + Duration::from_millis(self.since_ms.load(Ordering::Acquire));
        if !self.served.load(Ordering::Acquire) || self.partial.load(Ordering::Acquire) {
            Some((since + limits.header_read_timeout, Closed::HeaderTimeout))
        } else {
            Some((since + limits.idle_timeout, Closed::IdleTimeout))
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Closed {
    HeaderTimeout,
    IdleTimeout,
}

/// The open connections, for the cap and eviction.
struct Registry {
    conns: Mutex<Conns>,
    next_id: AtomicU64,
    limit_log: Mutex<RateLimitedLog>,
}

#[derive(Default)]
struct Conns {
    map: HashMap<u64, Arc<ConnShared>>,
    /// Open connections per client address.
    per_ip: HashMap<IpAddr, usize>,
}

impl Conns {
    fn insert(&mut self, id: u64, c: Arc<ConnShared>) {
        *self.per_ip.entry(c.ip).or_default() += 1;
        self.map.insert(id, c);
    }

    fn remove(&mut self, id: u64) -> Option<Arc<ConnShared>> {
        let c = self.map.remove(&id)?;
        if let Some(n) = self.per_ip.get_mut(&c.ip) {
            *n -= 1;
            if *n == 0 {
                self.per_ip.remove(&c.ip);
            }
        }
        Some(c)
    }

    /// The connection to close for a newcomer: one waiting without a request in flight
    /// (idle keep-alive, or headers never finished), from the client address holding the
    /// most connections, the one that has waited longest. One client flooding the listener
    /// thus churns its own connections, not everyone else's.
    fn victim(&self) -> Option<u64> {
        let idle = |c: &ConnShared| c.busy.load(Ordering::Acquire) == 0;
        let oldest = |ip: Option<IpAddr>| {
            self.map
                .iter()
                .filter(|(_, c)| idle(c) && ip.is_none_or(|ip| c.ip == ip))
                .min_by_key(|(_, c)| c.since_ms.load(Ordering::Acquire))
                .map(|(id, _)| *id)
        };
        let hog = self
            .per_ip
            .iter()
            .max_by_key(|(_, n)| **n)
            .map(|(ip, _)| *ip);
        oldest(hog).or_else(|| oldest(None))
    }
}

/// What the accept loop does with a new connection.
enum Admit {
    Yes(u64, Arc<ConnShared>),
    No,
}

impl Registry {
    fn admit(&self, max: usize, now_ms: u64, ip: IpAddr, stats: &HttpStats) -> Admit {
        let mut conns = self.conns.lock().unwrap_or_else(|e| e.into_inner());
        let mut evicted = false;
        if conns.map.len() >= max {
            match conns.victim() {
                Some(id) => {
                    if let Some(c) = conns.remove(id) {
                        c.evict.notify_one();
                    }
                    stats.evicted.fetch_add(1, Ordering::Relaxed);
                    evicted = true;
                }
                None => {
                    stats.rejected.fetch_add(1, Ordering::Relaxed);
                    drop(conns);
                    self.log_limit(max, false);
                    return Admit::No;
                }
            }
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let shared = Arc::new(ConnShared::new(now_ms, ip));
        conns.insert(id, shared.clone());
        stats.open.store(conns.map.len() as u64, Ordering::Relaxed);
        drop(conns);
        if evicted {
            self.log_limit(max, true);
        }
        Admit::Yes(id, shared)
    }

    fn remove(&self, id: u64, stats: &HttpStats) {
        let mut conns = self.conns.lock().unwrap_or_else(|e| e.into_inner());
        conns.remove(id);
        stats.open.store(conns.map.len() as u64, Ordering::Relaxed);
    }

    fn log_limit(&self, max: usize, evicted: bool) {
        let n = self
            .limit_log
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .hit();
        if let Some(n) = n {
            if evicted {
                tracing::warn!(max_connections = max, events = n, "HTTP connection limit reached: closing the connections that waited longest for a request to make room (server.max_connections)");
            } else {
                tracing::warn!(max_connections = max, events = n, "HTTP connection limit reached and every connection is busy: refusing new connections (server.max_connections)");
            }
        }
    }
}

/// Notes the first bytes of a request that arrive while the connection waits, so the
/// header-read clock starts then.
struct TrackedIo<S> {
    inner: S,
    shared: Arc<ConnShared>,
    epoch: Instant,
}

impl<S: AsyncRead + Unpin> AsyncRead for TrackedIo<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(r, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            let s = &self.shared;
            // Only a keep-alive connection restarts the clock: a new one must send its
            // first request within the header timeout of being accepted.
            if s.busy.load(Ordering::Acquire) == 0
                && s.served.load(Ordering::Acquire)
                && !s.partial.swap(true, Ordering::AcqRel)
            {
                s.since_ms.store(ms_since(self.epoch), Ordering::Release);
                s.changed.notify_one();
            }
        }
        r
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for TrackedIo<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

fn ms_since(epoch: Instant) -> u64 {
    epoch.elapsed().as_millis() as u64
}

/// Marks the connection busy while a request is handled; the guard in the response body
/// marks it waiting again once hyper has written (and dropped) the body.
struct BusyGuard {
    shared: Arc<ConnShared>,
    epoch: Instant,
}

impl BusyGuard {
    fn new(shared: Arc<ConnShared>, epoch: Instant) -> BusyGuard {
        shared.busy.fetch_add(1, Ordering::AcqRel);
        BusyGuard { shared, epoch }
    }
}

impl Drop for BusyGuard {
    fn drop(&mut self) {
        let s = &self.shared;
        s.served.store(true, Ordering::Release);
        s.partial.store(false, Ordering::Release);
        s.since_ms.store(ms_since(self.epoch), Ordering::Release);
        s.busy.fetch_sub(1, Ordering::AcqRel);
        s.changed.notify_one();
    }
}

/// A response body that holds the connection's [`BusyGuard`] until it is dropped.
struct GuardedBody {
    inner: Body,
    _guard: BusyGuard,
}

impl http_body::Body for GuardedBody {
    type Data = Bytes;
    type Error = axum::Error;
    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }
    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }
    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// The router as a hyper service for one connection.
#[derive(Clone)]
struct ConnService {
    router: Router,
    shared: Arc<ConnShared>,
    epoch: Instant,
    /// The client's address, handed to handlers as `ConnectInfo<SocketAddr>`.
    peer: SocketAddr,
}

impl hyper::service::Service<hyper::Request<Incoming>> for ConnService {
    type Response = hyper::Response<GuardedBody>;
    type Error = std::convert::Infallible;
    type Future =
        Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send + 'static>>;

    fn call(&self, req: hyper::Request<Incoming>) -> Self::Future {
        let guard = BusyGuard::new(self.shared.clone(), self.epoch);
        let mut router = self.router.clone();
        let mut req = req.map(Body::new);
        req.extensions_mut()
            .insert(axum::extract::ConnectInfo(self.peer));
        Box::pin(async move {
            // Router is always ready and infallible.
            let resp = match router.call(req).await {
                Ok(r) => r,
                Err(never) => match never {},
            };
            Ok(resp.map(|b| GuardedBody {
                inner: b,
                _guard: guard,
            }))
        })
    }
}

/// Serves plain HTTP (`tls = None`) or TLS on `listener` until `shutdown` resolves, then
/// lets in-flight responses finish for up to [`SHUTDOWN_GRACE`].
pub async fn serve(
    listener: TcpListener,
    router: Router,
    tls: Option<Arc<ArcSwap<rustls::ServerConfig>>>,
    limits: ConnLimits,
    stats: Arc<HttpStats>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    stats
        .max
        .store(limits.max_connections as u64, Ordering::Relaxed);
    let epoch = Instant::now();
    let registry = Arc::new(Registry {
        conns: Mutex::new(Conns::default()),
        next_id: AtomicU64::new(0),
        limit_log: Mutex::new(RateLimitedLog {
            last: None,
            suppressed: 0,
        }),
    });
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut tasks = JoinSet::new();
    let mut accept_log = RateLimitedLog {
        last: None,
        suppressed: 0,
    };
    tokio::pin!(shutdown);
    loop {
        let (tcp, peer) = tokio::select! {
            _ = &mut shutdown => break,
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(e) => {
                    // Out of file descriptors (or a similar transient failure): back off
                    // instead of spinning, and say so.
                    if let Some(n) = accept_log.hit() {
                        tracing::error!(error = %e, events = n, "cannot accept HTTP connections (raise LimitNOFILE or lower server.max_connections)");
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        while tasks.try_join_next().is_some() {}
        let (id, shared) =
            match registry.admit(limits.max_connections, ms_since(epoch), peer.ip(), &stats) {
                Admit::Yes(id, s) => (id, s),
                Admit::No => {
                    drop(tcp);
                    continue;
                }
            };
        let _ = tcp.set_nodelay(true);
        let (router, tls, registry, stats, stop) = (
            router.clone(),
            tls.clone(),
            registry.clone(),
            stats.clone(),
            stop_rx.clone(),
        );
        tasks.spawn(async move {
            let outcome = match tls {
                None => run_conn(tcp, peer, router, shared.clone(), epoch, limits, stop).await,
                Some(cfg) => {
                    let acceptor = tokio_rustls::TlsAcceptor::from(cfg.load_full());
                    // The handshake counts against the header-read timeout.
                    let hs = tokio::select! {
                        r = tokio::time::timeout(limits.header_read_timeout, acceptor.accept(tcp)) => Some(r),
                        _ = shared.evict.notified() => None,
                    };
                    match hs {
                        Some(Ok(Ok(s))) => {
                            run_conn(s, peer, router, shared.clone(), epoch, limits, stop).await
                        }
                        Some(Ok(Err(e))) => {
                            tracing::debug!(error = %e, "TLS handshake failed");
                            None
                        }
                        Some(Err(_)) => Some(Closed::HeaderTimeout),
                        None => None,
                    }
                }
            };
            match outcome {
                Some(Closed::HeaderTimeout) => {
                    stats.header_timeouts.fetch_add(1, Ordering::Relaxed);
                }
                Some(Closed::IdleTimeout) => {
                    stats.idle_timeouts.fetch_add(1, Ordering::Relaxed);
                }
                None => {}
            }
            registry.remove(id, &stats);
        });
    }
    drop(listener);
    let _ = stop_tx.send(true);
    let drained = tokio::time::timeout(SHUTDOWN_GRACE, async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            connections = tasks.len(),
            "shutdown: closing connections still busy after the grace period"
        );
        tasks.shutdown().await;
    }
}

/// Serves one connection until it ends, times out (returned), is evicted, or shutdown has
/// let its in-flight request finish.
async fn run_conn<S>(
    io: S,
    peer: SocketAddr,
    router: Router,
    shared: Arc<ConnShared>,
    epoch: Instant,
    limits: ConnLimits,
    mut stop: watch::Receiver<bool>,
) -> Option<Closed>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let io = TrackedIo {
        inner: io,
        shared: shared.clone(),
        epoch,
    };
    let svc = ConnService {
        router,
        shared: shared.clone(),
        epoch,
        peer,
    };
    let mut builder = hyper::server::conn::http1::Builder::new();
    // hyper's own header timeout is left off: ours (below) distinguishes a request that is
    // being sent from an idle keep-alive connection.
    builder.timer(TokioTimer::new()).keep_alive(true);
    let conn = builder.serve_connection(TokioIo::new(io), svc);
    tokio::pin!(conn);
    let mut stopping = *stop.borrow();
    if stopping {
        conn.as_mut().graceful_shutdown();
    }
    loop {
        let deadline = if stopping {
            None
        } else {
            shared.deadline(epoch, &limits)
        };
        let wake = match deadline {
            Some((at, _)) => tokio::time::Instant::from_std(at),
            // Busy (or stopping): the end of the response wakes us through `changed`.
            None => tokio::time::Instant::now() + Duration::from_secs(3600),
        };
        tokio::select! {
            r = conn.as_mut() => {
                if let Err(e) = r {
                    tracing::debug!(error = %e, "HTTP connection ended with an error");
                }
                return None;
            }
            _ = tokio::time::sleep_until(wake) => {
                if stopping {
                    continue;
                }
                if let Some((at, why)) = shared.deadline(epoch, &limits) {
                    if Instant::now() >= at {
                        return Some(why);
                    }
                }
            }
            _ = shared.changed.notified() => {}
            _ = shared.evict.notified(), if !stopping => return None,
            _ = stop.changed(), if !stopping => {
                stopping = true;
                // Idle connections close at once; a request in flight finishes first.
                conn.as_mut().graceful_shutdown();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOCAL: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

    #[test]
    fn deadlines_follow_the_connection_state() {
        let limits = ConnLimits {
            max_connections: 4,
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(120),
        };
        let epoch = Instant::now();
        let c = ConnShared::new(1000, LOCAL);
        let at = |c: &ConnShared| c.deadline(epoch, &limits).map(|(t, w)| (t - epoch, w));
        assert_eq!(
            at(&c),
            Some((Duration::from_millis(11_000), Closed::HeaderTimeout)),
            "a new connection must send its headers in time"
        );
        c.busy.store(1, Ordering::Release);
        assert_eq!(at(&c), None, "no deadline while a request is in flight");
        c.busy.store(0, Ordering::Release);
        c.served.store(true, Ordering::Release);
        c.since_ms.store(5000, Ordering::Release);
        assert_eq!(
            at(&c),
            Some((Duration::from_millis(125_000), Closed::IdleTimeout))
        );
        c.partial.store(true, Ordering::Release);
        assert_eq!(
            at(&c),
            Some((Duration::from_millis(15_000), Closed::HeaderTimeout)),
            "a request begun on a keep-alive connection gets the header timeout"
        );
    }

    #[test]
    fn at_the_cap_the_longest_waiting_idle_connection_makes_room() {
        let stats = HttpStats::default();
        let reg = Registry {
            conns: Mutex::new(Conns::default()),
            next_id: AtomicU64::new(0),
            limit_log: Mutex::new(RateLimitedLog {
                last: None,
                suppressed: 0,
            }),
        };
        let mut ids = Vec::new();
        for t in [30, 10, 20] {
            match reg.admit(3, t, LOCAL, &stats) {
                Admit::Yes(id, s) => ids.push((id, s)),
                Admit::No => panic!("under the cap"),
            }
        }
        // The one accepted at t=10 is busy: the next oldest (t=20) goes.
        ids[1].1.busy.store(1, Ordering::Release);
        assert!(matches!(reg.admit(3, 40, LOCAL, &stats), Admit::Yes(..)));
        let left: Vec<u64> = {
            let c = reg.conns.lock().unwrap();
            let mut v: Vec<u64> = c.map.keys().copied().collect();
            v.sort();
            v
        };
        assert_eq!(left, vec![ids[0].0, ids[1].0, 3]);
        assert_eq!(stats.closed().2, 1);
        assert_eq!(stats.open_connections(), 3);
        // All busy: refused.
        for c in reg.conns.lock().unwrap().map.values() {
            c.busy.store(1, Ordering::Release);
        }
        assert!(matches!(reg.admit(3, 50, LOCAL, &stats), Admit::No));
        assert_eq!(stats.rejected(), 1);
    }

    #[test]
    fn the_address_holding_the_most_connections_makes_room_first() {
        let stats = HttpStats::default();
        let reg = Registry {
            conns: Mutex::new(Conns::default()),
            next_id: AtomicU64::new(0),
            limit_log: Mutex::new(RateLimitedLog {
                last: None,
                suppressed: 0,
            }),
        };
        let flood: IpAddr = "192.0.2.66".parse().unwrap();
        // The scraper's connection is the oldest of all.
        assert!(matches!(reg.admit(4, 1, LOCAL, &stats), Admit::Yes(0, _)));
        for t in 2..=4 {
            assert!(matches!(reg.admit(4, t, flood, &stats), Admit::Yes(..)));
        }
        for t in 5..50 {
            assert!(matches!(reg.admit(4, t, flood, &stats), Admit::Yes(..)));
        }
        let c = reg.conns.lock().unwrap();
        assert!(c.map.contains_key(&0), "the scraper kept its connection");
        assert_eq!(c.per_ip[&flood], 3);
        assert_eq!(c.per_ip[&LOCAL], 1);
        assert_eq!(stats.closed().2, 45);
    }

    #[test]
    fn the_limit_log_is_rate_limited() {
        let mut l = RateLimitedLog {
            last: None,
            suppressed: 0,
        };
        assert_eq!(l.hit(), Some(1));
        assert_eq!(l.hit(), None);
        assert_eq!(l.hit(), None);
        l.last = Some(Instant::now() - LOG_EVERY);
        assert_eq!(l.hit(), Some(3), "the next line counts the suppressed ones");
    }

    #[test]
    fn rendered_counters_are_valid_exposition() {
        let s = HttpStats::default();
        s.auth_throttled.fetch_add(2, Ordering::Relaxed);
        let text = String::from_utf8(s.render()).unwrap();
        assert!(text.contains("# TYPE identity_posture_http_connections gauge\n"));
        assert!(text.contains("identity_posture_http_auth_throttled_total 2\n"));
        assert!(
            text.contains("identity_posture_http_connections_closed_total{reason=\"evicted\"} 0\n")
        );
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let (_, v) = line.rsplit_once(' ').unwrap();
            v.parse::<u64>().unwrap();
        }
    }
}
