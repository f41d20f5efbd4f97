//! The portal's error type and the pages it turns into: what the person sees is
//! short and plain; what the log gets is the error kind, never PHI.

use askama::Template;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Redirect, Response};

use crate::next::signin_url;

/// Why a link (invitation or set-password) can't be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkProblem {
    Unknown,
    Expired,
    Used,
}

/// Everything a portal handler can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The page needs a signed-in user; they go to sign in, then to `next`.
    #[error("not signed in")]
    NotSignedIn { next: String },
    /// Signed in, but the request is not allowed (e.g. a CSRF mismatch).
    #[error("forbidden")]
    Forbidden,
    /// Does not exist, or the viewer may not see it.
    #[error("not found")]
    NotFound,
    /// Input the person can correct; the text is for them.
    #[error("bad request: {0}")]
    BadRequest(String),
    /// A link that can't be used; `next` is where signing in would lead.
    #[error("link problem: {problem:?}")]
    Link { problem: LinkProblem, next: Option<String> },
    /// Our fault. The detail is for the log (store errors carry no PHI).
    #[error("store: {0}")]
    Store(store::Error),
    #[error("template: {0}")]
    Render(#[from] askama::Error),
}

impl From<store::Error> for Error {
    fn from(error: store::Error) -> Self {
        match error {
            // What the viewer may not touch is, to them, not there (DESIGN.md:
            // a stranger learns nothing). Corrupt data and failures of the
            // database or blob store are ours: a 500, logged (below).
            store::Error::NotFound | store::Error::Forbidden(_) => Self::NotFound,
            store::Error::Invalid(message) | store::Error::Conflict(message) => Self::BadRequest(message),
            store::Error::TokenInvalid => Self::Link {
                problem: LinkProblem::Unknown,
                next: None,
            },
            store::Error::TokenExpired => Self::Link {
                problem: LinkProblem::Expired,
                next: None,
            },
            store::Error::TokenUsed => Self::Link {
                problem: LinkProblem::Used,
                next: None,
            },
            store::Error::AuthFailed => Self::Forbidden,
            other => Self::Store(other),
        }
    }
}

/// A plain page that explains what happened and what to do next.
#[derive(Template)]
#[template(path = "error.html")]
pub(crate) struct ErrorPage {
    pub nav: Option<crate::nav::Nav>,
    pub title: &'static str,
    pub message: String,
    pub hint: &'static str,
    pub actions: Vec<(String, &'static str)>,
}

impl ErrorPage {
    fn respond(self, status: StatusCode) -> Response {
        match self.render() {
            Ok(body) => (status, Html(body)).into_response(),
            Err(error) => {
                tracing::error!(%error, "portal: error page failed to render");
                (status, self.title).into_response()
            }
        }
    }
}

fn signin_link(next: Option<&str>) -> String {
    match next {
        Some(next) => signin_url(next),
        None => "/signin".to_owned(),
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let page = |title, message: &str, hint, actions| ErrorPage {
            nav: None,
            title,
            message: message.to_owned(),
            hint,
            actions,
        };
        match self {
            Self::NotSignedIn { next } => Redirect::to(&signin_url(&next)).into_response(),
            Self::Forbidden => page(
                "Not allowed",
                "We couldn't accept this request.",
                "If you were filling in a form, go back, reload the page and try again.",
                vec![("/inbox".to_owned(), "Go to your inbox")],
            )
            .respond(StatusCode::FORBIDDEN),
            Self::NotFound => page(
                "Not found",
                "We can't find this page or message.",
                "The message may have expired or been deleted, or it was sent to a different account.",
                vec![("/inbox".to_owned(), "Go to your inbox")],
            )
            .respond(StatusCode::NOT_FOUND),
            Self::BadRequest(message) => {
                page("Please check", &message, "Go back and try again.", vec![]).respond(StatusCode::BAD_REQUEST)
            }
            Self::Link { problem, next } => {
                let (status, title, message) = match problem {
                    LinkProblem::Unknown => (StatusCode::NOT_FOUND, "Link not valid", "This link is not valid."),
                    LinkProblem::Expired => (StatusCode::GONE, "Link expired", "This link has expired."),
                    LinkProblem::Used => (
                        StatusCode::GONE,
                        "Link already used",
                        "This link has already been used.",
                    ),
                };
                page(
                    title,
                    message,
                    "If you already registered, sign in to read your messages. If not, ask the sender to send the message again.",
                    vec![(signin_link(next.as_deref()), "Sign in")],
                )
                .respond(status)
            }
            Self::Store(error) => {
                tracing::error!(%error, "portal: store error");
                internal()
            }
            Self::Render(error) => {
                tracing::error!(%error, "portal: template error");
                internal()
            }
        }
    }
}

fn internal() -> Response {
    ErrorPage {
        nav: None,
        title: "Something went wrong",
        message: "Something went wrong on our side.".to_owned(),
        hint: "Please try again in a few minutes.",
        actions: vec![("/".to_owned(), "Start again")],
    }
    .respond(StatusCode::INTERNAL_SERVER_ERROR)
}

#[cfg(test)]
mod tests {
    use axum::http::StatusCode;
    use axum::response::IntoResponse;

    use super::Error;

    fn status(error: store::Error) -> StatusCode {
        Error::from(error).into_response().status()
    }

    /// The portal owns the words and the status: what the viewer may not touch
    /// is not found to them; what went wrong on our side is a 500.
    #[test]
    fn store_kinds_map_to_what_the_person_sees() {
        assert_eq!(status(store::Error::NotFound), StatusCode::NOT_FOUND);
        assert_eq!(
            status(store::Error::Forbidden("not a User Manager")),
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            status(store::Error::Corrupt("message state")),
            StatusCode::INTERNAL_SERVER_ERROR
        );
        assert_eq!(
            status(store::Error::Io(std::io::Error::other("disk"))),
            StatusCode::INTERNAL_SERVER_ERROR
        );
        assert_eq!(status(store::Error::TokenExpired), StatusCode::GONE);
    }
}
