//! A tiny IAM query-API stub on 127.0.0.1:0 for driving the real AWS SDK client: answers the
//! calls the `aws_iam` source makes for a one-user account (documented XML shapes), and plays
//! scripted error answers per action (`Throttling`, `AccessDenied`, …) before the normal one.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Router;
use base64::Engine;

const NS: &str = "https://iam.amazonaws.com/doc/2010-05-08/";

/// The credential report the stub serves: one console user without MFA, one service user.
pub const REPORT: &str = "user,arn,user_creation_time,password_enabled,password_last_used,password_last_changed,password_next_rotation,mfa_active,access_key_1_active,access_key_1_last_rotated,access_key_1_last_used_date,access_key_1_last_used_region,access_key_1_last_used_service,access_key_2_active,access_key_2_last_rotated,access_key_2_last_used_date,access_key_2_last_used_region,access_key_2_last_used_service,cert_1_active,cert_1_last_rotated,cert_2_active,cert_2_last_rotated\n\
stub-user,arn:aws:iam::111122223333:user/stub-user,2026-01-01T00:00:00+00:00,true,2026-11-20T00:00:00+00:00,2026-01-01T00:00:00+00:00,N/A,false,false,N/A,N/A,N/A,N/A,false,N/A,N/A,N/A,N/A,false,N/A,false,N/A\n\
stub-svc,arn:aws:iam::111122223333:user/stub-svc,2026-01-01T00:00:00+00:00,false,N/A,N/A,N/A,false,true,2026-10-01T00:00:00+00:00,2026-11-27T00:00:00+00:00,us-east-1,iam,false,N/A,N/A,N/A,N/A,false,N/A,false,N/A\n";

#[derive(Default)]
struct Inner {
    /// Error answers to play, per action, before the normal answer.
    faults: Mutex<HashMap<String, VecDeque<(u16, String)>>>,
    /// Every action asked for, in order.
    log: Mutex<Vec<String>>,
}

pub struct IamStub {
    pub url: String,
    inner: Arc<Inner>,
}

/// An IAM error body (`<ErrorResponse>`), as AWS sends it.
pub fn error_body(code: &str, message: &str) -> String {
    format!("<ErrorResponse xmlns=\"{NS}\"><Error><Type>Sender</Type><Code>{code}</Code><Message>{message}</Message></Error><RequestId>stub</RequestId></ErrorResponse>")
}

fn ok(action: &str, result: &str) -> Response {
    let body = format!("<{action}Response xmlns=\"{NS}\"><{action}Result>{result}</{action}Result><ResponseMetadata><RequestId>stub</RequestId></ResponseMetadata></{action}Response>");
    (StatusCode::OK, [("content-type", "text/xml")], body).into_response()
}

async fn handle(State(inner): State<Arc<Inner>>, body: Bytes) -> Response {
    let action = url::form_urlencoded::parse(&body)
        .find(|(k, _)| k == "Action")
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default();
    inner.log.lock().unwrap().push(action.clone());
    let fault = inner
        .faults
        .lock()
        .unwrap()
        .get_mut(&action)
        .and_then(VecDeque::pop_front);
    if let Some((status, body)) = fault {
        return (
            StatusCode::from_u16(status).unwrap(),
            [("content-type", "text/xml")],
            body,
        )
            .into_response();
    }
    let report = base64::engine::general_purpose::STANDARD.encode(REPORT);
    let empty_list = |field: &str| format!("<{field}/><IsTruncated>false</IsTruncated>");
    match action.as_str() {
        "GenerateCredentialReport" => ok(&action, "<State>COMPLETE</State>"),
        "GetCredentialReport" => ok(
            &action,
            &format!("<Content>{report}</Content><ReportFormat>text/csv</ReportFormat><GeneratedTime>2026-11-28T11:00:00Z</GeneratedTime>"),
        ),
        "ListAttachedUserPolicies" => ok(&action, &empty_list("AttachedPolicies")),
        "ListUserPolicies" => ok(&action, &empty_list("PolicyNames")),
        "ListGroupsForUser" => ok(&action, &empty_list("Groups")),
        "ListMFADevices" => ok(&action, &empty_list("MFADevices")),
        "ListVirtualMFADevices" => ok(&action, &empty_list("VirtualMFADevices")),
        _ => (
            StatusCode::BAD_REQUEST,
            [("content-type", "text/xml")],
            error_body("InvalidAction", "not served by the stub"),
        )
            .into_response(),
    }
}

impl IamStub {
    pub async fn start() -> IamStub {
        let inner = Arc::new(Inner::default());
        let app = Router::new()
            .route("/", axum::routing::post(handle))
            .with_state(inner.clone());
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", l.local_addr().unwrap());
        tokio::spawn(async move {
            let _ = axum::serve(l, app).await;
        });
        IamStub { url, inner }
    }

    /// Answers the next call of `action` (e.g. `"GetCredentialReport"`) with this status and
    /// body, before the normal answer; repeat to queue more.
    pub fn fault(&self, action: &str, status: u16, body: String) {
        self.inner
            .faults
            .lock()
            .unwrap()
            .entry(action.to_string())
            .or_default()
            .push_back((status, body));
    }

    pub fn clear_faults(&self) {
        self.inner.faults.lock().unwrap().clear();
    }

    /// How many requests for `action` arrived.
    pub fn hits(&self, action: &str) -> usize {
        self.inner
            .log
            .lock()
            .unwrap()
            .iter()
            .filter(|a| *a == action)
            .count()
    }

    pub fn requests(&self) -> usize {
        self.inner.log.lock().unwrap().len()
    }
}
