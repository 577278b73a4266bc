//! `/metrics` compressed with gzip when the scraper asks for it (`Accept-Encoding: gzip`, as
//! Prometheus does). The poll's part of the body (every gauge; hundreds of kilobytes with
//! many sources) is deflated once per poll, on the first compressed scrape after it; each
//! scrape then deflates only the small live part (listener and `process_*` metrics) as the
//! final block of the same deflate stream, and writes the gzip trailer from the two CRCs.
//! The result is one ordinary gzip member, readable by every client.

use std::io::Write;
use std::sync::{Arc, Mutex};

use axum::http::HeaderMap;
use flate2::write::DeflateEncoder;
use flate2::{Compression, Crc};

/// The poll's part, deflated up to a sync flush (byte-aligned, stream not finished).
struct Prepared {
    /// The plain bytes this was made from (compared by pointer).
    plain: Arc<Vec<u8>>,
    deflated: Vec<u8>,
    crc: Crc,
}

/// The deflated poll part, kept until the next poll replaces the plain bytes.
#[derive(Default)]
pub struct GzipCache {
    current: Mutex<Option<Arc<Prepared>>>,
}

const HEADER: [u8; 10] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];

impl GzipCache {
    fn prepared(&self, plain: &Arc<Vec<u8>>) -> Arc<Prepared> {
        let mut cur = self.current.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(p) = cur.as_ref() {
            if Arc::ptr_eq(&p.plain, plain) {
                return p.clone();
            }
        }
        let mut enc =
            DeflateEncoder::new(Vec::with_capacity(plain.len() / 8), Compression::default());
        // Writing to a Vec cannot fail; `flush` is a sync flush: the output ends on a byte
        // boundary with every input byte emitted, and the stream stays open.
        let _ = enc.write_all(plain);
        let _ = enc.flush();
        let deflated = std::mem::take(enc.get_mut());
        let mut crc = Crc::new();
        crc.update(plain);
        let p = Arc::new(Prepared {
            plain: plain.clone(),
            deflated,
            crc,
        });
        *cur = Some(p.clone());
        p
    }

    /// The gzip encoding of `plain` followed by `live`: `plain` deflated once per distinct
    /// body, `live` on every call.
    pub fn encode(&self, plain: &Arc<Vec<u8>>, live: &[u8]) -> Vec<u8> {
        let p = self.prepared(plain);
        let mut tail = DeflateEncoder::new(Vec::new(), Compression::fast());
        let _ = tail.write_all(live);
        let tail = tail.finish().unwrap_or_default();
        let mut live_crc = Crc::new();
        live_crc.update(live);
        let mut crc = Crc::new();
        crc.combine(&p.crc);
        crc.combine(&live_crc);
        let mut out = Vec::with_capacity(HEADER.len() + p.deflated.len() + tail.len() + 8);
        out.extend_from_slice(&HEADER);
        out.extend_from_slice(&p.deflated);
        out.extend_from_slice(&tail);
        out.extend_from_slice(&crc.sum().to_le_bytes());
        out.extend_from_slice(&crc.amount().to_le_bytes());
        out
    }
}

/// Whether the request's `Accept-Encoding` accepts gzip (`gzip` or `*`, not with `q=0`).
pub fn accepts_gzip(headers: &HeaderMap) -> bool {
    headers
        .get_all(axum::http::header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|item| {
            let mut parts = item.split(';');
            let coding = parts.next().unwrap_or("").trim();
            if !(coding.eq_ignore_ascii_case("gzip") || coding == "*") {
                return false;
            }
            !parts.any(|p| {
                let p = p.trim();
                p.len() > 2
                    && p[..2].eq_ignore_ascii_case("q=")
                    && p[2..].trim().parse::<f64>().is_ok_and(|q| q <= 0.0)
            })
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn gunzip(b: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(b)
            .read_to_end(&mut out)
            .expect("valid gzip");
        out
    }

    #[test]
    fn one_gzip_member_with_the_live_part_appended() {
        let cache = GzipCache::default();
        let plain: Arc<Vec<u8>> = Arc::new(
            (0..5000)
                .map(|i| format!("identity_posture_accounts{{source=\"s{i}\"}} {i}\n"))
                .collect::<String>()
                .into_bytes(),
        );
        for live in [&b""[..], b"process_open_fds 7\n", b"x"] {
            let gz = cache.encode(&plain, live);
            let mut want = plain.to_vec();
            want.extend_from_slice(live);
            assert_eq!(gunzip(&gz), want);
            assert!(gz.len() < plain.len() / 4, "{} bytes", gz.len());
        }
        // Prepared once per body: the same plain bytes reuse it, new ones replace it.
        let first = cache.prepared(&plain);
        assert!(Arc::ptr_eq(&first, &cache.prepared(&plain)));
        let next = Arc::new(b"a 1\n".to_vec());
        assert_eq!(gunzip(&cache.encode(&next, b"b 2\n")), b"a 1\nb 2\n");
        assert!(!Arc::ptr_eq(&first, &cache.prepared(&next)));
        let empty = Arc::new(Vec::new());
        assert_eq!(gunzip(&cache.encode(&empty, b"")), b"");
    }

    #[test]
    fn accept_encoding_is_negotiated() {
        let h = |v: &str| {
            let mut m = HeaderMap::new();
            m.insert(axum::http::header::ACCEPT_ENCODING, v.parse().unwrap());
            accepts_gzip(&m)
        };
        assert!(h("gzip"));
        assert!(h("identity, GZIP"));
        assert!(h("gzip;q=0.5, br"));
        assert!(h("*"));
        assert!(!h("gzip;q=0"));
        assert!(!h("gzip; q=0.0"));
        assert!(!h("br, deflate"));
        assert!(!h("gzipx"));
        assert!(!h(";;;,,q=,"));
        assert!(!accepts_gzip(&HeaderMap::new()));
    }
}
