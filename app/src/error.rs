//! The one error type that crosses the server-function boundary.
//!
//! It says what the user can act on and nothing more: a database fault becomes
//! [`AppError::Internal`] after being logged on the server, never its text.

use leptos::server_fn::codec::JsonEncoding;
use leptos::server_fn::error::{FromServerFnError, ServerFnErrorErr};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum AppError {
    #[error("Please sign in.")]
    NotSignedIn,
    #[error("Not found.")]
    NotFound,
    /// A form value that does not parse; shown next to `field`.
    #[error("{message}")]
    Field { field: String, message: String },
    /// The request is understood and refused (balance, limits…); the message says why.
    #[error("{0}")]
    Refused(String),
    #[error("Too many attempts. Try again in a few minutes.")]
    RateLimited,
    #[error("Something went wrong on our side. Please try again.")]
    Internal,
    /// Transport-level failures of the server-function call itself.
    #[error("{0}")]
    Call(String),
}

impl AppError {
    pub fn field(field: &str, message: impl Into<String>) -> Self {
        AppError::Field {
            field: field.into(),
            message: message.into(),
        }
    }

    /// The message to show beside `name`, when this error is about that field.
    pub fn for_field(&self, name: &str) -> Option<String> {
        match self {
            AppError::Field { field, message } if field == name => Some(message.clone()),
            _ => None,
        }
    }

    /// The message for the form as a whole: everything that is not a field error.
    pub fn general(&self) -> Option<String> {
        match self {
            AppError::Field { .. } => None,
            other => Some(other.to_string()),
        }
    }
}

impl FromServerFnError for AppError {
    type Encoder = JsonEncoding;

    fn from_server_fn_error(value: ServerFnErrorErr) -> Self {
        AppError::Call(value.to_string())
    }
}

#[cfg(feature = "ssr")]
impl From<sqlx::Error> for AppError {
    fn from(error: sqlx::Error) -> Self {
        tracing::error!(%error, "store error");
        AppError::Internal
    }
}
