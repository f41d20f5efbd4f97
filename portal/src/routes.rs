//! The route table: each module's `routes()` returns [`Routes`], groups of
//! routes that share their guards, and this module applies the guards by
//! group. A route is added only through a [`Group`], which records its method
//! and path, so the table lists every route and the guard it gets; the tests
//! walk it (`tests/routes.rs`).
//!
//! Every group has an [`Access`] (who may use it) and a [`Csrf`] policy (which
//! token its state-changing requests need). [`Group::signed_in`] and
//! [`Group::user_manager`] check CSRF against the session; a group that is not
//! authenticated by the session cookie says so with [`Group::exempt`] and why.

use axum::Router;
use axum::extract::{FromRequestParts, Request, State};
use axum::handler::Handler;
use axum::http::Method;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, delete, get, head, patch, post, put};

pub use crate::csrf::Csrf;
use crate::session::Viewer;
use crate::{AppState, Error};

/// Who may use a group's routes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone; the handler decides (e.g. a link's token, or an optional viewer).
    Anyone,
    /// A signed-in person; anyone else is sent to sign in first.
    SignedIn,
    /// A practice's User Manager; anyone else gets "not found".
    UserManager,
}

/// One route as the table records it.
#[derive(Debug, Clone)]
#[cfg_attr(not(test), allow(dead_code))]
pub struct Route {
    pub method: Method,
    pub path: &'static str,
    pub access: Access,
    pub csrf: Csrf,
}

/// Routes that share their guards.
pub struct Group {
    access: Access,
    csrf: Csrf,
    router: Router<AppState>,
    table: Vec<Route>,
}

impl Group {
    fn new(access: Access, csrf: Csrf) -> Self {
        Self {
            access,
            csrf,
            router: Router::new(),
            table: Vec::new(),
        }
    }

    /// Pages for anyone; a form posted with a session cookie needs its token.
    pub fn public() -> Self {
        Self::new(Access::Anyone, Csrf::Session)
    }

    /// Pages for a signed-in person; forms need the session's token.
    pub fn signed_in() -> Self {
        Self::new(Access::SignedIn, Csrf::Session)
    }

    /// Pages for a practice's User Manager; forms need the session's token.
    pub fn user_manager() -> Self {
        Self::new(Access::UserManager, Csrf::Session)
    }

    /// The second step of signing in, authenticated by the pending-sign-in
    /// cookie; forms need that cookie's token.
    pub fn pending_sign_in() -> Self {
        Self::new(Access::Anyone, Csrf::PendingSignIn)
    }

    /// Routes no cookie authenticates, so no session token is asked for.
    /// `why` names what protects them instead; the route tests list each one.
    pub fn exempt(why: &'static str) -> Self {
        Self::new(Access::Anyone, Csrf::Exempt(why))
    }

    pub fn get<H: Handler<T, AppState>, T: 'static>(self, path: &'static str, handler: H) -> Self {
        self.add(Method::GET, path, get(handler))
    }

    pub fn post<H: Handler<T, AppState>, T: 'static>(self, path: &'static str, handler: H) -> Self {
        self.add(Method::POST, path, post(handler))
    }

    #[allow(dead_code)] // for the coming API; guarded like POST
    pub fn put<H: Handler<T, AppState>, T: 'static>(self, path: &'static str, handler: H) -> Self {
        self.add(Method::PUT, path, put(handler))
    }

    /// `HEAD` alone (a `GET` on the same path answers its own `HEAD` otherwise).
    pub fn head<H: Handler<T, AppState>, T: 'static>(self, path: &'static str, handler: H) -> Self {
        self.add(Method::HEAD, path, head(handler))
    }

    /// Guarded like POST.
    pub fn patch<H: Handler<T, AppState>, T: 'static>(self, path: &'static str, handler: H) -> Self {
        self.add(Method::PATCH, path, patch(handler))
    }

    /// Guarded like POST.
    pub fn delete<H: Handler<T, AppState>, T: 'static>(self, path: &'static str, handler: H) -> Self {
        self.add(Method::DELETE, path, delete(handler))
    }

    fn add(mut self, method: Method, path: &'static str, route: MethodRouter<AppState>) -> Self {
        self.router = self.router.route(path, route);
        self.table.push(Route {
            method,
            path,
            access: self.access,
            csrf: self.csrf,
        });
        self
    }

    /// The group's routes behind its guards: CSRF first (no database), then access.
    fn guarded(self, state: &AppState) -> Router<AppState> {
        let (access, csrf) = (self.access, self.csrf);
        let router = match access {
            Access::Anyone => self.router,
            _ => self.router.route_layer(middleware::from_fn_with_state(
                state.clone(),
                move |state: State<AppState>, request: Request, next: Next| check_access(access, state, request, next),
            )),
        };
        router.route_layer(middleware::from_fn(move |request: Request, next: Next| {
            crate::csrf::guard(csrf, request, next)
        }))
    }
}

/// A module's groups of routes.
#[derive(Default)]
pub struct Routes(Vec<Group>);

impl Routes {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn group(mut self, group: Group) -> Self {
        self.0.push(group);
        self
    }

    pub fn merge(mut self, other: Self) -> Self {
        self.0.extend(other.0);
        self
    }

    /// Every route with its guards.
    #[cfg_attr(not(test), allow(dead_code))]
    pub fn table(&self) -> Vec<Route> {
        self.0.iter().flat_map(|g| g.table.iter().cloned()).collect()
    }

    /// One router with every group behind its guards.
    pub fn into_router(self, state: &AppState) -> Router<AppState> {
        self.0
            .into_iter()
            .fold(Router::new(), |router, group| router.merge(group.guarded(state)))
    }
}

/// The access layer: looks the viewer up once, refuses who may not enter, and
/// leaves the [`Viewer`] for the handler.
async fn check_access(access: Access, State(state): State<AppState>, request: Request, next: Next) -> Response {
    let (mut parts, body) = request.into_parts();
    let viewer = match Viewer::from_request_parts(&mut parts, &state).await {
        Ok(viewer) => viewer,
        Err(error) => return error.into_response(),
    };
    if access == Access::UserManager && !(viewer.user.user_manager && viewer.user.practice_id.is_some()) {
        return Error::NotFound.into_response();
    }
    parts.extensions.insert(viewer);
    next.run(Request::from_parts(parts, body)).await
}
