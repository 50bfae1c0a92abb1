//! HTTP errors: every failure answers JSON `{"code", "message"}` with a
//! status that says whose fault it is, and the extractors that turn axum's
//! plain-text rejections (bad query string, bad path) into such errors.
//!
//! Invariants: bad input is always a 4xx (400 for a malformed parameter,
//! 404 for something that does not exist), never a 500; a 503 means the
//! data could not be read now (a store held by another process, a store of
//! another format, the log unreachable) and may succeed later; 500 is kept
//! for what should never happen (a corrupt store or journal).

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{FromRequestParts, Path, Query};
use axum::http::request::Parts;
use axum::http::{Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::de::DeserializeOwned;
use serde::Serialize;
use utoipa::ToSchema;

use crate::engine::EngineError;
use crate::log::LogError;
use crate::store::StoreError;

/// The body of every error response.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// Stable, machine-readable: `invalid_parameter`, `invalid_path`,
    /// `not_found`, `unknown_endpoint`, `method_not_allowed`,
    /// `unavailable` or `internal`.
    pub code: String,
    /// For people.
    pub message: String,
}

#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// A query parameter is malformed or out of range.
    #[error("{0}")]
    InvalidParameter(String),
    /// A path parameter does not decode.
    #[error("{0}")]
    InvalidPath(String),
    /// The thing named does not exist (yet).
    #[error("{0}")]
    NotFound(String),
    #[error("no endpoint {0}; see /openapi.json")]
    UnknownEndpoint(String),
    #[error("{method} is not allowed on {path}: this API is read-only (GET)")]
    MethodNotAllowed { method: String, path: String },
    /// The data cannot be read now; a retry may succeed.
    #[error("{0}")]
    Unavailable(String),
    #[error("{0}")]
    Internal(String),
}

impl HttpError {
    fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            HttpError::InvalidParameter(_) => (StatusCode::BAD_REQUEST, "invalid_parameter"),
            HttpError::InvalidPath(_) => (StatusCode::BAD_REQUEST, "invalid_path"),
            HttpError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            HttpError::UnknownEndpoint(_) => (StatusCode::NOT_FOUND, "unknown_endpoint"),
            HttpError::MethodNotAllowed { .. } => {
                (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed")
            }
            HttpError::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            HttpError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        }
    }
}

impl IntoResponse for HttpError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        if status.is_server_error() {
            tracing::warn!(code, error = %self, "HTTP API request failed");
        }
        let body = ErrorBody {
            code: code.to_string(),
            message: self.to_string(),
        };
        (status, Json(body)).into_response()
    }
}

impl From<StoreError> for HttpError {
    fn from(e: StoreError) -> Self {
        match e {
            // Held by another process, of another format or still being
            // built: readable once that changes.
            StoreError::Sled { .. }
            | StoreError::Format { .. }
            | StoreError::Unfinished { .. }
            | StoreError::Journal(_) => HttpError::Unavailable(e.to_string()),
            StoreError::Corrupt { .. } | StoreError::Damaged { .. } => {
                HttpError::Internal(e.to_string())
            }
        }
    }
}

impl From<EngineError> for HttpError {
    fn from(e: EngineError) -> Self {
        let e = match e {
            EngineError::At { source, .. } => *source,
            e => e,
        };
        match e {
            EngineError::Store(e) => e.into(),
            EngineError::Log(LogError::UnknownTopic(t)) => {
                HttpError::NotFound(format!("no topic `{t}` yet: nothing was journalled"))
            }
            EngineError::Log(e) => HttpError::Unavailable(format!("reading the log: {e}")),
            e => HttpError::Internal(e.to_string()),
        }
    }
}

/// Runs a blocking store read off the async workers (sled reads block).
pub async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, HttpError> + Send + 'static,
) -> Result<T, HttpError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| HttpError::Internal(format!("a store read did not finish: {e}")))?
}

/// `Query<T>` whose rejection is a JSON 400.
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = HttpError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, HttpError> {
        Query::<T>::try_from_uri(&parts.uri)
            .map(|Query(q)| ApiQuery(q))
            .map_err(|r: QueryRejection| HttpError::InvalidParameter(r.body_text()))
    }
}

/// `Path<T>` whose rejection is a JSON 400.
pub struct ApiPath<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for ApiPath<T> {
    type Rejection = HttpError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, HttpError> {
        match Path::<T>::from_request_parts(parts, state).await {
            Ok(Path(p)) => Ok(ApiPath(p)),
            // A route without the parameters its handler reads: our bug.
            Err(r @ PathRejection::MissingPathParams(_)) => Err(HttpError::Internal(r.body_text())),
            Err(r) => Err(HttpError::InvalidPath(r.body_text())),
        }
    }
}

/// The router's fallback: a JSON 404 for any unknown path.
pub async fn unknown_endpoint(uri: Uri) -> HttpError {
    HttpError::UnknownEndpoint(uri.path().to_string())
}

/// A known path with a method it does not serve: a JSON 405 (axum adds
/// the `Allow` header).
pub async fn method_not_allowed(method: Method, uri: Uri) -> HttpError {
    HttpError::MethodNotAllowed {
        method: method.to_string(),
        path: uri.path().to_string(),
    }
}
